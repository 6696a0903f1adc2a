/**
 * Scale: N workspaces on one worker host (a process of its own, bench/scale-worker.ts) against a Temporal server,
 * replication off, so that DUE of them reach their idle deadline in the same second. The server is either a dev
 * server of its own (`server: 'embedded'`, SQLite) or the production topology of scripts/cluster.sh
 * (`server: 'cluster'`: Temporal server on PostgreSQL; bench/scale-server.ts).
 *
 *   1. N − DUE "background" workspaces: created (product default policy, 15m / 24h) and suspended at once by an
 *      explicit `transition` (the cheap idle state: file closed on the host's disk, one 24 h freeze timer each).
 *   2. W of them (default 50) are woken by `wake` through our client at rest, spread over the wake window (10 s):
 *      the baseline of a user's wake.
 *   3. DUE workspaces, created last, active, each with `suspendAfter` = (T + ½ s) − now − (the running median of
 *      the create lag), in seconds with ms decimals, so their deadlines fall into one chosen second [T, T + 1 s).
 *      Each one's real deadline is read back from `describe().nextAutoAt`.
 *   4. From T, W other suspended background workspaces are woken the same way (a user's wake during the burst).
 *      The worker process reports (IPC) when it has closed each DUE file; then each ledger's active→suspended entry
 *      (`by: 'policy'`) gives lateness = entry.at − nextAutoAt. Where the time went comes from each workflow history
 *      (timer fired, each activity scheduled / queued / run, the workflow tasks between them).
 *   5. Memory of the worker process (VmRSS, VmHWM, fds from /proc; V8 heap over IPC), of the bench process (its
 *      client) and of the server (Temporal VmRSS; PostgreSQL PSS) at rest after each phase and at the peak of the
 *      burst; CPU of each (utime + stime) per phase.
 *   6. History events: per DUE workspace (its whole history after the burst, and the part the policy suspend
 *      added), and for two sample workspaces one full lifecycle each, counted per move: one moved by the client
 *      (created→active→suspended→frozen→active→suspended→frozen→archived→deleted), one moved by the idle
 *      ladder alone with 1 s rungs (created→active→suspended→frozen→archived→deleted).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { clientFor, uniqueQueue, workflowBundle } from '../harness/stack';
import { localActivityType } from '../harness/history';
import { DEFAULT_WORKFLOW_WORKER } from '../src/config';
import { workflowIdFor } from '../src/contract/ids';
import type { LedgerEntry, WorkspaceDescription } from '../src/contract/types';
import type { WorkbooksClient } from '../src/client/workbooks-client';
import { onInterrupt } from './cleanup';
import { median, percentile } from './raw-ops';
import { dirBytes, openScaleServer, ScaleServer, ServerKind, ServerSample } from './scale-server';
import { ScaleWorkerProcess } from './scale-worker-process';
import { timedWakes, WakeSeries } from './scale-wakes';
import { procCpuMs, procStatusBytes } from './proc-stats';

const MiB = 1024 * 1024;

export interface ScaleOptions {
  n: number;
  due: number;
  concurrency: number;
  /** Which Temporal server (default 'embedded'). */
  server?: ServerKind;
  /** Worker's maxCachedWorkflows (default: the product's default). */
  cacheSize?: number;
  /** Users' wakes at rest and again during the burst (default 50 each; 0: none). */
  wakes?: number;
  /** The window the wakes are spread over (ms, default 10 000). */
  wakeWindowMs?: number;
  /** Parent of the temporary root (default: the OS temp dir). */
  baseDir?: string;
  /** Extra `temporal server start-dev` arguments for the embedded dev server (experiments; default none). */
  serverArgs?: string[];
  log?(line: string): void;
}

export interface MemSample {
  /** The worker host process (VmRSS, open fds; main-thread V8 heap over IPC, null when not asked or no answer). */
  workerRss: number | null;
  workerFds: number | null;
  workerHeapUsed: number | null;
  workerHeapTotal: number | null;
  /** The bench process (its client and the bookkeeping). */
  benchRss: number;
  /** Temporal server VmRSS; PostgreSQL PSS summed over its processes (cluster only). */
  serverRss: number | null;
  postgresPss: number | null;
  postgresProcs: number;
}

export interface MemPeak {
  workerRss: number | null;
  workerFds: number | null;
  benchRss: number;
  serverRss: number | null;
  postgresPss: number | null;
  samples: number;
}

/** CPU time used in a phase (ms): the worker process, the Temporal server, PostgreSQL, the bench process. */
export interface CpuUse {
  workerMs: number | null;
  temporalMs: number | null;
  postgresMs: number | null;
  benchMs: number;
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
  /** Named steps between the deadline and the ledger entry (ms each), in the order they happen. */
  steps: Record<string, number[]>;
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
  server: ServerKind;
  /** e.g. "cluster: Temporal server 1.32.0 on PostgreSQL 16.10 (scripts/cluster.sh, netns mode)". */
  serverLabel: string;
  serverOrigin: string;
  n: number;
  due: number;
  concurrency: number;
  /** Creates in flight for the due ones. */
  dueConcurrency: number;
  cacheSize: number;
  idleState: 'suspended';
  /** Pollers of the bench's task queues (identities), and those that are not the bench's worker. */
  pollers: { identities: string[]; foreign: string[] };
  /** Workflow and activity tasks of the due workspaces started by another identity than the bench's worker. */
  foreignTasks: number;
  /** Server (and worker) CPU while nothing ran, per second of wall time, over `idle.wallMs`. */
  idle: CpuUse;
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
  /** Wall time from T until the worker had closed the last DUE file (ms). */
  hostClosedLastMs: number;
  /** Users' wakes: at rest (after the idle creates) and from T on (during the burst). */
  wakes: { rest: WakeSeries | null; burst: WakeSeries | null };
  /**
   * CPU per phase: idle creates (create + suspend), the wakes at rest, due creates (create + describe), the burst
   * (from 2 s before the first deadline to 2 s after the last due file closed and the last burst wake answered).
   */
  cpu: { background: CpuUse; restWakes: CpuUse | null; due: CpuUse; burst: CpuUse };
  mem: {
    start: MemSample;
    afterBackground: MemSample;
    afterDue: MemSample;
    burstPeak: MemPeak;
    afterBurst: MemSample;
    creationPeak: MemPeak;
    workerHwm: number | null;
    benchHwm: number | null;
    serverHwm: number | null;
  };
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
  /** What became of the run's workflows on the server (cluster: batch delete). */
  forgotten: string;
  totalMs: number;
}

