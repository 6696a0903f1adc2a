/**
 * Wake latency as a caller sees it: wall time (performance.now()) of `WorkbooksClient.wake(id)` on one workspace
 * of `sizeMiB`, many times from each starting state, each wake beside a raw baseline measured in the same iteration:
 *
 *   warm       already active                 baseline: one `describe` query round trip (Temporal, no move)
 *   suspended  file closed on the host's disk  baseline: open a copy of the suspended file with SQLite, read its
 *                                                        schema, close (the file work, without Temporal)
 *   frozen     only a file:// cold copy,       baseline: `cp` of the cold copy to the same filesystem + `sync` of
 *              on the same filesystem                    the copy (the bytes moved, without Temporal); also the
 *                                                        same in-process (copyFile + fsync), without process spawns
 *   frozen-s3  only an s3:// cold copy         baseline: one plain GetObject of the cold object streamed to a file
 *              (measureWakeLatencyS3; MinIO)             on the data dir's filesystem + fsync
 *
 * Between wakes (untimed) the workspace is moved back to the starting state: suspend, or suspend + freeze. Every
 * wake's `path` is checked (warm / local / cold), so each sample really is the kind it is filed under. The worker
 * host runs in this process (shared + host queues, data server, its Litestream daemon replicating the active file
 * to file:// replicas in its data dir), against a Temporal dev server. The S3 case runs separately (it needs an
 * S3 server in process.env): its own host with cold storage on s3://, and its own workspace filled the same way.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { TestDevServer } from '../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../harness/stack';
import type { WakeResult } from '../src/contract/types';
import type { WorkbooksClient } from '../src/client/workbooks-client';
import { parseS3Url, s3Client, s3SettingsFromEnv } from '../src/storage/s3-client';
import { plainGet } from './s3-throughput';
import { benchSection } from './cleanup';
import { copyFsync, elapsed, median, run, settle } from './raw-ops';

const MiB = 1024 * 1024;

export type WakeKind = 'warm' | 'suspended' | 'frozen' | 'frozen-s3';

export interface WakeSeries {
  kind: WakeKind;
  /** Wall time of each timed `wake` call (ms). */
  wakeMs: number[];
  /** The baseline of the same iteration (ms). */
  baseMs: number[];
  /** What the baseline is. */
  baseline: string;
  /** frozen only: copyFile + fsync of the cold copy in this process (ms). */
  inProcessCopyMs?: number[];
}

export interface WakeLatencyResult {
  sizeMiB: number;
  /** Size of the suspended live file and of the cold copy (bytes). */
  fileBytes: number;
  coldBytes: number;
  wakes: number;
  /** Untimed wakes of each kind before the timed ones. */
  warmups: number;
  series: WakeSeries[];
  totalMs: number;
  /** The frozen-s3 case, when it ran (its series is also in `series`). */
  s3?: WakeS3Result;
}

export interface WakeS3Result {
  series: WakeSeries;
  sizeMiB: number;
  fileBytes: number;
  coldBytes: number;
  /** The host's cold storage (s3://bucket/prefix) and the S3 server. */
  coldUrl: string;
  wakes: number;
  warmups: number;
  totalMs: number;
}

export interface WakeLatencyOptions {
  server: TestDevServer;
  /** Timed wakes per kind. */
  wakes: number;
  sizeMiB: number;
  /** Parent of the temporary root (default: the OS temp dir). */
  baseDir?: string;
  /** Untimed wakes of each kind first (default 3). */
  warmups?: number;
  log?(line: string): void;
}





function expectPath(w: WakeResult, want: WakeResult['path'], what: string): void {
  if (w.state !== 'active' || w.path !== want) throw new Error(`${what}: wake answered state ${w.state} by path '${w.path}', expected '${want}'`);
}

