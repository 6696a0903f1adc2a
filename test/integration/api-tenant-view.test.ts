/**
 * What a tenant sees through the HTTP API when things fail below it (real Temporal dev server, a real worker host
 * in this process, cold copies on a file:// store, the API on a real port): a write into a full disk (a small
 * tmpfs really filled when this process may mount one, else ENOSPC injected at the data server's write) and a wake
 * whose cold copy is gone. Every body a tenant token gets (error bodies, the view, the listing, the history, a
 * session) holds no host id, host path, store URL or disk figure, and still says why; the admin token gets the
 * details. And repeated 401s from one address are answered 429 with Retry-After.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, startTestHost, tempDir, TestHost, uniqueQueue } from '../../harness/stack';
import { internalsIn } from '../../harness/leaks';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { ApiServer, startApiServer } from '../../src/api/server';
import { parseTokenSpec } from '../../src/api/tokens';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const TOKENS = 'tok-acme-0123456789=acme,tok-admin-0123456789=*';
const ACME = 'tok-acme-0123456789';
const ADMIN = 'tok-admin-0123456789';
const HOST_ID = 'leaky-host-7';
const MiB = 1024 * 1024;

let server: Server;
let host: TestHost;
let wb: WorkbooksClient;
let api: ApiServer;
let dataDir: string;
let coldDir: string;
let mountPoint: string | null = null;
/** Numbers a tenant must not see (free bytes on the data dir). */
const figures: number[] = [];

interface Res {
  status: number;
  headers: Headers;
  json: any;
  text: string;
}

