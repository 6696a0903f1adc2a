/**
 * The scale bench's worker host, in a process of its own (forked by bench/scale-worker-process.ts) so that its CPU
 * and memory are measured apart from the bench's client. Reads its settings as JSON from BENCH_SCALE_WORKER, starts
 * one worker host (src/worker/worker-host.ts: replication off, file:// cold and archive in the bench's temp dir, the
 * bench's maxCachedWorkflows, a prebundled workflow bundle), and talks to its parent over IPC:
 *
 *   parent → child  { type: 'watch', ids }   report each of these workspaces once its file is closed here
 *                   { type: 'heap' }         answer with this process's V8 heap
 *                   { type: 'stop' }         shut the host down and exit
 *   child → parent  { type: 'ready', hostId, hostQueue }
 *                   { type: 'closed', ids, at }   (at: Date.now() when seen; polled every 20 ms)
 *                   { type: 'heap', heapUsed, heapTotal }
 *                   { type: 'failed', message }
 */
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { quietRuntime, TEST_DATA_KEY_SECRET } from '../harness/stack';
import { loadConfig } from '../src/config';
import { startWorkerHost, WorkerHost } from '../src/worker/worker-host';

export interface ScaleWorkerSettings {
  address: string;
  namespace: string;
  taskQueue: string;
  hostId: string;
  dataDir: string;
  /** maxCachedWorkflows; undefined: the product's default. */
  cacheSize?: number;
  /** A workflow bundle written by the parent (bundling here would put webpack's memory into this process's peak). */
  bundlePath: string;
}

export type ToWorker = { type: 'watch'; ids: string[] } | { type: 'heap' } | { type: 'stop' };
export type FromWorker =
  | { type: 'ready'; hostId: string; hostQueue: string }
  | { type: 'closed'; ids: string[]; at: number }
  | { type: 'heap'; heapUsed: number; heapTotal: number }
  | { type: 'failed'; message: string };

function send(msg: FromWorker): void {
  process.send?.(msg);
}

async function main(): Promise<void> {
  if (!process.send) throw new Error('bench/scale-worker.js runs as a forked child of the scale bench (it needs an IPC channel)');
  const s = JSON.parse(process.env.BENCH_SCALE_WORKER ?? 'null') as ScaleWorkerSettings | null;
  if (!s) throw new Error('BENCH_SCALE_WORKER (JSON settings) is not set');
  quietRuntime();
  // The workflow worker's options come from the environment, as in the product (bench/worker-options.ts sets them).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^WORKBOOKS_(WORKFLOW_|STICKY_TIMEOUT_SECONDS$)/.test(k)));
  const cfg = loadConfig(
    env,
    {
      dataDir: s.dataDir,
      hostId: s.hostId,
      taskQueue: s.taskQueue,
      namespace: s.namespace,
      hostPort: 0,
      coldUrl: `file://${path.join(s.dataDir, 'cold')}`,
      archiveUrl: `file://${path.join(s.dataDir, 'archive')}`,
      replicaUrl: null,
      dataKey: TEST_DATA_KEY_SECRET,
      temporalAddress: s.address,
    },
  );
  const connection = await NativeConnection.connect({ address: s.address });
  const clientConnection = await Connection.connect({ address: s.address });
  const client = new Client({ connection: clientConnection, namespace: s.namespace });
  const host: WorkerHost = await startWorkerHost({ cfg, connection, client, workflowBundle: { codePath: s.bundlePath }, maxCachedWorkflows: s.cacheSize });
  await host.reconciled;

  const watched = new Set<string>();
  const timer = setInterval(() => {
    if (watched.size === 0) return;
    const closed: string[] = [];
    for (const id of watched) if (!host.instances.isLoaded(id)) closed.push(id);
    if (closed.length === 0) return;
    for (const id of closed) watched.delete(id);
    send({ type: 'closed', ids: closed, at: Date.now() });
  }, 20);

  let stopping = false;
  process.on('message', (msg: ToWorker) => {
    if (msg.type === 'watch') for (const id of msg.ids) watched.add(id);
    else if (msg.type === 'heap') {
      const m = process.memoryUsage();
      send({ type: 'heap', heapUsed: m.heapUsed, heapTotal: m.heapTotal });
    } else if (msg.type === 'stop' && !stopping) {
      stopping = true;
      clearInterval(timer);
      void (async () => {
        await host.shutdown().catch(() => undefined);
        await clientConnection.close().catch(() => undefined);
        await connection.close().catch(() => undefined);
        process.exit(0);
      })();
    }
  });
  // The parent gone (killed): nothing to report to any more.
  process.on('disconnect', () => {
    if (!stopping) void host.shutdown().finally(() => process.exit(0));
  });
  send({ type: 'ready', hostId: cfg.hostId, hostQueue: host.hostInfo.taskQueue });
}

main().catch((err) => {
  send({ type: 'failed', message: (err as Error).stack ?? String(err) });
  process.exitCode = 1;
  setTimeout(() => process.exit(1), 100);
});
