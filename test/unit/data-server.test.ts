import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Config, loadConfig } from '../../src/config';
import { exportsDir, liveFile } from '../../src/host/data-dir';
import { HostInstances } from '../../src/host/instances';
import { DataServer, startDataServer } from '../../src/host/data-server';
import { Fence } from '../../src/host/fence';
import { HostLease } from '../../src/host/lease';
import { MAX_FILE_BYTES } from '../../src/vfs/volumes';
import { Vfs } from '../../src/vfs/vfs';
import { freePort } from '../../harness/temporal';
import { TEST_DATA_KEY } from '../../harness/stack';
import { DataKey, GrantOp } from '../../src/grants';
import { upload } from '../../harness/uploads';

interface Ctx {
  dir: string;
  cfg: Config;
  instances: HostInstances;
  server: DataServer;
  url: string;
}

async function setup(t: { after(fn: () => Promise<void> | void): void }, overrides: Partial<Config> = {}): Promise<Ctx> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-data-'));
  const cfg = loadConfig({}, { dataDir: path.join(dir, 'data'), hostId: 'host-a', hostPort: 0, hostBind: '127.0.0.1', ...overrides });
  const instances = new HostInstances(cfg);
  const server = await startDataServer(cfg, instances, soloFence(cfg, instances), TEST_DATA_KEY);
  t.after(async () => {
    await server.close();
    instances.closeAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, cfg, instances, server, url: server.url };
}

/** A fence for a data server on its own: a lease that never lapses; the "workflow" says every open workspace is here. */
function soloFence(cfg: Config, instances: HostInstances): Fence {
  return new Fence({
    hostId: cfg.hostId,
    lease: HostLease.always(),
    instances,
    truth: async (id) => (instances.isOpen(id) ? { state: 'active', host: cfg.hostId, placement: instances.servedPlacement(id) } : null),
    setAside: async () => undefined,
  });
}

/** The grant a client with the data key sends for every operation on the workspace a path names (placement: the one held, here none). */
function grantHeader(url: string, key = TEST_DATA_KEY, ops: GrantOp[] = ['read', 'write', 'export']): Record<string, string> {
  const m = /\/workspaces\/([^/?]+)/.exec(new URL(url, 'http://x').pathname);
  return m ? { authorization: `Bearer ${key.grantFor(decodeURIComponent(m[1]!), null, ops)}` } : {};
}

/** fetch() with the data key's grant, as the client sends it. */
function dfetch(url: string, init: RequestInit = {}): Promise<Response> {
  return fetch(url, { ...init, headers: { ...grantHeader(url), ...((init.headers as Record<string, string>) ?? {}) } });
}

/** Creates the workspace's file and opens it on the host. */
function activate(c: Ctx, id: string): void {
  Vfs.open(liveFile(c.cfg, id)).close();
  c.instances.open(id);
}

async function json(res: Response): Promise<any> {
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return res.json();
}

async function expectError(res: Response, status: number, code: string): Promise<void> {
  assert.equal(res.status, status, `${res.url}: expected ${status}, got ${res.status}`);
  const body = await json(res);
  assert.equal(body.error?.code, code, JSON.stringify(body));
  assert.equal(typeof body.error?.message, 'string');
}

