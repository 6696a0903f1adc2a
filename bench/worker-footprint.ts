/**
 * RSS of one worker host at rest with no workspaces, by how it gets its workflow code (issue 14). One mode per run,
 * in a fresh process: a dev server of its own, the host started, then RSS and the V8 heap sampled after it settled.
 *
 *   node dist/bench/worker-footprint.js prebuilt|bundle|hostonly [settleSeconds=10]
 *
 *   prebuilt  dist/workflow-bundle.js (what worker hosts load when the build made it)
 *   bundle    src/workflows bundled by webpack in this process at start (what they did before)
 *   hostonly  no workflow worker at all (host and liveness queues, data server): the workflow worker's share
 *
 * Prints one JSON line. The dev server's RSS is its own process and not counted.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { startTestDevServer } from '../harness/temporal';
import { quietRuntime, uniqueQueue } from '../harness/stack';
import { loadConfig } from '../src/config';
import { startWorkerHost } from '../src/worker/worker-host';
import { prebuiltWorkflowBundle, workflowEntry } from '../src/worker/workflow-bundle';

const MiB = 1024 * 1024;

function procKb(key: string): number | null {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : null;
}

async function main(): Promise<void> {
  const mode = process.argv[2];
  const settle = Number(process.argv[3] ?? 10);
  if (mode !== 'prebuilt' && mode !== 'bundle' && mode !== 'hostonly') throw new Error('usage: worker-footprint prebuilt|bundle|hostonly [settleSeconds]');
  quietRuntime();
  const rssBefore = process.memoryUsage().rss;
  const server = await startTestDevServer();
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-footprint-'));
  try {
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    let workflowBundle;
    if (mode === 'prebuilt' || mode === 'hostonly') {
      const p = prebuiltWorkflowBundle();
      if (!('codePath' in p)) throw new Error(p.stale);
      workflowBundle = p;
    } else {
      workflowBundle = await bundleWorkflowCode({ workflowsPath: workflowEntry(), logger: new DefaultLogger('ERROR') });
    }
    const cfg = loadConfig({}, { dataDir, hostId: 'footprint', taskQueue: uniqueQueue('footprint'), hostPort: 0, replicaUrl: null, temporalAddress: 'unused' });
    const host = await startWorkerHost({ cfg, connection: server.connection, client: server.client, workflowBundle, hostOnly: mode === 'hostonly' });
    await host.reconciled;
    const startMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    await new Promise((r) => setTimeout(r, settle * 1000));
    const m = process.memoryUsage();
    const out = {
      mode,
      startMs: Math.round(startMs),
      startCpuMs: Math.round((cpu.user + cpu.system) / 1000),
      rssBeforeMiB: +(rssBefore / MiB).toFixed(0),
      rssMiB: +(m.rss / MiB).toFixed(0),
      hwmMiB: +((procKb('VmHWM') ?? NaN) / MiB).toFixed(0),
      heapUsedMiB: +(m.heapUsed / MiB).toFixed(0),
      externalMiB: +(m.external / MiB).toFixed(0),
    };
    await host.shutdown();
    console.log(JSON.stringify(out));
  } finally {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
