/**
 * Replication health of a real `workbooks worker` (its Litestream daemon, its /metrics, its data server's
 * replication route through WorkbooksClient): a workspace under writes, then its replica store broken, must show
 * on the host's metrics (lag over the bound, a workspace behind) and in its health within a minute; a store that
 * refuses writes also as `failing` with the error, counted; once the store is back, `ok` again.
 *
 * Stores: s3:// on MinIO behind the loopback fault proxy, which first resets every connection (a store that
 * cannot be reached), then refuses every request with 403 AccessDenied (expired credentials); and file://, whose
 * replica directory is replaced by a regular file (what a lost mount looks like to a writer; unlike chmod, it
 * stops root too).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort, startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, tempDir, uniqueQueue } from '../../harness/stack';
import { kill9, spawnWorker } from '../../harness/worker-process';
import { MinioServer, startMinio } from '../../harness/minio';
import { S3FaultProxy, startS3FaultProxy } from '../../harness/s3-fault-proxy';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import type { ReplicationView } from '../../src/contract/data-plane';
import { REPLICATION_BEHIND, REPLICATION_ERRORS, REPLICATION_LAG } from '../../src/metrics/names';
import { LAG_BOUND_SECONDS } from '../../src/replication/health';
import { OK_AFTER_MS } from '../../src/host/replication-warnings';
import { alive } from '../../src/process-alive';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

/** How soon a broken store must show. */
const WITHIN_MS = 60_000;

let server: Server;
let minio: MinioServer;
let proxy: S3FaultProxy;
const workers: { child: ChildProcess; dataDir: string }[] = [];
/** Temporary dirs to remove at the end. */
const dirs: string[] = [];
const scratch = (prefix: string) => {
  const d = tempDir(prefix);
  dirs.push(d);
  return d;
};

/** One sample value of a Prometheus exposition, or undefined. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) got[l[1]!] = l[2]!;
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

interface HostMetrics {
  lag: number | undefined;
  behind: number | undefined;
  errors: number | undefined;
}

async function scrape(port: number, host: string): Promise<HostMetrics> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return {
    lag: sample(text, REPLICATION_LAG, { host }),
    behind: sample(text, REPLICATION_BEHIND, { host }),
    errors: sample(text, REPLICATION_ERRORS, { host }),
  };
}

/** Stops a worker the way an operator does (its daemon flushes and exits with it), then makes sure no daemon is left. */
async function stopWorker(w: { child: ChildProcess; dataDir: string }): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) {
    const exited = new Promise<void>((r) => w.child.once('exit', () => r()));
    w.child.kill('SIGTERM');
    const t = setTimeout(() => void kill9(w.child), 45_000);
    await exited;
    clearTimeout(t);
  }
  // A daemon of this worker's data dir still running (the worker was killed): stop it, by its own pid file.
  try {
    const pid = Number(fs.readFileSync(path.join(w.dataDir, 'litestream', 'litestream.pid'), 'utf8').trim());
    const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (alive(pid) && cmd.includes('litestream') && cmd.includes(w.dataDir)) process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file or no such process: nothing left
  }
}

/** A way to break the replica store, how to mend it, and what the health must say while it is broken. */
interface Fault {
  what: string;
  breakStore: () => void;
  healStore: () => void;
  /**
   * The states the health must reach within WITHIN_MS (with the lag metric over the bound and the workspace counted
   * behind): a store that refuses writes is `failing` (the daemon logs the failure); one that cannot be reached at
   * all may be `lagging` first (the daemon's S3 client retries a reset connection for more than a minute before it
   * logs anything).
   */
  states: ReplicationView['state'][];
  /** Whether the error counter and the health's lastError must show it too. */
  counted: boolean;
}

/**
 * Runs one worker replicating to `replicaUrl` with one workspace written to every half second, and for each fault
 * in turn: break the store, the health and the metrics must show it within WITHIN_MS; mend it, they must recover.
 */
