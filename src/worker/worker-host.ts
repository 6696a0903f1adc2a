/**
 * One worker host: a Worker on the shared queue (workflows and host-independent activities), a Worker on this
 * host's own queue (activities that touch local files), a small Worker on its liveness queue (pings, never
 * starved by long copies), the host's lease on the cluster, its data server for the files it holds, behind
 * the host's Fence, and the periodic sweep of its orphans/ (host/orphans-sweep.ts).
 */
import { NativeConnection, Worker, WorkerOptions } from '@temporalio/worker';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { Config } from '../config';
import { hostTaskQueue, livenessTaskQueue, workflowIdFor } from '../contract/ids';
import { describeQuery, replicationHealthSignal } from '../contract/definitions';
import type { ReplicationReport } from '../contract/data-plane';
import { replicationWarnings } from '../host/replication-warnings';
import { LAG_BOUND_SECONDS } from '../replication/health';
import { HostLease } from '../host/lease';
import { DataKey, loadDataKey } from '../grants';
import { Fence, PlacementTruth } from '../host/fence';
import { setAside } from '../host/data-dir';
import { startOrphansSweep } from '../host/orphans-sweep';
import { writeLog } from '../logging/json-log';
import { createLivenessActivities } from '../activities/liveness';
import type { HostInfo } from '../contract/types';
import { HostInstances } from '../host/instances';
import { startDataServer } from '../host/data-server';
import { createLocalStopActivities } from '../activities/local-stop';
import { createHostActivities } from '../activities/host';
import { createStorageActivities } from '../activities/stored-copies';
import { createHostPickerActivities } from '../activities/placement';
import { HostReplication, startHostReplication } from '../host/host-replication';
import { ReconcileReport, reconcileHost } from '../host/reconcile';
import { trackActiveInstances, trackReplication } from '../metrics/host-metrics';
import { ReplicationHealthMonitor, monitorReplication, workspaceOfLiveFile } from '../host/replication-health';
import { liveDir } from '../host/data-dir';
import { prebuiltWorkflowBundle, workflowEntry } from './workflow-bundle';

