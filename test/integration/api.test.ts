/**
 * The HTTP API end to end: a real Temporal dev server, a real worker host (real files, real activities) and the
 * API listening on a real port, driven with fetch. Every route; wake on request from suspended and from frozen;
 * a wake longer than the wait answers 503 with Retry-After and goes on; a session makes the tenant's recently
 * used frozen workspaces local without starting them, so the next request opens a local copy; tenant isolation (404 on every route, nothing changed); and a
 * table of bad input answered 4xx with nothing changed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, startTestHost, TestHost, uniqueQueue } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { ApiServer, startApiServer } from '../../src/api/server';
import { parseTokenSpec } from '../../src/api/tokens';
import { Vfs } from '../../src/vfs/vfs';
import { activityCounts } from '../../harness/history';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const TOKENS = 'tok-acme-0123456789=acme,tok-globex-0123456789=globex,tok-admin-0123456789=*';
const ACME = 'tok-acme-0123456789';
const GLOBEX = 'tok-globex-0123456789';
const ADMIN = 'tok-admin-0123456789';
const FILE_LIMIT = 1024 * 1024;

let server: Server;
let host: TestHost;
let wb: WorkbooksClient;
let api: ApiServer;
/** The same API with no patience: any wake that is not instant answers 503. */
let impatient: ApiServer;

interface Res {
  status: number;
  headers: Headers;
  json: any;
  bytes: Buffer;
}

