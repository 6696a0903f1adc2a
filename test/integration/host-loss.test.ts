/**
 * Restore after host loss, with two worker processes (`workbooks worker --host <id> --data-dir <dir>`) against
 * one Temporal dev server and the real litestream binary: the host holding an active workspace is killed and
 * its file destroyed; the next request recovers the workspace on the other host from its replica. Then
 * point-in-time restore into a new workspace, and reconcile of a host that comes back with a stale copy.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, tempDir, uniqueQueue } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { liveFile } from '../../src/host/data-dir';
import { restoreReplica } from '../../src/replication/restore';
import { Vfs } from '../../src/vfs/vfs';
import { kill9, spawnWorker } from '../../harness/worker-process';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

let server: Server;
let wb: WorkbooksClient;
let taskQueue: string;
let shared: string;
const dirs: Record<string, string> = {};
const workers: Record<string, ChildProcess | null> = {};

async function startWorker(hostId: string): Promise<ChildProcess> {
  const child = await spawnWorker({
    host: hostId,
    dataDir: dirs[hostId]!,
    env: {
      TEMPORAL_ADDRESS: server.address,
      WORKBOOKS_TASK_QUEUE: taskQueue,
      WORKBOOKS_COLD_URL: `file://${path.join(shared, 'cold')}`,
      WORKBOOKS_ARCHIVE_URL: `file://${path.join(shared, 'archive')}`,
      WORKBOOKS_REPLICA_URL: `file://${path.join(shared, 'replicas')}`,
    },
  });
  workers[hostId] = child;
  return child;
}

async function replicaHas(replicaUrl: string, volume: 'workspace', p: string): Promise<boolean> {
  const out = path.join(tempDir('wb-lag-'), 'r.sqlite');
  try {
    await restoreReplica({ replicaUrl, outFile: out });
    const v = Vfs.open(out, { create: false, readonly: true });
    try {
      return v.stat(volume, p) !== null;
    } finally {
      v.close();
    }
  } catch {
    return false;
  } finally {
    fs.rmSync(path.dirname(out), { recursive: true, force: true });
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('restore after host loss and point-in-time restore', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('loss');
    shared = tempDir('wb-shared-');
    dirs['host-a'] = tempDir('wb-host-a-');
    dirs['host-b'] = tempDir('wb-host-b-');
    wb = clientFor(server.client, taskQueue);
    await startWorker('host-a');
  });

  after(async () => {
    for (const w of Object.values(workers)) await kill9(w);
    await server?.stop();
  });

  it('an active workspace whose host and file are destroyed wakes on another host from its replica', async () => {
    await wb.create({ workspaceId: 'lost', tenant: 'acme', hostTimeoutSeconds: 3 });
    const d0 = await wb.describe('lost');
    assert.equal(d0.host, 'host-a');
    const replica = d0.replicas.at(-1)!;
    assert.ok(replica && replica.url.startsWith(`file://${path.join(shared, 'replicas')}/lost/`), `replicated: ${replica?.url}`);

    for (let i = 0; i < 50; i++) await wb.putFile('lost', 'workspace', `/rows/${i}`, Buffer.from(`row ${i}`));
    await wb.putFile('lost', 'memory', '/m', Buffer.from('remember me'));

    // Replication lag: from an acknowledged write to a restore of the replica that shows it.
    const lags: number[] = [];
    for (let i = 0; i < 5; i++) {
      const p = `/lag/${i}`;
      await wb.putFile('lost', 'workspace', p, Buffer.from('x'));
      const t0 = Date.now();
      await eventually(() => replicaHas(replica.url, 'workspace', p), `replica to show ${p}`, 30_000, 50);
      lags.push(Date.now() - t0);
    }
    console.log(`# replication lag (write acknowledged → visible in a restore of the replica), file://: median ${median(lags)} ms, max ${Math.max(...lags)} ms over ${lags.length}`);

    // Keep a copy of host A's file to bring back later (a host that returns with a stale disk).
    fs.copyFileSync(liveFile({ dataDir: dirs['host-a']! }, 'lost'), path.join(shared, 'stale.sqlite'));
    await kill9(workers['host-a']);
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(liveFile({ dataDir: dirs['host-a']! }, 'lost') + suffix, { force: true });
    await startWorker('host-b');

    const t0 = Date.now();
    assert.equal((await wb.getFile('lost', 'workspace', '/rows/49')).toString(), 'row 49');
    console.log(`# recovery of the lost workspace on host-b took ${Date.now() - t0} ms (host timeout 3 s)`);
    for (let i = 0; i < 50; i++) assert.equal((await wb.getFile('lost', 'workspace', `/rows/${i}`)).toString(), `row ${i}`);
    assert.equal((await wb.getFile('lost', 'memory', '/m')).toString(), 'remember me');

    const d = await wb.describe('lost');
    assert.equal(d.state, 'active');
    assert.equal(d.host, 'host-b');
    const entry = d.ledger.at(-1)!;
    assert.equal(entry.outcome, 'done');
    assert.match(entry.detail ?? '', /host host-a did not take work/);
    assert.match(entry.detail ?? '', /restored from replica file:\/\//);
    assert.notEqual(d.replicas.at(-1)!.url, replica.url, 'a new replica generation on the new host');
  });

  it('point-in-time restore returns the state at the requested time, without touching the original', async () => {
    await wb.putFile('lost', 'workspace', '/pit/before', Buffer.from('A'));
    const gen = (await wb.describe('lost')).replicas.at(-1)!;
    await eventually(() => replicaHas(gen.url, 'workspace', '/pit/before'), 'batch A replicated', 30_000, 100);
    await new Promise((r) => setTimeout(r, 1200));
    const at = new Date().toISOString();
    await new Promise((r) => setTimeout(r, 1200));
    await wb.putFile('lost', 'workspace', '/pit/after', Buffer.from('B'));
    await eventually(() => replicaHas(gen.url, 'workspace', '/pit/after'), 'batch B replicated', 30_000, 100);

    const r = await wb.restore('lost', { at, as: 'lost-at-t' });
    assert.equal(r.workspaceId, 'lost-at-t');
    assert.equal((await wb.getFile('lost-at-t', 'workspace', '/pit/before')).toString(), 'A');
    await assert.rejects(wb.getFile('lost-at-t', 'workspace', '/pit/after'), /no file workspace:\/pit\/after/);
    assert.equal((await wb.getFile('lost-at-t', 'workspace', '/rows/7')).toString(), 'row 7');

    const latest = await wb.restore('lost', { as: 'lost-latest' });
    assert.equal((await wb.getFile(latest.workspaceId, 'workspace', '/pit/after')).toString(), 'B');

    // The original is untouched and still serves both.
    assert.equal((await wb.getFile('lost', 'workspace', '/pit/after')).toString(), 'B');
    const d = await wb.describe('lost');
    assert.equal(d.state, 'active');
    assert.equal((await wb.describe('lost-at-t')).restoredFrom?.workspaceId, 'lost');

    await assert.rejects(wb.restore('lost', { at: '2001-01-01T00:00:00Z', as: 'too-early' }), /before workspace 'lost' was created|reaches back/);
    await assert.rejects(wb.restore('lost', { at: 'yesterday', as: 'bad-time' }), /not a time/);
  });

  it('a host that returns with a stale copy reconciles it aside and reports it', async () => {
    fs.copyFileSync(path.join(shared, 'stale.sqlite'), liveFile({ dataDir: dirs['host-a']! }, 'lost'));
    fs.writeFileSync(path.join(dirs['host-a']!, 'live', 'lost.active'), '{}\n');
    // The report of host-a's first start goes; the new start writes its own.
    fs.rmSync(path.join(dirs['host-a']!, 'reconcile.json'), { force: true });
    await startWorker('host-a');
    const report = await eventually(async () => {
      const p = path.join(dirs['host-a']!, 'reconcile.json');
      return fs.existsSync(p) ? (JSON.parse(fs.readFileSync(p, 'utf8')) as { findings: Array<{ workspaceId: string; action: string; movedTo?: string }> }) : null;
    }, 'reconcile report', 30_000, 200);
    const f = report.findings.find((x) => x.workspaceId === 'lost');
    assert.equal(f?.action, 'orphaned');
    assert.ok(f?.movedTo && fs.existsSync(f.movedTo), 'the stale copy is kept in orphans/, not deleted');
    assert.equal(fs.existsSync(liveFile({ dataDir: dirs['host-a']! }, 'lost')), false);
    // The workspace still lives on host-b.
    assert.equal((await wb.describe('lost')).host, 'host-b');
    assert.equal((await wb.getFile('lost', 'workspace', '/pit/after')).toString(), 'B');
  });
});
