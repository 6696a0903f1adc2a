/**
 * Freeze / resume benchmark through the real `workspace` workflow: a Temporal dev server, a real worker host
 * (shared + host queues + data server) in this process, cold storage either file:// inside the host's data dir
 * or an s3:// bucket (an S3-compatible server the process environment points at).
 *
 * Per size: one workspace filled through `putFile` with random bytes in 16 MiB files, then `runs` cycles of
 *
 *   suspended ─ baseline on the live file ─ freeze ─ frozen ─ baseline on the cold copy ─ wake ─ active
 *   ─ put a small marker file (so the next freeze has new bytes to copy) ─ suspend (untimed) ─ …
 *
 * Baselines, same bytes, same run: file:// — `cp` of the file, and `cp` followed by an fsync of the copy
 * (`sync <file>`); s3:// — one plain PutObject of the live file, and one plain GetObject of the cold object
 * streamed to a file and fsynced.
 *
 * Timed: the `transition(id, 'frozen')` and `wake(id)` client calls (each a describe query + an update round
 * trip), the storeLocal / recoverLocal (restoreLocal) activity alone (ActivityTaskStarted → ActivityTaskCompleted times in the
 * workflow history), the phases inside storeLocal and recoverLocal (from their heartbeats, see heartbeat-tap.ts), every
 * other step of both moves (moveSteps), one more `wake` right after the wake (warm: the client's round trip alone),
 * and the baselines. The raw verified copy (file://) is sha256 of the file, `cp`, `sync` of the copy, sha256 of the
 * copy and SQLite's full integrity check of the copy, one after another: what a freeze proves, with plain tools.
 */
import crypto from 'node:crypto';
import Database from 'better-sqlite3';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestDevServer, TestDevServer } from '../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../harness/stack';
import { WorkbooksClient } from '../src/client/workbooks-client';
import { workflowIdFor } from '../src/contract/ids';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { parseS3Url, s3Client, s3SettingsFromEnv } from '../src/storage/s3-client';
import { plainGet, plainPut } from './s3-throughput';
import { lastPhases, PhaseTiming } from './heartbeat-tap';
import { onInterrupt } from './cleanup';
import { elapsed, run, settle } from './raw-ops';

export const MiB = 1024 * 1024;
/** Size of each file written into the workspace. */
export const PUT_CHUNK = 16 * MiB;

export interface ActivityTiming {
  /** ActivityTaskStarted → ActivityTaskCompleted of the last attempt. */
  runMs: number;
  /** ActivityTaskScheduled → ActivityTaskStarted (task queue latency). */
  queueMs: number;
  attempt: number;
  /** Which activity it was (resume: recoverLocal, or restoreLocal for a prefetched copy). */
  type: string;
}

/** Baselines of a file:// run: `cp` and `cp` + fsync of the live file before the freeze and of the cold copy after it. */
export interface FileBaselines {
  cpLiveMs: number;
  cpSyncLiveMs: number;
  /**
   * The verification a freeze does, with plain tools, one step after another on the suspended live file: sha256
   * of it, `cp` + `sync` of it, sha256 of the copy, SQLite's full integrity check of the copy.
   */
  verifiedCopyMs: number;
  cpColdMs: number;
  cpSyncColdMs: number;
}

/** Baselines of an s3:// run: one plain PutObject of the live file, one plain GetObject (+ fsync) of the cold object. */
export interface S3Baselines {
  plainPutMs: number;
  plainGetMs: number;
}

export interface RunSample<B = FileBaselines> {
  freezeMs: number;
  storeLocal: ActivityTiming;
  /** Phases inside storeLocal from its heartbeats (null if they could not be traced). */
  storePhases: PhaseTiming[] | null;
  resumeMs: number;
  /** The activity that brought the file back (recoverLocal from the stored copy; restoreLocal if prefetched). */
  restore: ActivityTiming;
  /** Phases inside that activity from its heartbeats (null if they could not be traced). */
  restorePhases: PhaseTiming[] | null;
  /**
   * The client's Temporal round trip alone: a `wake` of the workspace right after it woke (a warm wake: one update
   * answered by the workflow without any activity). What freeze and resume pay besides their activities' work.
   */
  roundTripMs: number;
  /** Every step of the freeze and of the resume from the history (see moveSteps). */
  freezeSteps: string;
  resumeSteps: string;
  base: B;
}