test('health reports the host; the URL uses the bound port', async (t) => {
  const c = await setup(t);
  assert.match(c.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(c.url, 'http://127.0.0.1:0');
  const res = await dfetch(`${c.url}/health`);
  assert.equal(res.status, 200);
  assert.deepEqual(await json(res), { host: 'host-a' });
});

test('advertiseUrl is what the server reports when set', async (t) => {
  const c = await setup(t, { advertiseUrl: 'http://workbooks-host-a.internal:9000' });
  assert.equal(c.url, 'http://workbooks-host-a.internal:9000');
});

test('PUT stores raw bytes whatever the content type; GET returns them; DELETE removes them', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-1');
  const bin = crypto.randomBytes(70_000);
  const base = `${c.url}/workspaces/ws-1/files/workspace`;

  let res = await dfetch(`${base}/data/blob.bin`, { method: 'PUT', body: bin, headers: { 'content-type': 'image/png' } });
  assert.equal(res.status, 200);
  const entry = await json(res);
  assert.equal(entry.volume, 'workspace');
  assert.equal(entry.path, '/data/blob.bin');
  assert.equal(entry.bytes, bin.length);
  assert.equal(typeof entry.updatedAt, 'number');

  // A JSON content type is not parsed: the body is stored verbatim, even when it is not valid JSON.
  res = await dfetch(`${base}/notes/x.json`, { method: 'PUT', body: '{not json', headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 200);
  // No content type at all, and an empty body.
  res = await dfetch(`${base}/empty`, { method: 'PUT', body: new Uint8Array(0) });
  assert.equal(res.status, 200);
  assert.equal((await json(res)).bytes, 0);
  // Unicode paths round-trip.
  res = await dfetch(`${base}/${encodeURIComponent('fiche été')}.md`, { method: 'PUT', body: 'bonjour', headers: { 'content-type': 'text/plain' } });
  assert.equal(res.status, 200);
  assert.equal((await json(res)).path, '/fiche été.md');

  res = await dfetch(`${base}/data/blob.bin`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'application/octet-stream');
  assert.ok(Buffer.from(await res.arrayBuffer()).equals(bin));
  res = await dfetch(`${base}/notes/x.json`);
  assert.equal(await res.text(), '{not json');
  res = await dfetch(`${base}/empty`);
  assert.equal(res.status, 200);
  assert.equal((await res.arrayBuffer()).byteLength, 0);

  // What the server stored is what the Vfs holds.
  assert.ok(c.instances.withVfs('ws-1', (v) => v.get('workspace', '/data/blob.bin'))?.equals(bin));

  res = await dfetch(`${base}/data/blob.bin`, { method: 'DELETE' });
  assert.equal(res.status, 200);
  assert.deepEqual(await json(res), { deleted: true });
  await expectError(await dfetch(`${base}/data/blob.bin`), 404, 'not_found');
  await expectError(await dfetch(`${base}/data/blob.bin`, { method: 'DELETE' }), 404, 'not_found');
  // Volumes are separate.
  await expectError(await dfetch(`${c.url}/workspaces/ws-1/files/memory/notes/x.json`), 404, 'not_found');
});

test('listing a volume, with and without a prefix', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-2');
  const base = `${c.url}/workspaces/ws-2/files`;
  for (const p of ['/a/1.md', '/a/2.md', '/a-b.md', '/b/1.md']) {
    assert.equal((await dfetch(`${base}/workspace${p}`, { method: 'PUT', body: p })).status, 200);
  }
  await dfetch(`${base}/memory/m.md`, { method: 'PUT', body: 'm' });

  let body = await json(await dfetch(`${base}/workspace`));
  assert.deepEqual(
    body.files.map((f: { path: string }) => f.path),
    ['/a-b.md', '/a/1.md', '/a/2.md', '/b/1.md'],
  );
  body = await json(await dfetch(`${base}/workspace?prefix=/a`));
  assert.equal(body.prefix, '/a');
  assert.deepEqual(
    body.files.map((f: { path: string }) => f.path),
    ['/a/1.md', '/a/2.md'],
  );
  assert.equal(body.files[0].bytes, '/a/1.md'.length);
  body = await json(await dfetch(`${base}/workspace?prefix=${encodeURIComponent('/a/')}`));
  assert.equal(body.files.length, 2);
  body = await json(await dfetch(`${base}/memory`));
  assert.deepEqual(
    body.files.map((f: { path: string }) => f.path),
    ['/m.md'],
  );
  body = await json(await dfetch(`${base}/tmp`));
  assert.deepEqual(body.files, []);
  await expectError(await dfetch(`${base}/workspace?prefix=a`), 400, 'bad_path');
  await expectError(await dfetch(`${base}/workspace?prefix=/a/../b`), 400, 'bad_path');
  await expectError(await dfetch(`${base}/workspace?prefix=/a&prefix=/b`), 400, 'bad_path');
});

