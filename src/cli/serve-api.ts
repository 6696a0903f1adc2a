/** Starting the HTTP API: inside `workbooks up`, or alone with `workbooks api` against an existing Temporal. */
import { ledgerArchiveAt } from '../storage/ledger-archive';
import { Client } from '@temporalio/client';
import { connectClient } from '../temporal-connection';
import type { Config } from '../config';
import { DataKey, loadDataKey } from '../grants';
import { WorkbooksClient } from '../client/workbooks-client';
import { ApiServer, startApiServer } from '../api/server';
import { loadTokens } from '../api/tokens';
import { ownFilesOnly } from './own-files';

export interface StartedApi {
  server: ApiServer;
  /** One line for the banner: where the API is and where its token is kept, if one was made. */
  banner: string;
}

/** The data key the API signs its data requests with: configured, or the one `workbooks up` keeps in the data dir. */
function requireDataKey(cfg: Config): DataKey {
  const key = loadDataKey(cfg);
  if (!key) throw new Error('no data key: set WORKBOOKS_DATA_KEY (or WORKBOOKS_DATA_KEY_FILE) to the key the worker hosts use');
  return key;
}

/** Starts the API on cfg.httpBind:cfg.httpPort, or returns null when WORKBOOKS_HTTP_PORT=off. */
export async function startApi(cfg: Config, client: Client): Promise<StartedApi | null> {
  if (cfg.httpPort === null) return null;
  const { tokens, generatedFile } = loadTokens(cfg);
  const server = await startApiServer({
    client: new WorkbooksClient(client, cfg.taskQueue, requireDataKey(cfg), ledgerArchiveAt(cfg.coldUrl)),
    tokens,
    waitMs: cfg.wakeWaitMs,
    authFailures: cfg.authFailures,
    authWindowSeconds: cfg.authWindowSeconds,
    port: cfg.httpPort,
    bind: cfg.httpBind,
    limits: cfg.httpLimits,
    quotas: cfg.quotas,
    policyFloorMs: cfg.policyFloorMs,
    listPageDefault: cfg.listPageDefault,
    listPageMax: cfg.listPageMax,
    sessionPrefetchBytes: cfg.sessionPrefetchBytes,
    stores: { coldUrl: cfg.coldUrl, archiveUrl: cfg.archiveUrl, replicaUrl: cfg.replicaUrl },
  });
  const auth = generatedFile ? `admin token in ${generatedFile}` : `${tokens.size} token(s) configured`;
  return { server, banner: `${server.url}   (${auth}; OpenAPI at ${server.url}/openapi.json)` };
}

/** `workbooks api`: the HTTP API alone (any number of copies can run; they hold no state). */
export async function runApi(cfg: Config): Promise<void> {
  ownFilesOnly();
  if (cfg.httpPort === null) throw new Error('WORKBOOKS_HTTP_PORT is off: nothing to serve');
  const address = cfg.temporalAddress ?? `127.0.0.1:${cfg.temporalPort}`;
  const connection = await connectClient(cfg.temporal, address, { connectTimeout: '10s' });
  const api = (await startApi(cfg, new Client({ connection, namespace: cfg.namespace })))!;
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`workbooks: ${sig}, stopping the API…\n`);
    api.server
      .close()
      .then(() => connection.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.stdout.write(`workbooks api up: ${api.banner}, temporal ${address} (${cfg.temporal.describe()})\n`);
}