export interface SizeResult<B = FileBaselines> {
  sizeMiB: number;
  /** Size of the live SQLite file (after suspend) and of the cold copy. */
  fileBytes: number;
  fillMs: number;
  runs: RunSample<B>[];
}

export interface BenchEnv {
  /** Root of everything this run writes (removed at the end). */
  root: string;
  /** The worker host's data dir (live/, cold/ and the scratch dir of the baselines live here). */
  dataDir: string;
}

export interface FreezeResumeOptions {
  /** A running dev server to use (not stopped at the end); default: start and stop one. */
  server?: TestDevServer;
  sizesMiB: number[];
  runsFor(sizeMiB: number): number;
  /** Parent of the temporary root (default: the OS temp dir). */
  baseDir?: string;
  log?(line: string): void;
  /** Called once the host is up (e.g. to read the filesystem type of its data dir). */
  onEnv?(env: BenchEnv): void;
}

// ---------------------------------------------------------------------------------------------------------------




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

/**
 * Plain tools doing what a freeze proves, in sequence: hash the file, copy it durably, hash the copy, and run
 * SQLite's full integrity check on the copy. The hashes are node's (OpenSSL's) sha256 over a plain read stream,
 * as the product uses: coreutils `sha256sum` is several times slower on some machines and would flatter the
 * freeze. The integrity check is better-sqlite3 in this process, read-only.
 */
async function verifiedCopyBaseline(src: string, scratchDir: string): Promise<number> {
  const dst = path.join(scratchDir, `verified-${crypto.randomBytes(4).toString('hex')}`);
  try {
    settle(scratchDir);
    const t0 = performance.now();
    await plainSha256(src);
    await run('cp', ['--', src, dst]);
    await run('sync', ['--', dst]);
    await plainSha256(dst);
    const db = new Database(dst, { readonly: true, fileMustExist: true });
    try {
      const rows = db.pragma('integrity_check', { simple: false }) as Record<string, unknown>[];
      if (rows.length !== 1 || Object.values(rows[0])[0] !== 'ok') throw new Error(`integrity check of the baseline copy of ${src}: ${JSON.stringify(rows.slice(0, 3))}`);
    } finally {
      db.close();
    }
    return elapsed(t0);
  } finally {
    for (const f of [dst, `${dst}-wal`, `${dst}-shm`]) fs.rmSync(f, { force: true });
    settle(scratchDir);
  }
}

/** sha256 of a file through a plain read stream (1 MiB chunks). */
async function plainSha256(file: string): Promise<string> {
  const h = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: 1024 * 1024 })) h.update(chunk as Buffer);
  return h.digest('hex');
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
async function lastActivity(server: TestDevServer, workspaceId: string, types: string[], afterEventId: number): Promise<ActivityTiming & { scheduledId: number }> {
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
    const type = scheduled?.activityTaskScheduledEventAttributes?.activityType?.name;
    if (!type || !types.includes(type)) continue;
    const started = byId.get(Number(String(done.startedEventId)));
    if (!started?.activityTaskStartedEventAttributes) throw new Error(`no ActivityTaskStarted for ${type} (scheduled event ${scheduledId})`);
    return {
      scheduledId,
      runMs: tsMs(events[i]!.eventTime) - tsMs(started.eventTime),
      queueMs: tsMs(started.eventTime) - tsMs(scheduled.eventTime),
      attempt: started.activityTaskStartedEventAttributes.attempt ?? 1,
      type,
    };
  }
  throw new Error(`no completed ${types.join(' / ')} activity after event ${afterEventId} in the history of ${workspaceId}`);
}

/**
 * Every step of a move from the history, after event `afterEventId`: each activity (run time, and queue time when
 * it waited more than 1 ms) and the workflow tasks (count, total scheduled → completed), e.g.
 * `storeLocal 520 | removeLocal 12 | deleteStoredCopies 30 (q 4) | 5 workflow tasks 60`. Where a move's time goes
 * besides its main activity.
 */
