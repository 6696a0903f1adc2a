/**
 * Users' wakes during the scale bench: W `wake` calls through our client on suspended workspaces (never the due
 * ones), started one by one at even intervals over a window from a given moment, each timed from the call to its
 * answer; they run side by side (a wake does not wait for the one before it).
 */
import type { WorkbooksClient } from '../src/client/workbooks-client';

export interface WakeSample {
  id: string;
  /** Date.now() at the call. */
  at: number;
  /** Call → answer (ms); NaN if it failed. */
  ms: number;
  /** How the workspace was woken (the client's WakeResult.path), or the error. */
  path: string;
  ok: boolean;
}

export interface WakeSeries {
  /** What the series is (e.g. "at rest, after the idle creates"). */
  label: string;
  planned: number;
  windowMs: number;
  /** Date.now() of the first call. */
  startAt: number;
  samples: WakeSample[];
}

/** A wake not answered in this long counts as failed (the bench does not wait for ever). */
const WAKE_WAIT_MS = 120_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export async function timedWakes(wb: WorkbooksClient, ids: string[], opts: { label: string; startAt: number; windowMs: number }): Promise<WakeSeries> {
  const samples: WakeSample[] = [];
  const step = ids.length > 1 ? opts.windowMs / ids.length : 0;
  await Promise.all(
    ids.map(async (id, i) => {
      await sleep(Math.max(0, opts.startAt + i * step - Date.now()));
      const at = Date.now();
      const t = performance.now();
      try {
        const r = await wb.wake(id, { reason: 'bench: a user wakes it', by: 'bench-user' }, { waitMs: WAKE_WAIT_MS });
        samples.push({ id, at, ms: performance.now() - t, path: String((r as { path?: unknown }).path ?? 'ok'), ok: true });
      } catch (err) {
        samples.push({ id, at, ms: NaN, path: (err as Error).message.slice(0, 200), ok: false });
      }
    }),
  );
  samples.sort((a, b) => a.at - b.at);
  return { label: opts.label, planned: ids.length, windowMs: opts.windowMs, startAt: opts.startAt, samples };
}
