/** `workbooks up` (embedded default) and `workbooks worker` (one host against an existing Temporal). */
import path from 'node:path';
import { Client } from '@temporalio/client';
import { DefaultLogger, LogLevel, NativeConnection, Runtime } from '@temporalio/worker';
import { Config, ConfigError, logLevelFromEnv } from '../config';
import { TemporalAccess, connectClient, connectNative } from '../temporal-connection';
import { HISTOGRAM_BUCKETS } from '../metrics/names';
import { MetricsEndpoint, busyPortError, chooseMetricsEndpoint } from '../metrics/endpoint';
import { writeLog } from '../logging/json-log';
import { DevServer, startDevServer, temporalDbFile } from '../embedded/dev-server';
import {
  controlPlaneReplicaRoot,
  pruneControlPlaneGenerations,
  replicaInsideDataDir,
  replicateControlPlane,
  restoreControlPlaneIfMissing,
} from '../embedded/control-plane-replica';
import { HostReplication, startHostReplication } from '../host/host-replication';
import { scratchDir } from '../host/data-dir';
import { startWorkerHost, WorkerHost } from '../worker/worker-host';
import { StartedApi, startApi } from './serve-api';
import { ownFilesOnly } from './own-files';

/** Messages that are expected in our layout and only alarm a reader. */
const EXPECTED = [/No workflows registered, not polling for workflow tasks/];

/**
 * Installs the SDK runtime before any connection or worker: its logger (and Core's, forwarded to it) writes
 * JSON lines on stderr; with metrics on, its Prometheus exporter serves Temporal's metrics and ours.
 * Returns the metrics endpoint, or null when metrics are off.
 */
async function installRuntime(cfg: Config): Promise<MetricsEndpoint | null> {
  const level: LogLevel = logLevelFromEnv();
  const logger = new DefaultLogger(level, (entry) => {
    // The host-queue worker runs activities only, by design.
    if (EXPECTED.some((re) => re.test(entry.message))) return;
    writeLog(entry.level, entry.message, entry.meta, new Date(Number(entry.timestampNanos / 1_000_000n)));
  });
  const logging = { filter: { core: level, other: 'ERROR' as LogLevel }, forward: {} };
  for (let attempt = 1; ; attempt++) {
    const endpoint = await chooseMetricsEndpoint(cfg);
    try {
      Runtime.install({
        logger,
        telemetryOptions: {
          logging,
          ...(endpoint && {
            metrics: {
              prometheus: { bindAddress: endpoint.bindAddress, useSecondsForDurations: true, histogramBucketOverrides: HISTOGRAM_BUCKETS },
            },
          }),
        },
      });
      return endpoint;
    } catch (err) {
      // Someone took the port between the probe and the bind: an explicit port fails, a picked one is re-picked.
      if (!endpoint || !/address already in use/i.test((err as Error).message)) throw err;
      if (cfg.metricsPortExplicit && cfg.metricsPort !== 0) throw busyPortError(cfg, endpoint.port);
      if (attempt >= 3) throw err;
    }
  }
}

function metricsText(endpoint: MetricsEndpoint | null): string {
  if (!endpoint) return 'off (WORKBOOKS_METRICS_PORT=off)';
  return endpoint.note ? `${endpoint.url} (${endpoint.note})` : endpoint.url;
}

/**
 * Our own log lines (replication, reconcile, start and stop), in the same JSON shape as the SDK's; printed
 * unless WORKBOOKS_LOG_LEVEL is ERROR.
 */
function hostLog(msg: string, fields?: Record<string, unknown>): void {
  if (logLevelFromEnv() === 'ERROR') return;
  writeLog('INFO', msg, fields);
}

/** The worker's (Core) and the client's connection, both secured the same way. */
async function connect(access: TemporalAccess, address: string, namespace: string): Promise<{ native: NativeConnection; client: Client }> {
  const native = await connectNative(access, address);
  try {
    return { native, client: new Client({ connection: await connectClient(access, address), namespace }) };
  } catch (err) {
    await native.close().catch(() => undefined);
    throw err;
  }
}

/** `temporal <address> (<how>)` for banners: TLS mode and where the settings came from, never a secret. */
function temporalText(access: TemporalAccess, address: string): string {
  return `${address} (${access.describe()})`;
}

