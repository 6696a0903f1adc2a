/** Activity proxies for the workspace workflow: shared-queue ones, and per-host ones on `<queue>@<host>`. */
import { proxyActivities, proxyLocalActivities, ActivityOptions, RetryPolicy } from '@temporalio/workflow';
import type { HostActivities, LivenessActivities, LocalHostActivities, SharedActivities } from '../activities/types';
import { livenessTaskQueue } from '../contract/ids';
import type { HostInfo } from '../contract/types';

/** Error types that retrying cannot fix: the workflow records them and leaves the state as it was. */
export const NON_RETRYABLE = [
  'InvalidInput',
  'IntegrityError',
  'ChecksumMismatch',
  'SourceMissing',
  'TemplateUnavailable',
  'NotStopped',
  'VerifyFailed',
  'NoUsableSource',
  'RestorePointUnavailable',
  'StoreUnavailable',
];

const RETRY: RetryPolicy = {
  initialInterval: '1s',
  backoffCoefficient: 2,
  maximumInterval: '30s',
  maximumAttempts: 8,
  nonRetryableErrorTypes: NON_RETRYABLE,
};

export { POLICY_PRIORITY, USER_PRIORITY } from '../contract/priority';
import { POLICY_PRIORITY as POLICY_PRIORITY_KEY } from '../contract/priority';

/** Activities any live host can run (they do not touch a local workspace file). */
export function sharedActivities(summary: string, extra: Partial<ActivityOptions> = {}) {
  return proxyActivities<SharedActivities>({
    startToCloseTimeout: '2h',
    heartbeatTimeout: '30s',
    retry: RETRY,
    summary,
    ...extra,
  });
}

/** The complete ledger's page writes: a few attempts, bounded, at the idle ladder's priority (never blocks the loop long). */
export function ledgerActivities(summary: string) {
  return proxyActivities<SharedActivities>({
    startToCloseTimeout: '1m',
    scheduleToCloseTimeout: '5m',
    retry: { ...RETRY, maximumAttempts: 3 },
    priority: { priorityKey: POLICY_PRIORITY_KEY },
    summary,
  });
}

/** File activities on the host that holds the file. Long copies heartbeat; a silent host is retried elsewhere in time. */
export function hostActivities(host: HostInfo, summary: string, extra: Partial<ActivityOptions> = {}) {
  return proxyActivities<HostActivities>({
    taskQueue: host.taskQueue,
    startToCloseTimeout: '2h',
    heartbeatTimeout: '20s',
    retry: RETRY,
    summary,
    ...extra,
  });
}

/** The idle check: cheap, short; if the host does not answer quickly the workflow keeps its own view. */
export function lastAccessActivity(host: HostInfo) {
  return proxyActivities<HostActivities>({
    taskQueue: host.taskQueue,
    scheduleToStartTimeout: '30s',
    startToCloseTimeout: '10s',
    retry: { maximumAttempts: 2, initialInterval: '1s' },
    summary: 'ask host for last access',
  }).lastAccess;
}

/**
 * A ping on the host's liveness queue, which must be answered within `windowSeconds` (one attempt): the host's
 * liveness worker has slots of its own, so only a host that is gone (stopped, paused, cut off) leaves it
 * unanswered.
 */
export function livenessActivity(host: HostInfo, windowSeconds: number) {
  return proxyActivities<LivenessActivities>({
    taskQueue: livenessTaskQueue(host.taskQueue),
    scheduleToCloseTimeout: `${windowSeconds}s`,
    retry: { maximumAttempts: 1 },
    summary: `is host ${host.host} alive`,
  }).ping;
}

/**
 * The idle ladder's stop as a local activity: done by the worker running the workflow task when its host holds the
 * file (else it answers `here: false`). One attempt: any failure falls back to the task on the holder's queue.
 */
export function stopIfIdleLocally() {
  return proxyLocalActivities<LocalHostActivities>({
    startToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 1 },
    summary: 'stop instance if idle (on this worker\'s host)',
  }).stopIfIdleHere;
}

/**
 * Picking a host as a local activity: it runs on the worker that runs the workflow task, a live host by
 * definition, and is answered inside that task (one marker instead of a task on the shared queue and another
 * workflow task).
 */
export function pickHostLocally() {
  return proxyLocalActivities<SharedActivities>({
    startToCloseTimeout: '10s',
    // It only answers this worker's host; a worker that is no host has nothing registered: no point in retrying.
    retry: { maximumAttempts: 1 },
    summary: 'pick a host (this worker)',
  }).pickHost;
}
