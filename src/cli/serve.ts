/** `workbooks up` (embedded default) and `workbooks worker` (one host against an existing Temporal). */
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, LogLevel, NativeConnection, Runtime } from '@temporalio/worker';
import { Config } from '../config';
import { startDevServer } from '../embedded/dev-server';
import { startWorkerHost, WorkerHost } from '../worker/worker-host';
import { StartedApi, startApi } from './serve-api';

/** Messages that are expected in our layout and only alarm a reader. */
const EXPECTED = [/No workflows registered, not polling for workflow tasks/];

function installRuntime(): void {
  const level = (process.env.WORKBOOKS_LOG_LEVEL ?? 'WARN').toUpperCase() as LogLevel;
  const base = new DefaultLogger(level);
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      // The host-queue worker runs activities only, by design.
      if (EXPECTED.some((re) => re.test(entry.message))) return;
      base.log(entry.level, entry.message, entry.meta);
    }),
  });
}

/** Our own log lines (replication, reconcile): one JSON object per line on stderr, unless the level is ERROR. */
function hostLog(msg: string, fields?: Record<string, unknown>): void {
  const level = (process.env.WORKBOOKS_LOG_LEVEL ?? 'WARN').toUpperCase();
  if (level === 'ERROR') return;
  process.stderr.write(JSON.stringify({ at: new Date().toISOString(), msg, ...(fields ?? {}) }) + '\n');
}

async function connect(address: string, namespace: string): Promise<{ native: NativeConnection; client: Client }> {
  const native = await NativeConnection.connect({ address });
  const client = new Client({ connection: await Connection.connect({ address }), namespace });
  return { native, client };
}

function onStop(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (sig: string) => {
    if (stopping) {
      process.stderr.write(`workbooks: ${sig} again, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    process.stderr.write(`workbooks: ${sig}, stopping…\n`);
    stop().then(
      () => process.exit(0),
      (err) => {
        process.stderr.write(`workbooks: error while stopping: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => handler('SIGINT'));
  process.on('SIGTERM', () => handler('SIGTERM'));
}

export async function runUp(cfg: Config): Promise<void> {
  installRuntime();
  let server: Awaited<ReturnType<typeof startDevServer>> | null = null;
  let address: string;
  if (cfg.temporalAddress) {
    address = cfg.temporalAddress;
  } else {
    process.stderr.write(`workbooks: starting the Temporal dev server (data in ${cfg.dataDir}/temporal)…\n`);
    server = await startDevServer({ dataDir: cfg.dataDir, port: cfg.temporalPort, uiPort: cfg.uiPort });
    address = server.address;
  }
  let host: WorkerHost | null = null;
  let conns: { native: NativeConnection; client: Client } | null = null;
  let api: StartedApi | null = null;
  const stop = async () => {
    await api?.server.close().catch(() => undefined);
    await host?.shutdown();
    await conns?.native.close().catch(() => undefined);
    await conns?.client.connection.close().catch(() => undefined);
    await server?.stop();
  };
  onStop(stop);
  try {
    conns = await connect(address, cfg.namespace);
    host = await startWorkerHost({ cfg, connection: conns.native, client: conns.client, log: hostLog });
    api = await startApi(cfg, conns.client);
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  process.stdout.write(
    [
      'workbooks is up',
      `  temporal     ${address}${server?.uiUrl ? `   web ui ${server.uiUrl}` : ''}`,
      `  task queue   ${cfg.taskQueue} (host queue ${host.hostInfo.taskQueue})`,
      `  http api     ${api ? api.banner : 'off (WORKBOOKS_HTTP_PORT=off)'}`,
      `  data server  ${host.hostInfo.endpoint}`,
      `  data dir     ${cfg.dataDir}`,
      `  cold         ${cfg.coldUrl}`,
      `  archive      ${cfg.archiveUrl}`,
      `  replicas     ${cfg.replicaUrl ?? 'off'}`,
      'Ctrl-C stops everything.',
      '',
    ].join('\n'),
  );
  await host.done;
}

export async function runWorker(cfg: Config): Promise<void> {
  installRuntime();
  const address = cfg.temporalAddress ?? `127.0.0.1:${cfg.temporalPort}`;
  const conns = await connect(address, cfg.namespace);
  const host = await startWorkerHost({ cfg, connection: conns.native, client: conns.client, log: hostLog });
  onStop(async () => {
    await host.shutdown();
    await conns.native.close().catch(() => undefined);
    await conns.client.connection.close().catch(() => undefined);
  });
  process.stdout.write(`workbooks worker ${cfg.hostId} up: temporal ${address}, host queue ${host.hostInfo.taskQueue}, data server ${host.hostInfo.endpoint}, data dir ${cfg.dataDir}\n`);
  await host.done;
}
