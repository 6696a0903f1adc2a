/**
 * Metrics emitted from workflow code. The SDK's workflow `metricMeter` skips emission during replay, so these
 * calls change no history and count each move once.
 */
import { metricMeter } from '@temporalio/workflow';
import { TRANSITIONS, TransitionOutcomeLabel, WAKE_LATENCY, WakePathLabel } from './names';

/** One ledger entry: counts a move by its edge and outcome. */
export function countTransition(e: { from: string; to: string; outcome: TransitionOutcomeLabel | 'warning' }): void {
  // A warning is not a move (the replica's health has its own metrics on the host).
  if (e.outcome === 'warning') return;
  metricMeter.createCounter(TRANSITIONS, undefined, 'workspace moves recorded in the ledger').add(1, { from: e.from, to: e.to, outcome: e.outcome });
}

/** A wake that ended with the workspace active, `ms` of workflow time after it was accepted. */
export function recordWake(path: WakePathLabel, ms: number): void {
  metricMeter
    .createHistogram(WAKE_LATENCY, 'float', 's', 'workflow time from a wake being accepted to the workspace being active')
    .record(Math.max(0, ms) / 1000, { path });
}
