/** Reading workflow histories in tests and benches: which activities a run scheduled, on a queue or locally. */
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The activity type of a local activity's marker (the SDK's `core_local_activity` marker), else null. */
export function localActivityType(e: HistoryEvent): string | null {
  const m = e.markerRecordedEventAttributes;
  if (!m || m.markerName !== 'core_local_activity') return null;
  const data = m.details?.['data']?.payloads?.[0]?.data;
  if (!data) return null;
  try {
    const parsed = JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: unknown };
    return typeof parsed.activity_type === 'string' ? parsed.activity_type : null;
  } catch {
    return null;
  }
}

/** How many times each activity type was scheduled on a queue and run locally (markers), in one history. */
export function activityCounts(events: HistoryEvent[]): { queued: Map<string, number>; local: Map<string, number> } {
  const queued = new Map<string, number>();
  const local = new Map<string, number>();
  for (const e of events) {
    const q = e.activityTaskScheduledEventAttributes?.activityType?.name;
    if (q) queued.set(q, (queued.get(q) ?? 0) + 1);
    const l = localActivityType(e);
    if (l) local.set(l, (local.get(l) ?? 0) + 1);
  }
  return { queued, local };
}
