/** Test plumbing: one workflow bundle per process, and real worker hosts (real files, real activities). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Runtime, DefaultLogger, WorkflowBundle, WorkflowBundlePath } from '@temporalio/worker';
import { loadConfig, Config } from '../src/config';
import { startWorkerHost, WorkerHost } from '../src/worker/worker-host';
import { prebuiltWorkflowBundle, workflowEntry } from '../src/worker/workflow-bundle';
import { WorkbooksClient } from '../src/client/workbooks-client';
import { DataKey } from '../src/grants';

let bundlePromise: Promise<WorkflowBundle | WorkflowBundlePath> | null = null;
let runtimeInstalled = false;

export function quietRuntime(): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  try {
    Runtime.install({ logger: new DefaultLogger((process.env.WORKBOOKS_TEST_LOG_LEVEL as 'WARN') ?? 'ERROR') });
  } catch {
    // already installed by an earlier helper in this process
  }
}

/**
 * The build's bundle (dist/workflow-bundle.js) when it matches the compiled workflow code, else one bundled in this
 * process (once): tests run the workflow code as compiled, whether or not the bundle step ran after the last tsc.
 */
export function workflowBundle(): Promise<WorkflowBundle | WorkflowBundlePath> {
  bundlePromise ??= (async () => {
    const prebuilt = prebuiltWorkflowBundle();
    if ('codePath' in prebuilt) return prebuilt;
    return bundleWorkflowCode({ workflowsPath: workflowEntry(), logger: new DefaultLogger('ERROR') });
  })();
  return bundlePromise;
}

/**
 * Hosts in tests hold a 3 s lease (production: 10 s): a host that is gone is declared so after max(host timeout,
 * lease + 5 s), which keeps host-loss tests short without renewals failing on a loaded machine.
 */
export const TEST_LEASE_SECONDS = 3;

/** The data key hosts and clients share in tests (production: WORKBOOKS_DATA_KEY or `<data dir>/data-key`). */
export const TEST_DATA_KEY_SECRET = 'test-data-key-0123456789abcdefghijklmnopqrstuvwxyz';
export const TEST_DATA_KEY = new DataKey(TEST_DATA_KEY_SECRET);

export function tempDir(prefix = 'wb-test-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface TestHost {
  cfg: Config;
  host: WorkerHost;
  stop(): Promise<void>;
}

/** Starts a real worker host (shared + host queues + data server) with its own data dir. */
export async function startTestHost(opts: {
  connection: NativeConnection;
  client: Client;
  taskQueue: string;
  hostId?: string;
  dataDir?: string;
  coldUrl?: string;
  archiveUrl?: string;
  /** Replica location (default file://<dataDir>/replicas); 'off' disables replication. */
  replicaUrl?: string;
  hostOnly?: boolean;
  clock?: () => number;
  currentTime?: () => Promise<number>;
  /** Limits copy speed (bytes/second) of freeze/restore/clone/archive copies; default unlimited. */
  copyThrottleBps?: number;
  /** The host's lease (default TEST_LEASE_SECONDS: short, so a lost host is noticed quickly). */
  hostLeaseSeconds?: number;
  /** Any other settings (quotas, upload budget, HTTP limits). */
  config?: Partial<Config>;
}): Promise<TestHost> {
  quietRuntime();
  const dataDir = opts.dataDir ?? tempDir('wb-host-');
  const cfg = loadConfig(
    {},
    {
      dataDir,
      hostId: opts.hostId ?? 'test-host',
      taskQueue: opts.taskQueue,
      hostPort: 0,
      coldUrl: opts.coldUrl ?? `file://${path.join(dataDir, 'cold')}`,
      archiveUrl: opts.archiveUrl ?? `file://${path.join(dataDir, 'archive')}`,
      ...(opts.replicaUrl !== undefined ? { replicaUrl: opts.replicaUrl === 'off' ? null : opts.replicaUrl } : {}),
      ...(opts.copyThrottleBps !== undefined ? { copyThrottleBps: opts.copyThrottleBps } : {}),
      hostLeaseSeconds: opts.hostLeaseSeconds ?? TEST_LEASE_SECONDS,
      dataKey: TEST_DATA_KEY_SECRET,
      temporalAddress: 'unused',
      ...opts.config,
    },
  );
  const host = await startWorkerHost({ cfg, connection: opts.connection, client: opts.client, workflowBundle: await workflowBundle(), hostOnly: opts.hostOnly, clock: opts.clock, currentTime: opts.currentTime });
  return { cfg, host, stop: () => host.shutdown() };
}

export function clientFor(client: Client, taskQueue: string): WorkbooksClient {
  return new WorkbooksClient(client, taskQueue, TEST_DATA_KEY);
}

let queueSeq = 0;
export function uniqueQueue(name = 'wb'): string {
  return `${name}-${process.pid}-${Date.now().toString(36)}-${++queueSeq}`;
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 30_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

// Installing the runtime on import keeps SDK logs quiet in every test that uses these helpers.
quietRuntime();