function onStop(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) {
      writeLog('WARN', `${sig} again, exiting now`);
      process.exit(130);
    }
    stopping = true;
    hostLog(`${sig}, stopping…`);
    stop().then(
      () => process.exit(0),
      (err) => {
        writeLog('ERROR', `error while stopping: ${(err as Error).message}`, { error: err });
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

/** What `up` did with the embedded control plane's database, for the banner. */
interface EmbeddedControlPlane {
  dbFile: string;
  /** The generation it is replicated to, or null when replication is off. */
  replicaUrl: string | null;
  how: string;
}

/**
 * The embedded default's start: the host's replication (one Litestream daemon), the control plane's database
 * restored from its replica when this disk has none, the dev server on it, then its replication. On failure,
 * whatever was started is stopped again.
 */
async function startEmbedded(cfg: Config): Promise<{ server: DevServer; replication: HostReplication | null; controlPlane: EmbeddedControlPlane }> {
  const dbFile = temporalDbFile(cfg.dataDir);
  if (!cfg.replicaUrl) {
    writeLog('WARN', `the Temporal database ${dbFile} is not replicated (WORKBOOKS_REPLICA_URL=off): losing this disk loses every workspace's record`);
    hostLog(`starting the Temporal dev server (data in ${path.dirname(dbFile)})…`);
    const server = await startDevServer({ dataDir: cfg.dataDir, port: cfg.temporalPort, uiPort: cfg.uiPort });
    return { server, replication: null, controlPlane: { dbFile, replicaUrl: null, how: 'not replicated (WORKBOOKS_REPLICA_URL=off)' } };
  }
  if (replicaInsideDataDir(cfg.replicaUrl, cfg.dataDir)) {
    writeLog(
      'WARN',
      `replicas (of workspaces and of the Temporal database) go to ${cfg.replicaUrl}, inside the data dir: they do not outlive this disk; set WORKBOOKS_REPLICA_URL to another disk or to S3`,
    );
  }
  const replication = await startHostReplication(cfg, (line) => hostLog(line));
  let server: DevServer | null = null;
  try {
    const found = await restoreControlPlaneIfMissing({ dbFile, replicaUrl: cfg.replicaUrl });
    for (const url of found.kind === 'present' ? [] : found.skipped) hostLog(`control-plane replica ${url} holds nothing; skipped`);
    let from: string | null = null;
    if (found.kind === 'restored') {
      from = found.from;
      hostLog(`the Temporal database was missing: restored it from ${found.from} (${found.bytes} bytes${found.txid ? `, txid ${found.txid}` : ''})`, {
        dbFile,
        replicaUrl: found.from,
      });
    } else if (found.kind === 'fresh') {
      hostLog(`no Temporal database and no control-plane replica under ${controlPlaneReplicaRoot(cfg.replicaUrl)}: starting an empty one`);
    }
    hostLog(`starting the Temporal dev server (data in ${path.dirname(dbFile)})…`);
    server = await startDevServer({ dataDir: cfg.dataDir, port: cfg.temporalPort, uiPort: cfg.uiPort });
    const replicated = await replicateControlPlane(replication.replicator!, { dbFile, replicaUrl: cfg.replicaUrl, newGeneration: found.kind !== 'present' });
    const how = from ? `restored from ${from}; new generation` : replicated.continued ? 'continued' : 'new generation';
    hostLog(`the Temporal database is replicated to ${replicated.url} (${how})`);
    return { server, replication, controlPlane: { dbFile, replicaUrl: replicated.url, how } };
  } catch (err) {
    await server?.stop().catch(() => undefined);
    await replication.close().catch(() => undefined);
    throw err;
  }
}

/** After the dev server stopped: its last writes onto the replica (the daemon's stop would sync them too). */
async function flushControlPlane(replication: HostReplication | null, controlPlane: EmbeddedControlPlane | null): Promise<void> {
  if (!replication?.replicator || !controlPlane?.replicaUrl) return;
  try {
    await replication.replicator.sync(controlPlane.dbFile);
  } catch (err) {
    writeLog('WARN', `the last writes of the Temporal database may be missing from ${controlPlane.replicaUrl}: ${(err as Error).message}`);
  }
}

/**
 * Once `up` is up, in the background: the control plane's generations past WORKBOOKS_CONTROL_PLANE_GENERATIONS are
 * deleted once the current one is confirmed replicating (it holds data and restores: seconds, so not before the
 * banner). Never throws: a failure is a warning, `up` keeps running, and the next start tries again.
 */
async function pruneControlPlane(cfg: Config, controlPlane: EmbeddedControlPlane | null, signal: AbortSignal): Promise<void> {
  if (!cfg.replicaUrl || !controlPlane?.replicaUrl) return;
  const retry = 'up keeps running; the next start tries again';
  try {
    const r = await pruneControlPlaneGenerations({
      replicaUrl: cfg.replicaUrl,
      current: controlPlane.replicaUrl,
      keep: cfg.controlPlaneGenerations,
      scratchDir: scratchDir(cfg),
      signal,
      onDeleted: (d) => hostLog(`deleted the old control-plane generation ${d.url} (${d.files} files)`, { replicaUrl: d.url, files: d.files }),
    });
    for (const f of r.failed) writeLog('WARN', `could not delete the old control-plane generation ${f.url}: ${f.error}; ${retry}`, { replicaUrl: f.url });
    hostLog(
      `control-plane generations: ${r.kept.length} kept, ${r.deleted.length} deleted${r.failed.length ? `, ${r.failed.length} not deleted` : ''} (WORKBOOKS_CONTROL_PLANE_GENERATIONS=${cfg.controlPlaneGenerations})`,
    );
  } catch (err) {
    if (signal.aborted) return;
    writeLog('WARN', `old control-plane generations were not deleted: ${(err as Error).message}; ${retry}`);
  }
}

export async function runUp(cfg: Config): Promise<void> {
  ownFilesOnly();
  const metrics = await installRuntime(cfg);
  let server: DevServer | null = null;
  let replication: HostReplication | null = null;
  let controlPlane: EmbeddedControlPlane | null = null;
  let address: string;
  let access = cfg.temporal;
  if (cfg.temporalAddress) {
    address = cfg.temporalAddress;
  } else {
    // The embedded dev server speaks plain gRPC on 127.0.0.1: TLS or an API key meant for a cluster would only
    // fail the handshake, so they are refused here rather than silently dropped.
    if (access.secured) {
      throw new ConfigError(
        `Temporal TLS/API key settings are given (${access.describe()}) but no address: set TEMPORAL_ADDRESS to the secured cluster, or unset them to run the embedded dev server`,
      );
    }
    access = TemporalAccess.plain();
    ({ server, replication, controlPlane } = await startEmbedded(cfg));
    address = server.address;
  }
  let host: WorkerHost | null = null;
  let conns: { native: NativeConnection; client: Client } | null = null;
  let api: StartedApi | null = null;
  const pruning = new AbortController();
  let pruned: Promise<void> = Promise.resolve();
  const stop = async () => {
    pruning.abort();
    await api?.server.close().catch(() => undefined);
    await host?.shutdown();
    await conns?.native.close().catch(() => undefined);
    await conns?.client.connection.close().catch(() => undefined);
    await server?.stop();
    await flushControlPlane(replication, controlPlane);
    await replication?.close();
    await pruned;
  };
  onStop(stop);
  try {
    conns = await connect(access, address, cfg.namespace);
    host = await startWorkerHost({ cfg, connection: conns.native, client: conns.client, log: hostLog, ...(replication ? { replication } : {}) });
    api = await startApi(cfg, conns.client);
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  process.stdout.write(
    [
      'workbooks is up',
      `  temporal     ${server ? address : temporalText(access, address)}${server?.uiUrl ? `   web ui ${server.uiUrl}` : ''}`,
      ...(controlPlane ? [`  control db   ${controlPlane.dbFile} → ${controlPlane.replicaUrl ?? 'off'} (${controlPlane.how})`] : []),
      `  task queue   ${cfg.taskQueue} (host queue ${host.hostInfo.taskQueue})`,
      `  http api     ${api ? api.banner : 'off (WORKBOOKS_HTTP_PORT=off)'}`,
      `  data server  ${host.hostInfo.endpoint}`,
      `  metrics      ${metricsText(metrics)}`,
      `  data dir     ${cfg.dataDir}`,
      `  cold         ${cfg.coldUrl}`,
      `  archive      ${cfg.archiveUrl}`,
      `  replicas     ${cfg.replicaUrl ?? 'off'}`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  pruned = pruneControlPlane(cfg, controlPlane, pruning.signal);
  await host.done;
}

export async function runWorker(cfg: Config): Promise<void> {
  ownFilesOnly();
  const metrics = await installRuntime(cfg);
  const address = cfg.temporalAddress ?? `127.0.0.1:${cfg.temporalPort}`;
  const conns = await connect(cfg.temporal, address, cfg.namespace);
  const host = await startWorkerHost({ cfg, connection: conns.native, client: conns.client, log: hostLog });
  onStop(async () => {
    await host.shutdown();
    await conns.native.close().catch(() => undefined);
    await conns.client.connection.close().catch(() => undefined);
  });
  process.stdout.write(
    `workbooks worker ${cfg.hostId} up: temporal ${temporalText(cfg.temporal, address)}, host queue ${host.hostInfo.taskQueue}, data server ${host.hostInfo.endpoint}, data dir ${cfg.dataDir}, metrics ${metricsText(metrics)}\n`,
  );
  await host.done;
}