export interface WorkerHostOptions {
  cfg: Config;
  connection: NativeConnection;
  client: Client;
  /**
   * A workflow bundle (tests pass harness/stack's); default: the one the build made (dist/workflow-bundle.js) when
   * it matches the current workflow code, else src/workflows bundled at start (with a warning).
   */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /** Run only the host queue (no workflows); used by extra hosts that should not run workflow tasks. */
  hostOnly?: boolean;
  /** Upper bound on workflows kept in the worker's cache (memory); default cfg.workflowWorker.cache. */
  maxCachedWorkflows?: number;
  /** The host's clock for access times (tests on a time-skipping server pass the server's timeline). */
  clock?: () => number;
  /** Async now for idle checks (tests: the time-skipping server's current time). */
  currentTime?: () => Promise<number>;
  /** The key data requests' grants are signed with (default: configured, else `<data dir>/data-key`, made if missing). */
  dataKey?: DataKey;
  /**
   * The host's replication, started and closed by the caller (`workbooks up` starts it before the dev server,
   * whose database it replicates too, and closes it after the server stopped); default: started here and closed
   * by shutdown.
   */
  replication?: HostReplication;
  /** Log lines of replication and reconcile (default: none; the orphans sweep's removals: JSON lines on stderr). */
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export interface WorkerHost {
  hostInfo: HostInfo;
  instances: HostInstances;
  replication: HostReplication;
  /** This host's replication health (per workspace, and the numbers its metrics show). */
  replicationHealth: ReplicationHealthMonitor;
  lease: HostLease;
  fence: Fence;
  /** The reconcile pass run once the workers are polling (see host/reconcile.ts). */
  reconciled: Promise<ReconcileReport | null>;
  /** Resolves when both workers stop. */
  done: Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * How often a running activity's latest heartbeat reaches the server at most. The SDK's default is 80% of the
 * heartbeat timeout (16 s for host activities): too coarse for the CLI's progress bars, which read the latest
 * heartbeat from the workflow's pending activities.
 */
const HEARTBEAT_THROTTLE = '1s';

export async function startWorkerHost(opts: WorkerHostOptions): Promise<WorkerHost> {
  const { cfg, connection, client } = opts;
  const instances = new HostInstances(cfg, opts.clock);
  if (opts.currentTime) instances.currentTime = opts.currentTime;
  const ownsReplication = opts.replication === undefined;
  const replication = opts.replication ?? (await startHostReplication(cfg, opts.log ? (line) => opts.log!(line) : undefined));
  const closeReplication = () => (ownsReplication ? replication.close() : Promise.resolve());
  // Litestream owns checkpoints of the files it replicates.
  instances.mayCheckpoint = (id) => replication.current(id) === null;
  const lease = new HostLease({
    leaseMs: cfg.hostLeaseSeconds * 1000,
    // Over the workers' own connection: the lease holds exactly while the liveness worker can be reached.
    renew: async (signal) => {
      await connection.withAbortSignal(signal, () => connection.workflowService.getSystemInfo({}));
    },
    onError: (err) => opts.log?.('lease renewal failed', { error: (err as Error).message }),
  });
  const fence = new Fence({
    hostId: cfg.hostId,
    lease,
    instances,
    truth: (id) => placementTruth(client, id),
    setAside: async (id) => {
      await replication.forget(id);
      instances.close(id, { checkpoint: false });
      return setAside(cfg, id);
    },
    log: opts.log,
  });
  const replicationHealth = monitorReplication({
    status: () => replication.status(),
    workspaceOf: (dbPath) => workspaceOfLiveFile(liveDir(cfg), dbPath),
    replicated: (id) => replication.current(id) !== null,
  });
  let data;
  try {
    await lease.start();
    data = await startDataServer(cfg, instances, fence, opts.dataKey ?? loadDataKey(cfg, { create: true })!, (id) => replicationHealth.healthOf(id));
  } catch (err) {
    replicationHealth.stop();
    lease.stop();
    await closeReplication();
    throw err;
  }
  const hostInfo: HostInfo = { host: cfg.hostId, taskQueue: hostTaskQueue(cfg.taskQueue, cfg.hostId), endpoint: data.url, leaseMs: lease.leaseMs };
  const activeGauge = trackActiveInstances(instances, cfg.hostId);
  const replicationGauges = cfg.replicaUrl ? trackReplication(replicationHealth, cfg.hostId) : null;

  const hostActivities = createHostActivities({ cfg, instances, hostInfo: () => hostInfo, replication, fence });
  const workers: Worker[] = [];
  try {
    workers.push(
      await Worker.create({
        connection,
        namespace: cfg.namespace,
        taskQueue: hostInfo.taskQueue,
        activities: hostActivities,
        maxConcurrentActivityTaskExecutions: cfg.hostSlots,
        // Few polls waiting at once: a host that is paused (not dead) keeps its polls open, and every task the
        // server hands one of them is stuck until its timeout before it is tried again.
        maxConcurrentActivityTaskPolls: Math.min(2, cfg.hostSlots),
        identity: `workbooks-host@${cfg.hostId}`,
        shutdownGraceTime: '5s',
        maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
      }),
    );
    workers.push(
      await Worker.create({
        connection,
        namespace: cfg.namespace,
        taskQueue: livenessTaskQueue(hostInfo.taskQueue),
        activities: createLivenessActivities(() => hostInfo),
        // Its own slots: pings are answered however busy the file activities are.
        maxConcurrentActivityTaskExecutions: 4,
        maxConcurrentActivityTaskPolls: 1,
        identity: `workbooks-live@${cfg.hostId}`,
        shutdownGraceTime: '1s',
      }),
    );
    if (!opts.hostOnly) {
      workers.push(
        await Worker.create({
          connection,
          namespace: cfg.namespace,
          taskQueue: cfg.taskQueue,
          ...workflowCode(opts),
          activities: {
            ...createHostPickerActivities({ client, hostInfo: () => hostInfo }),
            ...createStorageActivities(cfg, replication),
            // Local activities: the stop of a workspace this host holds, inside the workflow task.
            ...createLocalStopActivities({ hostId: cfg.hostId, fence, stopIfIdle: hostActivities.stopIfIdle }),
          },
          ...workflowTaskOptions(cfg, opts.maxCachedWorkflows),
          identity: `workbooks@${cfg.hostId}`,
          shutdownGraceTime: '5s',
          maxHeartbeatThrottleInterval: HEARTBEAT_THROTTLE,
        }),
      );
    }
  } catch (err) {
    activeGauge.stop();
    replicationGauges?.stop();
    replicationHealth.stop();
    lease.stop();
    await data.close();
    instances.closeAll();
    await closeReplication();
    throw err;
  }

  const done = Promise.all(workers.map((w) => w.run())).then(() => undefined);
  // The ledger says when a replica falls behind: each workspace's workflow is told when its replica's state changes.
  const warnings = replicationWarnings({
    hostId: cfg.hostId,
    boundSeconds: LAG_BOUND_SECONDS,
    send: (id, report) => tellWorkflow(client, id, report),
    onError: (id, err) => opts.log?.('replication warning not delivered; tried again at the next check', { workspaceId: id, error: (err as Error).message }),
  });
  const stopWarnings = replicationHealth.onRefresh(() => void warnings.update(replicationHealth.healths()));
  // Set-aside files older than the grace period go (each removal logged).
  const orphansSweep = startOrphansSweep(cfg, cfg.orphansGraceMs, opts.log ?? ((msg, fields) => writeLog('INFO', msg, fields)));
  // Once polling: compare the files here with what the workflows say (queries need a workflow worker running).
  const stopReconcile = new AbortController();
  const reconciled = reconcileHost({ cfg, client, instances, replication, hostInfo, log: opts.log, signal: stopReconcile.signal }).catch((err) => {
    opts.log?.('reconcile failed', { error: (err as Error).message });
    return null;
  });
  let stopping: Promise<void> | null = null;
  return {
    hostInfo,
    instances,
    replication,
    replicationHealth,
    lease,
    fence,
    reconciled,
    done,
    shutdown() {
      stopping ??= (async () => {
        stopReconcile.abort();
        stopWarnings();
        orphansSweep.stop();
        await reconciled;
        for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
        await done.catch(() => undefined);
        activeGauge.stop();
        replicationGauges?.stop();
        replicationHealth.stop();
        lease.stop();
        await data.close();
        instances.closeAll();
        await closeReplication();
      })();
      return stopping;
    },
  };
}

/** Cache, sticky timeout, slots and polls of the workflow worker (config; a cache passed by the caller wins). */
function workflowTaskOptions(cfg: Config, cacheOverride: number | undefined): Partial<WorkerOptions> {
  const w = cfg.workflowWorker;
  const cache = cacheOverride ?? w.cache;
  const slots = cache > 0 ? Math.max(2, Math.min(w.slots, cache)) : w.slots;
  return {
    maxCachedWorkflows: cache,
    stickyQueueScheduleToStartTimeout: `${w.stickyTimeoutSeconds}s`,
    maxConcurrentWorkflowTaskExecutions: slots,
    maxConcurrentWorkflowTaskPolls: Math.min(w.pollers, slots),
  };
}

/** The bundle passed, else the build's if current, else bundling at start (slow, and its memory stays). */
function workflowCode(opts: WorkerHostOptions): Pick<WorkerOptions, 'workflowBundle' | 'workflowsPath'> {
  if (opts.workflowBundle) return { workflowBundle: opts.workflowBundle };
  const prebuilt = prebuiltWorkflowBundle();
  if ('codePath' in prebuilt) return { workflowBundle: prebuilt };
  process.emitWarning(`bundling the workflow code at start: ${prebuilt.stale}`, 'WorkbooksWarning');
  return { workflowsPath: workflowEntry() };
}

/** What the workflow says about where a workspace is served (bounded: a workflow whose worker is gone cannot answer). */
/** Signals a workspace's workflow its replica's health (bounded wait; a workflow that is gone needs no news). */
async function tellWorkflow(client: Client, id: string, report: ReplicationReport): Promise<void> {
  try {
    await client.connection.withAbortSignal(AbortSignal.timeout(10_000), () => client.workflow.getHandle(workflowIdFor(id)).signal(replicationHealthSignal, report));
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return;
    throw err;
  }
}

async function placementTruth(client: Client, id: string): Promise<PlacementTruth | null> {
  const handle = client.workflow.getHandle(workflowIdFor(id));
  try {
    const d = await client.connection.withAbortSignal(AbortSignal.timeout(10_000), () => handle.query(describeQuery));
    return { state: d.state, host: d.host, placement: typeof d.placement === 'number' ? d.placement : null };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}