async function call(method: string, url: string, opts: { token?: string | null; json?: unknown; body?: Buffer; base?: ApiServer } = {}): Promise<Res> {
  const headers: Record<string, string> = {};
  const token = opts.token === undefined ? ACME : opts.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: Buffer | string | undefined = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${(opts.base ?? api).url}${url}`, { method, headers, body });
  const text = await res.text();
  const json = (res.headers.get('content-type') ?? '').includes('json') ? JSON.parse(text) : null;
  return { status: res.status, headers: res.headers, json, text };
}

/** Asserts a body a tenant got holds nothing of the host. */
function clean(r: Res, what: string): void {
  const found = internalsIn(r.text, { hosts: [HOST_ID], dirs: [dataDir, coldDir], figures });
  assert.deepEqual(found, [], `${what} (${r.status}) shows a tenant internals: ${r.text}`);
}

function tryMountTmpfs(dir: string): boolean {
  if (process.platform !== 'linux' || process.env.WORKBOOKS_TEST_DISK_FULL === 'inject') return false;
  return spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 }).status === 0;
}

function freeBytes(): number {
  const s = fs.statfsSync(dataDir);
  return s.bavail * s.bsize;
}

describe('HTTP API: what a tenant sees of failures below', { concurrency: false }, () => {
  before(async () => {
    dataDir = tempDir('wb-tenantview-data-');
    if (tryMountTmpfs(dataDir)) mountPoint = dataDir;
    coldDir = tempDir('wb-tenantview-cold-');
    console.log(`disk-full mode: ${mountPoint ? 'tmpfs (16 MiB)' : 'injected ENOSPC'}`);
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('tenantview');
    host = await startTestHost({
      connection: server.connection,
      client: server.client,
      taskQueue,
      hostId: HOST_ID,
      dataDir,
      coldUrl: `file://${coldDir}`,
      archiveUrl: `file://${path.join(coldDir, 'archive')}`,
      replicaUrl: 'off',
    });
    wb = clientFor(server.client, taskQueue);
    api = await startApiServer({ client: wb, tokens: parseTokenSpec(TOKENS, 'test'), waitMs: 30_000, port: 0, bind: '127.0.0.1', maxFileBytes: 32 * MiB });
  });

  after(async () => {
    delete process.env.WORKBOOKS_FAULT_ENOSPC_AT;
    await api?.close();
    await host?.stop();
    await server?.stop();
    if (mountPoint) spawnSync('umount', ['-l', mountPoint], { timeout: 10_000 });
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(coldDir, { recursive: true, force: true });
  });

  it('a write into a full disk: 507 disk_full that says so, without the host, its paths or its free bytes; the admin gets them', async () => {
    const created = await call('POST', '/v1/workspaces', { json: { id: 'leaky-put' } });
    assert.equal(created.status, 201, created.text);
    clean(created, 'create');
    assert.ok(!('host' in created.json), 'a tenant view names no host');
    assert.equal((await call('PUT', '/v1/workspaces/leaky-put/files/workspace/a.md', { body: Buffer.from('alpha') })).status, 200);

    /** One write that does not fit, as `token`. */
    const overfill = async (token: string): Promise<Res> => {
      if (mountPoint) {
        const free = freeBytes();
        figures.push(free);
        return call('PUT', `/v1/workspaces/${token === ADMIN ? 'acme.' : ''}leaky-put/files/workspace/big`, { token, body: crypto.randomBytes(free + MiB) });
      }
      process.env.WORKBOOKS_FAULT_ENOSPC_AT = 'dataServer.put';
      try {
        return await call('PUT', `/v1/workspaces/${token === ADMIN ? 'acme.' : ''}leaky-put/files/workspace/big`, { token, body: crypto.randomBytes(64 * 1024) });
      } finally {
        delete process.env.WORKBOOKS_FAULT_ENOSPC_AT;
      }
    };
    const tenant = await overfill(ACME);
    console.log(`tenant: ${tenant.status} ${tenant.text}`);
    assert.equal(tenant.status, 507);
    assert.equal(tenant.json.error.code, 'disk_full');
    assert.match(tenant.json.error.message, /out of disk space; nothing was changed/, 'the reason is kept');
    clean(tenant, 'disk_full error');

    const admin = await overfill(ADMIN);
    console.log(`admin: ${admin.status} ${admin.text}`);
    assert.equal(admin.status, 507);
    assert.match(admin.json.error.message, new RegExp(`host '${HOST_ID}' is out of disk space`), 'the admin sees which host');
    if (mountPoint) assert.match(admin.json.error.message, /\d+ are free/, 'and how much room it had');

    // The tenant's views of the same (active) workspace: no host; the admin's names it.
    clean(await call('GET', '/v1/workspaces/leaky-put'), 'view');
    assert.equal((await call('GET', '/v1/workspaces/acme.leaky-put', { token: ADMIN })).json.host, HOST_ID);
    const listed = await call('GET', '/v1/workspaces');
    clean(listed, 'listing');
    assert.ok(listed.json.workspaces.some((w: { id: string }) => w.id === 'leaky-put'));
    assert.equal((await call('GET', '/v1/workspaces/leaky-put/files/workspace/a.md')).text, 'alpha', 'nothing of the failed write changed the file');
    await call('DELETE', '/v1/workspaces/leaky-put/files/workspace/big').catch(() => undefined);
  });

  it('a wake whose cold copy is gone: 500 move_failed with the kind of failure; history, view, listing and a session all clean; the admin sees the URLs and the host', async () => {
    const id = 'leaky-wake';
    assert.equal((await call('POST', '/v1/workspaces', { json: { id } })).status, 201);
    assert.equal((await call('PUT', `/v1/workspaces/${id}/files/workspace/a.md`, { body: Buffer.from('alpha') })).status, 200);
    for (const move of ['suspend', 'freeze']) {
      const r = await call('POST', `/v1/workspaces/${id}/${move}`, { json: { reason: `test ${move}` } });
      assert.equal(r.status, 200, r.text);
      clean(r, move);
    }
    // The cold copy disappears behind the workflow's back (an operator's mistake, a bucket lifecycle rule).
    const cold = (await wb.describe(`acme.${id}`)).cold!;
    const coldFile = new URL(cold.url).pathname;
    assert.ok(coldFile.startsWith(coldDir));
    fs.rmSync(coldFile);
    fs.rmSync(`${coldFile}.meta.json`, { force: true });

    const wake = await call('POST', `/v1/workspaces/${id}/wake`, { json: {} });
    console.log(`tenant wake: ${wake.status} ${wake.text}`);
    assert.equal(wake.status, 500);
    assert.equal(wake.json.error.code, 'move_failed');
    assert.match(wake.json.error.message, /the move failed: no usable copy of the data was found/);
    clean(wake, 'failed wake');

    const adminWake = await call('POST', `/v1/workspaces/acme.${id}/wake`, { token: ADMIN, json: {} });
    console.log(`admin wake: ${adminWake.status} ${adminWake.text}`);
    assert.equal(adminWake.status, 500);
    assert.ok(adminWake.json.error.message.includes(cold.url), 'the admin sees the copy it looked for');

    const session = await call('POST', '/v1/sessions', { json: { wait: true } });
    assert.equal(session.status, 200, session.text);
    const row = session.json.workspaces.find((w: { id: string }) => w.id === id);
    assert.equal(row?.prefetch, 'failed', session.text);
    assert.match(row.error, /no usable copy/);
    clean(session, 'session');

    const history = await call('GET', `/v1/workspaces/${id}/history`);
    clean(history, 'history');
    const ledger = history.json.ledger as { from: string; to: string; outcome: string; detail?: string; reason: string }[];
    assert.deepEqual(
      ledger.filter((e) => e.outcome === 'done').map((e) => `${e.from}>${e.to}: ${e.detail}`),
      ['created>active: created', 'active>suspended: stopped; its file is kept', 'suspended>frozen: stored in cold storage (verified); local copy released'],
    );
    const failed = ledger.filter((e) => e.outcome === 'failed');
    // The two failed wakes (the session's prefetch is not a move: it writes no ledger entry).
    assert.ok(failed.length >= 2, `the two failed wakes are in the history: ${history.text}`);
    for (const e of failed) assert.equal(e.detail, 'no usable copy of the data was found');
    assert.ok(ledger.some((e) => e.reason === 'test freeze'), "the caller's reason is kept");

    const adminHistory = await call('GET', `/v1/workspaces/acme.${id}/history`, { token: ADMIN });
    assert.ok(adminHistory.text.includes(cold.url), 'the admin history has the store URL');
    assert.ok(adminHistory.text.includes(HOST_ID), 'and the host');

    clean(await call('GET', `/v1/workspaces/${id}`), 'view of the frozen workspace');
    clean(await call('GET', '/v1/workspaces?state=frozen'), 'listing');
  });

  it('repeated 401s from one address answer 429 with Retry-After, a valid token too, until the window passes; /health stays open', async () => {
    const strict = await startApiServer({ client: wb, tokens: parseTokenSpec(TOKENS, 'test'), waitMs: 1000, port: 0, bind: '127.0.0.1', authFailures: 3, authWindowSeconds: 2 });
    try {
      assert.equal((await call('GET', '/v1/workspaces', { base: strict })).status, 200, 'a valid token before any failure');
      for (let i = 0; i < 3; i++) {
        const r = await call('GET', '/v1/workspaces', { base: strict, token: `wrong-token-guess-${i}` });
        assert.equal(r.status, 401, `failure ${i + 1}`);
      }
      const started = Date.now();
      const locked = await call('GET', '/v1/workspaces', { base: strict, token: 'wrong-token-guess-x' });
      assert.equal(locked.status, 429);
      assert.equal(locked.json.error.code, 'too_many_requests');
      const retryAfter = Number(locked.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 2, `Retry-After ${locked.headers.get('retry-after')}`);
      const valid = await call('GET', '/v1/workspaces', { base: strict });
      assert.equal(valid.status, 429, 'while locked out, a token is not even looked at (a right guess reads like a wrong one)');
      assert.equal((await call('GET', '/v1/workspaces', { base: strict, token: null })).status, 429);
      assert.equal((await call('GET', '/health', { base: strict, token: null })).status, 200, 'public routes are not throttled');
      assert.equal((await call('GET', '/v1/workspaces')).status, 200, 'another API process keeps its own count');

      await new Promise((r) => setTimeout(r, Math.max(0, retryAfter * 1000 - (Date.now() - started)) + 100));
      assert.equal((await call('GET', '/v1/workspaces', { base: strict })).status, 200, 'after Retry-After the valid token works');
    } finally {
      await strict.close();
    }
  });
});