// ---------------------------------------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

interface CpuMark {
  worker: number | null;
  temporal: number | null;
  postgres: number | null;
  bench: number;
  at: number;
}

function cpuMark(worker: ScaleWorkerProcess, server: ScaleServer): CpuMark {
  const s = server.sample();
  return { worker: worker.cpuMs(), temporal: s.temporalCpuMs, postgres: s.postgresCpuMs, bench: procCpuMs('self') ?? NaN, at: performance.now() };
}

function cpuSince(a: CpuMark, b: CpuMark): CpuUse {
  const d = (x: number | null, y: number | null) => (x !== null && y !== null ? y - x : null);
  return { workerMs: d(a.worker, b.worker), temporalMs: d(a.temporal, b.temporal), postgresMs: d(a.postgres, b.postgres), benchMs: b.bench - a.bench, wallMs: b.at - a.at };
}

async function sampleMem(worker: ScaleWorkerProcess, server: ScaleServer, withHeap = true): Promise<MemSample> {
  const heap = withHeap ? await worker.heap() : null;
  const w = worker.mem();
  const s: ServerSample = server.sample();
  return {
    workerRss: w.rss,
    workerFds: w.fds,
    workerHeapUsed: heap?.heapUsed ?? null,
    workerHeapTotal: heap?.heapTotal ?? null,
    benchRss: process.memoryUsage.rss(),
    serverRss: s.temporalRss,
    postgresPss: s.postgresPss,
    postgresProcs: s.postgresProcs,
  };
}

const maxOrNull = (a: number | null, b: number | null) => (b === null ? a : Math.max(a ?? 0, b));

