/**
 * Replication lag through the product: a real worker host replicating its active workspaces with its Litestream
 * daemon (file:// replicas in its data dir by default, or any replica URL), one workspace, and `writes` times:
 *
 *   putFile through the client (acknowledged = committed on the host) ─ poll restoreReplica() of the workspace's
 *   replica into a scratch file until the restored copy holds the file
 *
 * The lag of a write is acknowledgement → end of the first restore that shows it: what a restore after losing the
 * host at that moment would have. Polls are restores (Litestream restore + SQLite integrity check), so the figure is
 * coarse by one restore's time; that time is reported too. A random pause of 0–1 s before each write spreads the
 * writes over the daemon's sync cycle.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { TestDevServer } from '../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../harness/stack';
import { restoreReplica } from '../src/replication/restore';
import { Vfs } from '../src/vfs/vfs';
import { benchSection } from './cleanup';

export interface LagResult {
  replicaUrl: string;
  /** Acknowledged write → end of the first restore that showed it, per write. */
  lagMs: number[];
  /** Acknowledged write → start of the restore that first showed it. */
  lagStartMs: number[];
  /** Wall time of every restore (poll) made. */
  restoreMs: number[];
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Restores the replica into a fresh scratch file and says whether workspace:<p> is in it. */
async function replicaHas(replicaUrl: string, scratchRoot: string, p: string): Promise<boolean> {
  const dir = fs.mkdtempSync(path.join(scratchRoot, 'r-'));
  const out = path.join(dir, 'r.sqlite');
  try {
    await restoreReplica({ replicaUrl, outFile: out });
    const v = Vfs.open(out, { create: false, readonly: true });
    try {
      return v.stat('workspace', p) !== null;
    } finally {
      v.close();
    }
  } catch {
    return false; // nothing on the replica yet
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function measureReplicationLag(opts: {
  server: TestDevServer;
  /** Replica base URL for the host (default: file://<host data dir>/replicas). */
  replicaUrl?: string;
  writes: number;
  baseDir?: string;
  /** Gap between polls (ms). */
  pollMs?: number;
  timeoutMs?: number;
  log?(line: string): void;
}): Promise<LagResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const pollMs = opts.pollMs ?? 50;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  let host: TestHost | undefined;
  const section = benchSection('workbooks-lag-', opts.baseDir, () => host);
  const root = section.root;
  const dataDir = path.join(root, 'host');
  const scratch = path.join(root, 'scratch');
  fs.mkdirSync(scratch, { recursive: true });
  try {
    const taskQueue = uniqueQueue('bench-lag');
    host = await startTestHost({
      connection: opts.server.connection,
      client: opts.server.client,
      taskQueue,
      // A host id of its own: a host's start-up reconcile queries every running workspace claimed by its id.
      hostId: `bench-lag-${opts.replicaUrl ? opts.replicaUrl.split(':')[0] : 'file'}-${crypto.randomBytes(2).toString('hex')}`,
      dataDir,
      ...(opts.replicaUrl ? { replicaUrl: opts.replicaUrl } : {}),
    });
    await host.host.reconciled;
    const wb = clientFor(opts.server.client, taskQueue);
    const id = `bench-lag-${crypto.randomBytes(3).toString('hex')}`;
    await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
    for (let i = 0; i < 20; i++) await wb.putFile(id, 'workspace', `/rows/${i}`, crypto.randomBytes(2048));
    const replicaUrl = (await wb.describe(id)).replicas.at(-1)?.url;
    if (!replicaUrl) throw new Error(`workspace ${id} has no replica (is replication off?)`);
    log(`  replica ${replicaUrl}`);

    const result: LagResult = { replicaUrl, lagMs: [], lagStartMs: [], restoreMs: [] };
    const waitFor = async (p: string, t0: number): Promise<void> => {
      for (;;) {
        const s = performance.now();
        const has = await replicaHas(replicaUrl, scratch, p);
        const e = performance.now();
        result.restoreMs.push(e - s);
        if (has) {
          result.lagMs.push(e - t0);
          result.lagStartMs.push(s - t0);
          return;
        }
        if (e - t0 > timeoutMs) throw new Error(`${p} did not reach ${replicaUrl} within ${timeoutMs} ms`);
        await sleep(pollMs);
      }
    };
    // The first full snapshot, untimed.
    await waitFor('/rows/19', performance.now());
    Object.assign(result, { lagMs: [], lagStartMs: [], restoreMs: [] });

    for (let i = 0; i < opts.writes; i++) {
      await sleep(Math.random() * 1000);
      const p = `/lag/${i}`;
      await wb.putFile(id, 'workspace', p, crypto.randomBytes(256));
      const t0 = performance.now();
      await waitFor(p, t0);
      log(`    write ${i + 1}/${opts.writes}: visible in a restore after ${result.lagMs.at(-1)!.toFixed(0)} ms`);
    }
    await wb.transition(id, 'deleted').catch(() => undefined);
    return result;
  } finally {
    await section.close();
  }
}
