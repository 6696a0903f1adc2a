/**
 * Two worker hosts (`workbooks worker --host <id> --data-dir <dir>` child processes with separate data dirs) against
 * one Temporal dev server, with cold storage, archive and replicas in one shared file:// dir:
 *
 * - data requests of an active workspace go to the host holding it, and the other host has no copy;
 * - a workspace frozen on one host wakes on the other after the first host is stopped gracefully, files intact;
 * - the same for an archived workspace.
 *
 * A new workspace lands on whichever host picks the task up; each case records which and works from there.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePorts, startTestDevServer } from '../../harness/temporal';
import { clientFor, tempDir, uniqueQueue, TEST_DATA_KEY } from '../../harness/stack';
import { kill9, spawnWorker } from '../../harness/worker-process';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { liveDir, liveFile } from '../../src/host/data-dir';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;
type HostId = 'host-a' | 'host-b';
const HOSTS: HostId[] = ['host-a', 'host-b'];

let server: Server;
let wb: WorkbooksClient;
let taskQueue: string;
let shared: string;
const dirs = {} as Record<HostId, string>;
const ports = {} as Record<HostId, number>;
const workers: Record<HostId, ChildProcess | null> = { 'host-a': null, 'host-b': null };

const endpointOf = (h: HostId) => `http://127.0.0.1:${ports[h]}`;
const otherThan = (h: HostId): HostId => (h === 'host-a' ? 'host-b' : 'host-a');
const running = (h: HostId) => {
  const c = workers[h];
  return !!c && c.exitCode === null && c.signalCode === null;
};

async function startWorker(h: HostId): Promise<void> {
  workers[h] = await spawnWorker({
    host: h,
    dataDir: dirs[h],
    // Fixed per host, so the endpoint the workflow hands out can be told apart (and is the same after a restart).
    port: ports[h],
    env: {
      TEMPORAL_ADDRESS: server.address,
      WORKBOOKS_TASK_QUEUE: taskQueue,
      WORKBOOKS_COLD_URL: `file://${path.join(shared, 'cold')}`,
      WORKBOOKS_ARCHIVE_URL: `file://${path.join(shared, 'archive')}`,
      WORKBOOKS_REPLICA_URL: `file://${path.join(shared, 'replicas')}`,
      // Two processes on one machine: nothing else of theirs may want the same port.
      WORKBOOKS_HTTP_PORT: 'off',
      WORKBOOKS_METRICS_PORT: 'off',
    },
  });
}

async function ensureRunning(...hs: HostId[]): Promise<void> {
  await Promise.all(hs.filter((h) => !running(h)).map((h) => startWorker(h)));
}

/** SIGTERM, then wait for the process to exit by itself; resolves with its exit code. */
function stopGracefully(h: HostId): Promise<number | null> {
  const child = workers[h];
  assert.ok(child && running(h), `${h} is running`);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${h} did not exit within 60 s of SIGTERM`)), 60_000);
    child.once('exit', (code) => {
      clearTimeout(t);
      workers[h] = null;
      resolve(code);
    });
    child.kill('SIGTERM');
  });
}

/** Files of mixed sizes and contents, in the two volumes that survive a freeze. */
function sampleFiles(tag: string): Array<{ volume: 'workspace' | 'memory'; path: string; data: Buffer }> {
  return [
    { volume: 'workspace', path: '/notes/readme.md', data: Buffer.from(`# ${tag}\nhello from ${tag}\n`) },
    { volume: 'workspace', path: '/data/random.bin', data: crypto.randomBytes(700 * 1024 + 13) },
    { volume: 'workspace', path: '/data/zeros.bin', data: Buffer.alloc(64 * 1024) },
    { volume: 'workspace', path: '/empty', data: Buffer.alloc(0) },
    { volume: 'workspace', path: '/ünï cödé/ファイル.txt', data: Buffer.from('unicode path ✓') },
    { volume: 'memory', path: '/m/context.json', data: Buffer.from(JSON.stringify({ tag, n: 42 })) },
  ];
}

function sha(b: Buffer): string {
  return crypto.createHash('sha256').update(b).digest('hex');
}

/** Workspace files this host's data dir holds for `id` (live file, WAL, SHM, marker). */
function localCopies(h: HostId, id: string): string[] {
  const dir = liveDir({ dataDir: dirs[h] });
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => n === `${id}.sqlite` || n.startsWith(`${id}.sqlite-`) || n === `${id}.active`);
}