/** Samples memory every `everyMs` until stopped; keeps the peaks (no IPC: /proc only). */
function memWatch(worker: ScaleWorkerProcess, server: ScaleServer, everyMs: number): { stop(): MemPeak } {
  const peak: MemPeak = { workerRss: null, workerFds: null, benchRss: 0, serverRss: null, postgresPss: null, samples: 0 };
  const take = () => {
    const w = worker.mem();
    const s = server.sample();
    peak.workerRss = maxOrNull(peak.workerRss, w.rss);
    peak.workerFds = maxOrNull(peak.workerFds, w.fds);
    peak.benchRss = Math.max(peak.benchRss, process.memoryUsage.rss());
    peak.serverRss = maxOrNull(peak.serverRss, s.temporalRss);
    peak.postgresPss = maxOrNull(peak.postgresPss, s.postgresPss);
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

async function historyLength(client: Client, workspaceId: string): Promise<number> {
  return (await client.workflow.getHandle(workflowIdFor(workspaceId)).describe()).historyLength;
}

async function fetchEvents(client: Client, workspaceId: string): Promise<HistoryEvent[]> {
  return (await client.workflow.getHandle(workflowIdFor(workspaceId)).fetchHistory()).events ?? [];
}

function policySuspendOf(d: WorkspaceDescription): LedgerEntry | undefined {
  return d.ledger.find((e) => e.from === 'active' && e.to === 'suspended' && e.by === 'policy' && e.outcome === 'done');
}

/**
 * Where the time between the deadline and the ledger entry went, from the workflow history: the idle timer firing,
 * then for each activity the move ran (whatever the workflow schedules: lastAccess + stopInstance, or one
 * stopIfIdle) the workflow task that scheduled it, its wait on its task queue and its run, then the workflow task
 * that recorded the move (with the local stop, that one workflow task is all there is).
 */
function breakdownOf(events: HistoryEvent[], deadline: number, entryAt: number): { steps: [string, number][]; wftQueue: number[]; wftRun: number[] } | null {
  const byId = new Map<number, HistoryEvent>();
  for (const e of events) byId.set(num(e.eventId as Long), e);
  const fired = events.find((e) => e.timerFiredEventAttributes && evMs(e) >= deadline - 1000);
  if (!fired) return null;
  const firedId = num(fired.eventId as Long);
  const acts: { type: string; sched: HistoryEvent; started?: HistoryEvent; done: HistoryEvent }[] = [];
  for (const e of events) {
    const c = e.activityTaskCompletedEventAttributes;
    if (!c) continue;
    const sched = byId.get(num(c.scheduledEventId as Long));
    if (!sched || num(sched.eventId as Long) < firedId || evMs(e) > entryAt + 5) continue;
    acts.push({ type: sched.activityTaskScheduledEventAttributes?.activityType?.name ?? '?', sched, started: byId.get(num(c.startedEventId as Long)), done: e });
  }
  acts.sort((a, b) => num(a.sched.eventId as Long) - num(b.sched.eventId as Long));
  const steps: [string, number][] = [['timer fired − deadline (server timer queue)', evMs(fired) - deadline]];
  let prev = evMs(fired);
  if (acts.length === 0) {
    // Stopped by the holder inside the workflow task (a local activity): nothing on an activity queue.
    if (!events.some((e) => num(e.eventId as Long) > firedId && localActivityType(e) === 'stopIfIdleHere')) return null;
  }
  for (const a of acts) {
    steps.push([`→ ${a.type} scheduled (workflow task)`, evMs(a.sched) - prev]);
    steps.push([`${a.type} queued on its task queue`, evMs(a.started) - evMs(a.sched)]);
    steps.push([`${a.type} ran`, evMs(a.done) - evMs(a.started)]);
    prev = evMs(a.done);
  }
  steps.push([acts.length ? '→ move recorded (workflow task)' : '→ move recorded (workflow task, stop inside it)', entryAt - prev]);
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
  return { steps, wftQueue, wftRun };
}

/** Identities that started a workflow or activity task in a history and are not `mine`. */
function foreignStarts(events: HistoryEvent[], mine: (identity: string) => boolean): number {
  let n = 0;
  for (const e of events) {
    const id = e.workflowTaskStartedEventAttributes?.identity ?? e.activityTaskStartedEventAttributes?.identity;
    if (id && !mine(id)) n++;
  }
  return n;
}

/** Every poller seen on the bench's queues (shared: workflow + activity; host: activity). */
async function pollersOf(client: Client, namespace: string, queues: { name: string; type: 'workflow' | 'activity' }[]): Promise<string[]> {
  const out = new Set<string>();
  for (const q of queues) {
    const res = await client.workflowService.describeTaskQueue({
      namespace,
      taskQueue: { name: q.name, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: q.type === 'workflow' ? temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW : temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    });
    for (const p of res.pollers ?? []) if (p.identity) out.add(`${p.identity} (${q.name}, ${q.type})`);
  }
  return [...out];
}

/** `count` ids spread evenly over `ids`. */
function spread(ids: string[], count: number): string[] {
  if (count <= 0 || ids.length === 0) return [];
  const step = ids.length / count;
  return Array.from({ length: Math.min(count, ids.length) }, (_, i) => ids[Math.floor(i * step)]!);
}

// ---------------------------------------------------------------------------------------------------------------

export async function measureScale(opts: ScaleOptions): Promise<ScaleResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const { n, due, concurrency } = opts;
  const kind: ServerKind = opts.server ?? 'embedded';
  if (!(Number.isInteger(n) && Number.isInteger(due) && due >= 1 && due <= n)) throw new Error(`scale: need 1 <= DUE <= N, got N=${n} DUE=${due}`);
  const wakeCount = opts.wakes ?? 50;
  if (!(Number.isInteger(wakeCount) && wakeCount >= 0)) throw new Error(`scale: wakes must be a whole number >= 0, got ${wakeCount}`);
  const wakeWindowMs = opts.wakeWindowMs ?? 10_000;
  if (!(wakeWindowMs >= 0)) throw new Error(`scale: the wake window must be >= 0 ms, got ${wakeWindowMs}`);
  const t00 = performance.now();
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-scale-'));
  const dataDir = path.join(root, 'host');
  const taskQueue = uniqueQueue('bench-scale');
  let server: ScaleServer | undefined;
  let worker: ScaleWorkerProcess | undefined;
  let forgotten = 'not done';
  const cleanup = async () => {
    await worker?.stop().catch(() => undefined);
    worker = undefined;
    if (server) forgotten = await server.forget(taskQueue, log).catch((err: Error) => `failed: ${err.message}`);
    await server?.stop(log).catch(() => undefined);
    server = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  };
  const forget = onInterrupt(cleanup);
  try {
    log(`  [${kind}] a Temporal server and one worker host in a process of its own (replication off)…`);
    server = await openScaleServer(kind, { serverArgs: opts.serverArgs, log });
    const srv = server;
    const bundlePath = path.join(root, 'workflow-bundle.js');
    const bundle = await workflowBundle();
    if ('codePath' in bundle) fs.copyFileSync(bundle.codePath, bundlePath);
    else fs.writeFileSync(bundlePath, bundle.code);
    const hostId = `bench-scale-${crypto.randomBytes(2).toString('hex')}`;
    worker = await ScaleWorkerProcess.start({ address: srv.address, namespace: srv.namespace, taskQueue, hostId, dataDir, cacheSize: opts.cacheSize, bundlePath }, log);
    const w = worker;
    const mine = (identity: string) => identity.endsWith(`@${hostId}`);
    const cacheSize = opts.cacheSize ?? DEFAULT_WORKFLOW_WORKER.cache;
    const wb = clientFor(srv.client, taskQueue);
    const tag = crypto.randomBytes(2).toString('hex');
    log(`  [${srv.label}] worker pid ${w.pid}, queue ${taskQueue}`);

    // ---- 0. idle: what the server and the worker use while nothing happens
    const idle0 = cpuMark(w, srv);
    await sleep(10_000);
    const idle = cpuSince(idle0, cpuMark(w, srv));
    const start = await sampleMem(w, srv);
    const cpu0 = cpuMark(w, srv);

    // ---- 1. background: create + suspend
    const bgIds = Array.from({ length: n - due }, (_, i) => `sc${tag}-b${String(i).padStart(5, '0')}`);
    const background: CreatePhase = { count: bgIds.length, failed: 0, errors: [], ms: 0, createMs: [], suspendMs: [] };
    const creationWatch = memWatch(w, srv, 1000);
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
        log(`    background ${done}/${bgIds.length} in ${s.toFixed(0)} s (${(done / s).toFixed(1)}/s; create p50 ${median(background.createMs.slice(-every)).toFixed(0)} ms, suspend p50 ${median(background.suspendMs.slice(-every)).toFixed(0)} ms; worker rss ${((w.mem().rss ?? NaN) / MiB).toFixed(0)} MiB)`);
      }
    });
    background.ms = performance.now() - t0;
    const afterBackground = await sampleMem(w, srv);
    const cpu1 = cpuMark(w, srv);
    const bgRate = bgIds.length > 0 && background.ms > 0 ? (bgIds.length - background.failed) / (background.ms / 1000) : 0;
    const pollers = await pollersOf(srv.client, srv.namespace, [
      { name: taskQueue, type: 'workflow' },
      { name: taskQueue, type: 'activity' },
      { name: w.hostQueue, type: 'activity' },
    ]);

    // ---- 2. users' wakes at rest (suspended background workspaces; the burst's wakes take others)
    const wakeIds = spread(bgIds, Math.min(2 * wakeCount, bgIds.length));
    const restIds = wakeIds.filter((_, i) => i % 2 === 0);
    const burstIds = wakeIds.filter((_, i) => i % 2 === 1);
    let restWakes: WakeSeries | null = null;
    let cpuRestWakes: CpuUse | null = null;
    if (restIds.length > 0) {
      log(`  ${restIds.length} wakes at rest, spread over ${(wakeWindowMs / 1000).toFixed(0)} s…`);
      const m = cpuMark(w, srv);
      restWakes = await timedWakes(wb, restIds, { label: 'at rest (after the idle creates)', startAt: Date.now() + 200, windowMs: wakeWindowMs });
      cpuRestWakes = cpuSince(m, cpuMark(w, srv));
      const ok = restWakes.samples.filter((s) => s.ok).map((s) => s.ms);
      log(`    wake at rest p50 ${median(ok).toFixed(0)} ms, p99 ${percentile(ok, 99).toFixed(0)} ms (${ok.length} of ${restIds.length})`);
    }

    // ---- 3. DUE workspaces with deadlines in [T, T + 1 s)
    // Create-only costs less than create + suspend, but fewer run at a time (below): twice the time at the idle
    // creation rate, plus 20 s, has been enough (creates that run late anyway are clamped, and show in the spread).
    const cpu1b = cpuMark(w, srv);
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
        eventsAfterCreate.set(id, await historyLength(srv.client, id));
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
    const afterDue = await sampleMem(w, srv);
    const cpu2 = cpuMark(w, srv);
    const offsets = [...deadlineOf.values()].map((d) => d - T);
    if (deadlineOf.size === 0) throw new Error(`scale: no due workspace was created (${dueCreate.errors[0] ?? 'no error recorded'})`);
    log(
      `  deadlines: ${deadlineOf.size} of ${due}, T${fmtOff(Math.min(...offsets))} … T${fmtOff(Math.max(...offsets))}, ${offsets.filter((o) => o >= 0 && o < 1000).length} inside [T, T+1s); ` +
        `${((T - Date.now()) / 1000).toFixed(1)} s to T; worker rss ${((afterDue.workerRss ?? NaN) / MiB).toFixed(0)} MiB, ${afterDue.workerFds} fds`,
    );

    // ---- 4. the burst: the worker reports the files it closes (IPC); users wake other workspaces from T on
    const firstDeadline = Math.min(...deadlineOf.values());
    w.watch([...deadlineOf.keys()]);
    await sleep(Math.max(0, firstDeadline - Date.now() - 2000));
    const burstWatch = memWatch(w, srv, 200);
    const cpu3 = cpuMark(w, srv);
    const burstWakes = burstIds.length > 0 ? timedWakes(wb, burstIds, { label: 'during the burst (from T)', startAt: T, windowMs: wakeWindowMs }) : Promise.resolve(null);
    const giveUpAt = Math.max(...deadlineOf.values()) + 10 * 60_000;
    while (w.closedAt.size < deadlineOf.size && Date.now() < giveUpAt) await sleep(50);
    const burstWakesDone = await burstWakes;
    const lastClosed = w.closedAt.size > 0 ? Math.max(...w.closedAt.values()) : NaN;
    await sleep(2000);
    const cpu4 = cpuMark(w, srv);
    const burstPeak = burstWatch.stop();
    const afterBurst = await sampleMem(w, srv);
    const pending = [...deadlineOf.keys()].filter((id) => !w.closedAt.has(id));
    log(`  worker closed ${w.closedAt.size} of ${deadlineOf.size} due files, the last at T${fmtOff(lastClosed - T)}; peak worker rss ${((burstPeak.workerRss ?? NaN) / MiB).toFixed(0)} MiB`);
    if (burstWakesDone) {
      const ok = burstWakesDone.samples.filter((s) => s.ok).map((s) => s.ms);
      log(`    wake during the burst p50 ${median(ok).toFixed(0)} ms, p99 ${percentile(ok, 99).toFixed(0)} ms, max ${Math.max(...ok).toFixed(0)} ms (${ok.length} of ${burstIds.length})`);
    }

    // Ledgers and histories (bounded concurrency; the burst is over).
    const lateMs: number[] = [];
    const doneOffsetMs: number[] = [];
    const missing: string[] = [];
    const breakdown: Breakdown = { steps: {}, wftQueue: [], wftRun: [] };
    const dueTotal: number[] = [];
    const duePolicySuspend: number[] = [];
    const wftTrouble: ScaleResult['wftTrouble'] = { timedOut: {}, failed: 0, workspaces: 0 };
    let foreignTasks = 0;
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
      const events = await fetchEvents(srv.client, id);
      dueTotal.push(events.length);
      foreignTasks += foreignStarts(events, mine);
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
        for (const [name, ms] of b.steps) (breakdown.steps[name] ??= []).push(ms);
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
        `last suspend at T${fmtOff(Math.max(...doneOffsetMs))}; ${missing.length} missing; history median ${median(dueTotal)} events (policy suspend ${median(duePolicySuspend)})`,
    );

    // ---- 5. one lifecycle each of two sample workspaces, events per move
    log('  sample lifecycles (history events per move)…');
    const explicit = await explicitLifecycle(srv.client, wb, `sc${tag}-life-client`);
    const policy = await policyLifecycle(srv.client, wb, `sc${tag}-life-policy`);
    const workerHwm = w.mem().hwm;
    const serverHwm = srv.sample().temporalHwm;

    const result: ScaleResult = {
      server: kind,
      serverLabel: srv.label,
      serverOrigin: srv.origin,
      n,
      due,
      concurrency,
      dueConcurrency,
      cacheSize,
      idleState: 'suspended',
      pollers: { identities: pollers, foreign: pollers.filter((p) => !mine(p.split(' ')[0]!)) },
      foreignTasks,
      idle,
      background,
      dueCreate,
      targetMs: T,
      leadMs,
      clamped,
      deadlineOffsetMs: offsets,
      lateMs,
      doneOffsetMs,
      missing: [...missing, ...pending.map((id) => `${id}: the worker still had it open`)],
      breakdown,
      wftTrouble,
      hostClosedLastMs: lastClosed - T,
      wakes: { rest: restWakes, burst: burstWakesDone },
      cpu: { background: cpuSince(cpu0, cpu1), restWakes: cpuRestWakes, due: cpuSince(cpu1b, cpu2), burst: cpuSince(cpu3, cpu4) },
      mem: { start, afterBackground, afterDue, burstPeak, afterBurst, creationPeak, workerHwm, benchHwm: procStatusBytes('self', 'VmHWM'), serverHwm },
      fileBytes,
      dataDirBytes,
      history: { dueTotal, duePolicySuspend, explicit, policy },
      forgotten,
      totalMs: 0,
    };
    forget();
    await cleanup();
    result.forgotten = forgotten;
    result.totalMs = performance.now() - t00;
    // The raw numbers, to render the section again (scaleMarkdown) without another run.
    if (process.env.BENCH_SCALE_JSON) fs.writeFileSync(process.env.BENCH_SCALE_JSON.replace(/(\.json)?$/, `-${kind}$1`), JSON.stringify(result));
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

