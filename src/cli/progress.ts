/**
 * Progress bars of long CLI commands (freeze, archive, wake, restore, export), drawn on stderr with cli-progress
 * and fed by the workspace's pending activity's heartbeats (src/client/progress.ts) or, for an export, by the
 * bytes this process receives. Only on a terminal and without --json / --no-progress: otherwise nothing extra
 * is printed, so scripts see exactly the output they saw before.
 *
 *   freeze · storeLocal copy [██████████░░░░░░░░░░]  50% 2.0/4.0 MiB · 1.0 MiB/s · ETA 2s
 *   restore · provision restore · 12s
 */
import { SingleBar } from 'cli-progress';
import type { WorkbooksClient } from '../client/workbooks-client';
import { ActivityProgress, watchProgress } from '../client/progress';

/** Whether a command should draw a bar: stderr is a terminal, no --json, no --no-progress, TERM is not dumb. */
export function progressEnabled(o: { json?: boolean; progress?: boolean }, stream: { isTTY?: boolean } = process.stderr, env: NodeJS.ProcessEnv = process.env): boolean {
  return !o.json && o.progress !== false && stream.isTTY === true && env.TERM !== 'dumb';
}

/** What one line of the bar shows. */
export interface ProgressView {
  /** The command: freeze, wake, export… */
  label: string;
  /** The activity (storeLocal, restoreLocal…) or, for bytes this process moves, what it does (download). */
  step: string;
  /** The activity's phase (copy, verify…), or null before its first heartbeat. */
  phase: string | null;
  done: number;
  total: number | null;
  /** Bytes per second of the current phase, once measurable. */
  rateBps: number | null;
  /** Seconds left in the current phase, when its total and rate are known. */
  etaSec: number | null;
  /** Seconds since the command started. */
  elapsedSec: number;
  attempt: number;
  /** The activity waits for a worker (or for a retry). */
  waiting: boolean;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ${UNITS[u]}`;
}

export function formatDuration(sec: number): string {
  const s = Math.max(0, Math.round(sec));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `done/total unit`, both in the total's unit (e.g. 1.5/4.0 MiB). */
function formatPair(done: number, total: number): string {
  const t = formatBytes(total);
  const unit = t.slice(t.indexOf(' ') + 1);
  const div = 1024 ** Math.max(0, UNITS.indexOf(unit));
  const d = done / div;
  const num = unit === 'B' ? String(Math.round(d)) : d < 10 ? d.toFixed(1) : String(Math.round(d));
  return `${num}/${t}`;
}

/**
 * One line of progress, at most `width` characters: a bar with percentage, bytes, rate and ETA when the total
 * is known; bytes, rate and elapsed time when it is not; what it waits for when nothing runs yet.
 */
export function formatProgressLine(v: ProgressView, width = 80): string {
  const head = `${v.label} · ${v.step}${v.phase ? ` ${v.phase}` : ''}`;
  const retry = v.attempt > 1 ? ` (attempt ${v.attempt})` : '';
  let line: string;
  if (v.waiting) {
    line = `${head}${retry} · waiting for a worker · ${formatDuration(v.elapsedSec)}`;
  } else if (v.total !== null && v.total > 0) {
    const frac = Math.min(1, Math.max(0, v.done / v.total));
    const pct = `${String(Math.floor(frac * 100)).padStart(3)}%`;
    const tail = [`${formatPair(Math.min(v.done, v.total), v.total)}`, v.rateBps !== null ? `${formatBytes(v.rateBps)}/s` : null, v.etaSec !== null ? `ETA ${formatDuration(v.etaSec)}` : `${formatDuration(v.elapsedSec)}`]
      .filter((x): x is string => x !== null)
      .join(' · ');
    const fixed = `${head}${retry} [] ${pct} ${tail}`;
    const barsize = Math.max(10, Math.min(30, width - fixed.length - 1));
    const full = Math.round(frac * barsize);
    line = `${head}${retry} [${'█'.repeat(full)}${'░'.repeat(barsize - full)}] ${pct} ${tail}`;
  } else {
    const parts = [v.done > 0 ? formatBytes(v.done) : null, v.rateBps !== null && v.done > 0 ? `${formatBytes(v.rateBps)}/s` : null, formatDuration(v.elapsedSec)].filter(
      (x): x is string => x !== null,
    );
    line = `${head}${retry} · ${parts.join(' · ')}`;
  }
  return line.length > width ? line.slice(0, Math.max(0, width - 1)) + '…' : line;
}

/**
 * Bytes per second of one phase from (time, bytes) samples of the last few seconds; a new phase, activity or
 * attempt (or bytes going back) starts over.
 */
export class RateMeter {
  private key: string | null = null;
  private samples: { t: number; bytes: number }[] = [];
  constructor(private readonly windowMs = 10_000) {}

  push(key: string, atMs: number, bytes: number): void {
    const last = this.samples[this.samples.length - 1];
    if (key !== this.key || (last && (bytes < last.bytes || atMs < last.t))) {
      this.key = key;
      this.samples = [];
    } else if (last && last.t === atMs) {
      last.bytes = bytes;
      return;
    }
    this.samples.push({ t: atMs, bytes });
    while (this.samples.length > 2 && atMs - this.samples[0]!.t > this.windowMs) this.samples.shift();
  }

  /** Null until two samples some time apart exist. */
  rate(): number | null {
    if (this.samples.length < 2) return null;
    const a = this.samples[0]!;
    const b = this.samples[this.samples.length - 1]!;
    const dt = (b.t - a.t) / 1000;
    return dt > 0 ? (b.bytes - a.bytes) / dt : null;
  }
}

export interface ProgressBarOptions {
  /** Where to draw (default process.stderr); must be a TTY for anything to appear. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  now?: () => number;
  /** Redraws per second at most (default 10). */
  fps?: number;
}

/** One command's progress line on a terminal (a cli-progress SingleBar); nothing is drawn until there is progress to show. */
export class ProgressBar {
  private bar: SingleBar | null = null;
  private view: ProgressView | null = null;
  private readonly meter = new RateMeter();
  private readonly startedAt: number;
  private stopped = false;
  private lastHeartbeat: number | null = null;
  private readonly now: () => number;

  constructor(
    private readonly label: string,
    private readonly opts: ProgressBarOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
  }

  /** Shows a pending activity's progress; null (nothing pending right now) keeps what is shown. */
  showActivity(p: ActivityProgress | null): void {
    if (this.stopped || !p) return;
    const hbAt = p.heartbeatAt?.getTime() ?? null;
    if (p.phase !== null && hbAt !== null && hbAt !== this.lastHeartbeat) {
      // Server time of each heartbeat: the rate does not depend on when this process polled.
      this.lastHeartbeat = hbAt;
      this.meter.push(`${p.activityId}|${p.attempt}|${p.phase}`, hbAt, p.bytesCopied);
    }
    this.draw(p.activity, p.phase, p.bytesCopied, p.bytesTotal, p.attempt, p.state === 'scheduled');
  }

  /** Shows bytes this process moves itself (an export's download). */
  showBytes(step: string, done: number, total: number | null): void {
    if (this.stopped) return;
    this.meter.push(step, this.now(), done);
    this.draw(step, null, done, total, 1, false);
  }

  /** What the line shows now (null before anything was shown). */
  current(): ProgressView | null {
    return this.view;
  }

  /** Clears the line; later updates are ignored. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.bar?.stop();
    this.bar = null;
  }

  private draw(step: string, phase: string | null, done: number, total: number | null, attempt: number, waiting: boolean): void {
    const rate = this.meter.rate();
    const rateBps = rate !== null && rate >= 0 ? rate : null;
    const etaSec = total !== null && rateBps !== null && rateBps > 0 ? Math.max(0, total - done) / rateBps : null;
    const view: ProgressView = { label: this.label, step, phase, done, total, rateBps, etaSec, elapsedSec: (this.now() - this.startedAt) / 1000, attempt, waiting };
    this.view = view;
    const value = total !== null && total > 0 ? Math.min(done, total) : 0;
    const max = total !== null && total > 0 ? total : 1;
    if (!this.bar) {
      this.bar = new SingleBar({
        stream: this.opts.stream ?? process.stderr,
        fps: this.opts.fps ?? 10,
        // Trim to the terminal's width instead of switching autowrap off (which a killed process would leave off).
        linewrap: true,
        hideCursor: false,
        gracefulExit: false,
        clearOnComplete: true,
        // The elapsed time changes between heartbeats: redraw on cli-progress's timer, not only on updates.
        format: (_options, params, payload: { view?: ProgressView }) =>
          payload.view ? formatProgressLine({ ...payload.view, elapsedSec: (this.now() - this.startedAt) / 1000 }, params.maxWidth - 1) : '',
      });
      this.bar.start(max, value, { view });
    } else {
      this.bar.setTotal(max);
      this.bar.update(value, { view });
    }
  }
}

/**
 * Runs `work` with a progress bar for workspace `workspaceId` when `enabled`: the bar follows the workspace's
 * pending activities until `work` calls the `bytes` callback it is given (progress this process measures
 * itself, e.g. an export's download), from then on those bytes. The bar is cleared when `work` settles.
 * When not enabled, `work` runs with no callback and nothing is drawn.
 */
export async function withProgress<T>(
  client: WorkbooksClient,
  workspaceId: string,
  label: string,
  enabled: boolean,
  work: (bytes: ((step: string, done: number, total: number | null) => void) | undefined) => Promise<T>,
  opts: ProgressBarOptions & { everyMs?: number } = {},
): Promise<T> {
  if (!enabled) return work(undefined);
  const bar = new ProgressBar(label, opts);
  let local = false;
  const watch = watchProgress(client, workspaceId, (p) => {
    if (!local) bar.showActivity(p);
  }, { everyMs: opts.everyMs });
  try {
    return await work((step, done, total) => {
      if (!local) {
        local = true;
        void watch.stop();
      }
      bar.showBytes(step, done, total);
    });
  } finally {
    bar.stop();
    // A describe still in flight ends with the connection; its answer is ignored (the bar is stopped).
    await Promise.race([watch.stop(), new Promise((r) => setTimeout(r, 1000).unref())]);
  }
}
