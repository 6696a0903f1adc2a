/**
 * Freeze / resume benchmark through the real `workspace` workflow: a Temporal dev server, a real worker host
 * (shared + host queues + data server) in this process, file:// cold storage inside the host's data dir.
 *
 * Per size: one workspace filled through `putFile` with random bytes in 16 MiB files, then `runs` cycles of
 *
 *   suspended ─ cp live file (baseline) ─ freeze ─ frozen ─ cp cold copy back (baseline) ─ wake ─ active
 *   ─ put a small marker file (so the next freeze has new bytes to copy) ─ suspend (untimed) ─ …
 *
 * Timed: the `transition(id, 'frozen')` and `wake(id)` client calls (each a describe query + an update round
 * trip), the storeLocal / restoreLocal activity alone (ActivityTaskStarted → ActivityTaskCompleted times in the
 * workflow history), `cp` of the same file, and `cp` followed by an fsync of the copy (`sync <file>`).
 */
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestDevServer, TestDevServer } from '../test/helpers/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../test/helpers/stack';
import { WorkbooksClient } from '../src/client/workbooks-client';
import { workflowIdFor } from '../src/contract/ids';

export const MiB = 1024 * 1024;
/** Size of each file written into the workspace. */
export const PUT_CHUNK = 16 * MiB;

export interface ActivityTiming {
  /** ActivityTaskStarted → ActivityTaskCompleted of the last attempt. */
  runMs: number;
  /** ActivityTaskScheduled → ActivityTaskStarted (task queue latency). */
  queueMs: number;
  attempt: number;
}

export interface RunSample {
  freezeMs: number;
  storeLocal: ActivityTiming;
  resumeMs: number;
  restoreLocal: ActivityTiming;
  cpLiveMs: number;
  cpSyncLiveMs: number;
  cpColdMs: number;
  cpSyncColdMs: number;
}

export interface SizeResult {
  sizeMiB: number;
  /** Size of the live SQLite file (after suspend) and of the cold copy. */
  fileBytes: number;
  fillMs: number;
  runs: RunSample[];
}

export interface BenchEnv {
  /** Root of everything this bench writes (removed at the end). */
  root: string;
  /** The worker host's data dir (live/, cold/ and the scratch dir of the cp baselines live here). */
  dataDir: string;
}

export interface FreezeResumeOptions {
  sizesMiB: number[];
  runsFor(sizeMiB: number): number;
  /** Parent of the temporary root (default: the OS temp dir). */
  baseDir?: string;
  log?(line: string): void;
  /** Called once the host is up (e.g. to read the filesystem type of its data dir). */
  onEnv?(env: BenchEnv): void;
}

// ---------------------------------------------------------------------------------------------------------------

function elapsed(t0: number): number {
  return performance.now() - t0;
}

/** Runs a command to completion; rejects on a non-zero exit. */
function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

/** Lets pending writeback of earlier steps finish so it is not billed to the next measurement. */
function settle(dir: string): void {
  spawnSync('sync', ['-f', dir]);
}

/** Time of `cp src dst`, and of `cp src dst && sync dst` (fsync of the copy); each copy is removed afterwards. */
async function cpBaselines(src: string, scratchDir: string): Promise<{ cpMs: number; cpSyncMs: number }> {
  const dst = path.join(scratchDir, `copy-${crypto.randomBytes(4).toString('hex')}`);
  try {
    settle(scratchDir);
    let t0 = performance.now();
    await run('cp', ['--', src, dst]);
    const cpMs = elapsed(t0);
    fs.rmSync(dst, { force: true });
    settle(scratchDir);
    t0 = performance.now();
    await run('cp', ['--', src, dst]);
    await run('sync', ['--', dst]);
    const cpSyncMs = elapsed(t0);
    return { cpMs, cpSyncMs };
  } finally {
    fs.rmSync(dst, { force: true });
    settle(scratchDir);
  }
}

type Long = { toString(): string } | number | string | null | undefined;
interface Ts {
  seconds?: Long;
  nanos?: number | null;
}

function tsMs(t: Ts | null | undefined): number {
  if (!t) return NaN;
  return Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6;
}

/**
 * The newest completed run of activity `type` in the workspace's history, newer than `afterEventId`.
 * The server writes ActivityTaskStarted when the activity finishes, stamped with the time it really started.
 */
async function lastActivity(server: TestDevServer, workspaceId: string, type: string, afterEventId: number): Promise<ActivityTiming & { scheduledId: number }> {
  const history = await server.client.workflow.getHandle(workflowIdFor(workspaceId)).fetchHistory();
  const events = history.events ?? [];
  const byId = new Map<number, (typeof events)[number]>();
  for (const e of events) byId.set(Number(String(e.eventId)), e);
  for (let i = events.length - 1; i >= 0; i--) {
    const done = events[i]!.activityTaskCompletedEventAttributes;
    if (!done) continue;
    const scheduledId = Number(String(done.scheduledEventId));
    if (scheduledId <= afterEventId) break;
    const scheduled = byId.get(scheduledId);
    if (scheduled?.activityTaskScheduledEventAttributes?.activityType?.name !== type) continue;
    const started = byId.get(Number(String(done.startedEventId)));
    if (!started?.activityTaskStartedEventAttributes) throw new Error(`no ActivityTaskStarted for ${type} (scheduled event ${scheduledId})`);
    return {
      scheduledId,
      runMs: tsMs(events[i]!.eventTime) - tsMs(started.eventTime),
      queueMs: tsMs(started.eventTime) - tsMs(scheduled.eventTime),
      attempt: started.activityTaskStartedEventAttributes.attempt ?? 1,
    };
  }
  throw new Error(`no completed ${type} activity after event ${afterEventId} in the history of ${workspaceId}`);
}