/** A data request straight to one host's data server, bypassing the client's routing. */
async function direct(h: HostId, id: string, volume: string, p: string): Promise<{ status: number; body: Buffer }> {
  const placement = (await wb.describe(id)).placement;
  const res = await fetch(`${endpointOf(h)}/workspaces/${id}/files/${volume}${p.split('/').map(encodeURIComponent).join('/')}`, {
    headers: {
      ...(placement !== null ? { 'x-workbooks-placement': String(placement) } : {}),
      authorization: `Bearer ${TEST_DATA_KEY.grantFor(id, placement, ['read'])}`,
    },
  });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

async function createOnSomeHost(id: string): Promise<HostId> {
  // No idle moves while the test runs: only the test moves the workspace.
  const r = await wb.create({ workspaceId: id, tenant: 'acme', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
  assert.ok(HOSTS.includes(r.host as HostId), `created on one of the two hosts, got ${r.host}`);
  const h = r.host as HostId;
  console.log(`# ${id} was created on ${h}`);
  assert.equal(r.endpoint, endpointOf(h));
  const d = await wb.describe(id);
  assert.equal(d.state, 'active');
  assert.equal(d.host, h);
  assert.equal(d.endpoint, endpointOf(h));
  return h;
}

async function writeAll(id: string, files: ReturnType<typeof sampleFiles>): Promise<void> {
  for (const f of files) await wb.putFile(id, f.volume, f.path, f.data);
}

async function assertAllIdentical(id: string, files: ReturnType<typeof sampleFiles>): Promise<void> {
  for (const f of files) {
    const got = await wb.getFile(id, f.volume, f.path);
    assert.equal(got.length, f.data.length, `${f.volume}:${f.path} length`);
    assert.equal(sha(got), sha(f.data), `${f.volume}:${f.path} bytes`);
  }
  const listed = (await wb.listFiles(id, 'workspace')).map((x) => `${x.path}:${x.bytes}`).sort();
  const expected = files.filter((f) => f.volume === 'workspace').map((f) => `${f.path}:${f.data.length}`).sort();
  assert.deepEqual(listed, expected, 'the workspace volume lists exactly the files written');
}

/**
 * Moves the workspace (on host `from`) away from its host with `park`, stops `from` gracefully, wakes the workspace
 * and checks it is active on the other host with every byte, and that its ledger and endpoint say so.
 */
async function parkStopWake(id: string, from: HostId, files: ReturnType<typeof sampleFiles>, park: () => Promise<void>, parked: 'frozen' | 'archived') {
  const to = otherThan(from);
  await park();
  const p = await wb.describe(id);
  assert.equal(p.state, parked);
  assert.equal(p.host, null, `a ${parked} workspace is held by no host`);
  const copy = parked === 'frozen' ? p.cold : p.archive;
  const store = path.join(shared, parked === 'frozen' ? 'cold' : 'archive');
  assert.ok(copy && copy.url.startsWith(`file://${store}/`), `stored copy in the shared dir: ${copy?.url}`);
  assert.ok(fs.existsSync(new URL(copy.url).pathname), 'the stored copy exists on disk');
  assert.deepEqual(localCopies(from, id), [], `${from} released its local copy when the workspace was ${parked}`);

  assert.equal(await stopGracefully(from), 0, `${from} exits cleanly on SIGTERM`);
  assert.equal(running(to), true, `${to} still runs`);

  const t0 = Date.now();
  const w = await wb.wake(id, { reason: `wake after ${from} stopped`, by: 'test' });
  console.log(`# ${id}: ${parked} on ${from}, ${from} stopped, woke on ${w.host} in ${Date.now() - t0} ms`);
  assert.equal(w.state, 'active');
  assert.equal(w.host, to, `woke on the live host`);
  assert.equal(w.endpoint, endpointOf(to));
  assert.equal(w.path, 'cold');
  assert.equal(w.filePath, liveFile({ dataDir: dirs[to] }, id));

  const d = await wb.describe(id);
  assert.equal(d.state, 'active');
  assert.equal(d.host, to);
  assert.equal(d.endpoint, endpointOf(to), 'data requests now go to the new host');
  const entry = d.ledger.at(-1)!;
  assert.equal(entry.from, parked);
  assert.equal(entry.to, 'active');
  assert.equal(entry.outcome, 'done');
  assert.equal(entry.by, 'test');
  assert.ok((entry.detail ?? '').includes(copy.url), `ledger names the copy it restored from: ${entry.detail}`);
  assert.match(entry.detail ?? '', new RegExp(`on ${to}\\b`), `ledger names the new host: ${entry.detail}`);
  // The whole life is in the ledger: created on `from`, parked, woken on `to`.
  assert.deepEqual(
    d.ledger.filter((e) => e.outcome === 'done').map((e) => `${e.from}->${e.to}`),
    parked === 'frozen' ? ['created->active', 'active->suspended', 'suspended->frozen', 'frozen->active'] : ['created->active', 'active->archived', 'archived->active'],
  );
  assert.match(d.ledger[0]!.detail ?? '', new RegExp(`on ${from}\\b`), `created on ${from}: ${d.ledger[0]!.detail}`);

  await assertAllIdentical(id, files);
  // The bytes come from the new host: its live dir has the file, and its data server answers directly.
  assert.ok(localCopies(to, id).includes(`${id}.sqlite`), `${to} holds ${id}.sqlite`);
  assert.deepEqual(localCopies(from, id), [], `${from} has no copy`);
  const f = files[1]!;
  const r = await direct(to, id, f.volume, f.path);
  assert.equal(r.status, 200);
  assert.equal(sha(r.body), sha(f.data));
  // Writes after the move land on the new host too.
  await wb.putFile(id, 'workspace', '/after-move', Buffer.from(`written on ${to}`));
  assert.equal((await direct(to, id, 'workspace', '/after-move')).body.toString(), `written on ${to}`);
}

describe('two worker hosts', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('many');
    shared = tempDir('wb-shared-');
    dirs['host-a'] = tempDir('wb-host-a-');
    dirs['host-b'] = tempDir('wb-host-b-');
    const [pa, pb] = await freePorts(2);
    ports['host-a'] = pa!;
    ports['host-b'] = pb!;
    wb = clientFor(server.client, taskQueue);
    await ensureRunning('host-a', 'host-b');
  });

  after(async () => {
    for (const h of HOSTS) await kill9(workers[h]);
    await server?.stop();
    for (const d of [shared, ...Object.values(dirs)]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('data requests of an active workspace go to the host holding it; the other host has no copy', async () => {
    const id = 'held';
    const holder = await createOnSomeHost(id);
    const other = otherThan(holder);
    const files = sampleFiles(id);
    await writeAll(id, files);
    await assertAllIdentical(id, files);

    const d = await wb.describe(id);
    assert.equal(d.host, holder);
    assert.equal(d.filePath, liveFile({ dataDir: dirs[holder] }, id));
    assert.ok(localCopies(holder, id).includes(`${id}.sqlite`), `${holder}'s live/ has the file`);
    assert.ok(localCopies(holder, id).includes(`${id}.active`), `${holder} marks it open`);
    assert.deepEqual(localCopies(other, id), [], `${other}'s data dir has no copy`);

    // The holder's data server serves the bytes; the other host's refuses: it does not hold the workspace.
    for (const f of files) {
      const r = await direct(holder, id, f.volume, f.path);
      assert.equal(r.status, 200, `${holder} serves ${f.path}`);
      assert.equal(sha(r.body), sha(f.data));
    }
    const refused = await direct(other, id, 'workspace', '/notes/readme.md');
    assert.equal(refused.status, 409);
    assert.equal((JSON.parse(refused.body.toString()) as { error: { code: string } }).error.code, 'not_here');

    // A write through the client is on the holder's file and nowhere else.
    await wb.putFile(id, 'workspace', '/routed', Buffer.from('routed'));
    assert.equal((await direct(holder, id, 'workspace', '/routed')).body.toString(), 'routed');
    assert.deepEqual(localCopies(other, id), []);
  });

  it('a workspace frozen on one host wakes on the other after the first host is stopped', async () => {
    await ensureRunning('host-a', 'host-b');
    const id = 'frozen-moves';
    const from = await createOnSomeHost(id);
    const files = sampleFiles(id);
    await writeAll(id, files);
    await parkStopWake(id, from, files, async () => {
      await wb.transition(id, 'suspended', { by: 'test' });
      await wb.transition(id, 'frozen', { by: 'test' });
    }, 'frozen');
  });

  it('a workspace archived on one host wakes on the other after the first host is stopped', async () => {
    // The host stopped by the previous case comes back, so the new workspace may land on either.
    await ensureRunning('host-a', 'host-b');
    const id = 'archived-moves';
    const from = await createOnSomeHost(id);
    const files = sampleFiles(id);
    await writeAll(id, files);
    await parkStopWake(id, from, files, async () => {
      await wb.transition(id, 'archived', { by: 'test' });
    }, 'archived');
  });

  // A host that restarts with its data server on another port: the client's check wake must hand out the new address.
  it('an active workspace is served again after its host restarts on another data-server port', async () => {
    await ensureRunning('host-a', 'host-b');
    const id = 'restarts';
    const h = await createOnSomeHost(id);
    const old = endpointOf(h);
    await wb.putFile(id, 'workspace', '/x', Buffer.from('before the restart'));
    assert.equal(await stopGracefully(h), 0);
    // The same host id and data dir, a different port (e.g. the default port was taken meanwhile).
    ports[h] = (await freePorts(1))[0]!;
    await startWorker(h);
    assert.notEqual(endpointOf(h), old);

    assert.equal((await wb.getFile(id, 'workspace', '/x')).toString(), 'before the restart');
    const d = await wb.describe(id);
    assert.equal(d.state, 'active');
    assert.equal(d.host, h, 'still on its host: the file is there');
    assert.equal(d.endpoint, endpointOf(h), 'the endpoint handed out is the host\'s new one');
  });
});
