/**
 * Scale: N workspaces on one worker host (in this process) against a Temporal dev server of its own, replication
 * off, so that DUE of them reach their idle deadline in the same second.
 *
 *   1. N − DUE "background" workspaces: created (product default policy, 15m / 24h) and suspended at once by an
 *      explicit `transition` (the cheap idle state: file closed on the host's disk, one 24 h freeze timer each).
 *   2. DUE workspaces, created last, active, each with `suspendAfter` = (T + ½ s) − now − (the running median of
 *      the create lag), in seconds with ms decimals, so their deadlines fall into one chosen second [T, T + 1 s).
 *      Each one's real deadline is read back from `describe().nextAutoAt`.
 *   3. Wait past T until the host has closed all DUE files (watched in this process: no load on Temporal), then
 *      read each ledger's active→suspended entry (`by: 'policy'`): lateness = entry.at − nextAutoAt. Where the
 *      time went comes from each workflow history (timer fired, lastAccess and stopInstance queued and run, and
 *      the workflow tasks between them).
 *   4. Memory of this process (worker host + the bench's client; RSS, main-thread V8 heap, open fds) and of the
 *      dev server (VmRSS of its pid) at rest after each phase and at the peak of the burst.
 *   5. History events: per DUE workspace (its whole history after the burst, and the part the policy suspend
 *      added), and for two sample workspaces one full lifecycle each, counted per move: one moved by the client
 *      (created→active→suspended→frozen→active→suspended→frozen→archived→deleted), one moved by the idle
 *      ladder alone with 1 s rungs (created→active→suspended→frozen→archived→deleted).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { temporal } from '@temporalio/proto';
import { startTestDevServer, TestDevServer } from '../harness/temporal';
import { clientFor, quietRuntime, uniqueQueue, workflowBundle } from '../harness/stack';
import { loadConfig } from '../src/config';
import { startWorkerHost, WorkerHost } from '../src/worker/worker-host';
import { workflowIdFor } from '../src/contract/ids';
import type { LedgerEntry, WorkspaceDescription } from '../src/contract/types';
import type { WorkbooksClient } from '../src/client/workbooks-client';
import { onInterrupt } from './cleanup';
import { median, percentile } from './raw-ops';

const MiB = 1024 * 1024;

export interface ScaleOptions {
  n: number;
  due: number;
  concurrency: number;
  /** Worker's maxCachedWorkflows (default: the product's default). */
  cacheSize?: number;
  /** Parent of the temporary root (default: the OS temp dir). */
  baseDir?: string;
  /** Extra `temporal server start-dev` arguments for the section's dev server (experiments; default none). */
  serverArgs?: string[];
  log?(line: string): void;
}

export interface MemSample {
  /** This process (worker host + bench client). */
  rss: number;
  heapUsed: number;
  heapTotal: number;
  fds: number;
  /** The dev server process (VmRSS), or null if /proc does not show it. */
  serverRss: number | null;
}

export interface MemPeak {
  rss: number;
  heapUsed: number;
  fds: number;
  serverRss: number | null;
  samples: number;
}

/** CPU time used in a phase (ms): this process (all its threads) and the dev server process. */
export interface CpuUse {
  selfMs: number;
  serverMs: number | null;
  wallMs: number;
}

export interface CreatePhase {
  count: number;
  failed: number;
  errors: string[];
  ms: number;
  /** Latency of each create call (ms). */
  createMs: number[];
  /** Background only: latency of each suspend (ms). */
  suspendMs: number[];
}

export interface Breakdown {
  /** TimerFired − deadline. */
  timer: number[];
  /** TimerFired → lastAccess scheduled (a workflow task). */
  toLastAccess: number[];
  /** lastAccess scheduled → started (host queue). */
  lastAccessQueue: number[];
  /** lastAccess started → completed. */
  lastAccessRun: number[];
  /** lastAccess completed → stopInstance scheduled (a workflow task). */
  toStop: number[];
  stopQueue: number[];
  stopRun: number[];
  /** stopInstance completed → ledger entry (the workflow task that records the move). */
  toRecord: number[];
  /** Every workflow task after the timer fired: scheduled → started (waiting for the worker), started → completed. */
  wftQueue: number[];
  wftRun: number[];
}

export interface LifecycleMove {
  move: string;
  events: number;
  /** Event counts by kind, e.g. { 'workflow task': 6, activity: 6 }. */
  kinds: Record<string, number>;
  /** Activity types run in the move. */
  activities: string[];
}

export interface ScaleResult {
  n: number;
  due: number;
  concurrency: number;
  /** Creates in flight for the due ones. */
  dueConcurrency: number;
  cacheSize: number;
  idleState: 'suspended';
  background: CreatePhase;
  dueCreate: CreatePhase;
  /** Planned second: deadlines aimed at [T, T + 1 s). */
  targetMs: number;
  /** Time from the end of the idle creates to T, as planned (ms). */
  leadMs: number;
  /** Due creates that ran so late that their suspendAfter was clamped to 2 s. */
  clamped: number;
  /** nextAutoAt − T of each DUE workspace (ms). */
  deadlineOffsetMs: number[];
  /** entry.at − nextAutoAt (ms), of the DUE workspaces whose policy suspend was found. */
  lateMs: number[];
  /** entry.at − T (ms) of each policy suspend. */
  doneOffsetMs: number[];
  /** DUE workspaces without a done policy suspend (id: why). */
  missing: string[];
  breakdown: Breakdown;
  /**
   * Workflow tasks of the due workspaces that timed out (by timeout type, e.g. SCHEDULE_TO_START: waited too long
   * on the worker's sticky queue and were put back on the normal queue) or failed, and in how many workspaces.
   */
  wftTrouble: { timedOut: Record<string, number>; failed: number; workspaces: number };
  /** Wall time from T until the host had closed the last DUE file (ms). */
  hostClosedLastMs: number;
  /** CPU per phase: idle creates (create + suspend), due creates (create + describe), the burst. */
  cpu: { background: CpuUse; due: CpuUse; burst: CpuUse };
  mem: { start: MemSample; afterBackground: MemSample; afterDue: MemSample; burstPeak: MemPeak; afterBurst: MemSample; creationPeak: MemPeak; hwmRss: number | null; serverHwm: number | null };
  /** Median size of a suspended live file, and of the whole data dir. */
  fileBytes: number;
  dataDirBytes: number;
  history: {
    /** Whole history of each DUE workspace after the burst. */
    dueTotal: number[];
    /** Events the policy suspend added (after create → after the burst). */
    duePolicySuspend: number[];
    explicit: LifecycleMove[];
    policy: LifecycleMove[];
  };
  totalMs: number;
}

