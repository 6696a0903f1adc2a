/**
 * Which of a workspace's sources holds its newest data: pure rules shared by the workflow (recovery after host
 * loss) and the activities (restore into a new workspace).
 */
import type { ReplicaGeneration, StoredCopy } from './types';
import { parseDuration } from '../lifecycle/duration';

export type NewestSource = { kind: 'replica'; replicaUrl: string } | { kind: 'stored'; copy: StoredCopy };

/**
 * Sources to restore from, newest data first: the newest replica generation holds later data than the stored
 * copy unless it was flushed and stopped before that copy was made (a freeze after the stop).
 */
export function sourcesNewestFirst(w: { replicas: ReplicaGeneration[]; cold: StoredCopy | null; archive: StoredCopy | null }): NewestSource[] {
  const rep = w.replicas[w.replicas.length - 1] ?? null;
  const stored = w.cold ?? w.archive;
  const replica: NewestSource | null = rep ? { kind: 'replica', replicaUrl: rep.url } : null;
  const copy: NewestSource | null = stored ? { kind: 'stored', copy: stored } : null;
  const replicaNewer = !!rep && (!stored || rep.to === null || Date.parse(rep.to) > Date.parse(stored.at));
  const ordered = replicaNewer ? [replica, copy] : [copy, replica];
  return ordered.filter((s): s is NewestSource => s !== null);
}

/**
 * The replica generation that holds the state at `at`, and the timestamp to restore it at (null: its newest
 * state, when `at` falls after the generation was stopped). Null when no remembered generation reaches back.
 */
export function generationAt(replicas: ReplicaGeneration[], at: number): { generation: ReplicaGeneration; timestamp: string | null } | null {
  for (let i = replicas.length - 1; i >= 0; i--) {
    const g = replicas[i]!;
    if (Date.parse(g.from) > at) continue;
    const stoppedBefore = g.to !== null && Date.parse(g.to) <= at;
    return { generation: g, timestamp: stoppedBefore ? null : new Date(at).toISOString() };
  }
  return null;
}

/** Replica generations a workspace keeps by default (WorkspaceInput.replicaGenerations). */
export const DEFAULT_REPLICA_GENERATIONS = 3;

/** The generations to keep for a workspace: its input's `replicaGenerations` when valid (1–20), else the default. */
export function replicaGenerationsKept(raw: unknown): number {
  return typeof raw === 'number' && Number.isInteger(raw) && raw >= 1 && raw <= 20 ? raw : DEFAULT_REPLICA_GENERATIONS;
}

/** How long a prefetched copy waits for a wake by default (WorkspaceInput.prefetchKeep). */
export const DEFAULT_PREFETCH_KEEP = '24h';
/** The shortest keep a workspace may ask for. */
export const MIN_PREFETCH_KEEP_MS = 1_000;

/**
 * How long (ms) a workspace's prefetched copy waits for a wake before it is removed: its input's `prefetchKeep`
 * (a duration, at least 1 s), else 24 h. Throws on a malformed value (the input check reports it).
 */
export function prefetchKeepMs(raw: unknown): number {
  if (raw === undefined || raw === null) return parseDuration(DEFAULT_PREFETCH_KEEP);
  const ms = parseDuration(raw as string | number, 'prefetchKeep');
  if (ms < MIN_PREFETCH_KEEP_MS) throw new RangeError(`prefetchKeep '${String(raw)}' is shorter than 1s`);
  return ms;
}

/**
 * The one rule of which replica generations are no longer needed: all but the newest `keep`, and only stopped ones
 * (a generation still being written is never dropped). Point-in-time restore reaches back through the kept ones; the
 * newest is also a frozen workspace's fallback when its cold copy is unreadable.
 */
export function generationsPastRetention(replicas: ReplicaGeneration[], keep: number): ReplicaGeneration[] {
  const old = replicas.slice(0, Math.max(0, replicas.length - keep));
  return old.filter((g) => g.to !== null);
}
