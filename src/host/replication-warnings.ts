/**
 * Tells each workspace's workflow when the replica this host ships for it falls behind and when it caught up again
 * (the `replicationHealth` signal; the workflow writes the ledger line, see WorkspaceModel.replicationReported).
 *
 * Bounded by design: a workspace is told only when its state changes (ok → lagging → failing, and back to ok), an
 * all-clear only once the replica has stayed ok for `okAfterMs` (a flapping store is not a signal every few
 * seconds), at most `concurrency` signals at a time; a signal that fails is tried again at the next check.
 */
import type { ReplicationHealth, ReplicationReport } from '../contract/data-plane';

type Told = 'lagging' | 'failing';

/** What this host last told one workspace (absent: nothing, or that all is well), and since when it is ok again. */
export interface ToldState {
  state: Told;
  okSinceMs: number | null;
}

/**
 * The one rule of what to tell: given what each workspace was told and its health now, the reports due. A replica
 * that is behind is reported when it was not reported as such (a lagging one again when it starts failing, not when a
 * failing one is merely lagging); one that was reported behind and has been ok for `okAfterMs` gets its all-clear.
 * Updates the ok clocks in `told` (the caller records what was sent).
 */
export function reportsDue(told: Map<string, ToldState>, healths: Map<string, ReplicationHealth>, nowMs: number, okAfterMs: number): [string, ReplicationHealth][] {
  const due: [string, ReplicationHealth][] = [];
  for (const [id, h] of healths) {
    const t = told.get(id);
    if (h.state === 'lagging' || h.state === 'failing') {
      if (t) t.okSinceMs = null;
      if (!t || (t.state === 'lagging' && h.state === 'failing')) due.push([id, h]);
    } else if (h.state === 'ok' && t) {
      t.okSinceMs ??= nowMs;
      if (nowMs - t.okSinceMs >= okAfterMs) due.push([id, h]);
    }
  }
  // No longer replicated here (stopped, moved away): the workflow ended the warning with the move.
  for (const id of [...told.keys()]) if (!healths.has(id)) told.delete(id);
  return due;
}

export interface ReplicationWarningsOptions {
  hostId: string;
  boundSeconds: number;
  /** Signals the workspace's workflow; a workflow that no longer exists should resolve (nothing to tell). */
  send: (workspaceId: string, report: ReplicationReport) => Promise<void>;
  okAfterMs?: number;
  concurrency?: number;
  now?: () => number;
  onError?: (workspaceId: string, err: unknown) => void;
}

/** How long a replica reported behind must stay ok before its all-clear is sent. */
export const OK_AFTER_MS = 30_000;

export interface ReplicationWarnings {
  /** Called with every check's healths; resolves when the reports due are sent (or failed). */
  update(healths: Map<string, ReplicationHealth>): Promise<void>;
  /** What each workspace was last told (for tests and diagnostics). */
  told(): Map<string, ToldState>;
}

export function replicationWarnings(opts: ReplicationWarningsOptions): ReplicationWarnings {
  const told = new Map<string, ToldState>();
  const inFlight = new Set<string>();
  const now = opts.now ?? Date.now;
  const concurrency = Math.max(1, opts.concurrency ?? 4);

  const tell = async (id: string, h: ReplicationHealth): Promise<void> => {
    inFlight.add(id);
    try {
      await opts.send(id, { ...h, host: opts.hostId, boundSeconds: opts.boundSeconds });
      if (h.state === 'ok') told.delete(id);
      else told.set(id, { state: h.state as Told, okSinceMs: null });
    } catch (err) {
      opts.onError?.(id, err);
    } finally {
      inFlight.delete(id);
    }
  };

  return {
    async update(healths) {
      const due = reportsDue(told, healths, now(), opts.okAfterMs ?? OK_AFTER_MS).filter(([id]) => !inFlight.has(id));
      for (let i = 0; i < due.length; i += concurrency) {
        await Promise.all(due.slice(i, i + concurrency).map(([id, h]) => tell(id, h)));
      }
    },
    told: () => told,
  };
}