// ---------------------------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function procKb(pid: number | 'self', key: string): number | null {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function fdCount(): number {
  try {
    return fs.readdirSync('/proc/self/fd').length;
  } catch {
    return NaN;
  }
}

let clkTck: number | null = null;

/** CPU time (user + system, ms) of a process from /proc/<pid>/stat. */
function procCpuMs(pid: number): number | null {
  try {
    clkTck ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) / clkTck) * 1000;
  } catch {
    return null;
  }
}

interface CpuMark {
  self: number;
  server: number | null;
  at: number;
}

function cpuMark(serverPid: number | undefined): CpuMark {
  const u = process.cpuUsage();
  return { self: (u.user + u.system) / 1000, server: serverPid ? procCpuMs(serverPid) : null, at: performance.now() };
}

function cpuSince(a: CpuMark, b: CpuMark): CpuUse {
  return { selfMs: b.self - a.self, serverMs: a.server !== null && b.server !== null ? b.server - a.server : null, wallMs: b.at - a.at };
}

function sampleMem(serverPid: number | undefined): MemSample {
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, fds: fdCount(), serverRss: serverPid ? procKb(serverPid, 'VmRSS') : null };
}

/** Samples memory every `everyMs` until stopped; keeps the peaks. */
function memWatch(serverPid: number | undefined, everyMs: number): { stop(): MemPeak } {
  const peak: MemPeak = { rss: 0, heapUsed: 0, fds: 0, serverRss: null, samples: 0 };
  const take = () => {
    const s = sampleMem(serverPid);
    peak.rss = Math.max(peak.rss, s.rss);
    peak.heapUsed = Math.max(peak.heapUsed, s.heapUsed);
    peak.fds = Math.max(peak.fds, s.fds);
    if (s.serverRss !== null) peak.serverRss = Math.max(peak.serverRss ?? 0, s.serverRss);
    peak.samples++;
  };
  take();
  const t = setInterval(take, everyMs);
  return {
    stop() {
      clearInterval(t);
      take();
      return peak;
    },
  };
}

/** Runs fn over items with at most `c` at a time. */
async function pool<T>(items: T[], c: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(c, items.length)) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        await fn(items[i]!, i);
      }
    }),
  );
}



type Long = { toString(): string } | number | string | null | undefined;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

function num(x: Long): number {
  return Number(String(x ?? 0));
}

function evMs(e: HistoryEvent | undefined): number {
  const t = e?.eventTime;
  if (!t) return NaN;
  return num(t.seconds as Long) * 1000 + (t.nanos ?? 0) / 1e6;
}

function eventTypeName(e: HistoryEvent): string {
  const t = e.eventType as unknown;
  const name = typeof t === 'number' ? temporal.api.enums.v1.EventType[t] : String(t ?? '');
  return (name ?? '').replace(/^EVENT_TYPE_/, '');
}

function eventKind(e: HistoryEvent): string {
  const n = eventTypeName(e);
  if (n.startsWith('WORKFLOW_TASK_')) return 'workflow task';
  if (n.startsWith('ACTIVITY_TASK_')) return 'activity';
  if (n.startsWith('TIMER_')) return 'timer';
  if (n.startsWith('WORKFLOW_EXECUTION_UPDATE_')) return 'update';
  if (n === 'UPSERT_WORKFLOW_SEARCH_ATTRIBUTES') return 'search attributes';
  if (n === 'WORKFLOW_EXECUTION_SIGNALED') return 'signal';
  if (n === 'MARKER_RECORDED') return 'marker';
  if (n === 'WORKFLOW_EXECUTION_STARTED') return 'started';
  if (n === 'WORKFLOW_EXECUTION_COMPLETED') return 'completed';
  return n.toLowerCase().replace(/_/g, ' ');
}

/** Counts by kind and the activity types of events with ids in (fromId, toId]. */
function sliceMove(move: string, events: HistoryEvent[], fromId: number, toId: number): LifecycleMove {
  const kinds: Record<string, number> = {};
  const activities: string[] = [];
  let n = 0;
  for (const e of events) {
    const id = num(e.eventId as Long);
    if (id <= fromId || id > toId) continue;
    n++;
    const k = eventKind(e);
    kinds[k] = (kinds[k] ?? 0) + 1;
    const type = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (type) activities.push(type);
  }
  return { move, events: n, kinds, activities };
}

async function historyLength(server: TestDevServer, workspaceId: string): Promise<number> {
  return (await server.client.workflow.getHandle(workflowIdFor(workspaceId)).describe()).historyLength;
}

async function fetchEvents(server: TestDevServer, workspaceId: string): Promise<HistoryEvent[]> {
  return (await server.client.workflow.getHandle(workflowIdFor(workspaceId)).fetchHistory()).events ?? [];
}