async function fill(wb: WorkbooksClient, id: string, bytes: number): Promise<void> {
  for (let off = 0, n = 0; off < bytes; off += PUT_CHUNK, n++) {
    const len = Math.min(PUT_CHUNK, bytes - off);
    await wb.putFile(id, 'workspace', `/data/${String(n).padStart(4, '0')}.bin`, crypto.randomBytes(len));
  }
}

async function measureSize(server: TestDevServer, wb: WorkbooksClient, env: BenchEnv, sizeMiB: number, runs: number, log: (l: string) => void): Promise<SizeResult> {
  const id = `bench-${String(sizeMiB).replace(/[^0-9]/g, '-')}m-${crypto.randomBytes(3).toString('hex')}`;
  const scratch = path.join(env.dataDir, 'scratch');
  fs.mkdirSync(scratch, { recursive: true });

  // No idle moves while the bench runs.
  await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
  let t0 = performance.now();
  await fill(wb, id, Math.round(sizeMiB * MiB));
  await wb.transition(id, 'suspended');
  const fillMs = elapsed(t0);
  const livePath = (await wb.describe(id)).filePath;
  if (!livePath) throw new Error(`suspended workspace ${id} has no file path`);
  const fileBytes = fs.statSync(livePath).size;
  log(`  ${sizeMiB} MiB: filled in ${(fillMs / 1000).toFixed(1)} s; live file ${fileBytes} bytes`);

  const samples: RunSample[] = [];
  let lastStore = 0;
  let lastRestore = 0;
  for (let r = 1; r <= runs; r++) {
    // Suspended: the file is closed and checkpointed on the host's disk.
    const live = (await wb.describe(id)).filePath!;
    const cpLive = await cpBaselines(live, scratch);

    settle(env.dataDir);
    t0 = performance.now();
    await wb.transition(id, 'frozen', { reason: `bench run ${r}`, by: 'bench' });
    const freezeMs = elapsed(t0);
    const store = await lastActivity(server, id, 'storeLocal', lastStore);
    lastStore = store.scheduledId;

    const frozen = await wb.describe(id);
    if (frozen.state !== 'frozen' || !frozen.cold) throw new Error(`${id} is ${frozen.state} after freeze`);
    if (fs.existsSync(live)) throw new Error(`${id}: local file still there after freeze`);
    const coldPath = new URL(frozen.cold.url).pathname;
    const cpCold = await cpBaselines(coldPath, scratch);

    settle(env.dataDir);
    t0 = performance.now();
    const woke = await wb.wake(id, { reason: `bench run ${r}`, by: 'bench' });
    const resumeMs = elapsed(t0);
    if (woke.path !== 'cold') throw new Error(`${id}: wake took path '${woke.path}', expected 'cold'`);
    const restore = await lastActivity(server, id, 'restoreLocal', lastRestore);
    lastRestore = restore.scheduledId;

    const { scheduledId: _s, ...storeLocal } = store;
    const { scheduledId: _r, ...restoreLocal } = restore;
    samples.push({ freezeMs, storeLocal, resumeMs, restoreLocal, cpLiveMs: cpLive.cpMs, cpSyncLiveMs: cpLive.cpSyncMs, cpColdMs: cpCold.cpMs, cpSyncColdMs: cpCold.cpSyncMs });
    log(
      `    run ${r}/${runs}: freeze ${freezeMs.toFixed(0)} ms (storeLocal ${store.runMs.toFixed(0)}), cp ${cpLive.cpMs.toFixed(0)} / +fsync ${cpLive.cpSyncMs.toFixed(0)}; ` +
        `resume ${resumeMs.toFixed(0)} ms (restoreLocal ${restore.runMs.toFixed(0)}), cp ${cpCold.cpMs.toFixed(0)} / +fsync ${cpCold.cpSyncMs.toFixed(0)}`,
    );

    // New bytes, so the next freeze really copies (an unchanged file matching the cold copy would skip the copy).
    await wb.putFile(id, 'workspace', '/bench-marker', Buffer.from(`run ${r} ${Date.now()}`));
    await wb.transition(id, 'suspended');
  }
  return { sizeMiB, fileBytes, fillMs, runs: samples };
}

/** Starts the stack, measures every size, tears everything down (also on failure) and removes its files. */
export async function runFreezeResume(opts: FreezeResumeOptions): Promise<SizeResult[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-bench-'));
  const env: BenchEnv = { root, dataDir: path.join(root, 'host') };
  fs.mkdirSync(env.dataDir, { recursive: true });
  let server: TestDevServer | undefined;
  let host: TestHost | undefined;
  const cleanup = async () => {
    await host?.stop().catch(() => undefined);
    host = undefined;
    await server?.stop().catch(() => undefined);
    server = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  };
  const onSignal = () => {
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    log('starting Temporal dev server and worker host…');
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('bench');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: 'bench-host', dataDir: env.dataDir });
    opts.onEnv?.(env);
    const wb = clientFor(server.client, taskQueue);
    const out: SizeResult[] = [];
    for (const size of opts.sizesMiB) out.push(await measureSize(server, wb, env, size, opts.runsFor(size), log));
    return out;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}