async function explicitLifecycle(client: Client, wb: WorkbooksClient, id: string): Promise<LifecycleMove[]> {
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
    if (marks.length === steps.length) await client.workflow.getHandle(workflowIdFor(id)).result();
    marks.push(await historyLength(client, id));
  }
  const events = await fetchEvents(client, id);
  return steps.map(([move], i) => sliceMove(move, events, marks[i]!, marks[i + 1]!));
}

/** One workspace left to the idle ladder with 1 s rungs; events per move from the history length at each state change. */
async function policyLifecycle(client: Client, wb: WorkbooksClient, id: string): Promise<LifecycleMove[]> {
  const handle = client.workflow.getHandle(workflowIdFor(id));
  await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: '1s', freezeAfter: '1s', archiveAfter: '1s', deleteAfter: '1s' } });
  const seen: { state: string; mark: number }[] = [{ state: 'active', mark: await historyLength(client, id) }];
  const until = Date.now() + 120_000;
  for (;;) {
    const desc = await handle.describe();
    if (desc.status.name !== 'RUNNING') {
      seen.push({ state: 'deleted', mark: desc.historyLength });
      break;
    }
    const d = await wb.describe(id).catch(() => null);
    if (d && d.state !== seen[seen.length - 1]!.state && d.state !== 'deleted') seen.push({ state: d.state, mark: await historyLength(client, id) });
    if (Date.now() > until) throw new Error(`policy lifecycle of ${id} did not finish in 120 s (last state ${seen[seen.length - 1]!.state})`);
    await sleep(50);
  }
  const events = await fetchEvents(client, id);
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