async function moveSteps(server: TestDevServer, workspaceId: string, afterEventId: number): Promise<{ text: string; lastEventId: number }> {
  const history = await server.client.workflow.getHandle(workflowIdFor(workspaceId)).fetchHistory();
  const events = history.events ?? [];
  const byId = new Map<number, (typeof events)[number]>();
  for (const e of events) byId.set(Number(String(e.eventId)), e);
  const parts: string[] = [];
  let wfTasks = 0;
  let wfMs = 0;
  let lastEventId = afterEventId;
  for (const e of events) {
    const eid = Number(String(e.eventId));
    if (eid <= afterEventId) continue;
    lastEventId = eid;
    const done = e.activityTaskCompletedEventAttributes;
    if (done) {
      const scheduled = byId.get(Number(String(done.scheduledEventId)));
      const started = byId.get(Number(String(done.startedEventId)));
      const type = scheduled?.activityTaskScheduledEventAttributes?.activityType?.name ?? '?';
      const run = tsMs(e.eventTime) - tsMs(started?.eventTime);
      const queue = tsMs(started?.eventTime) - tsMs(scheduled?.eventTime);
      parts.push(`${type} ${run.toFixed(0)}${queue > 1 ? ` (q ${queue.toFixed(0)})` : ''}`);
    }
    const wft = e.workflowTaskCompletedEventAttributes;
    if (wft) {
      const scheduled = byId.get(Number(String(wft.scheduledEventId)));
      wfTasks += 1;
      wfMs += tsMs(e.eventTime) - tsMs(scheduled?.eventTime);
    }
  }
  parts.push(`${wfTasks} workflow tasks ${wfMs.toFixed(0)}`);
  return { text: parts.join(' | '), lastEventId };
}

async function fill(wb: WorkbooksClient, id: string, bytes: number): Promise<void> {
  for (let off = 0, n = 0; off < bytes; off += PUT_CHUNK, n++) {
    const len = Math.min(PUT_CHUNK, bytes - off);
    await wb.putFile(id, 'workspace', `/data/${String(n).padStart(4, '0')}.bin`, crypto.randomBytes(len));
  }
}

/** How the baselines of one kind of cold storage are taken. */
interface BaselineKit<B> {
  /** Cold storage URL for a host with this data dir. */
  coldUrl(dataDir: string): string;
  /** Before the freeze, on the suspended live file. */
  live(livePath: string, scratch: string): Promise<Partial<B>>;
  /** After the freeze, on the cold copy. */
  cold(coldUrl: string, scratch: string): Promise<Partial<B>>;
  describe(b: B): string;
}

const fileKit: BaselineKit<FileBaselines> = {
  coldUrl: (dataDir) => `file://${path.join(dataDir, 'cold')}`,
  async live(livePath, scratch) {
    const r = await cpBaselines(livePath, scratch);
    return { cpLiveMs: r.cpMs, cpSyncLiveMs: r.cpSyncMs, verifiedCopyMs: await verifiedCopyBaseline(livePath, scratch) };
  },
  async cold(coldUrl, scratch) {
    const r = await cpBaselines(new URL(coldUrl).pathname, scratch);
    return { cpColdMs: r.cpMs, cpSyncColdMs: r.cpSyncMs };
  },
  describe: (b) => `cp ${b.cpLiveMs.toFixed(0)} / +fsync ${b.cpSyncLiveMs.toFixed(0)} / verified ${b.verifiedCopyMs.toFixed(0)}; back: cp ${b.cpColdMs.toFixed(0)} / +fsync ${b.cpSyncColdMs.toFixed(0)}`,
};

