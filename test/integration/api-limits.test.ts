/**
 * Bounded requests, end to end: the API runs as its own process (`workbooks api`, so its memory is measured
 * honestly) against a real Temporal dev server and a real worker host.
 *
 *   - 16 concurrent 200 MiB uploads to a workspace of another tenant: all 404, the body is not read, the API's
 *     RSS grows by less than 64 MiB;
 *   - a 300 MiB upload with Content-Length: 413 before it is read; a chunked one past the limit: 413;
 *   - a 100 MiB upload goes through (streamed) and reads back whole (its time and the API's RSS are printed);
 *   - quotas: workspaces per tenant, moves per minute, bytes per workspace → 429/413 quota_exceeded, nothing changed;
 *   - list paging with a cursor (a tampered cursor, or one used with other filters, is 400);
 *   - a client sending its headers or its body too slowly is cut off; connections beyond the cap are refused;
 *   - the policy floor.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startTestDevServer } from '../../harness/temporal';
import { TEST_DATA_KEY_SECRET, clientFor, startTestHost, tempDir, TestHost, uniqueQueue } from '../../harness/stack';
import { upload } from '../../harness/uploads';
import { WorkbooksClient } from '../../src/client/workbooks-client';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const MiB = 1024 * 1024;

const TOKENS = {
  acme: 'tok-acme-0123456789',
  globex: 'tok-globex-0123456789',
  quota: 'tok-quota-0123456789',
  mover: 'tok-mover-0123456789',
  pager: 'tok-pager-0123456789',
  admin: 'tok-admin-0123456789',
};
const WORKSPACE_QUOTA = 3;
const MOVES_PER_MINUTE = 6;
const BYTES_QUOTA = 160 * MiB;
const HEADERS_TIMEOUT_MS = 2000;
const REQUEST_TIMEOUT_MS = 10_000;
const MAX_CONNECTIONS = 40;

let server: Awaited<ReturnType<typeof startTestDevServer>>;
let host: TestHost;
let wb: WorkbooksClient;
let api: ChildProcess;
let base: string;

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

async function call(method: string, url: string, token: string | null, json?: unknown): Promise<{ status: number; headers: Headers; json: any }> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (json !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${base}${url}`, { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : null };
}

function startApi(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [CLI, 'api'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the API did not start: ${output}`)), 30_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /workbooks api up: (http:\/\/\S+)/.exec(output);
      if (m) {
        clearTimeout(t);
        resolve({ child, url: m[1]! });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`the API exited ${code}: ${output}`));
    });
  });
}

describe('bounded requests', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('limits');
    // A long lease: writing a 150 MiB blob blocks this process (the host's) for a while, which must not fence it.
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, replicaUrl: 'off', hostLeaseSeconds: 60, config: { quotas: { workspaces: 0, workspaceBytes: BYTES_QUOTA, movesPerMinute: 0 } } });
    wb = clientFor(server.client, taskQueue);
    const started = await startApi({
      TEMPORAL_ADDRESS: server.address,
      WORKBOOKS_TASK_QUEUE: taskQueue,
      WORKBOOKS_DATA_DIR: tempDir('wb-api-'),
      WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET,
      WORKBOOKS_TOKENS: Object.entries(TOKENS)
        .map(([tenant, tok]) => `${tok}=${tenant === 'admin' ? '*' : tenant}`)
        .join(','),
      WORKBOOKS_HTTP_PORT: '0',
      WORKBOOKS_LOG_LEVEL: 'ERROR',
      WORKBOOKS_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      WORKBOOKS_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      WORKBOOKS_MAX_CONNECTIONS: String(MAX_CONNECTIONS),
      WORKBOOKS_QUOTA_WORKSPACES: String(WORKSPACE_QUOTA),
      WORKBOOKS_QUOTA_MOVES_PER_MINUTE: String(MOVES_PER_MINUTE),
      WORKBOOKS_POLICY_FLOOR: '1m',
      WORKBOOKS_LIST_PAGE_DEFAULT: '3',
      WORKBOOKS_LIST_PAGE_MAX: '5',
    });
    api = started.child;
    base = started.url;
    const never = { suspendAfter: 'never', freezeAfter: 'never' };
    await wb.create({ workspaceId: 'globex-secret', tenant: 'globex', policy: never });
    await wb.create({ workspaceId: 'acme-files', tenant: 'acme', policy: never });
  });

  after(async () => {
    if (api && api.exitCode === null) {
      await new Promise<void>((resolve) => {
        api.once('exit', () => resolve());
        api.kill('SIGTERM');
      });
    }
    await host?.stop();
    await server?.stop();
  });

  it("16 concurrent 200 MiB uploads to another tenant's workspace: all 404, bodies not read, API RSS grows < 64 MiB", async () => {
    // Warm the API up (first requests load code paths), then take the baseline.
    for (let i = 0; i < 3; i++) assert.equal((await upload(`${base}/v1/workspaces/globex-secret/files/workspace/w${i}`, MiB, { headers: { authorization: `Bearer ${TOKENS.acme}` } })).status, 404);
    const baseline = rssOf(api.pid!);
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(api.pid!))), 25);
    const t0 = Date.now();
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        upload(`${base}/v1/workspaces/globex-secret/files/workspace/big-${i}.bin`, 200 * MiB, { headers: { authorization: `Bearer ${TOKENS.acme}` }, chunked: i % 2 === 1 }),
      ),
    );
    const ms = Date.now() - t0;
    clearInterval(sampler);
    peak = Math.max(peak, rssOf(api.pid!));
    for (const r of results) {
      assert.equal(r.status, 404, JSON.stringify(r.json));
      assert.equal(r.json.error.code, 'not_found');
    }
    const sent = results.map((r) => r.sentAtAnswer);
    const growth = peak - baseline;
    console.log(
      `# 16 x 200 MiB to another tenant's workspace: all 404 in ${ms} ms; API RSS ${(baseline / MiB).toFixed(1)} -> peak ${(peak / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB); ` +
        `body bytes handed to the socket before the answer: max ${(Math.max(...sent) / MiB).toFixed(1)} MiB of 200`,
    );
    assert.ok(growth < 64 * MiB, `API RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
    // Only what fits in socket buffers left the client before the answer: the API did not read the bodies.
    assert.ok(Math.max(...sent) < 32 * MiB, `a refused body was read: ${Math.max(...sent)} bytes sent before the answer`);
    assert.deepEqual((await wb.listFiles('globex-secret', 'workspace')).map((f) => f.path), [], 'nothing was written');
  });

  it('a 300 MiB upload with Content-Length is 413 before it is read; a chunked one past the limit is 413', async () => {
    const auth = { authorization: `Bearer ${TOKENS.acme}` };
    const r = await upload(`${base}/v1/workspaces/acme-files/files/workspace/huge.bin`, 300 * MiB, { headers: auth });
    assert.equal(r.status, 413);
    assert.equal(r.json.error.code, 'too_large');
    console.log(`# 300 MiB with Content-Length: 413 after ${r.ms} ms, ${(r.sentAtAnswer / MiB).toFixed(1)} MiB handed to the socket`);
    assert.ok(r.sentAtAnswer < 32 * MiB, `${r.sentAtAnswer} bytes were sent before the 413`);
    assert.ok(r.ms < 5000);

    const c = await upload(`${base}/v1/workspaces/acme-files/files/workspace/huge-chunked.bin`, 257 * MiB, { headers: auth, chunked: true });
    assert.equal(c.status, 413, JSON.stringify(c.json));
    assert.equal(c.json.error.code, 'too_large');
    assert.deepEqual((await wb.listFiles('acme-files', 'workspace')).map((f) => f.path), [], 'nothing was written');
  });

  it('a 100 MiB upload streams through the API and reads back whole', async () => {
    const before = rssOf(api.pid!);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(api.pid!))), 25);
    const t0 = Date.now();
    const r = await upload(`${base}/v1/workspaces/acme-files/files/workspace/hundred.bin`, 100 * MiB, { headers: { authorization: `Bearer ${TOKENS.acme}` } });
    const ms = Date.now() - t0;
    clearInterval(sampler);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.bytes, 100 * MiB);
    console.log(`# 100 MiB PUT through the API: ${ms} ms (${((100 / ms) * 1000).toFixed(0)} MiB/s); API RSS ${(before / MiB).toFixed(1)} -> peak ${(peak / MiB).toFixed(1)} MiB`);
    assert.ok(peak - before < 64 * MiB, `the API held the body: RSS grew by ${((peak - before) / MiB).toFixed(1)} MiB`);
    const res = await fetch(`${base}/v1/workspaces/acme-files/files/workspace/hundred.bin`, { headers: { authorization: `Bearer ${TOKENS.acme}` } });
    let n = 0;
    let allA = true;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      n += chunk.length;
      if (allA && Buffer.from(chunk).some((b) => b !== 0x61)) allA = false;
    }
    assert.equal(n, 100 * MiB);
    assert.ok(allA, 'the bytes read back are the bytes sent');
  });

  it('bytes per workspace: a write past the quota is 413 quota_exceeded (declared: before it is read), nothing changed', async () => {
    const auth = { authorization: `Bearer ${TOKENS.acme}` };
    // 100 MiB are there; 100 more would pass the 160 MiB quota.
    const r = await upload(`${base}/v1/workspaces/acme-files/files/workspace/more.bin`, 100 * MiB, { headers: auth });
    assert.equal(r.status, 413, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'quota_exceeded');
    assert.match(r.json.error.message, /over its quota/);
    assert.ok(r.sentAtAnswer < 32 * MiB, `${r.sentAtAnswer} bytes were sent before the 413`);
    const chunked = await upload(`${base}/v1/workspaces/acme-files/files/workspace/more.bin`, 70 * MiB, { headers: auth, chunked: true });
    assert.equal(chunked.status, 413, JSON.stringify(chunked.json));
    assert.equal(chunked.json.error.code, 'quota_exceeded');
    assert.deepEqual((await wb.listFiles('acme-files', 'workspace')).map((f) => f.path), ['/hundred.bin'], 'nothing was written');
    // Replacing a file counts its new size only: 150 MiB in place of 100 fits.
    const replaced = await upload(`${base}/v1/workspaces/acme-files/files/workspace/hundred.bin`, 150 * MiB, { headers: auth });
    assert.equal(replaced.status, 200, JSON.stringify(replaced.json));
    const del = await call('DELETE', '/v1/workspaces/acme-files/files/workspace/hundred.bin', TOKENS.acme);
    assert.equal(del.status, 200);
  });

  it('workspaces per tenant: a create past the quota is 429 with Retry-After, nothing created; admin tokens are exempt', async () => {
    for (let i = 0; i < WORKSPACE_QUOTA; i++) {
      const r = await call('POST', '/v1/workspaces', TOKENS.quota, { id: `quota-${i}`, policy: { suspendAfter: 'never', freezeAfter: 'never' } });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    }
    const r = await call('POST', '/v1/workspaces', TOKENS.quota, { id: 'quota-over' });
    assert.equal(r.status, 429, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'quota_exceeded');
    assert.ok(Number(r.headers.get('retry-after')) > 0);
    assert.equal((await call('GET', '/v1/workspaces/quota-over', TOKENS.quota)).status, 404, 'nothing created');
    const restore = await call('POST', '/v1/workspaces/quota-0/restore', TOKENS.quota, { as: 'quota-restored' });
    assert.equal(restore.status, 429, 'a restore makes a workspace too');
    const admin = await call('POST', '/v1/workspaces', TOKENS.admin, { id: 'quota-by-admin', tenant: 'quota', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
    assert.equal(admin.status, 201, JSON.stringify(admin.json));
  });

  it('moves per minute per tenant: past the budget 429 with Retry-After, the workspace unchanged', async () => {
    const created = await call('POST', '/v1/workspaces', TOKENS.mover, { id: 'mover-1', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
    assert.equal(created.status, 201);
    for (let i = 1; i < MOVES_PER_MINUTE; i++) assert.equal((await call('POST', '/v1/workspaces/mover-1/wake', TOKENS.mover)).status, 200);
    const ledger = (await wb.describe('mover.mover-1')).ledger.length;
    const r = await call('POST', '/v1/workspaces/mover-1/suspend', TOKENS.mover);
    assert.equal(r.status, 429, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'quota_exceeded');
    const wait = Number(r.headers.get('retry-after'));
    assert.ok(wait >= 1 && wait <= 60 / MOVES_PER_MINUTE, `Retry-After ${wait}`);
    const d = await wb.describe('mover.mover-1');
    assert.equal(d.state, 'active', 'not suspended');
    assert.equal(d.ledger.length, ledger, 'nothing recorded');
    // Other tenants have budgets of their own; reads are not moves.
    assert.equal((await call('GET', '/v1/workspaces/mover-1', TOKENS.mover)).status, 200);
    assert.equal((await call('POST', '/v1/workspaces/acme-files/wake', TOKENS.acme)).status, 200);
  });

  it('list pages: a default and a largest size, an opaque cursor to the next page, null at the end', async () => {
    const ids = Array.from({ length: 7 }, (_, i) => `pager-${i}`);
    for (const id of ids) {
      const r = await call('POST', '/v1/workspaces', TOKENS.admin, { id, tenant: 'pager', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
      assert.equal(r.status, 201, JSON.stringify(r.json));
    }
    const first = await call('GET', '/v1/workspaces', TOKENS.pager);
    assert.equal(first.status, 200);
    assert.equal(first.json.workspaces.length, 3, 'the default page');
    assert.equal(typeof first.json.nextCursor, 'string');
    const seen: string[] = first.json.workspaces.map((w: { id: string }) => w.id);
    let cursor: string | null = first.json.nextCursor;
    let pages = 1;
    while (cursor) {
      const r = await call('GET', `/v1/workspaces?limit=5&cursor=${encodeURIComponent(cursor)}`, TOKENS.pager);
      assert.equal(r.status, 200, JSON.stringify(r.json));
      seen.push(...r.json.workspaces.map((w: { id: string }) => w.id));
      cursor = r.json.nextCursor;
      pages += 1;
      assert.ok(pages < 10);
    }
    assert.deepEqual([...seen].sort(), [...ids].sort(), 'every workspace once');
    assert.equal(new Set(seen).size, seen.length);

    const tooBig = await call('GET', '/v1/workspaces?limit=6', TOKENS.pager);
    assert.equal(tooBig.status, 400);
    assert.match(tooBig.json.error.message, /at most 5/);
    const c = first.json.nextCursor as string;
    const flipped = c.slice(0, 20) + (c[20] === 'A' ? 'B' : 'A') + c.slice(21);
    const tampered = await call('GET', `/v1/workspaces?cursor=${encodeURIComponent(flipped)}`, TOKENS.pager);
    assert.equal(tampered.status, 400);
    assert.equal(tampered.json.error.code, 'bad_cursor');
    const otherFilter = await call('GET', `/v1/workspaces?state=active&cursor=${encodeURIComponent(c)}`, TOKENS.pager);
    assert.equal(otherFilter.status, 400);
    assert.equal(otherFilter.json.error.code, 'bad_cursor');
    const otherTenant = await call('GET', `/v1/workspaces?cursor=${encodeURIComponent(c)}`, TOKENS.acme);
    assert.equal(otherTenant.status, 400, "a tenant cannot use another's cursor");
  });

  it('the policy floor: a rung shorter than WORKBOOKS_POLICY_FLOOR is 400, nothing created', async () => {
    const r = await call('POST', '/v1/workspaces', TOKENS.acme, { id: 'churner', policy: { suspendAfter: '1s', freezeAfter: '1s' } });
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'bad_request');
    assert.match(r.json.error.message, /policy\.suspendAfter '1s' is shorter than the floor of 1m/);
    assert.equal((await call('GET', '/v1/workspaces/churner', TOKENS.acme)).status, 404);
    const ok = await call('POST', '/v1/workspaces', TOKENS.acme, { id: 'calm', policy: { suspendAfter: '1m', freezeAfter: 'never' } });
    assert.equal(ok.status, 201, JSON.stringify(ok.json));
  });

  it('a client sending its headers or its body too slowly is cut off; connections beyond the cap are refused', async () => {
    const u = new URL(base);
    const connect = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(Number(u.port), u.hostname, () => resolve(s));
        s.once('error', reject);
      });
    /** Resolves with ms until the server closes the socket (and what it said). */
    const closedWithin = (s: net.Socket) =>
      new Promise<{ ms: number; said: string }>((resolve) => {
        const t0 = Date.now();
        let said = '';
        s.on('data', (d) => (said += d.toString()));
        s.on('error', () => undefined);
        s.on('close', () => resolve({ ms: Date.now() - t0, said }));
      });

    // Slow headers: one byte every 300 ms, never finishing.
    const slow = await connect();
    const slowClosed = closedWithin(slow);
    const line = `GET /v1/workspaces HTTP/1.1\r\nHost: x\r\nX-Slow: ${'a'.repeat(200)}`;
    let i = 0;
    const drip = setInterval(() => {
      if (!slow.destroyed) slow.write(line[i++ % line.length]!);
    }, 300);
    const h = await slowClosed;
    clearInterval(drip);
    console.log(`# slow headers: cut off after ${h.ms} ms (${h.said.split('\r\n')[0] || 'no answer'})`);
    assert.ok(h.ms < HEADERS_TIMEOUT_MS + 3000, `cut off after ${h.ms} ms`);

    // Slow body: headers at once, then a byte a second of a 1000-byte body.
    const body = await connect();
    const bodyClosed = closedWithin(body);
    body.write(`PUT /v1/workspaces/acme-files/files/workspace/slow.txt HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKENS.acme}\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n`);
    const drip2 = setInterval(() => {
      if (!body.destroyed) body.write('x');
    }, 1000);
    const b = await bodyClosed;
    clearInterval(drip2);
    console.log(`# slow body: cut off after ${b.ms} ms (${b.said.split('\r\n')[0] || 'no answer'})`);
    assert.ok(b.ms < REQUEST_TIMEOUT_MS + 5000, `cut off after ${b.ms} ms`);
    assert.equal((await wb.listFiles('acme-files', 'workspace')).length, 0, 'nothing written');

    // The connection cap: with MAX_CONNECTIONS open, one more is closed at once.
    const held: net.Socket[] = [];
    for (let k = 0; k < MAX_CONNECTIONS; k++) {
      const s = await connect();
      s.on('error', () => undefined);
      held.push(s);
    }
    const extra = await connect();
    const extraClosed = await closedWithin(extra);
    assert.ok(extraClosed.ms < 1000, `the connection over the cap was closed after ${extraClosed.ms} ms`);
    assert.equal(extraClosed.said, '', 'and not served');
    for (const s of held) s.destroy();
    // Once they are gone, the API serves again.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await call('GET', '/v1/workspaces/acme-files', TOKENS.acme)).status, 200);
  });
});
