/**
 * Which of a workspace's sources holds its newest data: pure rules shared by the workflow (recovery after host
 * loss) and the activities (restore into a new workspace).
 */
import type { ReplicaGeneration, StoredCopy } from './types';

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