function dirBytes(dir: string): number {
  let total = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    try {
      if (e.isDirectory()) total += dirBytes(p);
      else if (e.isFile()) total += fs.statSync(p).size;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

function policySuspendOf(d: WorkspaceDescription): LedgerEntry | undefined {
  return d.ledger.find((e) => e.from === 'active' && e.to === 'suspended' && e.by === 'policy' && e.outcome === 'done');
}

/** Where the time between the deadline and the ledger entry went, from the workflow history. */
function breakdownOf(events: HistoryEvent[], deadline: number, entryAt: number): { steps: Record<Exclude<keyof Breakdown, 'wftQueue' | 'wftRun'>, number>; wftQueue: number[]; wftRun: number[] } | null {
  const byId = new Map<number, HistoryEvent>();
  for (const e of events) byId.set(num(e.eventId as Long), e);
  const completed = (type: string) => {
    for (const e of events) {
      const c = e.activityTaskCompletedEventAttributes;
      if (!c) continue;
      const sched = byId.get(num(c.scheduledEventId as Long));
      if (sched?.activityTaskScheduledEventAttributes?.activityType?.name !== type) continue;
      return { sched, started: byId.get(num(c.startedEventId as Long)), done: e };
    }
    return null;
  };
  const la = completed('lastAccess');
  const stop = completed('stopInstance');
  if (!la || !stop) return null;
  const laId = num(la.sched.eventId as Long);
  let fired: HistoryEvent | undefined;
  for (const e of events) if (e.timerFiredEventAttributes && num(e.eventId as Long) < laId) fired = e;
  if (!fired) return null;
  const firedId = num(fired.eventId as Long);
  const wftQueue: number[] = [];
  const wftRun: number[] = [];
  for (const e of events) {
    const c = e.workflowTaskCompletedEventAttributes;
    if (!c || num(e.eventId as Long) < firedId) continue;
    const started = byId.get(num(c.startedEventId as Long));
    const sched = byId.get(num(c.scheduledEventId as Long));
    wftQueue.push(evMs(started) - evMs(sched));
    wftRun.push(evMs(e) - evMs(started));
  }
  const steps = {
    timer: evMs(fired) - deadline,
    toLastAccess: evMs(la.sched) - evMs(fired),
    lastAccessQueue: evMs(la.started) - evMs(la.sched),
    lastAccessRun: evMs(la.done) - evMs(la.started),
    toStop: evMs(stop.sched) - evMs(la.done),
    stopQueue: evMs(stop.started) - evMs(stop.sched),
    stopRun: evMs(stop.done) - evMs(stop.started),
    toRecord: entryAt - evMs(stop.done),
  };
  return { steps, wftQueue, wftRun };
}

// ---------------------------------------------------------------------------------------------------------------

export async function measureScale(opts: ScaleOptions): Promise<ScaleResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const { n, due, concurrency } = opts;
  if (!(Number.isInteger(n) && Number.isInteger(due) && due >= 1 && due <= n)) throw new Error(`scale: need 1 <= DUE <= N, got N=${n} DUE=${due}`);
  const t00 = performance.now();
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-scale-'));
  const dataDir = path.join(root, 'host');
  let server: TestDevServer | undefined;
  let host: WorkerHost | undefined;
  const cleanup = async () => {
    await host?.shutdown().catch(() => undefined);
    host = undefined;
    await server?.stop().catch(() => undefined);
    server = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  };
  const forget = onInterrupt(cleanup);
  try {
    log('  starting a dev server of its own and one worker host (replication off)…');
    server = await startTestDevServer({ extraArgs: opts.serverArgs });
    const serverPid = server.server.pid;
    quietRuntime();
    const taskQueue = uniqueQueue('bench-scale');
    const cfg = loadConfig(
      {},
      {
        dataDir,
        hostId: `bench-scale-${crypto.randomBytes(2).toString('hex')}`,
        taskQueue,
        hostPort: 0,
        coldUrl: `file://${path.join(dataDir, 'cold')}`,
        archiveUrl: `file://${path.join(dataDir, 'archive')}`,
        replicaUrl: null,
        temporalAddress: 'unused',
      },
    );
    host = await startWorkerHost({ cfg, connection: server.connection, client: server.client, workflowBundle: await workflowBundle(), maxCachedWorkflows: opts.cacheSize });
    await host.reconciled;
    const cacheSize = opts.cacheSize ?? 2000;
    const wb = clientFor(server.client, taskQueue);
    const tag = crypto.randomBytes(2).toString('hex');
    const start = sampleMem(serverPid);
    const cpu0 = cpuMark(serverPid);

    // ---- 1. background: create + suspend
    const bgIds = Array.from({ length: n - due }, (_, i) => `sc${tag}-b${String(i).padStart(5, '0')}`);
    const background: CreatePhase = { count: bgIds.length, failed: 0, errors: [], ms: 0, createMs: [], suspendMs: [] };
    const creationWatch = memWatch(serverPid, 1000);
    const every = Math.max(1, Math.ceil(bgIds.length / 10));
    let t0 = performance.now();
    let done = 0;
    await pool(bgIds, concurrency, async (id) => {
      try {
        let t = performance.now();
        await wb.create({ workspaceId: id, tenant: 'bench' });
        background.createMs.push(performance.now() - t);
        t = performance.now();
        await wb.transition(id, 'suspended', { reason: 'bench: idle', by: 'bench' });
        background.suspendMs.push(performance.now() - t);
      } catch (err) {
        background.failed++;
        if (background.errors.length < 5) background.errors.push(`${id}: ${(err as Error).message}`);
        if (background.failed > Math.max(10, bgIds.length / 100)) throw new Error(`scale: too many failed creates (${background.failed}); first: ${background.errors[0]}`);
      }
      if (++done % every === 0 || done === bgIds.length) {
        const s = (performance.now() - t0) / 1000;
        log(`    background ${done}/${bgIds.length} in ${s.toFixed(0)} s (${(done / s).toFixed(1)}/s; create p50 ${median(background.createMs.slice(-every)).toFixed(0)} ms, suspend p50 ${median(background.suspendMs.slice(-every)).toFixed(0)} ms; rss ${(process.memoryUsage().rss / MiB).toFixed(0)} MiB)`);
      }
    });
    background.ms = performance.now() - t0;
    const afterBackground = sampleMem(serverPid);
    const cpu1 = cpuMark(serverPid);
    const bgRate = bgIds.length > 0 && background.ms > 0 ? (bgIds.length - background.failed) / (background.ms / 1000) : 0;

    // ---- 2. DUE workspaces with deadlines in [T, T + 1 s)
    // Create-only costs less than create + suspend, but fewer run at a time (below): twice the time at the idle
    // creation rate, plus 20 s, has been enough (creates that run late anyway are clamped, and show in the spread).
    const rate = bgRate > 0 ? bgRate : 5;
    const leadMs = Math.ceil(((due / rate) * 1000 * 2 + 20_000) / 1000) * 1000;
    const T = Math.ceil((Date.now() + leadMs) / 1000) * 1000;
    const aim = T + 500;
    log(`  ${due} due workspaces, deadlines aimed at ${new Date(T).toISOString()} (+500 ms), ${((T - Date.now()) / 1000).toFixed(0)} s from now`);
    const dueIds = Array.from({ length: due }, (_, i) => `sc${tag}-d${String(i).padStart(5, '0')}`);
    const dueCreate: CreatePhase = { count: due, failed: 0, errors: [], ms: 0, createMs: [], suspendMs: [] };
    const deadlineOf = new Map<string, number>();
    const eventsAfterCreate = new Map<string, number>();
    // Lag between the create call and the moment the workflow counts the workspace idle from, learned as we go.
    const lags: number[] = [];
    const dueEvery = Math.max(1, Math.ceil(due / 5));
    // Fewer in flight than for the idle ones: about the same throughput on a saturated machine, but a shorter and
    // steadier lag between the call and the moment the workflow starts counting idle, so tighter deadlines.
    const dueConcurrency = Math.min(concurrency, 4);
    // First guess of the lag (Little's law): the idle creates' latency, scaled to fewer in flight.
    let lagEst = (median(background.createMs.slice(-100)) * dueConcurrency) / concurrency;
    if (!Number.isFinite(lagEst)) lagEst = 300;
    let clamped = 0;
    t0 = performance.now();
    done = 0;
    await pool(dueIds, dueConcurrency, async (id) => {
      const callAt = Date.now();
      let afterMs = aim - callAt - lagEst;
      if (afterMs < 2000) {
        // Running late: still create it (its deadline lands after T and shows in the spread).
        afterMs = 2000;
        if (clamped++ === 0) log(`    creating the due workspaces runs late: ${id} and later ones get suspendAfter 2 s (their deadlines fall after T + 1 s)`);
      }
      const spec = (afterMs / 1000).toFixed(3);
      try {
        const t = performance.now();
        await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: spec, freezeAfter: 'never' } });
        dueCreate.createMs.push(performance.now() - t);
        const d = await wb.describe(id);
        if (d.state !== 'active' || d.nextAutoTo !== 'suspended' || !d.nextAutoAt) throw new Error(`is ${d.state}, next ${d.nextAutoTo} at ${d.nextAutoAt}`);
        const deadline = Date.parse(d.nextAutoAt);
        deadlineOf.set(id, deadline);
        lags.push(deadline - Math.round(Number(spec) * 1000) - callAt);
        lagEst = median(lags.slice(-25));
        eventsAfterCreate.set(id, await historyLength(server!, id));
      } catch (err) {
        dueCreate.failed++;
        if (dueCreate.errors.length < 5) dueCreate.errors.push(`${id}: ${(err as Error).message}`);
      }
      if (++done % dueEvery === 0 || done === due) {
        log(`    due ${done}/${due} (create p50 ${median(dueCreate.createMs.slice(-dueEvery)).toFixed(0)} ms; lag estimate ${lagEst.toFixed(0)} ms; ${((T - Date.now()) / 1000).toFixed(1)} s to T)`);
      }
    });
    dueCreate.ms = performance.now() - t0;
    const creationPeak = creationWatch.stop();
    const afterDue = sampleMem(serverPid);
    const cpu2 = cpuMark(serverPid);
    const offsets = [...deadlineOf.values()].map((d) => d - T);
    log(
      `  deadlines: ${deadlineOf.size} of ${due}, T${fmtOff(Math.min(...offsets))} … T${fmtOff(Math.max(...offsets))}, ${offsets.filter((o) => o >= 0 && o < 1000).length} inside [T, T+1s); ` +
        `${((T - Date.now()) / 1000).toFixed(1)} s to T; rss ${(afterDue.rss / MiB).toFixed(0)} MiB, ${afterDue.fds} fds`,
    );

    // ---- 3. the burst: watch the host close the files (in this process), sample memory
    const firstDeadline = Math.min(...deadlineOf.values());
    await sleep(Math.max(0, firstDeadline - Date.now() - 2000));
    const burstWatch = memWatch(serverPid, 200);
    const cpu3 = cpuMark(serverPid);
    const pending = new Set(deadlineOf.keys());
    let lastClosed = NaN;
    const giveUpAt = Math.max(...deadlineOf.values()) + 10 * 60_000;
    while (pending.size > 0 && Date.now() < giveUpAt) {
      for (const id of pending) {
        if (!host.instances.isLoaded(id)) {
          pending.delete(id);
          lastClosed = Date.now();
        }
      }
      if (pending.size > 0) await sleep(20);
    }
    await sleep(2000);
    const cpu4 = cpuMark(serverPid);
    const burstPeak = burstWatch.stop();
    const afterBurst = sampleMem(serverPid);
    log(`  host closed ${deadlineOf.size - pending.size} of ${deadlineOf.size} due files, the last at T${fmtOff(lastClosed - T)}; peak rss ${(burstPeak.rss / MiB).toFixed(0)} MiB`);

    // Ledgers and histories (bounded concurrency; the burst is over).
    const lateMs: number[] = [];
    const doneOffsetMs: number[] = [];
    const missing: string[] = [];
    const breakdown: Breakdown = { timer: [], toLastAccess: [], lastAccessQueue: [], lastAccessRun: [], toStop: [], stopQueue: [], stopRun: [], toRecord: [], wftQueue: [], wftRun: [] };
    const dueTotal: number[] = [];
    const duePolicySuspend: number[] = [];
    const wftTrouble: ScaleResult['wftTrouble'] = { timedOut: {}, failed: 0, workspaces: 0 };
    await pool([...deadlineOf.keys()], Math.min(concurrency, 8), async (id) => {
      const deadline = deadlineOf.get(id)!;
      let entry: LedgerEntry | undefined;
      for (let i = 0; i < 50 && !entry; i++) {
        entry = policySuspendOf(await wb.describe(id));
        if (!entry) await sleep(200);
      }
      if (!entry) {
        missing.push(`${id}: no policy suspend in the ledger`);
        return;
      }
      const at = Date.parse(entry.at);
      lateMs.push(at - deadline);
      doneOffsetMs.push(at - T);
      const events = await fetchEvents(server!, id);
      dueTotal.push(events.length);
      let trouble = false;
      for (const e of events) {
        const to = e.workflowTaskTimedOutEventAttributes;
        if (to) {
          const t = to.timeoutType as unknown;
          const name = (typeof t === 'number' ? temporal.api.enums.v1.TimeoutType[t] : String(t ?? '')).replace(/^TIMEOUT_TYPE_/, '') || 'unknown';
          wftTrouble.timedOut[name] = (wftTrouble.timedOut[name] ?? 0) + 1;
          trouble = true;
        }
        if (e.workflowTaskFailedEventAttributes) {
          wftTrouble.failed++;
          trouble = true;
        }
      }
      if (trouble) wftTrouble.workspaces++;
      const before = eventsAfterCreate.get(id);
      if (before !== undefined) duePolicySuspend.push(events.length - before);
      const b = breakdownOf(events, deadline, at);
      if (b) {
        for (const k of Object.keys(b.steps) as (keyof typeof b.steps)[]) breakdown[k].push(b.steps[k]);
        breakdown.wftQueue.push(...b.wftQueue);
        breakdown.wftRun.push(...b.wftRun);
      }
    });
    const fileBytes = median(
      bgIds.slice(0, 200).flatMap((id) => {
        try {
          return [fs.statSync(path.join(dataDir, 'live', `${id}.sqlite`)).size];
        } catch {
          return [];
        }
      }),
    );
    const dataDirBytes = dirBytes(dataDir);
    log(
      `  lateness p50 ${median(lateMs).toFixed(0)} ms, p99 ${percentile(lateMs, 99).toFixed(0)} ms, max ${Math.max(...lateMs).toFixed(0)} ms; ` +
        `last suspend at T${fmtOff(Math.max(...doneOffsetMs))}; ${missing.length} missing; history median ${median(dueTotal)} events`,
    );

    // ---- 5. one lifecycle each of two sample workspaces, events per move
    log('  sample lifecycles (history events per move)…');
    const explicit = await explicitLifecycle(server, wb, `sc${tag}-life-client`);
    const policy = await policyLifecycle(server, wb, `sc${tag}-life-policy`);

    const result: ScaleResult = {
      n,
      due,
      concurrency,
      dueConcurrency,
      cacheSize,
      idleState: 'suspended',
      background,
      dueCreate,
      targetMs: T,
      leadMs,
      clamped,
      deadlineOffsetMs: offsets,
      lateMs,
      doneOffsetMs,
      missing: [...missing, ...[...pending].map((id) => `${id}: host still had it open`)],
      breakdown,
      wftTrouble,
      hostClosedLastMs: lastClosed - T,
      cpu: { background: cpuSince(cpu0, cpu1), due: cpuSince(cpu1, cpu2), burst: cpuSince(cpu3, cpu4) },
      mem: { start, afterBackground, afterDue, burstPeak, afterBurst, creationPeak, hwmRss: procKb('self', 'VmHWM'), serverHwm: procKb(serverPid, 'VmHWM') },
      fileBytes,
      dataDirBytes,
      history: { dueTotal, duePolicySuspend, explicit, policy },
      totalMs: performance.now() - t00,
    };
    // The raw numbers, to render the section again (scaleMarkdown) without another run.
    if (process.env.BENCH_SCALE_JSON) fs.writeFileSync(process.env.BENCH_SCALE_JSON, JSON.stringify(result));
    return result;
  } finally {
    forget();
    await cleanup();
  }
}

