/**
 * Temporal servers for tests: a real dev server (`temporal server start-dev`, throwaway data dir, free ports,
 * our search attributes registered) and the time-skipping test server, both from `.tools/bin`.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { startDevServer, type DevServer } from '../src/embedded/dev-server';
import { resolveBinary } from '../src/tools';
import { SEARCH_ATTRIBUTE_KEYS } from '../src/contract/search-attributes';

/** temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD */
const INDEXED_VALUE_TYPE_KEYWORD = 2;

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return (await freePorts(1))[0]!;
}

/** n distinct ports, all held open together while picking so they differ. */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const srv = net.createServer();
      servers.push(srv);
      await new Promise<void>((resolve, reject) => {
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((srv.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  }
}

export interface TestDevServer {
  address: string;
  namespace: string;
  dataDir: string;
  server: DevServer;
  /** For Workers. */
  connection: NativeConnection;
  client: Client;
  /** Closes the connections, stops the server and removes its data dir. */
  stop(): Promise<void>;
}

/** A fresh headless dev server on free ports with a temporary data dir. */
export async function startTestDevServer(opts: { extraArgs?: string[] } = {}): Promise<TestDevServer> {
  const namespace = 'default';
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'workbooks-devserver-'));
  let server: DevServer | undefined;
  try {
    // Ports are only reserved while picking; retry if another process grabbed one before the server bound it.
    for (let attempt = 1; ; attempt++) {
      const [port, uiPort] = await freePorts(2);
      try {
        server = await startDevServer({ dataDir, port: port!, uiPort: uiPort!, headless: true, namespace, extraArgs: opts.extraArgs });
        break;
      } catch (err) {
        if (attempt >= 3 || !/address already in use/i.test((err as Error).message)) throw err;
      }
    }
    const connection = await NativeConnection.connect({ address: server.address });
    const clientConnection = await Connection.connect({ address: server.address });
    const client = new Client({ connection: clientConnection, namespace });
    const srv = server;
    let stopping: Promise<void> | null = null;
    return {
      address: srv.address,
      namespace,
      dataDir,
      server: srv,
      connection,
      client,
      stop: () =>
        (stopping ??= (async () => {
          await clientConnection.close().catch(() => undefined);
          await connection.close().catch(() => undefined);
          await srv.stop();
          await fs.rm(dataDir, { recursive: true, force: true });
        })()),
    };
  } catch (err) {
    await server?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * The time-skipping test server (Java test server binary from .tools), with our search attributes registered.
 *
 * Measured with temporal-test-server 1.40.0: it knows no custom search attributes at start. Unregistered,
 * starting a workflow with `typedSearchAttributes` fails with INVALID_ARGUMENT "search attribute WorkbookState
 * is not defined", and a workflow calling `upsertSearchAttributes` gets every workflow task completion rejected
 * the same way (retried every ~10 s, the workflow never progresses). `OperatorService.addSearchAttributes` is
 * implemented there (list is not), and after it both work. `setCurrentDetails` works either way.
 * List/Count of workflow executions are UNIMPLEMENTED on that server: use the dev server for visibility queries.
 */
export async function startTimeSkipping(): Promise<TestWorkflowEnvironment> {
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: resolveBinary('temporal-test-server') } },
  });
  try {
    const searchAttributes: Record<string, number> = {};
    for (const key of SEARCH_ATTRIBUTE_KEYS) searchAttributes[key.name] = INDEXED_VALUE_TYPE_KEYWORD;
    await env.connection.operatorService.addSearchAttributes({ namespace: env.namespace ?? 'default', searchAttributes });
  } catch (err) {
    await env.teardown().catch(() => undefined);
    throw err;
  }
  return env;
}