test('export streams a SQLite file with only the workspace volume and leaves nothing behind', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-3');
  c.instances.withVfs('ws-3', (v) => {
    v.put('workspace', '/public.md', 'public');
    v.put('workspace', '/big.bin', crypto.randomBytes(200_000));
    v.put('memory', '/private.md', 'private');
    v.put('tmp', '/scratch', 'scratch');
  });
  const res = await dfetch(`${c.url}/workspaces/ws-3/export`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-disposition') ?? '', /filename="ws-3\.sqlite"/);
  assert.equal(res.headers.get('x-workbooks-files'), '2');
  const bytes = Buffer.from(await res.arrayBuffer());
  assert.equal(Number(res.headers.get('content-length')), bytes.length);
  assert.equal(bytes.subarray(0, 16).toString('latin1'), 'SQLite format 3\u0000');

  const out = path.join(c.dir, 'exported.sqlite');
  fs.writeFileSync(out, bytes);
  const v = Vfs.open(out, { readonly: true });
  try {
    assert.deepEqual(
      v.list('workspace').map((f) => f.path),
      ['/big.bin', '/public.md'],
    );
    assert.deepEqual(v.list('memory'), []);
    assert.deepEqual(v.list('tmp'), []);
  } finally {
    v.close();
  }
  assert.deepEqual(fs.readdirSync(exportsDir(c.cfg)), [], 'the export file is gone');
  // The live workspace still has everything.
  assert.equal(c.instances.withVfs('ws-3', (vv) => vv.get('memory', '/private.md')?.toString()), 'private');
});

test('usage reports per-volume totals and the last access', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-4');
  assert.equal(c.instances.lastAccess('ws-4'), null);
  await dfetch(`${c.url}/workspaces/ws-4/files/workspace/a`, { method: 'PUT', body: '12345' });
  await dfetch(`${c.url}/workspaces/ws-4/files/memory/b`, { method: 'PUT', body: '123' });
  const body = await json(await dfetch(`${c.url}/workspaces/ws-4/usage`));
  assert.equal(body.workspaceId, 'ws-4');
  assert.equal(body.host, 'host-a');
  assert.deepEqual(body.usage, { workspace: { files: 1, bytes: 5 }, memory: { files: 1, bytes: 3 }, tmp: { files: 0, bytes: 0 } });
  assert.equal(typeof body.lastAccessAt, 'number');
  assert.ok(Date.now() - body.lastAccessAt < 5000);
});

test('bad ids, volumes and paths are 400 JSON errors (even for workspaces not here)', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-5');
  const cases: [string, string, string][] = [
    ['GET', '/workspaces/Bad_Id/files/workspace/x', 'bad_workspace_id'],
    ['PUT', '/workspaces/Bad_Id/files/workspace/x', 'bad_workspace_id'],
    ['GET', '/workspaces/-leading/usage', 'bad_workspace_id'],
    ['GET', '/workspaces/Bad_Id/export', 'bad_workspace_id'],
    ['GET', '/workspaces/Bad_Id/files/workspace', 'bad_workspace_id'],
    ['GET', '/workspaces/ws-5/files/secrets/x', 'bad_volume'],
    ['DELETE', '/workspaces/ws-5/files/secrets/x', 'bad_volume'],
    ['GET', '/workspaces/ws-5/files/secrets', 'bad_volume'],
    ['PUT', '/workspaces/ws-5/files/workspace/a//b', 'bad_path'],
    ['PUT', '/workspaces/ws-5/files/workspace/a/', 'bad_path'],
    ['PUT', '/workspaces/ws-5/files/workspace/a%01b', 'bad_path'],
    ['GET', '/workspaces/ws-5/files/workspace/', 'bad_path'],
    ['GET', '/workspaces/nothere/files/nope/x', 'bad_volume'],
  ];
  for (const [method, p, code] of cases) {
    await expectError(await dfetch(`${c.url}${p}`, { method, body: method === 'PUT' ? 'x' : undefined }), 400, code);
  }
  // Dot segments sent as-is (fetch would resolve them client-side).
  for (const p of ['/workspaces/ws-5/files/workspace/a/../b', '/workspaces/ws-5/files/workspace/a/%2E%2E/b', '/workspaces/ws-5/files/workspace/./b']) {
    const r = await raw(c.url, 'PUT', p, 'x');
    assert.equal(r.status, 400, p);
    assert.equal(JSON.parse(r.body).error.code, 'bad_path', p);
  }
  assert.deepEqual(c.instances.withVfs('ws-5', (v) => v.list('workspace')), [], 'nothing was written');
});