/** The issue 14 targets (for 10,000 workspaces, 1,000 due in one second). */
export const SCALE_TARGETS = { lateP99Ms: 10_000, cpuPerMoveMs: 20, eventsPerSuspend: 10, wakeP99Ms: 1000, workerRssBytes: 600 * MiB };

/** Transitions per second: over the whole burst, and the busiest whole second. */
export function burstRates(r: ScaleResult): { overall: number; windowMs: number; peak: number; perSecond: number[] } {
  const xs = r.doneOffsetMs;
  if (xs.length === 0) return { overall: NaN, windowMs: NaN, peak: NaN, perSecond: [] };
  const first = Math.min(0, ...r.deadlineOffsetMs);
  const last = Math.max(...xs);
  const windowMs = last - first;
  const buckets = new Map<number, number>();
  for (const x of xs) buckets.set(Math.floor(x / 1000), (buckets.get(Math.floor(x / 1000)) ?? 0) + 1);
  const lo = Math.min(0, ...buckets.keys());
  const hi = Math.max(...buckets.keys());
  const perSecond: number[] = [];
  for (let s = lo; s <= hi; s++) perSecond.push(buckets.get(s) ?? 0);
  return { overall: xs.length / (windowMs / 1000), windowMs, peak: Math.max(...perSecond), perSecond };
}

const serverMs = (c: CpuUse) => (c.temporalMs ?? 0) + (c.postgresMs ?? 0);

/**
 * CPU per policy suspend in the burst (worker + server): the burst window's CPU less what the burst's wakes cost
 * (their count × the CPU per wake measured at rest, net of the idle rate over that phase), divided by the policy
 * suspends.
 */
export function cpuPerMove(r: ScaleResult): { worker: number; server: number; total: number; wakesTakenOut: number } {
  const moves = r.doneOffsetMs.length;
  const restN = r.wakes.rest?.samples.length ?? 0;
  const burstN = r.wakes.burst?.samples.length ?? 0;
  const rest = r.cpu.restWakes;
  const idleShare = rest && r.idle.wallMs > 0 ? rest.wallMs / r.idle.wallMs : 0;
  const perWake = (f: (c: CpuUse) => number) => (rest && restN > 0 ? Math.max(0, f(rest) - idleShare * f(r.idle)) / restN : 0);
  const worker = ((r.cpu.burst.workerMs ?? NaN) - burstN * perWake((c) => c.workerMs ?? 0)) / moves;
  const server = (serverMs(r.cpu.burst) - burstN * perWake(serverMs)) / moves;
  return { worker, server, total: worker + server, wakesTakenOut: burstN * (perWake((c) => c.workerMs ?? 0) + perWake(serverMs)) };
}

function okMs(s: WakeSeries | null): number[] {
  return s ? s.samples.filter((x) => x.ok).map((x) => x.ms) : [];
}

/** The worker's highest RSS seen over the section: VmHWM, else the sampled peaks. */
function workerPeak(r: ScaleResult): number | null {
  return r.mem.workerHwm ?? maxOrNull(r.mem.creationPeak.workerRss, r.mem.burstPeak.workerRss);
}

function metText(ok: boolean | null): string {
  return ok === null ? 'not measured' : ok ? '**met**' : '**not met**';
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
  const timedOut = Object.entries(t.timedOut);
  if (timedOut.length === 0 && t.failed === 0) return 'No workflow task of the due workspaces timed out or failed.';
  return (
    `Workflow tasks of the due workspaces that timed out: ${timedOut.length ? timedOut.map(([k, v]) => `${v} ${k.toLowerCase().replace(/_/g, '-')}`).join(', ') : 'none'}; ` +
    `failed: ${t.failed}; in ${t.workspaces} of ${r.history.dueTotal.length} workspaces. A schedule-to-start timeout is a task that waited longer than ` +
    `the worker's sticky queue timeout (the SDK default, 10 s) and was put back on the normal queue: 2 more history events each (timed out, scheduled again).`
  );
}

/** Short name of the server for headings and the glance line. */
export function scaleServerName(r: ScaleResult): string {
  return r.server === 'cluster' ? 'cluster (Temporal on PostgreSQL)' : 'embedded (dev server on SQLite)';
}