export async function measureWakeLatency(opts: WakeLatencyOptions): Promise<WakeLatencyResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const warmups = opts.warmups ?? 3;
  const t00 = performance.now();
  let host: TestHost | undefined;
  const section = benchSection('workbooks-wake-', opts.baseDir, () => host);
  const root = section.root;
  const dataDir = path.join(root, 'host');
  const scratch = path.join(dataDir, 'scratch');
  fs.mkdirSync(scratch, { recursive: true });
  try {
    const taskQueue = uniqueQueue('bench-wake');
    // Cold storage on the data dir's filesystem ("frozen with a local file:// cold copy").
    const coldUrl = `file://${path.join(dataDir, 'cold')}`;
    host = await startTestHost({
      connection: opts.server.connection,
      client: opts.server.client,
      taskQueue,
      // A host id of its own: a host's start-up reconcile queries every running workspace claimed by its id.
      hostId: `bench-wake-${crypto.randomBytes(2).toString('hex')}`,
      dataDir,
      coldUrl,
    });
    await host.host.reconciled;
    const wb = clientFor(opts.server.client, taskQueue);
    const id = `bench-wake-${crypto.randomBytes(3).toString('hex')}`;
    await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: 'never', freezeAfter: 'never' } });

    const probe = await fill(wb, id, opts.sizeMiB);
    await wb.transition(id, 'suspended');
    const livePath = (await wb.describe(id)).filePath;
    if (!livePath) throw new Error(`suspended workspace ${id} has no file path`);
    const fileBytes = fs.statSync(livePath).size;
    log(`  workspace ${id}: ${(fileBytes / MiB).toFixed(1)} MiB live file`);
    await wb.wake(id);

    const n = opts.wakes;
    const every = Math.max(1, Math.ceil(n / 4));
    const progress = (s: WakeSeries, i: number) => {
      if ((i + 1) % every === 0 || i + 1 === n) {
        const last = s.wakeMs.slice(-every);
        log(`    ${s.kind}: ${i + 1}/${n} (last ${last.length}: median wake ${median(last).toFixed(1)} ms, baseline ${median(s.baseMs.slice(-every)).toFixed(1)} ms)`);
      }
    };

    // ---- warm: the workspace is active; baseline a describe query. Order alternates so neither goes first always.
    const warm: WakeSeries = { kind: 'warm', wakeMs: [], baseMs: [], baseline: '`describe` query round trip' };
    for (let i = -warmups; i < n; i++) {
      let b = 0;
      let w = 0;
      const timeDescribe = async () => {
        const t0 = performance.now();
        await wb.describe(id);
        b = elapsed(t0);
      };
      const timeWake = async () => {
        const t0 = performance.now();
        const r = await wb.wake(id);
        w = elapsed(t0);
        expectPath(r, 'warm', `warm wake ${i}`);
      };
      if (i % 2 === 0) {
        await timeDescribe();
        await timeWake();
      } else {
        await timeWake();
        await timeDescribe();
      }
      if (i < 0) continue;
      warm.wakeMs.push(w);
      warm.baseMs.push(b);
      progress(warm, i);
    }

    // ---- suspended: closed on the host's disk; baseline SQLite open + schema read + close of a copy of that file.
    const suspended: WakeSeries = { kind: 'suspended', wakeMs: [], baseMs: [], baseline: 'SQLite open + schema read + close of a copy of the suspended file' };
    for (let i = -warmups; i < n; i++) {
      await wb.transition(id, 'suspended', { reason: 'bench', by: 'bench' });
      const live = (await wb.describe(id)).filePath!;
      const copy = path.join(scratch, `open-${i}.sqlite`);
      fs.copyFileSync(live, copy);
      settle(dataDir);
      let t0 = performance.now();
      const db = new Database(copy, { fileMustExist: true });
      db.prepare('SELECT count(*) AS n FROM sqlite_master').get();
      db.close();
      const b = elapsed(t0);
      for (const suffix of ['', '-wal', '-shm']) fs.rmSync(copy + suffix, { force: true });
      settle(dataDir);
      t0 = performance.now();
      const r = await wb.wake(id, { reason: 'bench', by: 'bench' });
      const w = elapsed(t0);
      expectPath(r, 'local', `suspended wake ${i}`);
      if (i < 0) continue;
      suspended.wakeMs.push(w);
      suspended.baseMs.push(b);
      progress(suspended, i);
    }

    // ---- frozen: only the cold copy (file:// on this filesystem); baseline cp + sync of that copy.
    const frozen: WakeSeries = { kind: 'frozen', wakeMs: [], baseMs: [], inProcessCopyMs: [], baseline: '`cp` of the cold copy + `sync` of the copy' };
    let coldBytes = 0;
    for (let i = -warmups; i < n; i++) {
      await wb.transition(id, 'suspended', { reason: 'bench', by: 'bench' });
      await wb.transition(id, 'frozen', { reason: 'bench', by: 'bench' });
      const d = await wb.describe(id);
      if (d.state !== 'frozen' || !d.cold) throw new Error(`${id} is ${d.state} after freeze`);
      const cold = new URL(d.cold.url).pathname;
      coldBytes = fs.statSync(cold).size;
      const dst = path.join(scratch, `cp-${i}`);
      settle(dataDir);
      let t0 = performance.now();
      await run('cp', ['--', cold, dst]);
      await run('sync', ['--', dst]);
      const b = elapsed(t0);
      fs.rmSync(dst, { force: true });
      settle(dataDir);
      t0 = performance.now();
      await copyFsync(cold, dst);
      const inProc = elapsed(t0);
      fs.rmSync(dst, { force: true });
      settle(dataDir);
      t0 = performance.now();
      const r = await wb.wake(id, { reason: 'bench', by: 'bench' });
      const w = elapsed(t0);
      expectPath(r, 'cold', `frozen wake ${i}`);
      if (i < 0) continue;
      frozen.wakeMs.push(w);
      frozen.baseMs.push(b);
      frozen.inProcessCopyMs!.push(inProc);
      progress(frozen, i);
    }

    // The data came through every move.
    await checkProbe(wb, id, probe);

    return { sizeMiB: opts.sizeMiB, fileBytes, coldBytes, wakes: n, warmups, series: [warm, suspended, frozen], totalMs: elapsed(t00) };
  } finally {
    await section.close();
  }
}