/** An HTTP request whose path is sent exactly as given (no client-side normalisation). */
function raw(base: string, method: string, p: string, body?: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path: p, headers: { ...grantHeader(p), ...headers } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
    });
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

test('a request naming another host (DNS rebinding) is refused; IP literals, localhost and the advertised name are served', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-host');
  const port = new URL(c.url).port;
  for (const host of ['evil.example', `evil.example:${port}`, 'localhost.evil.example', `127.0.0.1.evil.example:${port}`]) {
    const r = await raw(c.url, 'GET', '/workspaces/ws-host/files/workspace/a', undefined, { host });
    assert.equal(r.status, 421, host);
    assert.equal(JSON.parse(r.body).error.code, 'bad_host');
  }
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, '[::1]', 'LOCALHOST']) {
    const r = await raw(c.url, 'GET', '/workspaces/ws-host/files/workspace/a', undefined, { host });
    assert.equal(r.status, 404, `${host} is served (the file does not exist)`);
  }
  const free = await freePort();
  await setup(t, { advertiseUrl: `http://host-a.internal:${free}`, hostPort: free });
  const direct = `http://127.0.0.1:${free}`;
  assert.equal((await raw(direct, 'GET', '/health', undefined, { host: `host-a.internal:${free}` })).status, 200);
  assert.equal((await raw(direct, 'GET', '/health', undefined, { host: `host-b.internal:${free}` })).status, 421);
});

test('a workspace not open on this host is 409 not_here on every workspace route', async (t) => {
  const c = await setup(t);
  Vfs.open(liveFile(c.cfg, 'stopped')).close(); // the file is here, but the instance is not open
  for (const id of ['stopped', 'elsewhere']) {
    const routes: [string, string][] = [
      ['PUT', `/workspaces/${id}/files/workspace/x`],
      ['GET', `/workspaces/${id}/files/workspace/x`],
      ['DELETE', `/workspaces/${id}/files/workspace/x`],
      ['GET', `/workspaces/${id}/files/workspace`],
      ['GET', `/workspaces/${id}/export`],
      ['GET', `/workspaces/${id}/usage`],
    ];
    for (const [method, p] of routes) {
      await expectError(await dfetch(`${c.url}${p}`, { method, body: method === 'PUT' ? 'x' : undefined }), 409, 'not_here');
    }
  }
  assert.deepEqual(fs.readdirSync(exportsDir(c.cfg)), []);
  // Once opened it answers; once closed it is 409 again.
  c.instances.open('stopped');
  assert.equal((await dfetch(`${c.url}/workspaces/stopped/files/workspace/x`, { method: 'PUT', body: 'x' })).status, 200);
  c.instances.close('stopped');
  await expectError(await dfetch(`${c.url}/workspaces/stopped/files/workspace/x`), 409, 'not_here');
});

test('unknown routes are 404 JSON', async (t) => {
  const c = await setup(t);
  await expectError(await dfetch(`${c.url}/nope`), 404, 'not_found');
  await expectError(await dfetch(`${c.url}/workspaces/ws-1`), 404, 'not_found');
  await expectError(await dfetch(`${c.url}/workspaces/ws-1/export`, { method: 'POST' }), 404, 'not_found');
});