function fmtOff(ms: number): string {
  if (!Number.isFinite(ms)) return ' ?';
  return `${ms < 0 ? '−' : '+'}${(Math.abs(ms) / 1000).toFixed(3)} s`;
}

/** Moves one workspace through a whole life by client calls; events per move from the history length. */
async function explicitLifecycle(server: TestDevServer, wb: WorkbooksClient, id: string): Promise<LifecycleMove[]> {
  const actor = { reason: 'bench: lifecycle', by: 'bench' };
  const steps: [string, () => Promise<unknown>][] = [
    ['created → active (create)', () => wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: 'never', freezeAfter: 'never' } })],
    ['active → suspended', () => wb.transition(id, 'suspended', actor)],
    ['suspended → frozen', () => wb.transition(id, 'frozen', actor)],
    ['frozen → active (wake)', () => wb.wake(id, actor)],
    ['active → suspended', () => wb.transition(id, 'suspended', actor)],
    ['suspended → frozen', () => wb.transition(id, 'frozen', actor)],
    ['frozen → archived', () => wb.transition(id, 'archived', actor)],
    ['archived → deleted', () => wb.transition(id, 'deleted', actor)],
  ];
  const marks: number[] = [0];
  for (const [, step] of steps) {
    await step();
    // A deleted workspace's workflow ends right after the move: wait for the closing events.
    if (marks.length === steps.length) await server.client.workflow.getHandle(workflowIdFor(id)).result();
    marks.push(await historyLength(server, id));
  }
  const events = await fetchEvents(server, id);
  return steps.map(([move], i) => sliceMove(move, events, marks[i]!, marks[i + 1]!));
}