/** Fills with random bytes in 1 MiB files; returns one file (path, sha256) to check the data after all the moves. */
async function fill(wb: WorkbooksClient, id: string, sizeMiB: number): Promise<{ path: string; sha: string }> {
  const total = Math.round(sizeMiB * MiB);
  let probe: { path: string; sha: string } | null = null;
  for (let off = 0, n = 0; off < total; off += MiB, n++) {
    const data = crypto.randomBytes(Math.min(MiB, total - off));
    const p = `/data/${String(n).padStart(4, '0')}.bin`;
    await wb.putFile(id, 'workspace', p, data);
    probe ??= { path: p, sha: crypto.createHash('sha256').update(data).digest('hex') };
  }
  if (!probe) throw new Error('nothing to fill');
  return probe;
}

async function checkProbe(wb: WorkbooksClient, id: string, probe: { path: string; sha: string }): Promise<void> {
  const got = await wb.getFile(id, 'workspace', probe.path);
  if (crypto.createHash('sha256').update(got).digest('hex') !== probe.sha) throw new Error(`${id}: ${probe.path} changed across the wakes`);
}

export interface WakeS3Options {
  server: TestDevServer;
  /** Timed wakes. */
  wakes: number;
  sizeMiB: number;
  /** Cold storage of the host: s3://bucket/prefix (the bucket must exist; process.env must point at the server). */
  coldUrl: string;
  baseDir?: string;
  warmups?: number;
  log?(line: string): void;
}

/**
 * Frozen to S3 and woken: each iteration suspends and freezes the workspace (untimed), times one plain GetObject
 * of its cold object streamed to a file on the data dir's filesystem + fsync, then the wake (path `cold`: the
 * product's parallel ranged GETs with sha256, fsync, open, register with Litestream).
 */