test('a body over MAX_FILE_BYTES is refused with 413 before it is read', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-6');
  const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = http.request(
      `${c.url}/workspaces/ws-6/files/workspace/huge`,
      { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-length': String(MAX_FILE_BYTES + 1) } },
      (res) => {
        let data = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: data }));
      },
    );
    req.on('error', reject);
    req.write(Buffer.alloc(1024));
  });
  assert.equal(status, 413);
  assert.equal(JSON.parse(body).error.code, 'too_large');
  assert.equal(c.instances.withVfs('ws-6', (v) => v.get('workspace', '/huge')), null);
});

test('after a host restart, an active workspace is served again (reopened lazily)', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-7');
  await dfetch(`${c.url}/workspaces/ws-7/files/memory/keep.md`, { method: 'PUT', body: 'kept' });
  await c.server.close();
  c.instances.closeAll();

  const instances = new HostInstances(c.cfg);
  const server = await startDataServer(c.cfg, instances, soloFence(c.cfg, instances), TEST_DATA_KEY);
  t.after(async () => {
    await server.close();
    instances.closeAll();
  });
  assert.equal(instances.isLoaded('ws-7'), false);
  const res = await dfetch(`${server.url}/workspaces/ws-7/files/memory/keep.md`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), 'kept');
  assert.equal(instances.isLoaded('ws-7'), true);
});

test('every workspace route needs a grant for that workspace, placement and operation, signed with the data key', async (t) => {
  const c = await setup(t);
  Vfs.open(liveFile(c.cfg, 'granted')).close();
  c.instances.open('granted', { placement: 4 });
  const url = `${c.url}/workspaces/granted/files/workspace/a.txt`;
  const at = (grant: string | null, headers: Record<string, string> = {}) => ({ ...(grant ? { authorization: `Bearer ${grant}` } : {}), 'x-workbooks-placement': '4', ...headers });
  const put = (headers: Record<string, string>) => fetch(url, { method: 'PUT', body: 'x', headers });
  const other = new DataKey('another-data-key-0123456789abcdefghijklmnop');
  const now = Date.now();
  const cases: [string, Promise<Response>, number, string][] = [
    ['no grant', put(at(null)), 401, 'grant_required'],
    ['not a grant', put(at('v1.abc.def')), 401, 'bad_grant'],
    ['another key', put(at(other.grantFor('granted', 4, ['write']))), 401, 'bad_grant'],
    ['expired', put(at(TEST_DATA_KEY.sign({ workspaceId: 'granted', placement: 4, ops: ['write'], expiresAt: Math.floor(now / 1000) - 1 }))), 401, 'grant_expired'],
    ['valid too long', put(at(TEST_DATA_KEY.sign({ workspaceId: 'granted', placement: 4, ops: ['write'], expiresAt: Math.floor(now / 1000) + 3600 }))), 401, 'bad_grant'],
    ['another workspace', put(at(TEST_DATA_KEY.grantFor('other', 4, ['write']))), 403, 'grant_mismatch'],
    ['a stale placement', put(at(TEST_DATA_KEY.grantFor('granted', 3, ['write']))), 403, 'grant_mismatch'],
    ['a read grant for a write', put(at(TEST_DATA_KEY.grantFor('granted', 4, ['read']))), 403, 'grant_mismatch'],
  ];
  for (const [what, res, status, code] of cases) await expectError(await res, status, code).catch((err) => assert.fail(`${what}: ${(err as Error).message}`));
  assert.equal(c.instances.withVfs('granted', (v) => v.get('workspace', '/a.txt')), null, 'nothing was written');
  // The grant alone says the placement when the header is left out; with both, they must agree.
  const ok = await fetch(url, { method: 'PUT', body: 'y', headers: { authorization: `Bearer ${TEST_DATA_KEY.grantFor('granted', 4, ['write'])}` } });
  assert.equal(ok.status, 200);
  const got = await fetch(url, { headers: at(TEST_DATA_KEY.grantFor('granted', 4, ['read'])) });
  assert.equal(await got.text(), 'y');
  await expectError(await fetch(`${c.url}/workspaces/granted/export`, { headers: at(TEST_DATA_KEY.grantFor('granted', 4, ['read'])) }), 403, 'grant_mismatch');
});