/** One workspace left to the idle ladder with 1 s rungs; events per move from the history length at each state change. */
async function policyLifecycle(server: TestDevServer, wb: WorkbooksClient, id: string): Promise<LifecycleMove[]> {
  const handle = server.client.workflow.getHandle(workflowIdFor(id));
  await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: '1s', freezeAfter: '1s', archiveAfter: '1s', deleteAfter: '1s' } });
  const seen: { state: string; mark: number }[] = [{ state: 'active', mark: await historyLength(server, id) }];
  const until = Date.now() + 120_000;
  for (;;) {
    const desc = await handle.describe();
    if (desc.status.name !== 'RUNNING') {
      seen.push({ state: 'deleted', mark: desc.historyLength });
      break;
    }
    const d = await wb.describe(id).catch(() => null);
    if (d && d.state !== seen[seen.length - 1]!.state && d.state !== 'deleted') seen.push({ state: d.state, mark: await historyLength(server, id) });
    if (Date.now() > until) throw new Error(`policy lifecycle of ${id} did not finish in 120 s (last state ${seen[seen.length - 1]!.state})`);
    await sleep(50);
  }
  const events = await fetchEvents(server, id);
  const moves: LifecycleMove[] = [sliceMove('created → active (create)', events, 0, seen[0]!.mark)];
  for (let i = 1; i < seen.length; i++) moves.push(sliceMove(`${seen[i - 1]!.state} → ${seen[i]!.state} (policy)`, events, seen[i - 1]!.mark, seen[i]!.mark));
  return moves;
}