export async function measureWakeLatencyS3(opts: WakeS3Options): Promise<WakeS3Result> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const warmups = opts.warmups ?? 3;
  const t00 = performance.now();
  let host: TestHost | undefined;
  const section = benchSection('workbooks-wake-s3-', opts.baseDir, () => host);
  const root = section.root;
  const dataDir = path.join(root, 'host');
  const scratch = path.join(dataDir, 'scratch');
  fs.mkdirSync(scratch, { recursive: true });
  try {
    const taskQueue = uniqueQueue('bench-wake-s3');
    host = await startTestHost({
      connection: opts.server.connection,
      client: opts.server.client,
      taskQueue,
      hostId: `bench-wake-s3-${crypto.randomBytes(2).toString('hex')}`,
      dataDir,
      coldUrl: opts.coldUrl,
    });
    await host.host.reconciled;
    const wb = clientFor(opts.server.client, taskQueue);
    const s3 = s3Client(s3SettingsFromEnv());
    const id = `bench-wake-s3-${crypto.randomBytes(3).toString('hex')}`;
    await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
    const probe = await fill(wb, id, opts.sizeMiB);
    await wb.transition(id, 'suspended');
    const fileBytes = fs.statSync((await wb.describe(id)).filePath!).size;
    log(`  workspace ${id}: ${(fileBytes / MiB).toFixed(1)} MiB live file; cold storage ${opts.coldUrl}`);
    await wb.wake(id);

    const n = opts.wakes;
    const every = Math.max(1, Math.ceil(n / 4));
    const series: WakeSeries = { kind: 'frozen-s3', wakeMs: [], baseMs: [], baseline: 'one plain GetObject of the cold object to a file + fsync' };
    let coldBytes = 0;
    for (let i = -warmups; i < n; i++) {
      await wb.transition(id, 'suspended', { reason: 'bench', by: 'bench' });
      await wb.transition(id, 'frozen', { reason: 'bench', by: 'bench' });
      const d = await wb.describe(id);
      if (d.state !== 'frozen' || !d.cold) throw new Error(`${id} is ${d.state} after freeze`);
      if (!d.cold.url.startsWith('s3://')) throw new Error(`${id}: cold copy at ${d.cold.url}, expected s3://`);
      coldBytes = d.cold.bytes;
      const { bucket, prefix: key } = parseS3Url(d.cold.url);
      const dst = path.join(scratch, `get-${i}`);
      settle(dataDir);
      let t0 = performance.now();
      await plainGet(s3, bucket, key, dst);
      const b = elapsed(t0);
      if (fs.statSync(dst).size !== d.cold.bytes) throw new Error(`plain GetObject of ${d.cold.url} returned ${fs.statSync(dst).size} bytes, expected ${d.cold.bytes}`);
      fs.rmSync(dst, { force: true });
      settle(dataDir);
      t0 = performance.now();
      const r = await wb.wake(id, { reason: 'bench', by: 'bench' });
      const w = elapsed(t0);
      expectPath(r, 'cold', `frozen (S3) wake ${i}`);
      if (i < 0) continue;
      series.wakeMs.push(w);
      series.baseMs.push(b);
      if ((i + 1) % every === 0 || i + 1 === n) {
        log(`    frozen-s3: ${i + 1}/${n} (last ${Math.min(every, series.wakeMs.length)}: median wake ${median(series.wakeMs.slice(-every)).toFixed(1)} ms, GetObject + fsync ${median(series.baseMs.slice(-every)).toFixed(1)} ms)`);
      }
    }
    await checkProbe(wb, id, probe);
    s3.destroy();
    return { series, sizeMiB: opts.sizeMiB, fileBytes, coldBytes, coldUrl: opts.coldUrl, wakes: n, warmups, totalMs: elapsed(t00) };
  } finally {
    await section.close();
  }
}