async function call(method: string, url: string, opts: { token?: string | null; json?: unknown; body?: Buffer | string; headers?: Record<string, string>; base?: ApiServer } = {}): Promise<Res> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? ACME : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: Buffer | string | undefined = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${(opts.base ?? api).url}${url}`, { method, headers, body });
  const bytes = Buffer.from(await res.arrayBuffer());
  let json: unknown = null;
  if ((res.headers.get('content-type') ?? '').includes('json')) json = JSON.parse(bytes.toString('utf8'));
  return { status: res.status, headers: res.headers, json, bytes };
}

/** State and ledger length: what "nothing changed" is checked against. */
async function snapshot(id: string): Promise<string> {
  const d = await wb.describe(id);
  return JSON.stringify({ state: d.state, ledger: d.ledger.length, host: d.host, cold: d.cold?.sha256 ?? null });
}

async function create(id: string, token = ACME, extra: Record<string, unknown> = {}): Promise<Res> {
  const r = await call('POST', '/v1/workspaces', { token, json: { id, ...extra } });
  assert.equal(r.status, 201, JSON.stringify(r.json));
  return r;
}

describe('HTTP API', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('api');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue });
    wb = clientFor(server.client, taskQueue);
    const tokens = parseTokenSpec(TOKENS, 'test');
    api = await startApiServer({ client: wb, tokens, waitMs: 30_000, port: 0, bind: '127.0.0.1', maxFileBytes: FILE_LIMIT });
    impatient = await startApiServer({ client: wb, tokens, waitMs: 0, port: 0, bind: '127.0.0.1' });
  });

  after(async () => {
    await api?.close();
    await impatient?.close();
    await host?.stop();
    await server?.stop();
  });

  it('serves an OpenAPI document that lists every route, without a token', async () => {
    const r = await call('GET', '/openapi.json', { token: null });
    assert.equal(r.status, 200);
    assert.equal(r.json.openapi, '3.0.3');
    const paths = r.json.paths as Record<string, Record<string, unknown>>;
    const want: [string, string][] = [
      ['/v1/workspaces', 'post'],
      ['/v1/workspaces', 'get'],
      ['/v1/workspaces/{id}', 'get'],
      ['/v1/workspaces/{id}', 'delete'],
      ['/v1/workspaces/{id}/wake', 'post'],
      ['/v1/workspaces/{id}/suspend', 'post'],
      ['/v1/workspaces/{id}/freeze', 'post'],
      ['/v1/workspaces/{id}/archive', 'post'],
      ['/v1/workspaces/{id}/restore', 'post'],
      ['/v1/workspaces/{id}/history', 'get'],
      ['/v1/workspaces/{id}/files/{volume}', 'get'],
      ['/v1/workspaces/{id}/export', 'get'],
      ['/v1/sessions', 'post'],
    ];
    for (const [p, m] of want) assert.ok(paths[p]?.[m], `OpenAPI has ${m.toUpperCase()} ${p}`);
    const filePath = Object.keys(paths).find((p) => p.startsWith('/v1/workspaces/{id}/files/{volume}/'));
    assert.ok(filePath && paths[filePath]!.put && paths[filePath]!.get && paths[filePath]!.delete, `file routes in ${Object.keys(paths).join(', ')}`);
    assert.deepEqual(r.json.components.securitySchemes.bearer, { type: 'http', scheme: 'bearer' });
  });

  it('answers 401 without a token, with an unknown one, or a malformed header', async () => {
    for (const headers of [{} as Record<string, string>, { authorization: 'Bearer nope' }, { authorization: `Basic ${ACME}` }, { authorization: 'Bearer' }]) {
      const r = await call('GET', '/v1/workspaces', { token: null, headers });
      assert.equal(r.status, 401, JSON.stringify(headers));
      assert.equal(r.json.error.code, 'unauthorized');
      assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    }
    const r = await call('POST', '/v1/workspaces', { token: 'wrong', json: { id: 'never-made' } });
    assert.equal(r.status, 401);
    await assert.rejects(wb.describe('acme.never-made'), /does not exist/);
  });

  it('runs the lifecycle: create, show, list, files, moves, history, export, restore, delete', async () => {
    const c = await create('api-life', ACME, { policy: { suspendAfter: '1h' } });
    assert.equal(c.json.state, 'active');
    assert.equal(c.json.tenant, 'acme');
    assert.equal(c.json.policy.suspendAfter, '1h');
    assert.equal(c.headers.get('location'), '/v1/workspaces/api-life');
    assert.equal(c.json.filePath, undefined, 'no internal paths in the view');

    let r = await call('PUT', '/v1/workspaces/api-life/files/workspace/notes/today.md', { body: 'hello', headers: { 'content-type': 'text/markdown' } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual([r.json.path, r.json.bytes], ['/notes/today.md', 5]);
    assert.equal(r.headers.get('x-workbooks-wake'), 'warm');
    r = await call('PUT', '/v1/workspaces/api-life/files/memory/m.json', { json: { remember: true } });
    assert.equal(r.status, 200, 'a JSON body is stored as bytes too');
    r = await call('PUT', '/v1/workspaces/api-life/files/tmp/scratch', { body: Buffer.from([0, 1, 2]) });
    assert.equal(r.status, 200);

    r = await call('GET', '/v1/workspaces/api-life/files/workspace/notes/today.md');
    assert.equal(r.status, 200);
    assert.equal(r.bytes.toString(), 'hello');
    assert.equal(r.headers.get('content-type'), 'application/octet-stream');
    r = await call('GET', '/v1/workspaces/api-life/files/memory/m.json');
    assert.deepEqual(JSON.parse(r.bytes.toString()), { remember: true });

    r = await call('GET', '/v1/workspaces/api-life/files/workspace?prefix=/notes');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.files.map((f: { path: string }) => f.path), ['/notes/today.md']);

    r = await call('GET', '/v1/workspaces/api-life/export');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-type'), 'application/vnd.sqlite3');
    const exported = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'wb-api-')), 'e.sqlite');
    fs.writeFileSync(exported, r.bytes);
    const v = Vfs.open(exported, { create: false, readonly: true });
    try {
      assert.equal(v.get('workspace', '/notes/today.md')?.toString(), 'hello');
      assert.equal(v.list('memory', '/').length, 0, 'memory stripped on export');
      assert.equal(v.list('tmp', '/').length, 0, 'tmp never leaves');
    } finally {
      v.close();
    }

    r = await call('DELETE', '/v1/workspaces/api-life/files/workspace/notes/today.md');
    assert.deepEqual([r.status, r.json], [200, { deleted: true }]);
    r = await call('GET', '/v1/workspaces/api-life/files/workspace/notes/today.md');
    assert.equal(r.status, 404);
    r = await call('PUT', '/v1/workspaces/api-life/files/workspace/notes/today.md', { body: 'again' });

    r = await call('GET', '/v1/workspaces/api-life');
    assert.equal(r.json.state, 'active');
    // Replication health from the holding host: a tenant sees the state word only, an admin the whole report.
    assert.deepEqual(r.json.replication, { state: 'ok' });
    r = await call('GET', '/v1/workspaces/acme.api-life', { token: ADMIN });
    assert.equal(r.json.replication.state, 'ok');
    assert.equal(typeof r.json.replication.lagSeconds, 'number');
    assert.equal(typeof r.json.replication.checkedAt, 'string');
    r = await call('GET', '/v1/workspaces?state=active');
    assert.ok(r.json.workspaces.some((w: { id: string }) => w.id === 'api-life'));
    assert.ok(r.json.workspaces.every((w: { tenant: string }) => w.tenant === 'acme'));

    r = await call('POST', '/v1/workspaces/api-life/suspend', { json: { reason: 'lunch' } });
    assert.deepEqual([r.status, r.json.state], [200, 'suspended']);
    r = await call('POST', '/v1/workspaces/api-life/wake');
    assert.deepEqual([r.status, r.json.state, r.json.path], [200, 'active', 'local']);
    r = await call('POST', '/v1/workspaces/api-life/wake');
    assert.equal(r.json.path, 'warm');
    r = await call('POST', '/v1/workspaces/api-life/suspend');
    r = await call('POST', '/v1/workspaces/api-life/freeze');
    assert.deepEqual([r.status, r.json.state], [200, 'frozen']);
    assert.ok(r.json.cold.bytes > 0 && /^[0-9a-f]{64}$/.test(r.json.cold.sha256));

    r = await call('GET', '/v1/workspaces/api-life/history');
    assert.equal(r.status, 200);
    const moves = r.json.ledger.filter((e: { outcome: string }) => e.outcome === 'done').map((e: { from: string; to: string }) => `${e.from}>${e.to}`);
    assert.deepEqual(moves, ['created>active', 'active>suspended', 'suspended>active', 'active>suspended', 'suspended>frozen']);
    assert.ok(r.json.ledger.some((e: { by: string; reason: string }) => e.by === 'api:acme' && e.reason === 'lunch'), 'ledger names the API caller and reason');
    // An offset past what an integer holds exactly is refused, not echoed back as a float (found by the fuzzer).
    r = await call('GET', '/v1/workspaces/api-life/history?offset=4580751765534433948878241792&limit=5');
    assert.equal(r.status, 400, JSON.stringify(r.json));

    r = await call('POST', '/v1/workspaces/api-life/restore', { json: { as: 'api-life-copy' } });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.deepEqual([r.json.id, r.json.tenant, r.json.state], ['api-life-copy', 'acme', 'active']);
    r = await call('GET', '/v1/workspaces/api-life-copy/files/workspace/notes/today.md');
    assert.equal(r.bytes.toString(), 'again');

    r = await call('DELETE', '/v1/workspaces/api-life');
    assert.equal(r.status, 409, 'frozen cannot be deleted directly');
    assert.equal(r.json.error.code, 'illegal_transition');
    r = await call('POST', '/v1/workspaces/api-life/archive');
    assert.deepEqual([r.status, r.json.state], [200, 'archived']);
    r = await call('DELETE', '/v1/workspaces/api-life');
    assert.deepEqual([r.status, r.json.state], [200, 'deleted']);
    r = await call('GET', '/v1/workspaces?state=deleted');
    assert.ok(r.json.workspaces.some((w: { id: string }) => w.id === 'api-life'));
  });

  it('clones a template of the same tenant', async () => {
    await create('api-tpl');
    await call('PUT', '/v1/workspaces/api-tpl/files/workspace/readme', { body: 'template text' });
    const r = await call('POST', '/v1/workspaces', { json: { id: 'api-clone', from: 'api-tpl' } });
    assert.equal(r.status, 201, JSON.stringify(r.json));
    assert.equal(r.json.template, 'api-tpl');
    assert.equal((await call('GET', '/v1/workspaces/api-clone/files/workspace/readme')).bytes.toString(), 'template text');
  });

  it('wakes a suspended or frozen workspace on a data request, and says how', async () => {
    await create('api-sleepy');
    await call('PUT', '/v1/workspaces/api-sleepy/files/workspace/a', { body: 'A' });
    await call('POST', '/v1/workspaces/api-sleepy/suspend');
    let r = await call('GET', '/v1/workspaces/api-sleepy/files/workspace/a');
    assert.deepEqual([r.status, r.bytes.toString(), r.headers.get('x-workbooks-wake')], [200, 'A', 'local']);

    await call('POST', '/v1/workspaces/api-sleepy/suspend');
    await call('POST', '/v1/workspaces/api-sleepy/freeze');
    r = await call('PUT', '/v1/workspaces/api-sleepy/files/workspace/b', { body: 'B' });
    assert.deepEqual([r.status, r.headers.get('x-workbooks-wake')], [200, 'cold']);
    r = await call('GET', '/v1/workspaces/api-sleepy/files/workspace?prefix=/');
    assert.deepEqual(r.json.files.map((f: { path: string }) => f.path), ['/a', '/b']);
    assert.equal(r.headers.get('x-workbooks-wake'), 'warm');
  });

  it('answers 503 with Retry-After when the wake takes longer than the wait, and the wake goes on', async () => {
    await create('api-slow');
    await call('PUT', '/v1/workspaces/api-slow/files/workspace/x', { body: 'X' });
    await call('POST', '/v1/workspaces/api-slow/suspend');
    await call('POST', '/v1/workspaces/api-slow/freeze');

    const r = await call('GET', '/v1/workspaces/api-slow/files/workspace/x', { base: impatient });
    assert.equal(r.status, 503, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'waking');
    assert.ok(Number(r.headers.get('retry-after')) >= 1, `Retry-After: ${r.headers.get('retry-after')}`);
    await eventually(async () => (await wb.describe('acme.api-slow')).state === 'active', 'the wake to finish without anyone waiting');
    const again = await call('GET', '/v1/workspaces/api-slow/files/workspace/x', { base: impatient });
    assert.deepEqual([again.status, again.bytes.toString(), again.headers.get('x-workbooks-wake')], [200, 'X', 'warm']);

    const w = await call('POST', '/v1/workspaces/api-slow/suspend', { base: impatient });
    assert.ok(w.status === 202 || w.status === 200, `a move longer than the wait is accepted: ${w.status}`);
    await eventually(async () => (await wb.describe('acme.api-slow')).state === 'suspended', 'the move to finish');
  });

  it("a session makes the tenant's recent frozen workspaces local without starting them or counting as use; a second login downloads nothing", async () => {
    for (const id of ['sess-a', 'sess-b', 'sess-c', 'sess-old', 'sess-arch']) await create(id, GLOBEX);
    // sess-old is the least recently used; sess-arch is archived (put away on purpose: not touched).
    await call('PUT', '/v1/workspaces/sess-old/files/workspace/f', { token: GLOBEX, body: 'sess-old' });
    await call('POST', '/v1/workspaces/sess-old/suspend', { token: GLOBEX });
    await new Promise((r) => setTimeout(r, 1100));
    for (const id of ['sess-a', 'sess-b', 'sess-c', 'sess-arch']) await call('PUT', `/v1/workspaces/${id}/files/workspace/f`, { token: GLOBEX, body: `${id} `.repeat(20_000) });
    await call('POST', '/v1/workspaces/sess-arch/archive', { token: GLOBEX });
    for (const id of ['sess-a', 'sess-b']) {
      await call('POST', `/v1/workspaces/${id}/suspend`, { token: GLOBEX });
      await call('POST', `/v1/workspaces/${id}/freeze`, { token: GLOBEX });
    }
    await call('POST', '/v1/workspaces/sess-c/suspend', { token: GLOBEX });
    // acme's suspended workspace must not be touched by globex's login.
    await create('acme-idle');
    await call('POST', '/v1/workspaces/acme-idle/suspend');
    await eventually(async () => {
      const r = await call('GET', '/v1/workspaces?state=suspended', { token: GLOBEX });
      return r.json.workspaces.length === 2 && r.json.workspaces.every((w: { lastActiveAt: string | null }) => w.lastActiveAt);
    }, 'visibility to show the suspended workspaces');
    await eventually(async () => (await call('GET', '/v1/workspaces?state=frozen', { token: GLOBEX })).json.workspaces.length === 2, 'visibility to show the frozen ones');
    const before = Object.fromEntries(await Promise.all(['sess-a', 'sess-b'].map(async (id) => [id, await wb.describe(`globex.${id}`)] as const)));
    const restores = async (id: string) => activityCounts((await wb.handle(`globex.${id}`).fetchHistory()).events ?? []).queued.get('restoreLocal') ?? 0;

    const r = await call('POST', '/v1/sessions', { token: GLOBEX, json: { limit: 3, wait: true } });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.tenant, 'globex');
    assert.equal(r.json.budgetBytes, 1024 * 1024 * 1024, 'the default budget is said');
    const rows = (x: Res) => x.json.workspaces.map((w: { id: string; prefetch: string; state: string }) => `${w.id}:${w.state}:${w.prefetch}`).sort();
    assert.deepEqual(rows(r), ['sess-a:frozen:ready', 'sess-b:frozen:ready', 'sess-c:suspended:local']);
    const coldBytes = before['sess-a']!.cold!.bytes + before['sess-b']!.cold!.bytes;
    assert.equal(r.json.bytes, coldBytes, 'the login downloaded both cold copies');
    for (const id of ['sess-a', 'sess-b']) {
      const d = await wb.describe(`globex.${id}`);
      assert.equal(d.state, 'frozen', `${id} is not started`);
      assert.equal(d.lastActiveAt, before[id]!.lastActiveAt, `${id}: a prefetch is not use`);
      assert.equal(d.stateSince, before[id]!.stateSince, `${id}: its idle ladder did not move`);
      assert.equal(d.ledger.length, before[id]!.ledger.length, `${id}: nothing is recorded as a move`);
      assert.ok(d.prefetched && d.prefetched.sha256 === d.cold!.sha256, `${id}: a verified local copy of its cold copy`);
      assert.ok(fs.existsSync(d.prefetched.filePath), `${id}: the file is on the host's disk`);
      assert.equal(await restores(id), 1);
    }
    assert.equal((await wb.describe('globex.sess-old')).state, 'suspended', 'beyond the limit: left alone');
    assert.equal((await wb.describe('globex.sess-arch')).state, 'archived');
    assert.equal((await wb.describe('globex.sess-arch')).prefetched, null, 'archived: not fetched');
    assert.equal((await wb.describe('acme.acme-idle')).state, 'suspended', 'another tenant is never touched');

    // The first request opens the local copy: no download.
    const g = await call('GET', '/v1/workspaces/sess-a/files/workspace/f', { token: GLOBEX });
    assert.deepEqual([g.status, g.bytes.toString().slice(0, 7), g.headers.get('x-workbooks-wake')], [200, 'sess-a ', 'local']);
    // (`local`: resumed from the prefetched copy, which its host re-verifies by its sidecar without copying.)

    // A second login picks by real use again and downloads nothing: sess-b's copy is still local.
    const again = await call('POST', '/v1/sessions', { token: GLOBEX, json: { limit: 3, wait: true } });
    assert.equal(again.status, 200, JSON.stringify(again.json));
    assert.equal(again.json.bytes, 0, JSON.stringify(again.json));
    assert.ok(rows(again).includes('sess-b:frozen:ready'), JSON.stringify(again.json));
    assert.equal(await restores('sess-b'), 1, 'no second download');
    assert.equal((await wb.describe('globex.sess-b')).lastActiveAt, before['sess-b']!.lastActiveAt);

    // A budget smaller than a copy: skipped, nothing downloaded; without wait the download starts in the background.
    await call('POST', '/v1/workspaces/sess-a/suspend', { token: GLOBEX });
    await call('POST', '/v1/workspaces/sess-a/freeze', { token: GLOBEX });
    await eventually(async () => (await call('GET', '/v1/workspaces?state=frozen', { token: GLOBEX })).json.workspaces.length === 2, 'sess-a listed as frozen again');
    const restoresBefore = await restores('sess-a');
    const tiny = await startApiServer({ client: wb, tokens: parseTokenSpec(TOKENS, 'test'), waitMs: 30_000, port: 0, bind: '127.0.0.1', sessionPrefetchBytes: 1000 });
    try {
      const skipped = await call('POST', '/v1/sessions', { token: GLOBEX, base: tiny, json: { limit: 1, wait: true } });
      assert.deepEqual([skipped.json.budgetBytes, skipped.json.bytes, rows(skipped)], [1000, 0, ['sess-a:frozen:skipped']]);
    } finally {
      await tiny.close();
    }
    assert.equal(await restores('sess-a'), restoresBefore, 'skipped: not fetched');
    const bg = await call('POST', '/v1/sessions', { token: GLOBEX, json: { limit: 1 } });
    assert.deepEqual(rows(bg), ['sess-a:frozen:started']);
    await eventually(async () => (await wb.describe('globex.sess-a')).prefetched !== null, 'the background prefetch');
    assert.equal((await wb.describe('globex.sess-a')).state, 'frozen');

    const admin = await call('POST', '/v1/sessions', { token: ADMIN, json: {} });
    assert.equal(admin.status, 400, 'an admin must name the tenant');
  });

  it('hides every workspace of another tenant behind 404 on every route, and changes nothing', async () => {
    await create('secret');
    await call('PUT', '/v1/workspaces/secret/files/workspace/plan', { body: 'acme only' });
    const before = await snapshot('acme.secret');
    const routes: [string, string, Record<string, unknown>?][] = [
      ['GET', '/v1/workspaces/secret'],
      ['GET', '/v1/workspaces/secret/history'],
      ['POST', '/v1/workspaces/secret/wake'],
      ['POST', '/v1/workspaces/secret/suspend'],
      ['POST', '/v1/workspaces/secret/freeze'],
      ['POST', '/v1/workspaces/secret/archive'],
      ['POST', '/v1/workspaces/secret/restore', { json: { as: 'stolen' } }],
      ['DELETE', '/v1/workspaces/secret'],
      ['PUT', '/v1/workspaces/secret/files/workspace/plan', { body: 'overwritten' }],
      ['GET', '/v1/workspaces/secret/files/workspace/plan'],
      ['DELETE', '/v1/workspaces/secret/files/workspace/plan'],
      ['GET', '/v1/workspaces/secret/files/workspace'],
      ['GET', '/v1/workspaces/secret/export'],
    ];
    const missing = await call('GET', '/v1/workspaces/no-such-thing', { token: GLOBEX });
    for (const [method, url, opts] of routes) {
      const r = await call(method, url, { token: GLOBEX, ...(opts ?? {}) });
      assert.equal(r.status, 404, `${method} ${url}: ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error.code, 'not_found');
      assert.equal(r.json.error.message, missing.json.error.message.replace('no-such-thing', 'secret'), 'reads exactly like a workspace that does not exist');
    }
    const clone = await call('POST', '/v1/workspaces', { token: GLOBEX, json: { id: 'stolen-clone', from: 'secret' } });
    assert.equal(clone.status, 404);
    assert.equal(clone.json.error.message, "template workspace 'secret' does not exist");
    const listed = await call('GET', '/v1/workspaces', { token: GLOBEX });
    assert.ok(!listed.json.workspaces.some((w: { id: string }) => w.id === 'secret'));
    const sneaky = await call('GET', '/v1/workspaces?tenant=acme', { token: GLOBEX });
    assert.deepEqual([sneaky.status, sneaky.json.error.code], [403, 'forbidden'], 'a tenant token cannot name another tenant');

    assert.equal(await snapshot('acme.secret'), before);
    assert.equal((await wb.getFile('acme.secret', 'workspace', '/plan')).toString(), 'acme only');
    for (const k of ['acme.stolen', 'globex.stolen']) await assert.rejects(wb.describe(k), /does not exist/);
    await assert.rejects(wb.describe('globex.stolen-clone'), /does not exist/);

    // The admin sees every tenant.
    const a = await call('GET', '/v1/workspaces/acme.secret', { token: ADMIN });
    assert.deepEqual([a.status, a.json.tenant], [200, 'acme']);
    const all = await call('GET', '/v1/workspaces', { token: ADMIN });
    const tenants = new Set(all.json.workspaces.map((w: { tenant: string }) => w.tenant));
    assert.ok(tenants.has('acme') && tenants.has('globex'));
    const made = await call('POST', '/v1/workspaces', { token: ADMIN, json: { id: 'admin-made', tenant: 'globex' } });
    assert.deepEqual([made.status, made.json.tenant], [201, 'globex']);
  });

  it('scopes ids to the tenant: two tenants each own `notes`, each sees only its own on every route; older bare ids stay reachable', async () => {
    await create('notes', ACME);
    await create('notes', GLOBEX);
    await call('PUT', '/v1/workspaces/notes/files/workspace/who', { body: 'acme' });
    await call('PUT', '/v1/workspaces/notes/files/workspace/who', { token: GLOBEX, body: 'globex' });
    for (const [token, tenant] of [[ACME, 'acme'], [GLOBEX, 'globex']] as const) {
      const shown = await call('GET', '/v1/workspaces/notes', { token });
      assert.deepEqual([shown.status, shown.json.id, shown.json.tenant], [200, 'notes', tenant]);
      const file = await call('GET', '/v1/workspaces/notes/files/workspace/who', { token });
      assert.equal(file.bytes.toString(), tenant, `${tenant} reads its own notes`);
      const listed = await call('GET', '/v1/workspaces', { token });
      assert.deepEqual(listed.json.workspaces.filter((w: { id: string }) => w.id === 'notes').map((w: { tenant: string }) => w.tenant), [tenant]);
      const history = await call('GET', '/v1/workspaces/notes/history', { token });
      assert.equal(history.json.id, 'notes');
      const again = await call('POST', '/v1/workspaces', { token, json: { id: 'notes' } });
      assert.deepEqual([again.status, again.json.error.code], [409, 'already_exists'], 'its own id is taken, for itself only');
    }
    // Keys carry the tenant: the workflow id is workspace:<tenant>.<name>.
    assert.equal((await wb.describe('acme.notes')).tenant, 'acme');
    assert.equal((await wb.describe('globex.notes')).tenant, 'globex');
    // A move of one never touches the other.
    await call('POST', '/v1/workspaces/notes/suspend', { token: GLOBEX });
    assert.equal((await wb.describe('acme.notes')).state, 'active');
    assert.equal((await wb.describe('globex.notes')).state, 'suspended');
    // The admin uses keys.
    const a = await call('GET', '/v1/workspaces/globex.notes', { token: ADMIN });
    assert.deepEqual([a.status, a.json.id, a.json.state], [200, 'globex.notes', 'suspended']);
    const dup = await call('POST', '/v1/workspaces', { token: ADMIN, json: { id: 'notes', tenant: 'acme' } });
    assert.equal(dup.status, 409);
    // A tenant may name its own key; another tenant's key reads exactly like a missing workspace.
    assert.equal((await call('GET', '/v1/workspaces/acme.notes/files/workspace/who', { token: ACME })).bytes.toString(), 'acme');
    const r = await call('GET', '/v1/workspaces/globex.notes', { token: ACME });
    assert.deepEqual([r.status, r.json.error.code], [404, 'not_found']);

    // A workspace made before keys carried the tenant (bare key `legacy`, tenant acme) is still acme's `legacy`,
    // and its name stays taken for acme only.
    await wb.create({ workspaceId: 'legacy', tenant: 'acme' });
    await wb.putFile('legacy', 'workspace', '/old', Buffer.from('from before'));
    const old = await call('GET', '/v1/workspaces/legacy/files/workspace/old');
    assert.deepEqual([old.status, old.bytes.toString()], [200, 'from before']);
    assert.equal((await call('GET', '/v1/workspaces/legacy')).json.id, 'legacy');
    assert.equal((await call('GET', '/v1/workspaces/legacy', { token: GLOBEX })).status, 404);
    const taken = await call('POST', '/v1/workspaces', { json: { id: 'legacy' } });
    assert.deepEqual([taken.status, taken.json.error.code], [409, 'already_exists']);
    await assert.rejects(wb.describe('acme.legacy'), /does not exist/);
    await create('legacy', GLOBEX);
    assert.equal((await wb.describe('globex.legacy')).tenant, 'globex');
    // And the client refuses the other form of a taken name (acme.legacy while acme's bare legacy runs).
    await assert.rejects(wb.create({ workspaceId: 'acme.legacy', tenant: 'acme' }), /already exists/);
    await assert.rejects(wb.create({ workspaceId: 'globex.other', tenant: 'acme' }), /belongs to tenant 'globex'/);
  });

  it('answers bad input with a 4xx and a stable code, and changes nothing', async () => {
    await create('victim');
    await call('PUT', '/v1/workspaces/victim/files/workspace/keep', { body: 'keep me' });
    await call('POST', '/v1/workspaces/victim/suspend');
    const before = await snapshot('acme.victim');
    const big = Buffer.alloc(FILE_LIMIT + 1, 1);
    const cases: [string, string, { json?: unknown; body?: Buffer | string; headers?: Record<string, string> } | undefined, number, string][] = [
      ['GET', '/v1/workspaces/..%2Fvictim', undefined, 400, 'bad_workspace_id'],
      ['GET', '/v1/workspaces/a%2Fb', undefined, 400, 'bad_workspace_id'],
      ['GET', '/v1/workspaces/Victim', undefined, 400, 'bad_workspace_id'],
      ['POST', '/v1/workspaces/..%2F..%2Fetc/wake', undefined, 400, 'bad_workspace_id'],
      ['GET', '/v1/workspaces/victim/files/secrets/keep', undefined, 400, 'bad_volume'],
      ['PUT', '/v1/workspaces/victim/files/workspace/a/..%2F..%2Fkeep', { body: 'x' }, 400, 'bad_path'],
      ['PUT', '/v1/workspaces/victim/files/workspace/dir/', { body: 'x' }, 400, 'bad_path'],
      ['PUT', '/v1/workspaces/victim/files/workspace/big', { body: big }, 413, 'too_large'],
      ['GET', '/v1/workspaces/victim/files/workspace?prefix=../x', undefined, 400, 'bad_path'],
      ['POST', '/v1/workspaces/victim/suspend', undefined, 409, 'illegal_transition'],
      ['DELETE', '/v1/workspaces/victim', undefined, 409, 'illegal_transition'],
      ['POST', '/v1/workspaces/victim/archive', undefined, 409, 'illegal_transition'],
      ['POST', '/v1/workspaces/victim/suspend', { json: { reason: 'x'.repeat(100_000) } }, 413, 'too_large'],
      ['POST', '/v1/workspaces/victim/suspend', { json: { reason: 'x', extra: 1 } }, 400, 'bad_request'],
      ['POST', '/v1/workspaces/victim/suspend', { body: '{"reason":', headers: { 'content-type': 'application/json' } }, 400, 'bad_json'],
      ['POST', '/v1/workspaces', { json: { id: 'victim' } }, 409, 'already_exists'],
      ['POST', '/v1/workspaces', { json: { id: 'bad/id' } }, 400, 'bad_workspace_id'],
      ['POST', '/v1/workspaces', { json: { id: 'new-one', tenant: 'globex' } }, 403, 'forbidden'],
      ['POST', '/v1/workspaces', { json: { id: 'new-two', policy: { suspendAfter: 'soon' } } }, 400, 'bad_request'],
      ['POST', '/v1/workspaces', { json: { id: 'new-three', from: 'no-such-template' } }, 404, 'not_found'],
      ['POST', '/v1/workspaces', { json: { id: 'victim', from: 'victim' } }, 409, 'already_exists'],
      ['POST', '/v1/workspaces', { body: '{"id":"new-five"}', headers: { 'content-type': 'text/plain' } }, 415, 'unsupported_media_type'],
      ['POST', '/v1/workspaces/victim/restore', { json: { as: 'victim' } }, 409, 'already_exists'],
      ['POST', '/v1/workspaces/victim/restore', { json: { as: 'new-six', at: '2999-01-01T00:00:00Z' } }, 409, 'no_data'],
      ['POST', '/v1/workspaces/victim/restore', { json: { as: 'new-six', at: 'yesterday' } }, 400, 'bad_request'],
      ['POST', '/v1/workspaces', { json: { id: 'new-four', policy: { sleepAfter: '1m' } } }, 400, 'bad_request'],
      ['POST', '/v1/workspaces', { json: {} }, 400, 'bad_request'],
      ['GET', '/v1/workspaces?state=sleeping', undefined, 400, 'bad_request'],
      ['POST', '/v1/sessions', { json: { within: 'forever' } }, 400, 'bad_request'],
      ['POST', '/v1/sessions', { json: { limit: 0 } }, 400, 'bad_request'],
      ['POST', '/v1/sessions', { json: { limit: '5' } }, 400, 'bad_request'],
      ['POST', '/v1/sessions', { json: { within: '99999d' } }, 400, 'bad_request'],
      ['PATCH', '/v1/workspaces/victim', { json: { state: 'active' } }, 405, 'method_not_allowed'],
      ['GET', '/v1/nothing-here', undefined, 404, 'no_route'],
    ];
    for (const [method, url, opts, status, code] of cases) {
      const r = await call(method, url, opts ?? {});
      assert.equal(r.status, status, `${method} ${url}: ${r.status} ${JSON.stringify(r.json)}`);
      assert.equal(r.json?.error?.code, code, `${method} ${url}: ${JSON.stringify(r.json)}`);
      assert.ok(typeof r.json.error.message === 'string' && r.json.error.message.length > 5, `a human message for ${method} ${url}`);
    }
    const form = await call('POST', '/v1/sessions', { json: { within: 'forever' } });
    assert.equal(form.json.error.message, "body/within must be a whole number and a unit (s, m, h, d), e.g. '15m' or '24h'");
    assert.equal(await snapshot('acme.victim'), before, 'the workspace did not change');
    for (const id of ['new-one', 'new-two', 'new-three', 'new-four', 'new-five', 'new-six']) for (const t of ['acme', 'globex']) await assert.rejects(wb.describe(`${t}.${id}`), /does not exist/);
    assert.equal((await wb.getFile('acme.victim', 'workspace', '/keep')).toString(), 'keep me');
  });

  it('answers 405 with Allow for a method a known path does not serve, and coerces query strings only', async () => {
    await create('api-methods');
    for (const [method, url, allow] of [
      ['PATCH', '/v1/workspaces/api-methods', 'GET, HEAD, DELETE'],
      ['PUT', '/v1/workspaces', 'GET, HEAD, POST'],
      ['GET', '/v1/sessions', 'POST'],
      ['POST', '/v1/workspaces/api-methods/files/workspace/a', 'GET, HEAD, DELETE, PUT'],
    ] as const) {
      // No token needed: the shape of the API is public (/openapi.json).
      const r = await call(method, url, { token: null });
      assert.equal(r.status, 405, `${method} ${url}`);
      assert.equal(r.headers.get('allow'), allow, `${method} ${url}`);
      assert.equal(r.json.error.code, 'method_not_allowed');
    }
    assert.equal((await call('PATCH', '/v1/nothing-here')).status, 404, 'unknown paths stay 404');
    const listed = await call('GET', '/v1/workspaces?limit=1&state=active');
    assert.equal(listed.status, 200, 'a query string is text: limit=1 is the integer 1');
    assert.equal(listed.json.workspaces.length, 1);
    const session = await call('POST', '/v1/sessions', { json: { limit: true } });
    assert.equal(session.status, 400, 'a JSON body is not coerced');
  });
});
