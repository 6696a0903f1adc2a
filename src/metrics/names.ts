/**
 * Names, labels and histogram buckets of our own Prometheus series. Shared by workflow code and host code:
 * plain data only (no imports), so the workflow bundle can use it.
 *
 * The names are what Prometheus shows: metrics created through the SDK's metric meters get no `temporal_`
 * prefix and no unit or `_total` suffix from the exporter (checked against @temporalio/worker 1.24.0), so the
 * suffixes are part of the names here. Series from workflow code also carry the SDK's `namespace`,
 * `taskQueue` and `workflowType` labels; series from activities carry `namespace`, `taskQueue` and
 * `activityType` (camelCase, unlike the snake_case labels of Temporal's own `temporal_*` series).
 */

/** Moves recorded in a workspace's ledger. Labels: from, to, outcome (done | refused | failed). Counter. */
export const TRANSITIONS = 'workbooks_transitions_total';

/**
 * Workflow time from a wake being accepted to the workspace being active (warm wakes record 0). Label: path
 * (warm | local | cold). Histogram, seconds.
 */
export const WAKE_LATENCY = 'workbooks_wake_latency_seconds';

/** Bytes of workspace files copied by activities. Label: kind (see CopyKind). Counter. */
export const COPY_BYTES = 'workbooks_copy_bytes_total';

/** Wall time of one copy, from the first byte read to the copy being verified. Label: kind. Histogram, seconds. */
export const COPY_DURATION = 'workbooks_copy_duration_seconds';

/** Workspaces active (open or marked open) on a host. Label: host. Gauge. */
export const ACTIVE_INSTANCES = 'workbooks_active_instances';

/**
 * The largest replication lag among the workspaces a host replicates: seconds since each one's replica last held
 * every committed write (0 with none). One series per host, whatever the number of workspaces. Label: host. Gauge.
 */
export const REPLICATION_LAG = 'workbooks_replication_lag_seconds';

/** Workspaces a host replicates whose replica is lagging (over the bound) or failing. Label: host. Gauge. */
export const REPLICATION_BEHIND = 'workbooks_replication_behind_workspaces';

/**
 * Replication failures on a host: failures its Litestream daemon logged for a workspace (a sync to the replica
 * store that failed; the daemon retries with backoff, each retry counts) and status checks the daemon did not
 * answer. Label: host. Counter.
 */
export const REPLICATION_ERRORS = 'workbooks_replication_errors_total';

/**
 * freeze: a local file stored to cold storage; archive: to the archive (from a host or from the cold copy);
 * restore: a stored copy or replica made local again (wakes, recovery, prefetch); clone: a new workspace's
 * file copied from a template or restore point.
 */
export type CopyKind = 'freeze' | 'archive' | 'restore' | 'clone';

export type WakePathLabel = 'warm' | 'local' | 'cold';

export type TransitionOutcomeLabel = 'done' | 'refused' | 'failed';

/** Bucket boundaries (seconds) for the exporter's histogramBucketOverrides. */
export const HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [WAKE_LATENCY]: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  [COPY_DURATION]: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
};