async function brokenStoreCase(opts: { name: string; replicaUrl: string; env: Record<string, string>; faults: Fault[]; diag: (msg: string) => void }): Promise<void> {
  const taskQueue = uniqueQueue(`rephealth-${opts.name}`);
  const host = `rephealth-${opts.name}`;
  const dataDir = scratch(`wb-rephealth-${opts.name}-`);
  const shared = scratch(`wb-rephealth-${opts.name}-shared-`);
  const metricsPort = await freePort();
  let stderr = '';
  const child = await spawnWorker({
    host,
    dataDir,
    env: {
      TEMPORAL_ADDRESS: server.address,
      WORKBOOKS_TASK_QUEUE: taskQueue,
      WORKBOOKS_COLD_URL: `file://${path.join(shared, 'cold')}`,
      WORKBOOKS_ARCHIVE_URL: `file://${path.join(shared, 'archive')}`,
      WORKBOOKS_REPLICA_URL: opts.replicaUrl,
      WORKBOOKS_METRICS_PORT: String(metricsPort),
      WORKBOOKS_LOG_LEVEL: 'INFO',
      ...opts.env,
    },
    onStderr: (d) => (stderr = (stderr + d).slice(-20_000)),
  });
  const w = { child, dataDir };
  workers.push(w);
  const wb: WorkbooksClient = clientFor(server.client, taskQueue);
  const id = `rh-${opts.name}`;
  let writing = true;
  let writer: Promise<void> = Promise.resolve();
  try {
    await wb.create({ workspaceId: id, tenant: 'acme' });
    await wb.putFile(id, 'workspace', '/seed', Buffer.from('seed'));

    // Healthy first: ok, about a second behind, nothing counted.
    const healthy = await eventually(async () => {
      const r = await wb.replication(id);
      return r.state === 'ok' ? r : null;
    }, 'the workspace replicating ok');
    assert.ok(healthy.lagSeconds !== null && healthy.lagSeconds < LAG_BOUND_SECONDS, JSON.stringify(healthy));
    const first = await eventually(async () => {
      const m = await scrape(metricsPort, host);
      return m.lag !== undefined && m.errors !== undefined ? m : null;
    }, 'the replication series on /metrics');
    assert.ok(first.lag! < LAG_BOUND_SECONDS, JSON.stringify(first));
    assert.equal(first.behind, 0);
    assert.equal((await wb.describeWithReplication(id)).replication.state, 'ok');

    // Writes go on (locally acknowledged, as in production), every half second.
    let n = 0;
    writer = (async () => {
      while (writing) {
        await wb.putFile(id, 'workspace', `/w/${n++}`, Buffer.alloc(4096, n % 251)).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 500));
      }
    })();
    await new Promise((r) => setTimeout(r, 1500));

    const ledgerSince = async (n: number) => (await wb.describe(id)).ledger.slice(n);
    for (const fault of opts.faults) {
      const base = await scrape(metricsPort, host);
      const ledgerBefore = (await wb.describe(id)).ledger.length;
      fault.breakStore();
      const t0 = Date.now();
      let seen = '';
      const shown = await eventually(
        async () => {
          const [m, r] = await Promise.all([scrape(metricsPort, host), wb.replication(id)]);
          seen = JSON.stringify({ m, r });
          const metricsShow = m.lag! > LAG_BOUND_SECONDS && m.behind! >= 1 && (!fault.counted || m.errors! > base.errors!);
          return metricsShow && fault.states.includes(r.state) && (!fault.counted || !!r.lastError) ? { m, r } : null;
        },
        `${fault.what}: shown on /metrics and in the health`,
        WITHIN_MS,
        500,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; last seen ${seen}`);
      });
      opts.diag(`${opts.name}, ${fault.what}: shown after ${((Date.now() - t0) / 1000).toFixed(1)} s: ${JSON.stringify(shown)}`);
      assert.ok(shown.r.lagSeconds! > LAG_BOUND_SECONDS, 'the health carries the lag');
      const described = await wb.describeWithReplication(id);
      assert.ok(fault.states.includes(described.replication.state), JSON.stringify(described.replication));
      assert.equal(described.state, 'active', 'the workspace itself is still served');
      // The ledger warns (the host tells the workflow when the state changes), naming the host and the bound.
      const warned = await eventually(
        async () => (await ledgerSince(ledgerBefore)).find((e) => e.outcome === 'warning'),
        `${fault.what}: a warning in the ledger`,
        20_000,
        500,
      );
      assert.equal(warned.by, 'replication');
      assert.deepEqual([warned.from, warned.to], ['active', 'active']);
      assert.match(warned.detail ?? '', new RegExp(`^replica on ${host} is (\\S+ s behind \\(bound ${LAG_BOUND_SECONDS} s\\)|failing, )`));

      // The store is back: ok again, lag back under the bound (Litestream's retry backoff decides how soon).
      fault.healStore();
      const t1 = Date.now();
      await eventually(
        async () => {
          const [m, r] = await Promise.all([scrape(metricsPort, host), wb.replication(id)]);
          seen = JSON.stringify({ m, r });
          return r.state === 'ok' && m.lag! < LAG_BOUND_SECONDS && m.behind === 0 ? true : null;
        },
        `${fault.what}: recovery after the store is back`,
        120_000,
        500,
      ).catch((err: Error) => {
        throw new Error(`${err.message}; last seen ${seen}`);
      });
      opts.diag(`${opts.name}, ${fault.what}: recovered ${((Date.now() - t1) / 1000).toFixed(1)} s after the store came back`);
      // Once ok for OK_AFTER_MS: the all-clear. One episode is at most two warnings (lagging, then failing).
      const caughtUp = await eventually(
        async () => (await ledgerSince(ledgerBefore)).find((e) => e.outcome === 'done' && /^replica caught up/.test(e.detail ?? '')),
        `${fault.what}: the ledger says the replica caught up`,
        OK_AFTER_MS + 30_000,
        500,
      );
      const episode = await ledgerSince(ledgerBefore);
      opts.diag(`${opts.name}, ${fault.what}: ledger ${JSON.stringify(episode.map((e) => `${e.outcome}: ${e.detail}`))}`);
      assert.ok(episode.filter((e) => e.outcome === 'warning').length <= 2, 'at most a lagging and a failing warning');
      assert.equal(episode.filter((e) => /^replica caught up/.test(e.detail ?? '')).length, 1);
      assert.deepEqual(episode.at(-1), caughtUp, 'nothing after the all-clear while the replica stays ok');
    }
  } catch (err) {
    opts.diag(`${opts.name}: worker stderr tail:\n${stderr.slice(-4000)}`);
    throw err;
  } finally {
    writing = false;
    await writer;
    for (const f of opts.faults) f.healStore();
    await stopWorker(w);
  }
}

describe('replication health with an unreachable replica store', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    minio = await startMinio();
    await minio.createBucket('replicas');
    proxy = await startS3FaultProxy(minio.endpoint);
  });

  after(async () => {
    for (const w of workers) await stopWorker(w).catch(() => undefined);
    await proxy?.close();
    await minio?.stop();
    await server?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  it('s3://: a store that cannot be reached, then one that refuses writes, shows within a minute', async (t) => {
    await brokenStoreCase({
      name: 's3',
      replicaUrl: 's3://replicas/health',
      env: { ...minio.env, WORKBOOKS_S3_ENDPOINT: proxy.endpoint },
      faults: [
        {
          what: 'every connection reset',
          breakStore: () => void proxy.add({ action: { type: 'reset', phase: 'request' } }),
          healStore: () => proxy.heal(),
          states: ['lagging', 'failing'],
          counted: false,
        },
        {
          what: 'every request refused (403 AccessDenied, as with expired credentials)',
          breakStore: () => void proxy.failAll(403, 'AccessDenied', 'Access Denied.'),
          healStore: () => proxy.heal(),
          states: ['failing'],
          counted: true,
        },
      ],
      diag: (m) => t.diagnostic(m),
    });
    assert.ok(proxy.stats().injectedTotal > 0, 'the proxy really cut requests');
  });

  it('file://: a replica directory replaced by a file shows as failing within a minute', async (t) => {
    const root = scratch('wb-rephealth-file-replicas-');
    const replicas = path.join(root, 'replicas');
    fs.mkdirSync(replicas);
    const aside = path.join(root, 'replicas.aside');
    await brokenStoreCase({
      name: 'file',
      replicaUrl: `file://${replicas}`,
      env: {},
      faults: [
        {
          what: 'the replica directory replaced by a file',
          breakStore: () => {
            fs.renameSync(replicas, aside);
            fs.writeFileSync(replicas, 'not a directory\n');
          },
          healStore: () => {
            if (!fs.existsSync(aside)) return;
            fs.rmSync(replicas, { force: true });
            fs.renameSync(aside, replicas);
          },
          states: ['failing'],
          counted: true,
        },
      ],
      diag: (m) => t.diagnostic(m),
    });
  });
});