// ---------------------------------------------------------------------------------------------------------------
// Report

function msText(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (Math.abs(x) >= 1000) return `${(x / 1000).toFixed(2)} s`;
  return `${Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1)} ms`;
}

function mibText(b: number | null): string {
  return b === null || !Number.isFinite(b) ? '—' : `${(b / MiB).toFixed(0)} MiB`;
}

function rateText(count: number, ms: number): string {
  return ms > 0 ? `${(count / (ms / 1000)).toFixed(1)}/s` : '—';
}

/** Transitions per second: over the whole burst, and the busiest whole second. */
export function burstRates(r: ScaleResult): { overall: number; windowMs: number; peak: number; perSecond: number[] } {
  const xs = r.doneOffsetMs;
  if (xs.length === 0) return { overall: NaN, windowMs: NaN, peak: NaN, perSecond: [] };
  const first = Math.min(0, ...r.deadlineOffsetMs);
  const last = Math.max(...xs);
  const windowMs = last - first;
  const buckets = new Map<number, number>();
  for (const x of xs) buckets.set(Math.floor(x / 1000), (buckets.get(Math.floor(x / 1000)) ?? 0) + 1);
  const lo = Math.min(...buckets.keys());
  const hi = Math.max(...buckets.keys());
  const perSecond: number[] = [];
  for (let s = lo; s <= hi; s++) perSecond.push(buckets.get(s) ?? 0);
  return { overall: xs.length / (windowMs / 1000), windowMs, peak: Math.max(...perSecond), perSecond };
}

function kindsText(k: Record<string, number>): string {
  return Object.entries(k)
    .sort((a, b) => b[1] - a[1])
    .map(([name, c]) => `${c} ${name}`)
    .join(', ');
}

function lifecycleTable(moves: LifecycleMove[]): string[] {
  const out = ['| move | events | of which | activities |', '|---|---:|---|---|'];
  for (const m of moves) out.push(`| ${m.move} | ${m.events} | ${kindsText(m.kinds)} | ${m.activities.join(', ') || '—'} |`);
  out.push(`| **whole lifecycle** | **${moves.reduce((a, m) => a + m.events, 0)}** | | |`);
  return out;
}

function troubleText(r: ScaleResult): string {
  const t = r.wftTrouble;
  if (!t) return '';
  const timedOut = Object.entries(t.timedOut);
  if (timedOut.length === 0 && t.failed === 0) return 'No workflow task of the due workspaces timed out or failed.';
  return (
    `Workflow tasks of the due workspaces that timed out: ${timedOut.length ? timedOut.map(([k, v]) => `${v} ${k.toLowerCase().replace(/_/g, '-')}`).join(', ') : 'none'}; ` +
    `failed: ${t.failed}; in ${t.workspaces} of ${r.history.dueTotal.length} workspaces. A schedule-to-start timeout is a task that waited longer than ` +
    `the worker's sticky queue timeout (the SDK default, 10 s) and was put back on the normal queue: 2 more history events each (timed out, scheduled again).`
  );
}

/** One line for "At a glance". */
export function scaleGlance(r: ScaleResult): string {
  const rates = burstRates(r);
  return (
    `- Scale, ${r.n.toLocaleString('en-US')} workspaces (${r.due.toLocaleString('en-US')} due in one second): policy suspends late by p50 **${msText(median(r.lateMs))}**, ` +
    `p99 **${msText(percentile(r.lateMs, 99))}** (last at T + ${msText(Math.max(...r.doneOffsetMs))}), ${rates.overall.toFixed(0)} transitions/s; worker process RSS ${mibText(r.mem.afterDue.rss)} before T, ` +
    `${mibText(r.mem.burstPeak.rss)} at most during the burst (high-water ${mibText(r.mem.hwmRss)}); dev server ${mibText(r.mem.burstPeak.serverRss)}.`
  );
}

