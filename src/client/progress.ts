/**
 * Progress of a workspace's long operations (freeze, archive, wake from cold, restore), read from its
 * workflow's pending activities: their latest heartbeat carries `{ bytesCopied, phase, bytesTotal? }`
 * (CopyHeartbeat). Heartbeats never enter workflow history; the server keeps only the latest per pending
 * activity and returns it in DescribeWorkflowExecution. Nothing here writes anything.
 */
import { defaultPayloadConverter } from '@temporalio/common';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import type { CopyHeartbeat } from '../contract/data-plane';
import type { WorkbooksClient } from './workbooks-client';

type PendingActivityInfo = temporal.api.workflow.v1.IPendingActivityInfo;

/** What one pending activity of the workspace is doing, as of its latest heartbeat. */
export interface ActivityProgress {
  /** Activity type, e.g. storeLocal, restoreLocal, archiveColdCopy, provision. */
  activity: string;
  activityId: string;
  /** The heartbeat's phase (fold, hash, copy, verify or verify-in-place, integrity, clone, backup, restore); null before the first one. */
  phase: string | null;
  /** Bytes of the current phase done; 0 before the first heartbeat. */
  bytesCopied: number;
  /** Bytes the current phase handles in all, when the activity knows it. */
  bytesTotal: number | null;
  /** 1 for the first attempt; more after retries (a retry's details are the last attempt's until it heartbeats). */
  attempt: number;
  /** scheduled: waiting for a worker (or a retry's backoff); started: running. */
  state: 'scheduled' | 'started' | 'cancel_requested' | 'unknown';
  /** When the server received the latest heartbeat (server clock), or null. */
  heartbeatAt: Date | null;
  /** The previous attempt's failure message, if it failed. */
  lastFailure: string | null;
}

const STATES: Record<number, ActivityProgress['state']> = { 1: 'scheduled', 2: 'started', 3: 'cancel_requested' };

/**
 * The progress of the workspace's current long activity, or null when it has no pending activity (or its
 * workflow does not exist yet). With several pending, the one that heartbeated last wins, then a running one.
 * Other errors (Temporal unreachable) are thrown.
 */
export async function activityProgress(client: WorkbooksClient, workspaceId: string): Promise<ActivityProgress | null> {
  let pending: PendingActivityInfo[];
  try {
    const d = await client.handle(workspaceId).describe();
    pending = d.raw.pendingActivities ?? [];
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
  const all = pending.map(toProgress);
  if (all.length === 0) return null;
  const rank = (p: ActivityProgress) => (p.heartbeatAt ? 2 : 0) + (p.state === 'started' ? 1 : 0);
  return all.reduce((best, p) => {
    const r = rank(p) - rank(best);
    if (r !== 0) return r > 0 ? p : best;
    return (p.heartbeatAt?.getTime() ?? 0) > (best.heartbeatAt?.getTime() ?? 0) ? p : best;
  });
}

/** One pending activity's progress; heartbeat details that are not a CopyHeartbeat count as none. */
export function toProgress(a: PendingActivityInfo): ActivityProgress {
  const hb = decodeHeartbeat(a.heartbeatDetails?.payloads ?? []);
  return {
    activity: a.activityType?.name ?? 'activity',
    activityId: a.activityId ?? '',
    phase: hb?.phase ?? null,
    bytesCopied: hb?.bytesCopied ?? 0,
    bytesTotal: hb?.bytesTotal ?? null,
    attempt: typeof a.attempt === 'number' && a.attempt > 0 ? a.attempt : 1,
    state: STATES[a.state as number] ?? 'unknown',
    heartbeatAt: hb ? tsToDate(a.lastHeartbeatTime) : null,
    lastFailure: a.lastFailure?.message || null,
  };
}

/** The first heartbeat detail, when it is a CopyHeartbeat; null otherwise (none yet, other shape, undecodable). */
export function decodeHeartbeat(payloads: Parameters<typeof defaultPayloadConverter.fromPayload>[0][]): CopyHeartbeat | null {
  if (payloads.length === 0) return null;
  let v: unknown;
  try {
    v = defaultPayloadConverter.fromPayload(payloads[0]!);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const { bytesCopied, phase, bytesTotal } = v as Record<string, unknown>;
  if (typeof phase !== 'string' || !isCount(bytesCopied)) return null;
  return isCount(bytesTotal) ? { phase, bytesCopied, bytesTotal } : { phase, bytesCopied };
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x) && x >= 0;
}

function tsToDate(ts: { seconds?: unknown; nanos?: number | null } | null | undefined): Date | null {
  if (!ts || ts.seconds === undefined || ts.seconds === null) return null;
  const s = ts.seconds as number | { toNumber(): number };
  const seconds = typeof s === 'number' ? s : typeof s.toNumber === 'function' ? s.toNumber() : Number(s);
  if (!Number.isFinite(seconds) || seconds <= 0) return null;
  return new Date(seconds * 1000 + Math.floor((ts.nanos ?? 0) / 1e6));
}

export interface WatchOptions {
  /** Time between polls (default 500 ms); after failures the wait doubles, up to 5 s. */
  everyMs?: number;
  /** Stops the watch when aborted. */
  signal?: AbortSignal;
  /** Called for each failed poll (the watch goes on). */
  onError?(err: unknown): void;
}

export interface ProgressWatch {
  /** Stops polling; resolves once no poll is in flight and `onProgress` will not be called again. */
  stop(): Promise<void>;
}

/**
 * Polls `activityProgress` until stopped, calling `onProgress` with each poll's answer (null: nothing pending).
 * One poll at a time; a failing poll (describe refused, Temporal briefly unreachable) is reported to
 * `onError` and retried later, never thrown; an error thrown by `onProgress` is reported the same way.
 */
export function watchProgress(
  client: WorkbooksClient,
  workspaceId: string,
  onProgress: (p: ActivityProgress | null) => void,
  opts: WatchOptions = {},
): ProgressWatch {
  const everyMs = Math.max(10, opts.everyMs ?? 500);
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  let wake: (() => void) | null = null;
  const stopNow = () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    wake?.();
  };
  opts.signal?.addEventListener('abort', stopNow, { once: true });
  if (opts.signal?.aborted) stopped = true;

  const loop = (async () => {
    let failures = 0;
    while (!stopped) {
      try {
        const p = await activityProgress(client, workspaceId);
        failures = 0;
        if (!stopped) onProgress(p);
      } catch (err) {
        failures++;
        try {
          opts.onError?.(err);
        } catch {
          // a failing error handler must not end the watch
        }
      }
      if (stopped) break;
      const wait = failures === 0 ? everyMs : Math.min(5000, everyMs * 2 ** Math.min(failures, 10));
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, wait);
      });
      wake = null;
      timer = null;
    }
  })();

  return {
    stop() {
      stopNow();
      opts.signal?.removeEventListener('abort', stopNow);
      return loop;
    },
  };
}
