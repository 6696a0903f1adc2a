/**
 * Where the time inside an activity goes, from the activity's own heartbeats.
 *
 * The host activities heartbeat `{ bytesCopied, phase }` as they work (storeLocal: fold → hash → copy → verify →
 * integrity). Heartbeat details never reach the workflow history, but the worker host runs in the bench's own
 * process, so wrapping the activity context's `heartbeat` there sees every call with a local timestamp. Installed
 * once, before any worker starts; it only records and passes every call on unchanged.
 *
 * A phase runs from its first heartbeat to the first heartbeat of the next phase (the last one to the end of the
 * activity). Progress heartbeats come after the first chunk of a phase is done, so each boundary is late by one
 * chunk of the phase that starts there (a few ms locally; on S3 the first ranged GET's latency).
 */
import type { AsyncLocalStorage } from 'node:async_hooks';
import { Context, asyncLocalStorage } from '@temporalio/activity';

export interface PhaseTiming {
  phase: string;
  ms: number;
}

interface Trace {
  workflowId: string;
  activityType: string;
  attempt: number;
  startMs: number;
  endMs: number | null;
  /** Phases in the order first seen, with the time each was first seen. */
  marks: { phase: string; atMs: number }[];
}

const traces: Trace[] = [];
let installed = false;

export function installHeartbeatTap(): void {
  if (installed) return;
  installed = true;
  const als = asyncLocalStorage as AsyncLocalStorage<unknown>;
  const run = als.run;
  als.run = function tappedRun<R>(this: AsyncLocalStorage<unknown>, store: unknown, callback: (...args: unknown[]) => R, ...args: unknown[]): R {
    if (!(store instanceof Context) || store.info.isLocal) return run.call(this, store, callback, ...args) as R;
    const t: Trace = {
      workflowId: store.info.workflowExecution?.workflowId ?? '',
      activityType: store.info.activityType,
      attempt: store.info.attempt,
      startMs: performance.now(),
      endMs: null,
      marks: [],
    };
    traces.push(t);
    if (traces.length > 10_000) traces.splice(0, traces.length - 10_000);
    const ctx = store as { heartbeat: (details?: unknown) => void };
    const heartbeat = ctx.heartbeat;
    ctx.heartbeat = (details?: unknown) => {
      const phase = (details as { phase?: unknown } | undefined)?.phase;
      if (typeof phase === 'string' && t.marks.at(-1)?.phase !== phase) t.marks.push({ phase, atMs: performance.now() });
      heartbeat(details);
    };
    const out = run.call(this, store, callback, ...args) as R;
    const done = () => {
      t.endMs = performance.now();
    };
    if (out && typeof (out as { then?: unknown }).then === 'function') (out as unknown as Promise<unknown>).then(done, done);
    else done();
    return out;
  } as typeof als.run;
}

/**
 * Phases of the newest finished run of `activityType` for `workflowId`, the first entry ('start') being the
 * time before the first heartbeat. Null when none was traced (tap not installed, or the activity ran elsewhere).
 */
export function lastPhases(workflowId: string, activityType: string): { totalMs: number; phases: PhaseTiming[] } | null {
  for (let i = traces.length - 1; i >= 0; i--) {
    const t = traces[i]!;
    if (t.workflowId !== workflowId || t.activityType !== activityType || t.endMs === null) continue;
    const phases: PhaseTiming[] = [];
    let from = t.startMs;
    let name = 'start';
    for (const m of t.marks) {
      phases.push({ phase: name, ms: m.atMs - from });
      from = m.atMs;
      name = m.phase;
    }
    phases.push({ phase: name, ms: t.endMs - from });
    return { totalMs: t.endMs - t.startMs, phases };
  }
  return null;
}