test('a refused PUT is answered before its body is read: no grant, over the file limit, over the bytes quota', async (t) => {
  const MiB = 1024 * 1024;
  const c = await setup(t, { quotas: { workspaces: 0, movesPerMinute: 0, workspaceBytes: 10 * MiB } });
  activate(c, 'ws-q');
  const url = `${c.url}/workspaces/ws-q/files/workspace`;
  // No grant: 401, and only what socket buffers hold left the client.
  const unsigned = await upload(`${url}/a`, 200 * MiB);
  assert.equal(unsigned.status, 401);
  assert.ok(unsigned.sentAtAnswer < 32 * MiB, `${unsigned.sentAtAnswer} bytes sent before the 401`);
  assert.equal(unsigned.headers.connection, 'close');
  // Declared over the file limit.
  const huge = await upload(`${url}/b`, MAX_FILE_BYTES + 1, { headers: grantHeader(`${url}/b`) });
  assert.equal(huge.status, 413);
  assert.equal(huge.json.error.code, 'too_large');
  assert.ok(huge.sentAtAnswer < 32 * MiB);
  // The bytes quota: 6 MiB fit, 6 more do not (declared: refused before the body is read; chunked: after).
  assert.equal((await upload(`${url}/six`, 6 * MiB, { headers: grantHeader(`${url}/six`) })).status, 200);
  const over = await upload(`${url}/more`, 6 * MiB, { headers: grantHeader(`${url}/more`) });
  assert.equal(over.status, 413);
  assert.equal(over.json.error.code, 'quota_exceeded');
  const overChunked = await upload(`${url}/more`, 6 * MiB, { headers: grantHeader(`${url}/more`), chunked: true });
  assert.equal(overChunked.status, 413);
  assert.equal(overChunked.json.error.code, 'quota_exceeded');
  // Replacing a file counts its new size, not both.
  assert.equal((await upload(`${url}/six`, 9 * MiB, { headers: grantHeader(`${url}/six`) })).status, 200);
  assert.deepEqual(
    c.instances.withVfs('ws-q', (v) => v.list('workspace').map((f) => [f.path, f.bytes])),
    [['/six', 9 * MiB]],
  );
});

test('a chunked body past the file limit is cut at the limit: 413, nothing written', async (t) => {
  const c = await setup(t);
  activate(c, 'ws-c');
  const url = `${c.url}/workspaces/ws-c/files/workspace/big`;
  const r = await upload(url, MAX_FILE_BYTES + 1024 * 1024, { headers: grantHeader(url), chunked: true });
  assert.equal(r.status, 413);
  assert.equal(r.json.error.code, 'too_large');
  assert.equal(c.instances.withVfs('ws-c', (v) => v.get('workspace', '/big')), null);
});

test('the upload budget: a body that does not fit waits for room, then is written', async (t) => {
  const MiB = 1024 * 1024;
  const c = await setup(t, { uploadBudgetBytes: 8 * MiB });
  activate(c, 'ws-b');
  const url = (p: string) => `${c.url}/workspaces/ws-b/files/workspace/${p}`;
  // A holds 6 MiB of the 8 while it sends slowly; B (6 MiB) must wait for it.
  let answeredA = false;
  const a = new Promise<number>((resolve, reject) => {
    const req = http.request(url('a'), { method: 'PUT', headers: { ...grantHeader(url('a')), 'content-length': String(6 * MiB) } }, (res) => {
      answeredA = true;
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.write(Buffer.alloc(MiB));
    setTimeout(() => req.end(Buffer.alloc(5 * MiB)), 800);
  });
  await new Promise((r) => setTimeout(r, 200));
  const t0 = Date.now();
  const b = await upload(url('b'), 6 * MiB, { headers: grantHeader(url('b')) });
  assert.equal(b.status, 200, JSON.stringify(b.json));
  assert.ok(answeredA, 'B was answered only after A');
  assert.ok(Date.now() - t0 >= 400, `B waited for A (${Date.now() - t0} ms)`);
  assert.equal(await a, 200);
});