/** One line for "At a glance". */
export function scaleGlance(r: ScaleResult): string {
  const rates = burstRates(r);
  const cpu = cpuPerMove(r);
  const wake = okMs(r.wakes.burst);
  return (
    `- Scale, ${scaleServerName(r)}, ${r.n.toLocaleString('en-US')} workspaces (${r.due.toLocaleString('en-US')} due in one second): policy suspends late by p50 **${msText(median(r.lateMs))}**, ` +
    `p99 **${msText(percentile(r.lateMs, 99))}** (last at T + ${msText(Math.max(...r.doneOffsetMs))}), ${rates.overall.toFixed(0)} transitions/s; ` +
    `CPU per move ${msText(cpu.total)} (worker ${msText(cpu.worker)} + server ${msText(cpu.server)}); ${median(r.history.duePolicySuspend)} history events per policy suspend; ` +
    `wake during the burst p99 ${msText(percentile(wake, 99))} (${wake.length} of ${r.wakes.burst?.planned ?? 0}); worker process RSS ${mibText(r.mem.afterDue.workerRss)} before T, high-water ${mibText(workerPeak(r))}.`
  );
}

function wakeRow(name: string, s: WakeSeries | null, lastClosedAt: number): string {
  if (!s) return `| ${name} | not run | | | | | |`;
  const ok = okMs(s);
  const failed = s.samples.filter((x) => !x.ok);
  const during = Number.isFinite(lastClosedAt) ? s.samples.filter((x) => x.at <= lastClosedAt).length : NaN;
  const paths = new Map<string, number>();
  for (const x of s.samples.filter((y) => y.ok)) paths.set(x.path, (paths.get(x.path) ?? 0) + 1);
  const how = [...paths].map(([p, c]) => `${c} ${p}`).join(', ');
  return (
    `| ${name} | ${ok.length} of ${s.planned}${failed.length ? ` (${failed.length} failed: ${failed[0]!.path})` : ''}${Number.isFinite(during) ? `; ${during} called before the last due file closed` : ''} | ` +
    `${msText(median(ok))} | ${msText(percentile(ok, 90))} | **${msText(percentile(ok, 99))}** | ${msText(ok.length ? Math.max(...ok) : NaN)} | ${how || '—'} |`
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
  const cluster = r.server === 'cluster';
  const bRow = (name: string, xs: number[]) => `| ${name} | ${msText(median(xs))} | ${msText(percentile(xs, 90))} | ${msText(percentile(xs, 99))} | ${msText(xs.length ? Math.max(...xs) : NaN)} |`;
  const serverText = (c: CpuUse, per: (x: number | null) => string) => (cluster ? `Temporal ${per(c.temporalMs)} + PostgreSQL ${per(c.postgresMs)}` : `dev server ${per(c.temporalMs)}`);
  const cpuRow = (name: string, c: CpuUse | null, count: number) => {
    if (!c) return `| ${name} | not run |`;
    const per = (x: number | null) => (x === null || count === 0 ? '—' : msText(x / count));
    const both = (c.workerMs ?? 0) + serverMs(c);
    const share = c.wallMs > 0 ? `${((both / c.wallMs / 2) * 100).toFixed(0)}%` : '—';
    return `| ${name} | worker ${per(c.workerMs)}, ${serverText(c, per)}: **${per(both)}** (together ${share} of the 2 CPUs over the phase); bench client ${per(c.benchMs)} |`;
  };
  const memRow = (name: string, m: MemSample) =>
    `| ${name} | ${mibText(m.workerRss)} | ${mibText(m.workerHeapUsed)} / ${mibText(m.workerHeapTotal)} | ${m.workerFds ?? '—'} | ${mibText(m.benchRss)} | ${mibText(m.serverRss)} |${cluster ? ` ${mibText(m.postgresPss)} (${m.postgresProcs}) |` : ''}`;
  const peakRow = (name: string, p: MemPeak) =>
    `| ${name} | **${mibText(p.workerRss)}** | | ${p.workerFds ?? '—'} | ${mibText(p.benchRss)} | ${mibText(p.serverRss)} |${cluster ? ` ${mibText(p.postgresPss)} |` : ''}`;
  const cpu = cpuPerMove(r);
  const lateP99 = percentile(r.lateMs, 99);
  const wakeP99 = percentile(okMs(r.wakes.burst), 99);
  const eventsPerSuspend = r.history.duePolicySuspend.length ? Math.max(...r.history.duePolicySuspend) : NaN;
  const peak = workerPeak(r);
  const idleRate = (x: number | null) => (x === null || r.idle.wallMs <= 0 ? '—' : `${(x / (r.idle.wallMs / 1000)).toFixed(1)} ms/s`);
  const stepNames = Object.keys(b.steps);
  const out: string[] = [
    `Server: **${r.serverLabel}**; ${r.serverOrigin}. ${r.n.toLocaleString('en-US')} workspaces on one worker host (a process of its own; 2 CPUs shared with the server, ` +
      `${cluster ? "the cluster's own idle hosts and API, " : ''}and this bench; replication off), ${r.due.toLocaleString('en-US')} of them due in the same second T. ` +
      `The other ${(r.n - r.due).toLocaleString('en-US')} are idle the cheap way: **${r.idleState}** (file closed on the host's disk; the default policy's 24 h freeze timer pending). ` +
      `Workflow cache: ${r.cacheSize} (maxCachedWorkflows).`,
    '',
    `**Targets** (issue 14, for 10,000 workspaces with 1,000 due in one second; this run: ${r.n.toLocaleString('en-US')} / ${r.due.toLocaleString('en-US')}):`,
    '',
    '| target | measured | |',
    '|---|---|---|',
    `| p99 lateness < ${SCALE_TARGETS.lateP99Ms / 1000} s | ${msText(lateP99)} | ${metText(Number.isFinite(lateP99) ? lateP99 < SCALE_TARGETS.lateP99Ms : null)} |`,
    `| CPU per policy move (worker + server) < ${SCALE_TARGETS.cpuPerMoveMs} ms | ${msText(cpu.total)} (worker ${msText(cpu.worker)} + server ${msText(cpu.server)}) | ${metText(Number.isFinite(cpu.total) ? cpu.total < SCALE_TARGETS.cpuPerMoveMs : null)} |`,
    `| history events per policy suspend ≤ ${SCALE_TARGETS.eventsPerSuspend} | ${median(r.history.duePolicySuspend)} (median; max ${eventsPerSuspend}) | ${metText(Number.isFinite(eventsPerSuspend) ? eventsPerSuspend <= SCALE_TARGETS.eventsPerSuspend : null)} |`,
    `| a user's wake during the burst, p99 < ${SCALE_TARGETS.wakeP99Ms / 1000} s | ${msText(wakeP99)} (${okMs(r.wakes.burst).length} of ${r.wakes.burst?.planned ?? 0} wakes) | ${metText(Number.isFinite(wakeP99) ? wakeP99 < SCALE_TARGETS.wakeP99Ms : null)} |`,
    `| worker RSS < ${SCALE_TARGETS.workerRssBytes / MiB} MiB | high-water ${mibText(peak)} (at rest before T ${mibText(r.mem.afterDue.workerRss)}) | ${metText(peak !== null ? peak < SCALE_TARGETS.workerRssBytes : null)} |`,
    '',
    '| | |',
    '|---|---|',
    `| workspaces (N) / due (DUE) | ${r.n.toLocaleString('en-US')} / ${r.due.toLocaleString('en-US')} |`,
    `| creating the ${(r.n - r.due).toLocaleString('en-US')} idle ones (create + suspend, ${r.concurrency} at a time) | ${msText(r.background.ms)}, **${rateText(bgOk, r.background.ms)}** (create p50 ${msText(median(r.background.createMs))}, p99 ${msText(percentile(r.background.createMs, 99))}; suspend p50 ${msText(median(r.background.suspendMs))})${r.background.failed ? `; ${r.background.failed} failed` : ''} |`,
    `| creating the ${r.due.toLocaleString('en-US')} due ones (create + describe, ${r.dueConcurrency} at a time) | ${msText(r.dueCreate.ms)}, **${rateText(dueOk, r.dueCreate.ms)}** (create p50 ${msText(median(r.dueCreate.createMs))}, p99 ${msText(percentile(r.dueCreate.createMs, 99))})${r.dueCreate.failed ? `; ${r.dueCreate.failed} failed` : ''} |`,
    `| spread of the deadlines (\`nextAutoAt\` − T) | T ${fmtOff(Math.min(...off))} … T ${fmtOff(Math.max(...off))} (${msText(Math.max(...off) - Math.min(...off))}); **${inside} of ${off.length}** inside [T, T + 1 s)${r.clamped ? `; ${r.clamped} created too late for T (suspendAfter clamped to 2 s)` : ''} |`,
    `| lateness (ledger \`at\` − \`nextAutoAt\`) | p50 **${msText(median(r.lateMs))}**, p90 ${msText(percentile(r.lateMs, 90))}, p99 **${msText(lateP99)}**, max ${msText(Math.max(...r.lateMs))} (${r.lateMs.length} policy suspends) |`,
    `| last transition | T + ${msText(Math.max(...r.doneOffsetMs))} (ledger); the worker closed its last due file at T + ${msText(r.hostClosedLastMs)} |`,
    `| transitions per second | **${rates.overall.toFixed(1)}/s** over the burst (${r.doneOffsetMs.length} in ${msText(rates.windowMs)} from T); busiest second ${rates.peak} |`,
    `| per second from T | ${rates.perSecond.join(', ')} |`,
    `| missing (no policy suspend recorded) | ${r.missing.length === 0 ? 'none' : `${r.missing.length}: ${r.missing.slice(0, 3).join('; ')}`} |`,
    `| server and worker at idle (before the creates, ${msText(r.idle.wallMs)}) | worker ${idleRate(r.idle.workerMs)}, ${cluster ? `Temporal ${idleRate(r.idle.temporalMs)}, PostgreSQL ${idleRate(r.idle.postgresMs)}` : `dev server ${idleRate(r.idle.temporalMs)}`} |`,
    cpuRow(`CPU per idle workspace created (create + suspend)`, r.cpu.background, bgOk),
    cpuRow(`CPU per wake at rest`, r.cpu.restWakes, r.wakes.rest?.samples.length ?? 0),
    cpuRow(`CPU per due workspace created (create + describe)`, r.cpu.due, dueOk),
    cpuRow(`CPU per policy suspend in the burst, as measured (the burst's wakes included)`, r.cpu.burst, r.doneOffsetMs.length),
    `| CPU per policy suspend, the burst's ${r.wakes.burst?.samples.length ?? 0} wakes taken out (${msText(cpu.wakesTakenOut)} at the CPU per wake at rest less the idle rate) | worker ${msText(cpu.worker)} + server ${msText(cpu.server)} = **${msText(cpu.total)}** |`,
    `| task queues | pollers of the bench's queues: ${r.pollers.identities.length}${r.pollers.foreign.length ? `, **${r.pollers.foreign.length} not the bench's worker**: ${r.pollers.foreign.join(', ')}` : ", all the bench's worker"}; tasks of the due workspaces started by another worker: ${r.foreignTasks} |`,
    `| disk | ${(r.fileBytes / 1024).toFixed(0)} KiB per suspended live file; data dir ${mibText(r.dataDirBytes)} in all |`,
    `| the run's workflows afterwards | ${r.forgotten} |`,
    `| section run time | ${msText(r.totalMs)} |`,
    '',
    `### A user's wake (\`wake\` through our client, suspended workspaces that are not due; ${r.wakes.burst?.planned ?? r.wakes.rest?.planned ?? 0} each, one every ${msText((r.wakes.burst?.windowMs ?? r.wakes.rest?.windowMs ?? 0) / Math.max(1, r.wakes.burst?.planned ?? r.wakes.rest?.planned ?? 1))}, side by side)`,
    '',
    '| when | answered | p50 | p90 | p99 | max | how |',
    '|---|---|---:|---:|---:|---:|---|',
    wakeRow('at rest (after the idle creates, before the due ones)', r.wakes.rest, NaN),
    wakeRow('**during the burst** (from T)', r.wakes.burst, Number.isFinite(r.hostClosedLastMs) ? r.targetMs + r.hostClosedLastMs : NaN),
    '',
    '### Where the lateness goes (from each due workspace\'s history)',
    '',
    '| step | p50 | p90 | p99 | max |',
    '|---|---:|---:|---:|---:|',
    ...stepNames.map((name) => bRow(name.replace(/ queued on its task queue$/, ' queued (host queue)'), b.steps[name]!)),
    bRow('*each workflow task of the burst: scheduled → started (waiting for the worker)*', b.wftQueue),
    bRow('*each workflow task of the burst: started → completed (the worker ran it)*', b.wftRun),
    '',
    troubleText(r),
    '',
    '### Memory',
    '',
    `| when | worker RSS | worker main-thread V8 heap used / total | worker open fds | bench process RSS (client) | ${cluster ? 'Temporal server RSS' : 'dev server RSS'} |${cluster ? ' PostgreSQL PSS (processes) |' : ''}`,
    `|---|---:|---:|---:|---:|---:|${cluster ? '---:|' : ''}`,
    memRow('host started, no workspaces', r.mem.start),
    memRow(`after the ${(r.n - r.due).toLocaleString('en-US')} idle ones`, r.mem.afterBackground),
    memRow(`at rest before T (${r.due.toLocaleString('en-US')} active, all ${r.n.toLocaleString('en-US')} created)`, r.mem.afterDue),
    peakRow('peak while creating (1 s samples)', r.mem.creationPeak),
    peakRow(`peak during the burst (${r.mem.burstPeak.samples} samples, 200 ms apart)`, r.mem.burstPeak),
    memRow('after the burst', r.mem.afterBurst),
    `| high-water mark (VmHWM) over the whole section | **${mibText(r.mem.workerHwm)}** | | | ${mibText(r.mem.benchHwm)} | ${mibText(r.mem.serverHwm)} |${cluster ? ' |' : ''}`,
    '',
    `Over the idle creates the worker grew by ${mibText((r.mem.afterBackground.workerRss ?? NaN) - (r.mem.start.workerRss ?? NaN))} RSS, ` +
      `${(((r.mem.afterBackground.workerRss ?? NaN) - (r.mem.start.workerRss ?? NaN)) / 1024 / Math.max(1, Math.min(bgOk, r.cacheSize))).toFixed(0)} KiB per workflow it could cache ` +
      `(${Math.min(bgOk, r.cacheSize).toLocaleString('en-US')} at most; ${(bgOk - Math.min(bgOk, r.cacheSize)).toLocaleString('en-US')} more were evicted and live only in Temporal): ` +
      `an upper bound, since it includes garbage not yet collected. ` +
      `The ${cluster ? 'Temporal server' : 'dev server'} grew by ${mibText((r.mem.afterBackground.serverRss ?? NaN) - (r.mem.start.serverRss ?? NaN))} for ${bgOk.toLocaleString('en-US')} workflows` +
      (cluster ? `, PostgreSQL by ${mibText((r.mem.afterBackground.postgresPss ?? NaN) - (r.mem.start.postgresPss ?? NaN))} (PSS).` : '.'),
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
    '- **How**: the bench process (its client) drives one worker host in a child process (bench/scale-worker.ts: shared',
    '  and host task queues of a queue name of its own, data server; no Litestream: replicaUrl off; file:// cold and',
    '  archive in the bench\'s temp dir) against the server named above. Idle workspaces: `create` then',
    '  `transition(id, "suspended")`. Due workspaces: `create` with `suspendAfter` = (T + 500 ms) − now − the running',
    '  median of the lag between the call and the moment the workflow starts counting idle, in seconds with ms decimals',
    '  (`freezeAfter` never), then `describe` for the real `nextAutoAt` (at most 4 creates in flight: a shorter, steadier',
    '  lag). T is a whole second far enough ahead for all due creates to finish in twice the time the idle creation',
    '  rate gives (+ 20 s). The due workspaces are created last, so they are the ones in the worker\'s workflow cache;',
    '  most idle ones have been evicted. The end of the burst is reported by the worker process over IPC (it has closed',
    '  every due file; polled there every 20 ms); then each due ledger gives its active → suspended entry',
    '  (`by: policy`): lateness = its `at` − `nextAutoAt`. The steps of a move are read from each history: the timer,',
    '  then each activity the move ran (scheduled by a workflow task, queued, run), then the workflow task that',
    '  records it.',
    '- **Wakes**: 2 × W suspended idle workspaces spread evenly over the idle ones (most evicted from the workflow',
    '  cache, so a wake replays the history first); half are woken at rest after the idle creates, the other half from',
    '  T on, one call every window ÷ W, without waiting for the one before; each timed from the call to the answer.',
    '  They are never due workspaces; their CPU is measured at rest (less the idle rate over that phase) and taken out',
    '  of the burst\'s CPU per move (both shown). At small N the wakes are a large share of the burst\'s work.',
    '- **Memory**: the worker\'s VmRSS / VmHWM / fds from /proc/<pid> (its Rust core, the workflow worker thread with',
    '  the cached workflows, activities, data server); its V8 heap is the main thread\'s only (asked over IPC; workflow',
    '  code runs in a worker thread whose heap is inside RSS). The bench process holds the client only. Server:',
    cluster
      ? '  VmRSS of the Temporal server process; PostgreSQL as the sum of PSS over the postmaster and its backends (shared buffers counted once).'
      : '  VmRSS of the dev server process.',
    '- **CPU**: user + system time (/proc/<pid>/stat, all threads) of the worker process, of the Temporal server' +
      (cluster ? ' and of every PostgreSQL process (exited backends through the postmaster\'s cutime/cstime)' : ''),
    '  over each phase, divided by the workspaces (or transitions) of the phase. The burst runs from 2 s before the',
    '  first deadline to 2 s after the last due file closed and the last burst wake answered.' + (cluster ? " The cluster's own hosts and API are idle but poll the server: its idle rate is above." : ''),
    '- **History events**: `historyLength` after each move (after each state change seen by a 50 ms poll for the',
    '  ladder), split by event kind from the fetched history. Queries (describe) add no events.',
  ];
  if (r.background.errors.length || r.dueCreate.errors.length) out.push('', `Errors: ${[...r.background.errors, ...r.dueCreate.errors].join('; ')}`);
  return out.join('\n');
}
