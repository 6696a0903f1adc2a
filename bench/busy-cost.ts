/**
 * The cost of being busy: a workspace serving many reads and writes inside one idle window adds nothing to its
 * workflow history; only the idle deadline, when it comes, costs the check of the host's last access and the
 * re-armed timer.
 *
 *   1. pilot      a throwaway workspace (no idle policy) takes a short burst of the same load: its rate sizes the
 *                 idle window so that the whole measured run fits in one window (or BENCH_BUSY_WINDOW)
 *   2. baseline   the same operations (same mix, paths and payloads) on the product's Vfs in this process,
 *                 on a scratch file: the raw SQLite work without HTTP, the host or Temporal (median of runs)
 *   3. workspace  created with `suspendAfter` = the window: one durable timer, armed at creation, fires once
 *                 at `nextAutoAt`; the working set is written (untimed); its history is counted
 *   4. load       `ops` requests straight to the host's data server (`describe().endpoint`), half PUT half GET of
 *                 1 KiB files, `concurrency` keep-alive connections, from a worker thread (so the load generator
 *                 does not share the event loop with the worker host running in this process); then
 *                 `clientOps` more through `WorkbooksClient.putFile` / `getFile` (a `describe` query each)
 *   5. history    counted again right after the load (before the deadline): what the load added
 *   6. deadline   waited for; the events it adds (timer fired → stopIfIdle, a local activity when this host runs the workflow
 *                 task, else a task on the host's queue, which finds it busy → timer re-armed) are listed,
 *                 and the workspace must still be active with its deadline moved past the last use
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { temporal } from '@temporalio/proto';
import type { TestDevServer } from '../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue, TEST_DATA_KEY } from '../harness/stack';
import { localActivityType } from '../harness/history';
import { MAX_GRANT_TTL_SECONDS } from '../src/grants';
import type { WorkbooksClient } from '../src/client/workbooks-client';
import { workflowIdFor } from '../src/contract/ids';
import { Vfs } from '../src/vfs/vfs';
import { onInterrupt } from './cleanup';

export interface HistoryEvent {
  id: number;
  type: string;
  /** Activity type, timer duration, update name… where the event has one. */
  detail: string;
  /** Event time (epoch ms). */
  at: number;
}

export interface LoadRun {
  ops: number;
  reads: number;
  writes: number;
  ms: number;
  /** Per-request latency percentiles (ms). */
  p50: number;
  p99: number;
}

export interface BusyCostResult {
  ops: number;
  concurrency: number;
  payloadBytes: number;
  files: number;
  /** The workspace's idle window (suspendAfter) and how it was chosen. */
  windowMs: number;
  windowFrom: string;
  pilot: LoadRun;
  /** Straight to the data server. */
  load: LoadRun;
  /** Through WorkbooksClient.putFile / getFile (describe query + request each). */
  client: LoadRun | null;
  /** The same operations on the Vfs in this process (each run; the median is the baseline). */
  baselineMs: number[];
  /** History before the load, after it (before the deadline), and after the deadline's re-arm. */
  eventsBefore: number;
  addedByLoad: HistoryEvent[];
  /** Of those, added by the direct load alone (counted between the two loads). */
  addedByDirect: number;
  addedByDeadline: HistoryEvent[];
  /** Times (epoch ms): load start/end, the deadline, when the re-arm was seen; the re-armed deadline. */
  loadStartAt: number;
  loadEndAt: number;
  deadlineAt: number;
  nextDeadlineAt: number | null;
  stateAfter: string;
  /** Resident memory of this process (bench + worker host + load thread): before, peak during, after the load. */
  rss: { before: number; peak: number; after: number };
  totalMs: number;
}

export interface BusyCostOptions {
  server: TestDevServer;
  ops: number;
  /** Requests through the client API after the direct load (default 1000). */
  clientOps?: number;
  concurrency?: number;
  payloadBytes?: number;
  files?: number;
  /** Idle window in seconds (default: from the pilot). */
  windowSeconds?: number;
  /** Baseline runs (default 3). */
  baselineRuns?: number;
  baseDir?: string;
  log?(line: string): void;
}

