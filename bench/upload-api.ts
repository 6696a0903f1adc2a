/**
 * Uploads through the HTTP API: one 100 MiB PUT (time, the API's peak RSS) and the reproduction, N
 * concurrent 200 MiB uploads to a workspace the caller does not own (status, the API's RSS growth). The API runs
 * as its own process (`workbooks api`), against a Temporal dev server and a worker host in this process.
 *
 *   node dist/bench/upload-api.js [tree]      tree: a compiled checkout's dist (default: this one), so the same
 *                                             measurement runs against an older build for a before/after
 * Environment: BENCH_UPLOAD_N (concurrent refused uploads, default 8), BENCH_UPLOAD_RUNS (100 MiB PUTs, default 3).
 */
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { upload } from '../harness/uploads';

const MiB = 1024 * 1024;
const tree = path.resolve(process.argv[2] ?? path.join(__dirname, '..'));
/* eslint-disable @typescript-eslint/no-require-imports */
const temporal = require(path.join(tree, 'harness/temporal')) as typeof import('../harness/temporal');
const stack = require(path.join(tree, 'harness/stack')) as typeof import('../harness/stack');

function rss(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) * 1024;
}

async function main(): Promise<void> {
  const n = Number(process.env.BENCH_UPLOAD_N ?? 8);
  const runs = Number(process.env.BENCH_UPLOAD_RUNS ?? 3);
  const server = await temporal.startTestDevServer();
  const taskQueue = stack.uniqueQueue('bench-upload');
  const host = await stack.startTestHost({ connection: server.connection, client: server.client, taskQueue, replicaUrl: 'off', hostLeaseSeconds: 60 });
  const wb = stack.clientFor(server.client, taskQueue);
  const never = { suspendAfter: 'never', freezeAfter: 'never' };
  await wb.create({ workspaceId: 'theirs', tenant: 'globex', policy: never });
  await wb.create({ workspaceId: 'mine', tenant: 'acme', policy: never });
  const api = spawn(process.execPath, [path.join(tree, 'src/cli/main.js'), 'api'], {
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: server.address,
      WORKBOOKS_TASK_QUEUE: taskQueue,
      WORKBOOKS_DATA_DIR: stack.tempDir('wb-bench-api-'),
      WORKBOOKS_DATA_KEY: stack.TEST_DATA_KEY_SECRET,
      WORKBOOKS_TOKENS: 'tok-acme-0123456789=acme',
      WORKBOOKS_HTTP_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = await new Promise<string>((resolve) => {
    let out = '';
    api.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /workbooks api up: (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
  });
  const auth = { authorization: 'Bearer tok-acme-0123456789' };
  try {
    for (let i = 0; i < runs; i++) {
      const before = rss(api.pid!);
      let peak = before;
      const timer = setInterval(() => (peak = Math.max(peak, rss(api.pid!))), 20);
      const t0 = Date.now();
      const r = await upload(`${base}/v1/workspaces/mine/files/workspace/hundred-${i}.bin`, 100 * MiB, { headers: auth });
      const ms = Date.now() - t0;
      clearInterval(timer);
      console.log(`100 MiB PUT #${i + 1}: ${r.status} in ${ms} ms (${((100 * 1000) / ms).toFixed(0)} MiB/s); API RSS ${(before / MiB).toFixed(0)} -> peak ${(peak / MiB).toFixed(0)} MiB`);
      await wb.deleteFile('mine', 'workspace', `/hundred-${i}.bin`);
    }
    const before = rss(api.pid!);
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, rss(api.pid!))), 20);
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: n }, (_, i) => upload(`${base}/v1/workspaces/theirs/files/workspace/big-${i}`, 200 * MiB, { headers: auth }).catch((e: Error) => ({ status: e.message }))));
    clearInterval(timer);
    const statuses = [...new Set(results.map((r) => r.status))].join(',');
    console.log(`${n} x 200 MiB to a workspace of another tenant: status ${statuses} in ${Date.now() - t0} ms; API RSS ${(before / MiB).toFixed(0)} -> peak ${(peak / MiB).toFixed(0)} MiB (+${((peak - before) / MiB).toFixed(0)} MiB)`);
  } finally {
    api.kill('SIGTERM');
    await host.stop();
    await server.stop();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