function s3Kit(coldUrl: string): BaselineKit<S3Baselines> {
  const client = () => s3Client(s3SettingsFromEnv());
  return {
    coldUrl: () => coldUrl,
    async live(livePath, scratch) {
      const { bucket } = parseS3Url(coldUrl);
      const Key = `bench-baseline/put-${crypto.randomBytes(4).toString('hex')}`;
      settle(scratch);
      const t0 = performance.now();
      await plainPut(client(), bucket, Key, livePath);
      const plainPutMs = elapsed(t0);
      await client().send(new DeleteObjectCommand({ Bucket: bucket, Key }));
      return { plainPutMs };
    },
    async cold(url, scratch) {
      const { bucket, prefix: key } = parseS3Url(url);
      const out = path.join(scratch, `get-${crypto.randomBytes(4).toString('hex')}`);
      try {
        settle(scratch);
        const t0 = performance.now();
        await plainGet(client(), bucket, key, out);
        return { plainGetMs: elapsed(t0) };
      } finally {
        fs.rmSync(out, { force: true });
        settle(scratch);
      }
    },
    describe: (b) => `plain PutObject ${b.plainPutMs.toFixed(0)}; GetObject ${b.plainGetMs.toFixed(0)}`,
  };
}

async function measureSize<B>(server: TestDevServer, wb: WorkbooksClient, env: BenchEnv, kit: BaselineKit<B>, sizeMiB: number, runs: number, log: (l: string) => void): Promise<SizeResult<B>> {
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

  const samples: RunSample<B>[] = [];
  let lastStore = 0;
  let lastRestore = 0;
  let lastEvent = 0;
  for (let r = 1; r <= runs; r++) {
    // Suspended: the file is closed and checkpointed on the host's disk.
    const live = (await wb.describe(id)).filePath!;
    const baseLive = await kit.live(live, scratch);
    lastEvent = (await moveSteps(server, id, lastEvent)).lastEventId;

    settle(env.dataDir);
    t0 = performance.now();
    await wb.transition(id, 'frozen', { reason: `bench run ${r}`, by: 'bench' });
    const freezeMs = elapsed(t0);
    const store = await lastActivity(server, id, ['storeLocal'], lastStore);
    lastStore = store.scheduledId;
    const traced = lastPhases(workflowIdFor(id), 'storeLocal');
    const freezeSteps = await moveSteps(server, id, lastEvent);
    lastEvent = freezeSteps.lastEventId;

    const frozen = await wb.describe(id);
    if (frozen.state !== 'frozen' || !frozen.cold) throw new Error(`${id} is ${frozen.state} after freeze`);
    if (fs.existsSync(live)) throw new Error(`${id}: local file still there after freeze`);
    const baseCold = await kit.cold(frozen.cold.url, scratch);

    settle(env.dataDir);
    t0 = performance.now();
    const woke = await wb.wake(id, { reason: `bench run ${r}`, by: 'bench' });
    const resumeMs = elapsed(t0);
    if (woke.path !== 'cold') throw new Error(`${id}: wake took path '${woke.path}', expected 'cold'`);
    const restore = await lastActivity(server, id, ['recoverLocal', 'restoreLocal'], lastRestore);
    lastRestore = restore.scheduledId;
    const restoreTraced = lastPhases(workflowIdFor(id), restore.type);
    const resumeSteps = await moveSteps(server, id, lastEvent);
    lastEvent = resumeSteps.lastEventId;

    t0 = performance.now();
    const warm = await wb.wake(id);
    const roundTripMs = elapsed(t0);
    if (warm.path !== 'warm') throw new Error(`${id}: second wake took path '${warm.path}', expected 'warm'`);

    const { scheduledId: _s, ...storeLocal } = store;
    const { scheduledId: _r, ...restoreTiming } = restore;
    const base = { ...baseLive, ...baseCold } as B;
    samples.push({ freezeMs, storeLocal, storePhases: traced?.phases ?? null, resumeMs, restore: restoreTiming, restorePhases: restoreTraced?.phases ?? null, roundTripMs, freezeSteps: freezeSteps.text, resumeSteps: resumeSteps.text, base });
    const phases = traced ? ` [${traced.phases.map((p) => `${p.phase} ${p.ms.toFixed(0)}`).join(', ')}]` : '';
    const rphases = restoreTraced ? ` [${restoreTraced.phases.map((p) => `${p.phase} ${p.ms.toFixed(0)}`).join(', ')}]` : '';
    log(
      `    run ${r}/${runs}: freeze ${freezeMs.toFixed(0)} ms (storeLocal ${store.runMs.toFixed(0)}${phases}); ` +
        `resume ${resumeMs.toFixed(0)} ms (${restore.type} ${restore.runMs.toFixed(0)}${rphases}); round trip ${roundTripMs.toFixed(0)} ms; ${kit.describe(base)}`,
    );
    log(`      freeze steps: ${freezeSteps.text}`);
    log(`      resume steps: ${resumeSteps.text}`);

    // New bytes, so the next freeze really copies (an unchanged file matching the cold copy would skip the copy).
    await wb.putFile(id, 'workspace', '/bench-marker', Buffer.from(`run ${r} ${Date.now()}`));
    await wb.transition(id, 'suspended');
  }
  return { sizeMiB, fileBytes, fillMs, runs: samples };
}