// ---------------------------------------------------------------------------------------------------------------

/** The load generator, run in a worker thread: plain node:http with a keep-alive agent. */
const LOAD_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const { endpoint, placement, grant, id, ops, concurrency, files, payload } = workerData;
const base = new URL(endpoint);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const body = Buffer.from(payload);
const lat = new Float64Array(ops);
function request(method, p, data) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, method, path: p, agent,
      headers: { 'x-workbooks-placement': String(placement), authorization: 'Bearer ' + grant, ...(data ? { 'content-type': 'application/octet-stream', 'content-length': data.length } : {}) } }, (res) => {
      let n = 0;
      res.on('data', (c) => (n += c.length));
      res.on('end', () => resolve({ status: res.statusCode, bytes: n }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}
let next = 0, reads = 0, writes = 0;
async function lane() {
  for (let i = next++; i < ops; i = next++) {
    const write = i % 2 === 0;
    const p = '/workspaces/' + id + '/files/workspace/busy/' + String((write ? i >> 1 : (i * 7919) >> 1) % files).padStart(4, '0') + '.bin';
    const t0 = performance.now();
    const r = await request(write ? 'PUT' : 'GET', p, write ? body : undefined);
    lat[i] = performance.now() - t0;
    if (r.status !== 200) throw new Error((write ? 'PUT ' : 'GET ') + p + ' answered ' + r.status);
    if (!write && r.bytes !== body.length) throw new Error('GET ' + p + ' returned ' + r.bytes + ' bytes');
    if (write) writes++; else reads++;
  }
}
const t0 = performance.now();
Promise.all(Array.from({ length: concurrency }, lane)).then(
  () => { const ms = performance.now() - t0; agent.destroy(); parentPort.postMessage({ ms, reads, writes, lat }, [lat.buffer]); },
  (err) => { agent.destroy(); parentPort.postMessage({ error: String(err && err.stack || err) }); },
);
`;

function elapsed(t0: number): number {
  return performance.now() - t0;
}

function pct(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length))) - 1]!;
}

function filePath(n: number): string {
  return `/busy/${String(n).padStart(4, '0')}.bin`;
}

/** `ops` requests to the data server from a worker thread. */
/** One grant for the whole load (read and write; valid for the longest a host accepts): the client's signature, made once. */
function benchGrant(id: string, placement: number | null): string {
  return TEST_DATA_KEY.sign({ workspaceId: id, placement, ops: ['read', 'write'], expiresAt: Math.floor(Date.now() / 1000) + MAX_GRANT_TTL_SECONDS - 5 });
}

function directLoad(endpoint: string, placement: number | null, id: string, ops: number, concurrency: number, files: number, payload: Buffer): Promise<LoadRun> {
  return new Promise((resolve, reject) => {
    const w = new Worker(LOAD_WORKER, { eval: true, workerData: { endpoint, placement, grant: benchGrant(id, placement), id, ops, concurrency, files, payload: new Uint8Array(payload) } });
    w.once('message', (m: { error?: string; ms: number; reads: number; writes: number; lat: Float64Array }) => {
      void w.terminate();
      if (m.error) return reject(new Error(`load: ${m.error}`));
      const lat = m.lat.sort();
      resolve({ ops, reads: m.reads, writes: m.writes, ms: m.ms, p50: pct(lat, 50), p99: pct(lat, 99) });
    });
    w.once('error', reject);
  });
}

/** `ops` requests through the client API (each: a describe query, then the request), `concurrency` at a time. */
async function clientLoad(wb: WorkbooksClient, id: string, ops: number, concurrency: number, files: number, payload: Buffer): Promise<LoadRun> {
  const lat: number[] = new Array(ops);
  let next = 0;
  let reads = 0;
  let writes = 0;
  const lane = async () => {
    for (let i = next++; i < ops; i = next++) {
      const write = i % 2 === 0;
      const p = filePath((write ? i >> 1 : (i * 7919) >> 1) % files);
      const t0 = performance.now();
      if (write) {
        await wb.putFile(id, 'workspace', p, payload);
        writes++;
      } else {
        const got = await wb.getFile(id, 'workspace', p);
        if (got.length !== payload.length) throw new Error(`getFile ${p} returned ${got.length} bytes`);
        reads++;
      }
      lat[i] = elapsed(t0);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, lane));
  const ms = elapsed(t0);
  lat.sort((a, b) => a - b);
  return { ops, reads, writes, ms, p50: pct(lat, 50), p99: pct(lat, 99) };
}

/** The same mix on the Vfs in this process, on a fresh scratch file with the same working set. */
function vfsBaseline(file: string, ops: number, files: number, payload: Buffer): number {
  for (const s of ['', '-wal', '-shm']) fs.rmSync(file + s, { force: true });
  const vfs = Vfs.open(file, { create: true });
  try {
    for (let n = 0; n < files; n++) vfs.put('workspace', filePath(n), payload);
    const t0 = performance.now();
    for (let i = 0; i < ops; i++) {
      const write = i % 2 === 0;
      const p = filePath((write ? i >> 1 : (i * 7919) >> 1) % files);
      if (write) vfs.put('workspace', p, payload);
      else if (vfs.get('workspace', p)?.length !== payload.length) throw new Error(`baseline: ${p} missing`);
    }
    return elapsed(t0);
  } finally {
    vfs.close();
    for (const s of ['', '-wal', '-shm']) fs.rmSync(file + s, { force: true });
  }
}

const EVENT_TYPES = temporal.api.enums.v1.EventType as unknown as Record<number, string>;

function typeName(t: number | null | undefined): string {
  const raw = EVENT_TYPES[t ?? 0] ?? `EVENT_TYPE_${t}`;
  return raw
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .replace(/(^|_)([a-z])/g, (_, __, c: string) => c.toUpperCase());
}

type Long = { toString(): string } | number | string | null | undefined;
function tsMs(t: { seconds?: Long; nanos?: number | null } | null | undefined): number {
  if (!t) return NaN;
  return Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6;
}

function durSeconds(d: { seconds?: Long; nanos?: number | null } | null | undefined): string {
  if (!d) return '';
  return `${(Number(String(d.seconds ?? 0)) + (d.nanos ?? 0) / 1e9).toFixed(1)} s`;
}

export async function historyEvents(server: TestDevServer, workspaceId: string): Promise<HistoryEvent[]> {
  const events = (await server.client.workflow.getHandle(workflowIdFor(workspaceId)).fetchHistory()).events ?? [];
  return events.map((e) => {
    let detail = '';
    if (e.activityTaskScheduledEventAttributes) detail = e.activityTaskScheduledEventAttributes.activityType?.name ?? '';
    else if (e.markerRecordedEventAttributes) detail = localActivityType(e) ?? e.markerRecordedEventAttributes.markerName ?? '';
    else if (e.timerStartedEventAttributes) detail = durSeconds(e.timerStartedEventAttributes.startToFireTimeout);
    else if (e.workflowExecutionUpdateAcceptedEventAttributes) detail = e.workflowExecutionUpdateAcceptedEventAttributes.acceptedRequest?.input?.name ?? '';
    else if (e.workflowExecutionSignaledEventAttributes) detail = e.workflowExecutionSignaledEventAttributes.signalName ?? '';
    return { id: Number(String(e.eventId)), type: typeName(e.eventType), detail, at: tsMs(e.eventTime) };
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function measureBusyCost(opts: BusyCostOptions): Promise<BusyCostResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const concurrency = opts.concurrency ?? 8;
  const payloadBytes = opts.payloadBytes ?? 1024;
  const files = opts.files ?? 256;
  const clientOps = opts.clientOps ?? 1000;
  const baselineRuns = opts.baselineRuns ?? 3;
  const t00 = performance.now();
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-busy-'));
  const dataDir = path.join(root, 'host');
  const ids: string[] = [];
  let host: TestHost | undefined;
  const cleanup = async () => {
    await host?.stop().catch(() => undefined);
    host = undefined;
    for (const id of ids.splice(0)) await opts.server.client.workflow.getHandle(workflowIdFor(id)).terminate('bench cleanup').catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  };
  const forget = onInterrupt(cleanup);
  try {
    const taskQueue = uniqueQueue('bench-busy');
    // The product's default replication (file:// replicas in the data dir): Litestream follows every write.
    host = await startTestHost({ connection: opts.server.connection, client: opts.server.client, taskQueue, hostId: `bench-busy-${crypto.randomBytes(2).toString('hex')}`, dataDir });
    await host.host.reconciled;
    const wb = clientFor(opts.server.client, taskQueue);
    const tag = crypto.randomBytes(3).toString('hex');
    const payload = crypto.randomBytes(payloadBytes);

    // ---- 1. pilot: sizes the window
    const pilotId = `busy-pilot-${tag}`;
    ids.push(pilotId);
    await wb.create({ workspaceId: pilotId, tenant: 'bench', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
    for (let n = 0; n < files; n++) await wb.putFile(pilotId, 'workspace', filePath(n), payload);
    const pilotDescription = await wb.describe(pilotId);
    const pilotEndpoint = pilotDescription.endpoint!;
    // Twice: the first warms up (JIT, connections, the new file's pages); the second is the estimate.
    const pilotOps = Math.min(opts.ops, Math.max(2000, Math.round(opts.ops / 20)));
    await directLoad(pilotEndpoint, pilotDescription.placement, pilotId, pilotOps, concurrency, files, payload);
    const pilot = await directLoad(pilotEndpoint, pilotDescription.placement, pilotId, pilotOps, concurrency, files, payload);
    const pilotClient = clientOps > 0 ? await clientLoad(wb, pilotId, Math.min(clientOps, 200), concurrency, files, payload) : null;
    await wb.transition(pilotId, 'suspended');
    const estMs = (opts.ops / pilot.ops) * pilot.ms + (pilotClient ? (clientOps / pilotClient.ops) * pilotClient.ms : 0);
    const windowMs = opts.windowSeconds ? Math.round(opts.windowSeconds * 1000) : Math.max(20_000, Math.ceil((2 * estMs + 15_000) / 1000) * 1000);
    const windowFrom = opts.windowSeconds ? 'BENCH_BUSY_WINDOW' : `2 × the run time estimated from a pilot of ${pilot.ops} requests (${(pilot.ops / (pilot.ms / 1000)).toFixed(0)} req/s) + 15 s`;
    log(`  pilot: ${pilot.ops} requests in ${(pilot.ms / 1000).toFixed(1)} s (${(pilot.ops / (pilot.ms / 1000)).toFixed(0)}/s); estimated run ${(estMs / 1000).toFixed(0)} s → idle window ${windowMs / 1000} s`);

    // ---- 2. baseline: the same operations on the Vfs in this process
    const baselineMs: number[] = [];
    const scratchFile = path.join(root, 'baseline.sqlite');
    for (let r = 0; r < baselineRuns; r++) baselineMs.push(vfsBaseline(scratchFile, opts.ops, files, payload));
    log(`  baseline: ${opts.ops} operations on the Vfs in process: ${baselineMs.map((x) => x.toFixed(0)).join(', ')} ms`);

    // ---- 3. the workspace: one idle window
    const id = `busy-${tag}`;
    ids.push(id);
    await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: `${windowMs / 1000}s`, freezeAfter: 'never' } });
    for (let n = 0; n < files; n++) await wb.putFile(id, 'workspace', filePath(n), payload);
    const d0 = await wb.describe(id);
    if (d0.state !== 'active' || !d0.endpoint || !d0.nextAutoAt) throw new Error(`${id}: ${d0.state}, endpoint ${d0.endpoint}, next ${d0.nextAutoAt}`);
    const deadlineAt = Date.parse(d0.nextAutoAt);
    const before = await historyEvents(opts.server, id);
    log(`  ${id}: ${before.length} history events before the load; idle deadline in ${((deadlineAt - Date.now()) / 1000).toFixed(0)} s`);

    // ---- 4. load
    const rssBefore = process.memoryUsage().rss;
    let rssPeak = rssBefore;
    const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, process.memoryUsage().rss)), 250);
    const loadStartAt = Date.now();
    let load: LoadRun;
    let client: LoadRun | null = null;
    let addedByDirect = 0;
    try {
      load = await directLoad(d0.endpoint, d0.placement, id, opts.ops, concurrency, files, payload);
      addedByDirect = (await historyEvents(opts.server, id)).length - before.length;
      log(`  load: ${load.ops} requests in ${(load.ms / 1000).toFixed(1)} s (${(load.ops / (load.ms / 1000)).toFixed(0)}/s, p50 ${load.p50.toFixed(2)} ms, p99 ${load.p99.toFixed(2)} ms)`);
      if (clientOps > 0) {
        client = await clientLoad(wb, id, clientOps, concurrency, files, payload);
        log(`  client: ${client.ops} putFile/getFile in ${(client.ms / 1000).toFixed(1)} s (${(client.ops / (client.ms / 1000)).toFixed(0)}/s)`);
      }
    } finally {
      clearInterval(sampler);
    }
    const loadEndAt = Date.now();
    const rssAfter = process.memoryUsage().rss;

    // ---- 5. history right after the load
    const afterLoad = await historyEvents(opts.server, id);
    const addedByLoad = afterLoad.slice(before.length);
    if (loadEndAt >= deadlineAt) log(`  NOTE: the load ran past the idle deadline (${((loadEndAt - deadlineAt) / 1000).toFixed(1)} s); the deadline's events fall inside it`);
    log(`  history: ${before.length} → ${afterLoad.length} events over the load${addedByLoad.length ? ` (${addedByLoad.map((e) => e.type).join(', ')})` : ''}`);

    // ---- 6. the deadline: wait for the timer to fire and be re-armed
    log(`  waiting ${Math.max(0, (deadlineAt - Date.now()) / 1000).toFixed(0)} s for the idle deadline…`);
    await sleep(Math.max(0, deadlineAt - Date.now()));
    let after = afterLoad;
    const until = Date.now() + 60_000;
    for (;;) {
      after = await historyEvents(opts.server, id);
      const added = after.slice(afterLoad.length);
      const fired = added.findIndex((e) => e.type === 'TimerFired');
      if (fired >= 0 && added.slice(fired).some((e) => e.type === 'TimerStarted')) break;
      if (Date.now() > until) throw new Error(`${id}: no timer fired and re-armed within 60 s of the deadline (added: ${added.map((e) => e.type).join(', ') || 'none'})`);
      await sleep(250);
    }
    await sleep(1000); // anything that would follow the re-arm in the same burst
    after = await historyEvents(opts.server, id);
    const d1 = await wb.describe(id);
    log(`  deadline: ${after.length - afterLoad.length} events (${after.slice(afterLoad.length).map((e) => e.type + (e.detail ? ` ${e.detail}` : '')).join(', ')}); state ${d1.state}, next deadline ${d1.nextAutoAt}`);

    return {
      ops: opts.ops,
      concurrency,
      payloadBytes,
      files,
      windowMs,
      windowFrom,
      pilot,
      load,
      client,
      baselineMs,
      eventsBefore: before.length,
      addedByLoad,
      addedByDirect,
      addedByDeadline: after.slice(afterLoad.length),
      loadStartAt,
      loadEndAt,
      deadlineAt,
      nextDeadlineAt: d1.nextAutoAt ? Date.parse(d1.nextAutoAt) : null,
      stateAfter: d1.state,
      rss: { before: rssBefore, peak: rssPeak, after: rssAfter },
      totalMs: elapsed(t00),
    };
  } finally {
    forget();
    await cleanup();
  }
}