export function scaleMarkdown(r: ScaleResult): string {
  const rates = burstRates(r);
  const off = r.deadlineOffsetMs;
  const inside = off.filter((o) => o >= 0 && o < 1000).length;
  const bgOk = r.background.count - r.background.failed;
  const dueOk = r.dueCreate.count - r.dueCreate.failed;
  const explicitTotal = r.history.explicit.reduce((a, m) => a + m.events, 0);
  const policyTotal = r.history.policy.reduce((a, m) => a + m.events, 0);
  const b = r.breakdown;
  const bRow = (name: string, xs: number[]) => `| ${name} | ${msText(median(xs))} | ${msText(percentile(xs, 90))} | ${msText(percentile(xs, 99))} | ${msText(xs.length ? Math.max(...xs) : NaN)} |`;
  const cpuRow = (name: string, c: CpuUse, count: number) => {
    const per = (x: number | null) => (x === null || count === 0 ? '—' : msText(x / count));
    const both = c.selfMs + (c.serverMs ?? 0);
    const share = c.wallMs > 0 ? `${((both / c.wallMs / 2) * 100).toFixed(0)}%` : '—';
    const bound = count > 0 && both > 0 ? `${(2000 / (both / count)).toFixed(0)}/s` : '—';
    return `| ${name} | this process ${per(c.selfMs)}, dev server ${per(c.serverMs)} (together ${share} of the 2 CPUs over the phase; if they had both CPUs to themselves: at most ~${bound}) |`;
  };
  const memRow = (name: string, m: MemSample) => `| ${name} | ${mibText(m.rss)} | ${mibText(m.heapUsed)} / ${mibText(m.heapTotal)} | ${m.fds} | ${mibText(m.serverRss)} |`;
  const out: string[] = [
    `${r.n.toLocaleString('en-US')} workspaces on one worker host (2 CPUs shared with its own Temporal dev server and this bench; replication off), ` +
      `${r.due.toLocaleString('en-US')} of them due in the same second T. The other ${(r.n - r.due).toLocaleString('en-US')} are idle the cheap way: **${r.idleState}** ` +
      `(file closed on the host's disk; the default policy's 24 h freeze timer pending). Workflow cache: ${r.cacheSize} (maxCachedWorkflows).`,
    '',
    '| | |',
    '|---|---|',
    `| workspaces (N) / due (DUE) | ${r.n.toLocaleString('en-US')} / ${r.due.toLocaleString('en-US')} |`,
    `| creating the ${(r.n - r.due).toLocaleString('en-US')} idle ones (create + suspend, ${r.concurrency} at a time) | ${msText(r.background.ms)}, **${rateText(bgOk, r.background.ms)}** (create p50 ${msText(median(r.background.createMs))}, p99 ${msText(percentile(r.background.createMs, 99))}; suspend p50 ${msText(median(r.background.suspendMs))})${r.background.failed ? `; ${r.background.failed} failed` : ''} |`,
    `| creating the ${r.due.toLocaleString('en-US')} due ones (create + describe, ${r.dueConcurrency} at a time) | ${msText(r.dueCreate.ms)}, **${rateText(dueOk, r.dueCreate.ms)}** (create p50 ${msText(median(r.dueCreate.createMs))}, p99 ${msText(percentile(r.dueCreate.createMs, 99))})${r.dueCreate.failed ? `; ${r.dueCreate.failed} failed` : ''} |`,
    `| spread of the deadlines (\`nextAutoAt\` − T) | T ${fmtOff(Math.min(...off))} … T ${fmtOff(Math.max(...off))} (${msText(Math.max(...off) - Math.min(...off))}); **${inside} of ${off.length}** inside [T, T + 1 s)${r.clamped ? `; ${r.clamped} created too late for T (suspendAfter clamped to 2 s)` : ''} |`,
    `| lateness (ledger \`at\` − \`nextAutoAt\`) | p50 **${msText(median(r.lateMs))}**, p90 ${msText(percentile(r.lateMs, 90))}, p99 **${msText(percentile(r.lateMs, 99))}**, max ${msText(Math.max(...r.lateMs))} (${r.lateMs.length} policy suspends) |`,
    `| last transition | T + ${msText(Math.max(...r.doneOffsetMs))} (ledger); host closed its last due file at T + ${msText(r.hostClosedLastMs)} |`,
    `| transitions per second | **${rates.overall.toFixed(1)}/s** over the burst (${r.doneOffsetMs.length} in ${msText(rates.windowMs)} from T); busiest second ${rates.peak} |`,
    `| per second from T | ${rates.perSecond.join(', ')} |`,
    `| missing (no policy suspend recorded) | ${r.missing.length === 0 ? 'none' : `${r.missing.length}: ${r.missing.slice(0, 3).join('; ')}`} |`,
    cpuRow(`CPU per idle workspace created (create + suspend)`, r.cpu.background, bgOk),
    cpuRow(`CPU per due workspace created (create + describe)`, r.cpu.due, dueOk),
    cpuRow(`CPU per policy suspend in the burst`, r.cpu.burst, r.doneOffsetMs.length),
    `| disk | ${(r.fileBytes / 1024).toFixed(0)} KiB per suspended live file; data dir ${mibText(r.dataDirBytes)} in all |`,
    `| section run time | ${msText(r.totalMs)} |`,
    '',
    '### Where the lateness goes (from each due workspace\'s history)',
    '',
    '| step | p50 | p90 | p99 | max |',
    '|---|---:|---:|---:|---:|',
    bRow('timer fired − deadline (server timer queue)', b.timer),
    bRow('→ lastAccess scheduled (workflow task)', b.toLastAccess),
    bRow('lastAccess queued on the host queue', b.lastAccessQueue),
    bRow('lastAccess ran', b.lastAccessRun),
    bRow('→ stopInstance scheduled (workflow task)', b.toStop),
    bRow('stopInstance queued on the host queue', b.stopQueue),
    bRow('stopInstance ran (close + checkpoint)', b.stopRun),
    bRow('→ move recorded (workflow task)', b.toRecord),
    bRow('*each workflow task of the burst: scheduled → started (waiting for the worker)*', b.wftQueue),
    bRow('*each workflow task of the burst: started → completed (the worker ran it)*', b.wftRun),
    '',
    troubleText(r),
    '',
    '### Memory',
    '',
    '| when | this process RSS (worker host + bench client) | main-thread V8 heap used / total | open fds | dev server RSS |',
    '|---|---:|---:|---:|---:|',
    memRow('host started, no workspaces', r.mem.start),
    memRow(`after the ${(r.n - r.due).toLocaleString('en-US')} idle ones`, r.mem.afterBackground),
    memRow(`at rest before T (${r.due.toLocaleString('en-US')} active, all ${r.n.toLocaleString('en-US')} created)`, r.mem.afterDue),
    `| peak while creating (1 s samples) | ${mibText(r.mem.creationPeak.rss)} | ${mibText(r.mem.creationPeak.heapUsed)} | ${r.mem.creationPeak.fds} | ${mibText(r.mem.creationPeak.serverRss)} |`,
    `| **peak during the burst** (${r.mem.burstPeak.samples} samples, 200 ms apart) | **${mibText(r.mem.burstPeak.rss)}** | ${mibText(r.mem.burstPeak.heapUsed)} | ${r.mem.burstPeak.fds} | ${mibText(r.mem.burstPeak.serverRss)} |`,
    memRow('after the burst', r.mem.afterBurst),
    `| high-water mark (VmHWM) over the whole section | ${mibText(r.mem.hwmRss)} | | | ${mibText(r.mem.serverHwm)} |`,
    '',
    `Over the idle creates this process grew by ${mibText(r.mem.afterBackground.rss - r.mem.start.rss)} RSS, ` +
      `${((r.mem.afterBackground.rss - r.mem.start.rss) / 1024 / Math.max(1, Math.min(bgOk, r.cacheSize))).toFixed(0)} KiB per workflow the worker could cache ` +
      `(${Math.min(bgOk, r.cacheSize).toLocaleString('en-US')} at most; ${(bgOk - Math.min(bgOk, r.cacheSize)).toLocaleString('en-US')} more were evicted and live only in Temporal): ` +
      `an upper bound, since it includes garbage not yet collected (RSS falls again later). ` +
      `The dev server grew by ${mibText((r.mem.afterBackground.serverRss ?? NaN) - (r.mem.start.serverRss ?? NaN))} for ${bgOk.toLocaleString('en-US')} workflows.`,
    '',
    '### Temporal history events',
    '',
    `- Due workspaces: **${median(r.history.dueTotal)}** events each (median) after create + policy suspend, of which the policy suspend added ` +
      `**${median(r.history.duePolicySuspend)}** (min ${Math.min(...r.history.duePolicySuspend)}, max ${Math.max(...r.history.duePolicySuspend)}).`,
    `- One lifecycle moved by client calls: **${explicitTotal}** events; left to the idle ladder (1 s rungs): **${policyTotal}** events.`,
    '',
    '#### Moved by the client (`create`, `transition`, `wake`; policy never)',
    '',
    ...lifecycleTable(r.history.explicit),
    '',
    '#### Moved by the idle ladder alone (every rung 1 s)',
    '',
    ...lifecycleTable(r.history.policy),
    '',
    '- **How**: one process runs the bench and one worker host (shared and host task queues, data server; no Litestream:',
    '  replicaUrl off) against a Temporal dev server started for this section (SQLite file, throwaway). Idle workspaces:',
    '  `create` then `transition(id, "suspended")`. Due workspaces: `create` with `suspendAfter` = (T + 500 ms) − now −',
    '  the running median of the lag between the call and the moment the workflow starts counting idle, in seconds with',
    '  ms decimals (`freezeAfter` never), then `describe` for the real `nextAutoAt` (at most 4 creates in flight: a',
    '  shorter, steadier lag). T is a whole second far enough ahead for all due creates to finish in twice the time',
    '  the idle creation rate gives (+ 20 s). The due workspaces are created last, so they are the ones in the',
    '  worker\'s workflow cache; most idle ones have been evicted. The end of the burst is seen in this process (the',
    '  host has closed every due file); then each due ledger gives its active → suspended entry (`by: policy`):',
    '  lateness = its `at` − `nextAutoAt`. An idle move is: timer fires → workflow task → `lastAccess` on the host →',
    '  workflow task → `stopInstance` on the host → workflow task that records it (the table above).',
    '- **Memory**: RSS of this process covers the worker host (its Rust core, the workflow worker thread with the',
    '  cached workflows, activities, data server) and the bench\'s own client; the V8 heap is the main thread\'s only',
    '  (workflow code runs in a worker thread whose heap is inside RSS). Dev server: VmRSS of its pid from /proc.',
    '  RSS can be lower at the peak of the burst than at rest before it: garbage collected meanwhile.',
    '- **CPU**: user + system time of this process (all its threads, `process.cpuUsage`) and of the dev server',
    '  (/proc/<pid>/stat) over each phase, divided by the workspaces (or transitions) of the phase. The "at most" rate',
    '  is 2 CPU-seconds per second divided by that: a ceiling if nothing else ran, not a measurement.',
    '- **History events**: `historyLength` after each move (after each state change seen by a 50 ms poll for the',
    '  ladder), split by event kind from the fetched history. Queries (describe) add no events.',
  ];
  if (r.background.errors.length || r.dueCreate.errors.length) out.push('', `Errors: ${[...r.background.errors, ...r.dueCreate.errors].join('; ')}`);
  return out.join('\n');
}
