/**
 * Freeze and wake on MinIO through the real workflow and the real CLI, each against the raw request it must
 * at least make, with the fixed costs around the copy measured on their own so the copy itself is visible:
 *   - `workbooks freeze <id>` (CLI start-up + Temporal round trips + the storeLocal activity: hash, upload,
 *     read-back verification, integrity check) against one plain PutObject of the live file;
 *   - `workbooks wake <id>` from frozen (CLI + round trips + the restore activity: download, sha256, fsync,
 *     integrity check) against one plain GetObject of the cold object streamed to a file, then fsynced;
 *   - the activity's own run time (from the workflow history: ActivityTaskStarted to Completed);
 *   - CLI start-up alone (`workbooks --help`: the CLI has no --version), and `workbooks show <id>` (start-up + connection + one query);
 *   - one Temporal round trip from a warm client (a describe query, in this process).
 * One Temporal dev server, one worker host in this process (cold storage s3://wb-cold/frozen on its own
 * MinIO, replicas file:// in its data dir as by default), one workspace per size filled through putFile.
 *
 * `node dist/bench/s3-cli.js`; environment:
 *   BENCH_S3_SIZES   workspace sizes in MiB (default "100,1024")
 *   BENCH_RUNS       freeze/wake cycles per size (default 5)
 *   BENCH_DIR        parent of the data dirs (default: the OS temp dir)
 *   BENCH_JSON       also write the raw result as JSON to this file
 *   WORKBOOKS_S3_PART_SIZE / WORKBOOKS_S3_PARALLEL   as for the service
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { startMinio, useS3Env, MinioServer } from '../harness/minio';
import { startTestDevServer, TestDevServer } from '../harness/temporal';
import { clientFor, startTestHost, TestHost, TEST_DATA_KEY_SECRET, uniqueQueue } from '../harness/stack';
import { workflowIdFor } from '../src/contract/ids';
import { parseS3Url, s3Client, s3SettingsFromEnv } from '../src/storage/s3-client';
import { median } from './raw-ops';
import { plainGet, plainPut } from './s3-throughput';
import { elapsed, settle } from './raw-ops';

const MiB = 1024 * 1024;
const PUT_CHUNK = 16 * MiB;
const CLI = path.resolve(__dirname, '..', 'src', 'cli', 'main.js');

export interface S3CliRun {
  freezeMs: number;
  storeLocalMs: number;
  plainPutMs: number;
  wakeMs: number;
  restoreMs: number;
  plainGetMs: number;
  cliVersionMs: number;
  cliShowMs: number;
  roundTripMs: number;
}

export interface S3CliSize {
  sizeMiB: number;
  fileBytes: number;
  runs: S3CliRun[];
}

export interface S3CliResult {
  partSize: number;
  parallel: number;
  sizes: S3CliSize[];
}

/** Runs the CLI with `args` in `env`; resolves with its wall time, rejects with its stderr on failure. */
function cli(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(elapsed(t0)) : reject(new Error(`workbooks ${args.join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

type Long = { toString(): string } | number | string | null | undefined;
const tsMs = (t: { seconds?: Long; nanos?: number | null } | null | undefined) => (t ? Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6 : NaN);

/** Run time of the newest completed activity of one of `types` scheduled after event `after`, and its scheduled id. */
async function lastActivity(server: TestDevServer, id: string, types: string[], after: number): Promise<{ ms: number; scheduledId: number }> {
  const events = (await server.client.workflow.getHandle(workflowIdFor(id)).fetchHistory()).events ?? [];
  const byId = new Map(events.map((e) => [Number(String(e.eventId)), e]));
  for (let i = events.length - 1; i >= 0; i--) {
    const done = events[i]!.activityTaskCompletedEventAttributes;
    if (!done) continue;
    const scheduledId = Number(String(done.scheduledEventId));
    if (scheduledId <= after) break;
    const type = byId.get(scheduledId)?.activityTaskScheduledEventAttributes?.activityType?.name;
    if (!type || !types.includes(type)) continue;
    const started = byId.get(Number(String(done.startedEventId)));
    return { ms: tsMs(events[i]!.eventTime) - tsMs(started?.eventTime), scheduledId };
  }
  throw new Error(`no completed ${types.join(' / ')} after event ${after} in the history of ${id}`);
}

export async function measureS3Cli(opts: { sizesMiB: number[]; runs: number; baseDir?: string; log?: (l: string) => void }): Promise<S3CliResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-s3-cli-'));
  let minio: MinioServer | undefined;
  let server: TestDevServer | undefined;
  let host: TestHost | undefined;
  let restoreEnv: (() => void) | undefined;
  try {
    minio = await startMinio({ parentDir: root });
    restoreEnv = useS3Env(minio);
    await minio.createBucket('wb-cold');
    const settings = s3SettingsFromEnv();
    const coldUrl = 's3://wb-cold/frozen';
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('bench-s3-cli');
    const dataDir = path.join(root, 'host');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: 'bench-s3-cli', dataDir, coldUrl });
    await host.host.reconciled;
    const wb = clientFor(server.client, taskQueue);
    const cliEnv = {
      ...process.env,
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: 'default',
      WORKBOOKS_TASK_QUEUE: taskQueue,
      WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET,
      WORKBOOKS_DATA_DIR: path.join(root, 'cli'),
    };
    const client = s3Client(settings);
    const { bucket } = parseS3Url(coldUrl);
    log(`MinIO at ${minio.endpoint}; Temporal dev server at ${server.address}; part ${settings.partSize / MiB} MiB, parallel ${settings.parallel}`);
    const result: S3CliResult = { partSize: settings.partSize, parallel: settings.parallel, sizes: [] };

    for (const sizeMiB of opts.sizesMiB) {
      const id = `s3cli-${sizeMiB}m-${crypto.randomBytes(3).toString('hex')}`;
      await wb.create({ workspaceId: id, tenant: 'bench', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
      const bytes = Math.round(sizeMiB * MiB);
      for (let off = 0, n = 0; off < bytes; off += PUT_CHUNK, n++) {
        await wb.putFile(id, 'workspace', `/data/${String(n).padStart(4, '0')}.bin`, crypto.randomBytes(Math.min(PUT_CHUNK, bytes - off)));
      }
      await wb.transition(id, 'suspended');
      const fileBytes = fs.statSync((await wb.describe(id)).filePath!).size;
      log(`  ${sizeMiB} MiB: live file ${fileBytes} bytes`);
      const size: S3CliSize = { sizeMiB, fileBytes, runs: [] };
      let lastStore = 0;
      let lastRestore = 0;
      // One unrecorded cycle first (connections, JIT, the server's first requests), then `runs` recorded ones.
      for (let r = 0; r <= opts.runs; r++) {
        const live = (await wb.describe(id)).filePath!;
        const cliVersionMs = await cli(['--help'], cliEnv);
        const cliShowMs = await cli(['show', id, '--json'], cliEnv);
        let t0 = performance.now();
        await wb.describe(id);
        const roundTripMs = elapsed(t0);

        settle(root);
        t0 = performance.now();
        await plainPut(client, bucket, 'bench-baseline/put', live);
        const plainPutMs = elapsed(t0);
        await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: 'bench-baseline/put' }));

        settle(root);
        const freezeMs = await cli(['freeze', id], cliEnv);
        const store = await lastActivity(server, id, ['storeLocal'], lastStore);
        lastStore = store.scheduledId;
        const frozen = await wb.describe(id);
        if (frozen.state !== 'frozen' || !frozen.cold) throw new Error(`${id} is ${frozen.state} after freeze`);

        const out = path.join(root, 'plain-get');
        settle(root);
        t0 = performance.now();
        await plainGet(client, bucket, parseS3Url(frozen.cold.url).prefix, out);
        const plainGetMs = elapsed(t0);
        fs.rmSync(out, { force: true });

        settle(root);
        const wakeMs = await cli(['wake', id], cliEnv);
        const restore = await lastActivity(server, id, ['recoverLocal', 'restoreLocal'], lastRestore);
        lastRestore = restore.scheduledId;
        if ((await wb.describe(id)).state !== 'active') throw new Error(`${id} is not active after wake`);

        const run: S3CliRun = { freezeMs, storeLocalMs: store.ms, plainPutMs, wakeMs, restoreMs: restore.ms, plainGetMs, cliVersionMs, cliShowMs, roundTripMs };
        const f = (n: number) => n.toFixed(0);
        log(
          `    ${r === 0 ? 'warm-up' : `run ${r}/${opts.runs}`}: freeze ${f(freezeMs)} (storeLocal ${f(store.ms)}; PutObject ${f(plainPutMs)}), ` +
            `wake ${f(wakeMs)} (restore ${f(restore.ms)}; GetObject+fsync ${f(plainGetMs)}); CLI --help ${f(cliVersionMs)}, show ${f(cliShowMs)}, round trip ${roundTripMs.toFixed(1)} ms`,
        );
        if (r > 0) size.runs.push(run);
        // New bytes, so the next freeze really copies (an unchanged file matching the cold copy would skip it).
        await wb.putFile(id, 'workspace', '/bench-marker', Buffer.from(`run ${r} ${Date.now()}`));
        await wb.transition(id, 'suspended');
      }
      result.sizes.push(size);
    }
    return result;
  } finally {
    await host?.stop().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    restoreEnv?.();
    await minio?.stop().catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const ms = (xs: number[]) => `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`;

/** A markdown table: medians (min–max) in ms, and the ratios the targets are stated in. */
export function s3CliTable(r: S3CliResult): string {
  const lines = [
    '| size | `workbooks freeze` | storeLocal activity | one PutObject | freeze ÷ PutObject | (freeze − show) ÷ PutObject | storeLocal ÷ PutObject | `workbooks wake` | restore activity | one GetObject + fsync | wake ÷ GetObject | (wake − show) ÷ GetObject | restore ÷ GetObject | CLI start-up (`--help`) | CLI `show` | one round trip |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const s of r.sizes) {
    const col = (k: keyof S3CliRun) => s.runs.map((x) => x[k]);
    const ratio = (a: keyof S3CliRun, b: keyof S3CliRun) => (median(col(a)) / median(col(b))).toFixed(2);
    // The move without the CLI's own costs: each run's command minus that run's `show` (start-up, connection, a query).
    const net = (a: keyof S3CliRun, b: keyof S3CliRun) => (median(s.runs.map((x) => x[a] - x.cliShowMs)) / median(col(b))).toFixed(2);
    lines.push(
      `| ${s.sizeMiB >= 1024 ? `${s.sizeMiB / 1024} GiB` : `${s.sizeMiB} MiB`} | ${ms(col('freezeMs'))} | ${ms(col('storeLocalMs'))} | ${ms(col('plainPutMs'))} | ${ratio('freezeMs', 'plainPutMs')} | ${net('freezeMs', 'plainPutMs')} | ${ratio('storeLocalMs', 'plainPutMs')} | ` +
        `${ms(col('wakeMs'))} | ${ms(col('restoreMs'))} | ${ms(col('plainGetMs'))} | ${ratio('wakeMs', 'plainGetMs')} | ${net('wakeMs', 'plainGetMs')} | ${ratio('restoreMs', 'plainGetMs')} | ` +
        `${ms(col('cliVersionMs'))} | ${ms(col('cliShowMs'))} | ${median(col('roundTripMs')).toFixed(1)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const sizesMiB = (process.env.BENCH_S3_SIZES || '100,1024').split(',').map(Number);
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  if (sizesMiB.some((n) => !(n > 0)) || !Number.isInteger(runs) || runs < 1) throw new Error('BENCH_S3_SIZES must be sizes > 0 and BENCH_RUNS a positive integer');
  const r = await measureS3Cli({ sizesMiB, runs, baseDir: process.env.BENCH_DIR || undefined });
  console.log(`\n${s3CliTable(r)}`);
  if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(r, null, 2));
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
