/**
 * Metrics emitted on a worker host: copies done by activities (through the activity's metric meter) and the
 * active-instances gauge (through the runtime's meter). Outside a worker (plain unit tests) they are no-ops.
 */
import { asyncLocalStorage } from '@temporalio/activity';
import { MetricMeter, noopMetricMeter } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import type { HostInstances } from '../host/instances';
import type { ReplicationHealthMonitor } from '../host/replication-health';
import { ACTIVE_INSTANCES, COPY_BYTES, COPY_DURATION, CopyKind, REPLICATION_BEHIND, REPLICATION_ERRORS, REPLICATION_LAG } from './names';

function activityMeter(): MetricMeter {
  return asyncLocalStorage.getStore()?.metricMeter ?? noopMetricMeter;
}

/** Starts timing one copy; `done(bytes)` records it (call it only when the copy succeeded). */
export function startCopy(kind: CopyKind): { done(bytes: number): void } {
  const t0 = performance.now();
  return {
    done(bytes: number) {
      const meter = activityMeter();
      meter.createCounter(COPY_BYTES, 'By', 'bytes of workspace files copied').add(Math.max(0, Math.round(bytes)), { kind });
      meter.createHistogram(COPY_DURATION, 'float', 's', 'duration of one copy, until it is verified').record((performance.now() - t0) / 1000, { kind });
    },
  };
}

const CHANGE_COALESCE_MS = 1000;

/**
 * Keeps the active-instances gauge of this host current: within a second of an open/close through `instances`, and every
 * `everyMs` for markers changed behind its back (reconcile moving a stale copy aside).
 */
export function trackActiveInstances(instances: HostInstances, hostId: string, everyMs = 10_000): { stop(): void } {
  const gauge = Runtime.instance().metricMeter.createGauge(ACTIVE_INSTANCES, 'int', undefined, 'workspaces active on this host');
  const refresh = () => {
    try {
      gauge.set(instances.activeIds().length, { host: hostId });
    } catch {
      // the live dir vanished (a wiped disk): the next refresh tells
    }
  };
  // An open or close refreshes the gauge at most once a second: a refresh reads the live dir (one entry per local
  // file), and a burst of idle stops at 10,000 workspaces read it once per stop, on the host's main thread.
  let pending: NodeJS.Timeout | null = null;
  instances.onChange = () => {
    pending ??= setTimeout(() => {
      pending = null;
      refresh();
    }, CHANGE_COALESCE_MS);
    pending.unref();
  };
  refresh();
  const timer = setInterval(refresh, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      if (pending) clearTimeout(pending);
      instances.onChange = () => undefined;
    },
  };
}

/**
 * Keeps this host's replication series current after every check of its daemon (see host/replication-health.ts):
 * the largest lag, the workspaces behind, and the failures counted since the previous check.
 */
export function trackReplication(monitor: ReplicationHealthMonitor, hostId: string): { stop(): void } {
  const meter = Runtime.instance().metricMeter;
  const lag = meter.createGauge(REPLICATION_LAG, 'float', 's', 'largest replication lag among the workspaces this host replicates');
  const behind = meter.createGauge(REPLICATION_BEHIND, 'int', undefined, 'workspaces this host replicates whose replica is lagging or failing');
  const errors = meter.createCounter(REPLICATION_ERRORS, undefined, 'replication failures on this host');
  const labels = { host: hostId };
  let counted = 0;
  const update = () => {
    const s = monitor.summary();
    lag.set(s.maxLagSeconds, labels);
    behind.set(s.behind, labels);
    if (s.errorsTotal > counted) errors.add(s.errorsTotal - counted, labels);
    counted = Math.max(counted, s.errorsTotal);
  };
  // Zero series from the start, so a scrape shows the host replicates (and a rate over the counter works).
  lag.set(0, labels);
  behind.set(0, labels);
  errors.add(0, labels);
  const off = monitor.onRefresh(update);
  return {
    stop() {
      off();
    },
  };
}