/** Starts what is needed, measures every size, tears everything down (also on failure) and removes its files. */
async function runWith<B>(opts: FreezeResumeOptions, kit: BaselineKit<B>, name: string): Promise<SizeResult<B>[]> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-bench-'));
  const env: BenchEnv = { root, dataDir: path.join(root, 'host') };
  fs.mkdirSync(env.dataDir, { recursive: true });
  let server: TestDevServer | undefined;
  let host: TestHost | undefined;
  const cleanup = async () => {
    await host?.stop().catch(() => undefined);
    host = undefined;
    if (!opts.server) await server?.stop().catch(() => undefined);
    server = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  };
  const forget = onInterrupt(cleanup);
  try {
    if (opts.server) {
      server = opts.server;
    } else {
      log('starting Temporal dev server…');
      server = await startTestDevServer();
    }
    const coldUrl = kit.coldUrl(env.dataDir);
    log(`starting worker host (cold storage ${coldUrl})…`);
    const taskQueue = uniqueQueue(name);
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: `${name}-host`, dataDir: env.dataDir, coldUrl });
    await host.host.reconciled; // its start-up pass, so it does not run during the first measurement
    opts.onEnv?.(env);
    const wb = clientFor(server.client, taskQueue);
    const out: SizeResult<B>[] = [];
    for (const size of opts.sizesMiB) out.push(await measureSize(server, wb, env, kit, size, opts.runsFor(size), log));
    return out;
  } finally {
    forget();
    await cleanup();
  }
}

/** Freeze / resume with file:// cold storage in the host's data dir, against `cp`. */
export function runFreezeResume(opts: FreezeResumeOptions): Promise<SizeResult<FileBaselines>[]> {
  return runWith(opts, fileKit, 'bench');
}

/**
 * Freeze / resume with cold storage at `coldUrl` (s3://bucket/prefix; the bucket must exist and process.env must
 * point at the server), against one plain PutObject / GetObject of the same bytes.
 */
export function runFreezeResumeS3(opts: FreezeResumeOptions & { coldUrl: string }): Promise<SizeResult<S3Baselines>[]> {
  return runWith(opts, s3Kit(opts.coldUrl), 'bench-s3');
}

// ---------------------------------------------------------------------------------------------------------------
// The local copy summary (issue 13, "copies near the limit") and a runner for it alone

/** Targets of issue 13 for local (file://) copies, as ratios against baselines of the same run. */
export const LOCAL_TARGETS = {
  /** freeze ÷ raw verified copy */
  freezeVsVerified: 1.0,
  /** freeze ÷ (cp + fsync) of the live file */
  freezeVsCpSync: 4.0,
  /** resume ÷ (cp + fsync) of the cold copy */
  resumeVsCpSync: 2.0,
};

function fmtMs(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (x >= 1000) return `${(x / 1000).toFixed(2)} s`;
  return `${x >= 100 ? x.toFixed(0) : x.toFixed(1)} ms`;
}

