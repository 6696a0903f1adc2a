/**
 * Metrics emitted on a worker host: copies done by activities (through the activity's metric meter) and the
 * active-instances gauge (through the runtime's meter). Outside a worker (plain unit tests) they are no-ops.
 */
import { asyncLocalStorage } from '@temporalio/activity';
import { MetricMeter, noopMetricMeter } from '@temporalio/common';
import { Runtime } from '@temporalio/worker';
import type { HostInstances } from '../host/instances';
import { ACTIVE_INSTANCES, COPY_BYTES, COPY_DURATION, CopyKind } from './names';

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

/**
 * Keeps the active-instances gauge of this host current: on every open/close through `instances`, and every
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
  instances.onChange = refresh;
  refresh();
  const timer = setInterval(refresh, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      instances.onChange = () => undefined;
    },
  };
}