function medianOf(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median time of each phase over the runs, in first-seen order. */
function phaseMedians(runs: (PhaseTiming[] | null)[]): string {
  const names: string[] = [];
  for (const ps of runs) for (const p of ps ?? []) if (!names.includes(p.phase)) names.push(p.phase);
  return names.map((n) => `${n} ${fmtMs(medianOf(runs.map((ps) => (ps ?? []).filter((p) => p.phase === n).reduce((a, p) => a + p.ms, 0))))}`).join(', ');
}

/**
 * One block per size: medians of the baselines, of freeze and resume (client call and activity), of the client's
 * round trip alone, the phases, and each target's ratio with met / not met. "freeze" and "resume" are judged on
 * the client call (what a caller waits for); the activity ratios show the copy itself.
 */
export function localSummary(results: SizeResult<FileBaselines>[]): string[] {
  const out: string[] = [];
  const verdict = (x: number, limit: number) => `${Number.isFinite(x) ? x.toFixed(2) : '—'}× (target ≤ ${limit.toFixed(1)}×: ${x <= limit ? 'met' : 'NOT met'})`;
  for (const r of results) {
    const m = (f: (s: RunSample<FileBaselines>) => number) => medianOf(r.runs.map(f));
    const cp = m((s) => s.base.cpLiveMs);
    const cps = m((s) => s.base.cpSyncLiveMs);
    const ver = m((s) => s.base.verifiedCopyMs);
    const cpsBack = m((s) => s.base.cpSyncColdMs);
    const freeze = m((s) => s.freezeMs);
    const store = m((s) => s.storeLocal.runMs);
    const resume = m((s) => s.resumeMs);
    const restore = m((s) => s.restore.runMs);
    const rt = m((s) => s.roundTripMs);
    const restoreType = [...new Set(r.runs.map((s) => s.restore.type))].join('/');
    out.push(
      `local file:// ${r.sizeMiB} MiB (file ${(r.fileBytes / MiB).toFixed(1)} MiB), medians of ${r.runs.length} runs:`,
      `  baselines: cp ${fmtMs(cp)}, cp + fsync ${fmtMs(cps)}, raw verified copy ${fmtMs(ver)}; back: cp ${fmtMs(m((s) => s.base.cpColdMs))}, cp + fsync ${fmtMs(cpsBack)}`,
      `  freeze: client call ${fmtMs(freeze)}, storeLocal activity ${fmtMs(store)} [${phaseMedians(r.runs.map((s) => s.storePhases))}]`,
      `  resume (wake from frozen): client call ${fmtMs(resume)}, ${restoreType} activity ${fmtMs(restore)} [${phaseMedians(r.runs.map((s) => s.restorePhases))}]`,
      `  client Temporal round trip alone (warm wake): ${fmtMs(rt)}`,
      `  freeze ÷ raw verified copy: ${verdict(freeze / ver, LOCAL_TARGETS.freezeVsVerified)}; activity ${(store / ver).toFixed(2)}×`,
      `  freeze ÷ (cp + fsync):      ${verdict(freeze / cps, LOCAL_TARGETS.freezeVsCpSync)}; activity ${(store / cps).toFixed(2)}×`,
      `  resume ÷ (cp + fsync):      ${verdict(resume / cpsBack, LOCAL_TARGETS.resumeVsCpSync)}; activity ${(restore / cpsBack).toFixed(2)}×`,
    );
  }
  return out;
}

/**
 * `node dist/bench/freeze-resume.js`: the local part alone, printed (not written to docs/BENCHMARKS.md).
 * BENCH_SIZES (MiB, default "100,1024"), BENCH_RUNS (default 5), BENCH_DIR (parent of the temporary data dirs).
 */
async function main(): Promise<void> {
  const { installHeartbeatTap } = await import('./heartbeat-tap');
  const { installInterruptCleanup } = await import('./cleanup');
  installInterruptCleanup();
  installHeartbeatTap();
  const sizes = (process.env.BENCH_SIZES ?? '100,1024').split(',').map((x) => Number(x.trim())).filter((x) => x > 0);
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  const t0 = performance.now();
  const results = await runFreezeResume({ sizesMiB: sizes, runsFor: () => runs, ...(process.env.BENCH_DIR ? { baseDir: process.env.BENCH_DIR } : {}) });
  console.log('');
  for (const l of localSummary(results)) console.log(l);
  console.log(`(${((performance.now() - t0) / 1000).toFixed(0)} s; load average ${os.loadavg().map((x) => x.toFixed(2)).join(' / ')})`);
  if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(results, null, 1));
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
