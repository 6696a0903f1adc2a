/**
 * `npm run bench`: freeze / resume through the real workflow against `cp` (local disk) and against plain
 * PutObject / GetObject (S3, on MinIO), the S3 store alone, freeze / wake through the CLI on MinIO, and replication (Litestream daemon memory per workspace,
 * replication lag through the product); printed and written to docs/BENCHMARKS.md. Starts everything it needs
 * (Temporal dev server, worker hosts, MinIO, Litestream) and removes it at the end.
 *
 * Environment:
 *   BENCH_SIZES        local freeze/resume: comma-separated workspace sizes in MiB (default "1,100,1024")
 *   BENCH_RUNS         local freeze/resume: runs per size (default 5, and 3 for sizes of 1 GiB and more)
 *   BENCH_DIR          parent directory of the temporary data dirs (default: the OS temp dir); its filesystem is measured
 *   BENCH_OUT          where to write the report (default docs/BENCHMARKS.md; "-" = print only)
 *   BENCH_S3           0 skips everything on S3 (default 1: a MinIO is started, harness/minio.ts)
 *   BENCH_S3_SIZES     S3 freeze/resume: sizes in MiB (default "1,100,1024")
 *   BENCH_S3_RUNS      S3 freeze/resume, the store-alone comparison and the CLI freeze/wake: runs per size (default 5)
 *   BENCH_REPLICATION  0 skips the replication measurements (default 1)
 *   BENCH_LITESTREAM_N workspace counts for the daemon memory measurement (default "100,500")
 *   BENCH_LAG_WRITES   writes timed per replica for the replication lag (default 20)
 *   BENCH_WAKE         0 skips the wake latency measurements (default 1)
 *   BENCH_WAKES        wake latency: timed wakes from each state (warm, suspended, frozen; default 200)
 *   BENCH_WAKE_MIB     wake latency: workspace size in MiB (default 10)
 *   BENCH_WAKE_LOCAL   0 skips the warm / suspended / frozen (file://) wakes, keeping the S3 one (default 1)
 *   BENCH_WAKES_S3     wake latency: timed wakes frozen on S3 (MinIO; default 50; needs BENCH_S3=1)
 *   BENCH_S3_FREEZE    0 skips S3 freeze/resume, the S3 store comparison and the CLI freeze/wake, keeping MinIO for
 *                      the S3 wakes (default 1)
 *   BENCH_S3_CLI       0 skips the freeze/wake through the CLI on MinIO (default 1; bench/s3-cli.ts)
 *   BENCH_CLONE        0 skips the clone measurement (default 1; bench/clone.ts)
 *   BENCH_CLONES       clone: clones of the template in the bulk run (default 1000; 0 = serial samples only)
 *   BENCH_CLONE_MIB    clone: template size in MiB (default 10)
 *   BENCH_CLONE_CONCURRENCY  clone: creates in flight at a time in the bulk run (default 8)
 *   BENCH_CLONE_SERIAL clone: clones in each one-at-a-time sample (default 20)
 *   BENCH_CLONE_REPLICATED  0 skips the one-at-a-time sample with replication on (default 1)
 *   BENCH_BUSY         0 skips the cost-of-being-busy measurement (default 1; bench/busy-cost.ts)
 *   BENCH_BUSY_OPS     busy: requests straight to the data server in one idle window (default 100000)
 *   BENCH_BUSY_CLIENT_OPS  busy: further requests through the client's putFile/getFile (default 1000)
 *   BENCH_BUSY_CONCURRENCY busy: requests in flight (default 8)
 *   BENCH_BUSY_WINDOW  busy: the idle window in seconds (default: sized from a pilot so the load fits in one window)
 *   BENCH_LOCAL        0 skips the local freeze/resume measurements (default 1)
 *   BENCH_SCALE        0 skips the scale measurement (default 1; bench/scale.ts, ~20 min per server at 10,000)
 *   BENCH_SCALE_SERVERS scale: the servers, in order (default "embedded,cluster": a dev server of its own on SQLite,
 *                      then the scripts/cluster.sh topology on PostgreSQL, brought up if it is not running)
 *   BENCH_SCALE_N      scale: workspaces on one worker host (default 10000)
 *   BENCH_SCALE_DUE    scale: how many of them reach their idle deadline in the same second (default 1000)
 *   BENCH_SCALE_CONCURRENCY  scale: creates in flight at a time (default 16)
 *   BENCH_SCALE_CACHE  scale: the worker's maxCachedWorkflows (default: the product's, DEFAULT_WORKFLOW_WORKER.cache)
 *   BENCH_SCALE_WAKES  scale: users' wakes at rest and again during the burst (default 50 each)
 *   BENCH_SCALE_WAKE_WINDOW  scale: seconds the wakes are spread over (default 10)
 *   BENCH_SCALE_JSON   scale: also write the raw result as JSON to this file, with -<server> before .json (to
 *                      render the section again)
 *   WORKBOOKS_S3_PART_SIZE / WORKBOOKS_S3_PARALLEL   as for the service (default 32 MiB / 4)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runFreezeResume, runFreezeResumeS3, MiB, FileBaselines, LOCAL_TARGETS, S3Baselines, RunSample, SizeResult } from './freeze-resume';
import { installHeartbeatTap, PhaseTiming } from './heartbeat-tap';
import { installInterruptCleanup, onInterrupt } from './cleanup';
import { measureS3Throughput, S3ThroughputResult, throughputTable } from './s3-throughput';
import { measureLitestreamMemory, LitestreamMemoryResult } from './litestream-memory';
import { measureReplicationLag, LagResult } from './replication-lag';
import { measureWakeLatency, measureWakeLatencyS3, WakeKind, WakeLatencyResult, WakeSeries } from './wake-latency';
import { measureClone, CloneResult, CloneSerial } from './clone';
import { measureBusyCost, BusyCostResult, LoadRun } from './busy-cost';
import { DEFAULT_WORKFLOW_WORKER } from '../src/config';
import { measureScale, ScaleResult, scaleGlance, scaleMarkdown, scaleServerName } from './scale';
import { SERVER_KINDS, ServerKind } from './scale-server';
import { startTestDevServer, TestDevServer } from '../harness/temporal';
import { startMinio, useS3Env, MinioServer } from '../harness/minio';
import { measureS3Cli, S3CliResult, s3CliTable } from './s3-cli';
import { s3SettingsFromEnv } from '../src/storage/s3-client';
import { resolveBinary } from '../src/tools';
import { median, percentile } from './raw-ops';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

// ---------------------------------------------------------------------------------------------------------------
// Settings

function parseSizes(raw: string | undefined, name: string, fallback: string): number[] {
  const sizes = (raw || fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (sizes.length === 0 || sizes.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error(`${name} must be comma-separated positive numbers, got '${raw}'`);
  return sizes;
}

function parseRuns(raw: string | undefined, name: string, fallback: (size: number) => number): (size: number) => number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got '${raw}'`);
  return () => n;
}

function flag(raw: string | undefined, name: string): boolean {
  if (raw === undefined || raw === '' || /^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new Error(`${name} must be 0 or 1, got '${raw}'`);
}

function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : '';
}

interface Machine {
  nproc: string;
  cpu: string;
  memory: string;
  kernel: string;
  fs: string;
  node: string;
  date: string;
}

function machine(dataDir: string): Machine {
  const df = sh('df', ['-T', dataDir]).split('\n')[1]?.split(/\s+/) ?? [];
  return {
    nproc: sh('nproc', []) || String(os.availableParallelism()),
    cpu: os.cpus()[0]?.model ?? 'unknown',
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
    kernel: sh('uname', ['-sr']) || os.release(),
    fs: df.length > 1 ? `${df[1]} (${df[0]})` : 'unknown',
    node: process.version,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

/** The MinIO release scripts/cluster.sh pins and builds (the binary itself reports a development version). */
function minioVersion(): string {
  try {
    const m = /^MINIO_VERSION=(\S+)/m.exec(fs.readFileSync(path.join(REPO_ROOT, 'scripts', 'cluster.sh'), 'utf8'));
    return m ? m[1]!.replace(/^["']|["']$/g, '') : 'unknown version';
  } catch {
    return 'unknown version';
  }
}

function litestreamVersion(): string {
  try {
    return sh(resolveBinary('litestream'), ['version']) || 'unknown version';
  } catch {
    return 'unknown version';
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Formatting



function ms(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (x >= 1000) return `${(x / 1000).toFixed(2)} s`;
  return `${x >= 100 ? x.toFixed(0) : x.toFixed(1)} ms`;
}

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && b > 0 ? `${(a / b).toFixed(1)}×` : '—';
}

function sizeLabel(mib: number): string {
  return mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

function bytesLabel(b: number): string {
  return b >= 1024 * MiB ? `${(b / (1024 * MiB)).toFixed(2)} GiB` : `${(b / MiB).toFixed(1)} MiB`;
}

function mib(b: number): string {
  return `${(b / MiB).toFixed(1)} MiB`;
}

function mibps(bytes: number, msTaken: number): string {
  return msTaken > 0 ? `${(bytes / MiB / (msTaken / 1000)).toFixed(0)} MiB/s` : '—';
}

function med<B>(r: SizeResult<B>, f: (s: RunSample<B>) => number): number {
  return median(r.runs.map(f));
}

/** The activity (or activities) that brought the file back on resume, as the history names them. */
function restoreName(results: SizeResult<unknown>[]): string {
  const names = [...new Set(results.flatMap((r) => r.runs.map((s) => s.restore.type)))];
  return names.length > 0 ? names.join(' / ') : 'restore';
}

function runsText(results: SizeResult<unknown>[]): string {
  return results.map((r) => `${r.runs.length} run${r.runs.length === 1 ? '' : 's'} at ${sizeLabel(r.sizeMiB)}`).join(', ');
}

// ---------------------------------------------------------------------------------------------------------------
// Phases inside storeLocal (heartbeat tap)

const PHASE_LABEL: Record<'file' | 's3', Record<string, string>> = {
  file: {
    start: 'setup',
    fold: 'checkpoint (+ Litestream clean-up, integrity check and copy started)',
    hash: 'sha256 of the file (kernel copy, fsync and read-back of the copy alongside)',
    copy: 'rest of the copy (kernel copy, fsync), rename, metadata',
    verify: 'rest of the read-back (sha256 of the copy)',
    integrity: 'rest of the integrity check (of the unchanged file, alongside since the checkpoint) + release',
  },
  s3: {
    start: 'setup',
    fold: 'checkpoint',
    hash: 'sha256 of the file',
    copy: 'upload (multipart, parallel) + complete',
    verify: 'verify: download (ranged GETs, sha256, fsync)',
    integrity: 'integrity check + release',
  },
};

/** Phase names in first-seen order over all runs. */
function phaseNames(results: SizeResult<unknown>[]): string[] {
  const names: string[] = [];
  for (const r of results) for (const s of r.runs) for (const p of s.storePhases ?? []) if (!names.includes(p.phase)) names.push(p.phase);
  return names;
}

function phaseMs(phases: PhaseTiming[] | null, name: string): number {
  if (!phases) return NaN;
  return phases.filter((p) => p.phase === name).reduce((a, p) => a + p.ms, 0);
}

function phaseTable(results: SizeResult<unknown>[], kind: 'file' | 's3'): string[] {
  const names = phaseNames(results);
  if (names.length === 0) return ['(no heartbeats traced)'];
  const label = (n: string) => PHASE_LABEL[kind][n] ?? n;
  const out = [
    `| size | ${names.map(label).join(' | ')} | storeLocal (traced) | storeLocal (history) |`,
    `|---|${names.map(() => '---:').join('|')}|---:|---:|`,
  ];
  for (const r of results) {
    const total = med(r, (s) => (s.storePhases ?? []).reduce((a, p) => a + p.ms, 0));
    const cells = names.map((n) => {
      const m = med(r, (s) => phaseMs(s.storePhases, n));
      return `${ms(m)} (${total > 0 ? ((m / total) * 100).toFixed(0) : '—'}%)`;
    });
    out.push(`| ${sizeLabel(r.sizeMiB)} | ${cells.join(' | ')} | ${ms(total)} | ${ms(med(r, (s) => s.storeLocal.runMs))} |`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Local (file://) sections

function localTables(results: SizeResult<FileBaselines>[]): string {
  const out: string[] = [];
  out.push('### Freeze (suspended → frozen)', '');
  out.push('| size | file | runs | freeze (update) | storeLocal activity | rest of the move | cp | cp + fsync | raw verified copy | freeze ÷ cp | freeze ÷ (cp + fsync) | activity ÷ (cp + fsync) | freeze ÷ raw verified copy |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const f = med(r, (s) => s.freezeMs);
    const a = med(r, (s) => s.storeLocal.runMs);
    const rest = med(r, (s) => s.freezeMs - s.storeLocal.runMs);
    const cp = med(r, (s) => s.base.cpLiveMs);
    const cps = med(r, (s) => s.base.cpSyncLiveMs);
    const ver = med(r, (s) => s.base.verifiedCopyMs);
    out.push(`| ${sizeLabel(r.sizeMiB)} | ${bytesLabel(r.fileBytes)} | ${r.runs.length} | **${ms(f)}** (${mibps(r.fileBytes, f)}) | ${ms(a)} | ${ms(rest)} | ${ms(cp)} | ${ms(cps)} | ${ms(ver)} | ${ratio(f, cp)} | ${ratio(f, cps)} | ${ratio(a, cps)} | ${ratio(f, ver)} |`);
  }
  out.push('', '### Resume (frozen → active, `wake`)', '');
  out.push(`| size | file | runs | resume (update) | ${restoreName(results)} activity | rest of the move | cp back | cp back + fsync | resume ÷ cp | resume ÷ (cp + fsync) | activity ÷ (cp + fsync) |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const w = med(r, (s) => s.resumeMs);
    const a = med(r, (s) => s.restore.runMs);
    const rest = med(r, (s) => s.resumeMs - s.restore.runMs);
    const cp = med(r, (s) => s.base.cpColdMs);
    const cps = med(r, (s) => s.base.cpSyncColdMs);
    out.push(`| ${sizeLabel(r.sizeMiB)} | ${bytesLabel(r.fileBytes)} | ${r.runs.length} | **${ms(w)}** (${mibps(r.fileBytes, w)}) | ${ms(a)} | ${ms(rest)} | ${ms(cp)} | ${ms(cps)} | ${ratio(w, cp)} | ${ratio(w, cps)} | ${ratio(a, cps)} |`);
  }
  out.push('', '### Inside storeLocal (medians per phase, from the activity\'s heartbeats)', '', ...phaseTable(results, 'file'));
  return out.join('\n');
}

function localRawRuns(results: SizeResult<FileBaselines>[]): string {
  const out: string[] = [`| size | run | freeze | storeLocal | cp | cp + fsync | raw verified copy | resume | ${restoreName(results)} | cp back | cp back + fsync |`, '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    r.runs.forEach((s, i) => {
      const retried = s.storeLocal.attempt > 1 || s.restore.attempt > 1 ? ' (retried)' : '';
      out.push(
        `| ${sizeLabel(r.sizeMiB)} | ${i + 1}${retried} | ${ms(s.freezeMs)} | ${ms(s.storeLocal.runMs)} | ${ms(s.base.cpLiveMs)} | ${ms(s.base.cpSyncLiveMs)} | ${ms(s.base.verifiedCopyMs)} | ${ms(s.resumeMs)} | ${ms(s.restore.runMs)} | ${ms(s.base.cpColdMs)} | ${ms(s.base.cpSyncColdMs)} |`,
      );
    });
  }
  return out.join('\n');
}

/** Said only when it happened: a plain cp slower than cp + fsync of the same file is not the disk. */
function firstTouchNote(results: SizeResult<FileBaselines>[]): string[] {
  const odd = results.flatMap((r) => r.runs.filter((s) => s.base.cpLiveMs > 1.5 * s.base.cpSyncLiveMs || s.base.cpColdMs > 1.5 * s.base.cpSyncColdMs).map(() => r.sizeMiB));
  if (odd.length === 0) return [];
  return [
    `Note: in ${odd.length} local run${odd.length === 1 ? '' : 's'} (${[...new Set(odd)].map(sizeLabel).join(', ')}) a plain \`cp\` took more than 1.5× as long as`,
    '`cp` + fsync of the same file right after it (raw runs below). That is not the disk: it is page cache growing into memory',
    'the machine has to back on first touch (seen on VMs that hand freed guest memory back to the host; the first of',
    'several back-to-back `cp`s of a new 1 GiB file is several times slower than the rest). The copies inside freeze and',
    'resume pay the same cost when it hits them, so compare against the medians and the fsync column, not single runs.',
    '',
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// S3 sections

interface S3Section {
  server: string;
  partSize: number;
  parallel: number;
  results: SizeResult<S3Baselines>[];
  /** The store alone against plain requests, per size. */
  store: S3ThroughputResult[];
  /** Freeze / wake through the CLI, with CLI start-up and a Temporal round trip on their own. */
  cli: S3CliResult | null;
}

function s3Tables(s3: S3Section): string {
  const out: string[] = [];
  out.push('### Freeze to S3 (suspended → frozen)', '');
  out.push('| size | file | runs | freeze (update) | storeLocal activity | of which upload | rest of the move | plain PutObject | freeze ÷ PutObject | activity ÷ PutObject | upload ÷ PutObject |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of s3.results) {
    const f = med(r, (s) => s.freezeMs);
    const a = med(r, (s) => s.storeLocal.runMs);
    const up = med(r, (s) => phaseMs(s.storePhases, 'copy'));
    const rest = med(r, (s) => s.freezeMs - s.storeLocal.runMs);
    const put = med(r, (s) => s.base.plainPutMs);
    out.push(
      `| ${sizeLabel(r.sizeMiB)} | ${bytesLabel(r.fileBytes)} | ${r.runs.length} | **${ms(f)}** (${mibps(r.fileBytes, f)}) | ${ms(a)} | ${ms(up)} | ${ms(rest)} | ${ms(put)} (${mibps(r.fileBytes, put)}) | ${ratio(f, put)} | ${ratio(a, put)} | ${ratio(up, put)} |`,
    );
  }
  out.push('', '### Resume from S3 (frozen → active, `wake`)', '');
  out.push(`| size | file | runs | resume (update) | ${restoreName(s3.results)} activity | rest of the move | plain GetObject + fsync | resume ÷ GetObject | activity ÷ GetObject |`);
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of s3.results) {
    const w = med(r, (s) => s.resumeMs);
    const a = med(r, (s) => s.restore.runMs);
    const rest = med(r, (s) => s.resumeMs - s.restore.runMs);
    const get = med(r, (s) => s.base.plainGetMs);
    out.push(`| ${sizeLabel(r.sizeMiB)} | ${bytesLabel(r.fileBytes)} | ${r.runs.length} | **${ms(w)}** (${mibps(r.fileBytes, w)}) | ${ms(a)} | ${ms(rest)} | ${ms(get)} (${mibps(r.fileBytes, get)}) | ${ratio(w, get)} | ${ratio(a, get)} |`);
  }
  out.push('', "### Inside storeLocal on S3 (medians per phase, from the activity's heartbeats)", '', ...phaseTable(s3.results, 's3'));
  for (const r of s3.store) {
    out.push(
      '',
      `### The S3 store alone against plain requests (${bytesLabel(r.bytes)} of random bytes, ${r.storePutMs.length} runs, alternating order; part ${mib(r.partSize)}, ${r.parallel} in parallel)`,
      '',
      throughputTable(r),
    );
  }
  if (s3.cli) {
    out.push(
      '',
      '### Freeze and wake through the CLI (`workbooks freeze` / `workbooks wake`), with the fixed costs on their own',
      '',
      s3CliTable(s3.cli),
      '',
      'Medians (min–max) in ms. `workbooks --help` is the CLI\'s start-up alone (node and its modules); `workbooks show`',
      'adds the connection to Temporal and one query; "one round trip" is a describe query from a warm client. The',
      'activity columns are the storeLocal / restore activity\'s own run time from the workflow history.',
    );
  }
  return out.join('\n');
}

/** The local targets of issue 13 ("copies near the limit"), judged on the client calls at 100 MiB and above. */
function localTarget(results: SizeResult<FileBaselines>[]): string[] {
  const judged = results.filter((r) => r.sizeMiB >= 100);
  if (judged.length === 0) return [];
  const lines = [
    `**Targets** (issue 13): local freeze ≤ ${LOCAL_TARGETS.freezeVsVerified.toFixed(1)}× the raw verified copy and ≤ ${LOCAL_TARGETS.freezeVsCpSync.toFixed(1)}× \`cp\` + fsync; local resume`,
    `≤ ${LOCAL_TARGETS.resumeVsCpSync.toFixed(1)}× \`cp\` + fsync (judged on the client calls, which include the Temporal round trips; the activity ratios show the copy itself).`,
    '',
  ];
  const verdict = (x: number, limit: number) => `${ratio(x, 1)} (${x <= limit ? 'met' : 'not met'})`;
  for (const r of judged) {
    const f = med(r, (s) => s.freezeMs);
    const a = med(r, (s) => s.storeLocal.runMs);
    const w = med(r, (s) => s.resumeMs);
    const ra = med(r, (s) => s.restore.runMs);
    const cps = med(r, (s) => s.base.cpSyncLiveMs);
    const cpsBack = med(r, (s) => s.base.cpSyncColdMs);
    const ver = med(r, (s) => s.base.verifiedCopyMs);
    const rt = med(r, (s) => s.roundTripMs);
    lines.push(
      `- ${sizeLabel(r.sizeMiB)}: freeze ${ms(f)} (activity ${ms(a)}) = ${verdict(f / ver, LOCAL_TARGETS.freezeVsVerified)} the raw verified copy (${ms(ver)}) and ` +
        `${verdict(f / cps, LOCAL_TARGETS.freezeVsCpSync)} \`cp\` + fsync (${ms(cps)}; activity ${ratio(a, cps)}); resume ${ms(w)} (activity ${ms(ra)}) = ` +
        `${verdict(w / cpsBack, LOCAL_TARGETS.resumeVsCpSync)} \`cp\` + fsync (${ms(cpsBack)}; activity ${ratio(ra, cpsBack)}). One client round trip alone (a warm wake): ${ms(rt)}.`,
    );
  }
  return lines;
}

/** The S3 targets of issue 13, and whether these numbers meet them. */
function s3Target(s3: S3Section): string[] {
  const lines = ['**Targets** (issue 13, on MinIO at 100 MiB and 1 GiB): freeze ≤ 2.5× one plain PutObject (upload + read-back verification),', 'wake from frozen ≤ 1.5× one GetObject + fsync, the upload phase alone ≤ 1.0× one PutObject.', ''];
  const met = (x: number, limit: number) => `${x.toFixed(2)}× (${x <= limit ? 'met' : 'not met'})`;
  for (const r of s3.results.filter((x) => x.sizeMiB >= 100)) {
    const put = med(r, (s) => s.base.plainPutMs);
    const get = med(r, (s) => s.base.plainGetMs);
    const up = med(r, (s) => phaseMs(s.storePhases, 'copy'));
    lines.push(
      `- ${sizeLabel(r.sizeMiB)}, through the client: freeze ${met(med(r, (s) => s.freezeMs) / put, 2.5)}, storeLocal activity ${(med(r, (s) => s.storeLocal.runMs) / put).toFixed(2)}×; ` +
        `wake ${met(med(r, (s) => s.resumeMs) / get, 1.5)}, restore activity ${(med(r, (s) => s.restore.runMs) / get).toFixed(2)}×; upload phase ${Number.isFinite(up) ? met(up / put, 1.0) : 'not traced'}.`,
    );
  }
  for (const r of s3.store) lines.push(`- ${bytesLabel(r.bytes)}, the store alone: put ${met(median(r.storePutMs) / median(r.plainPutMs), 1.0)} one PutObject.`);
  return lines;
}

function s3Caveats(s3: S3Section): string[] {
  return [
    `The S3 server here is **${s3.server}** (built from its Go module by scripts/cluster.sh), single drive, its data on the`,
    'same filesystem as the data dirs, on 127.0.0.1; it shares the CPUs with the Temporal dev server, the worker host,',
    'Litestream and this bench. It checks signatures, stores and fsyncs every object and part on disk, computes an MD5 per',
    'object or part (the ETag) and a bitrot checksum per block: on loopback the server\'s CPU, not a network, is the limit,',
    'so parallel parts help only as far as there are cores for the server to use them.',
  ];
}

function s3RawRuns(s3: S3Section): string {
  const names = phaseNames(s3.results);
  const out = [
    `| size | run | freeze | storeLocal | ${names.map((n) => PHASE_LABEL.s3[n] ?? n).join(' | ')} | plain PutObject | resume | ${restoreName(s3.results)} | plain GetObject + fsync |`,
    `|---|---:|---:|---:|${names.map(() => '---:').join('|')}|---:|---:|---:|---:|`,
  ];
  for (const r of s3.results) {
    r.runs.forEach((s, i) => {
      const retried = s.storeLocal.attempt > 1 || s.restore.attempt > 1 ? ' (retried)' : '';
      out.push(
        `| ${sizeLabel(r.sizeMiB)} | ${i + 1}${retried} | ${ms(s.freezeMs)} | ${ms(s.storeLocal.runMs)} | ${names.map((n) => ms(phaseMs(s.storePhases, n))).join(' | ')} | ${ms(s.base.plainPutMs)} | ${ms(s.resumeMs)} | ${ms(s.restore.runMs)} | ${ms(s.base.plainGetMs)} |`,
      );
    });
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Replication sections

interface ReplicationSection {
  litestream: string;
  memory: LitestreamMemoryResult[];
  lag: { label: string; r: LagResult }[];
}

function replicationTables(rep: ReplicationSection): string {
  const out: string[] = [];
  if (rep.memory.length > 0) {
    out.push('### Litestream daemon memory per replicated workspace', '');
    out.push('| workspaces | daemon RSS, none registered | RSS, all replicated | per workspace | peak RSS | open fds | registering all |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|');
    for (const m of rep.memory) {
      out.push(`| ${m.workspaces} | ${mib(m.baselineRssBytes)} | ${mib(m.rssBytes)} | **${(m.perWorkspaceBytes / 1024).toFixed(0)} KiB** | ${mib(m.peakRssBytes)} | ${m.openFds} | ${ms(m.registerMs)} |`);
    }
    out.push('');
  }
  if (rep.lag.length > 0) {
    out.push('### Replication lag (acknowledged write → visible in a restore of the replica)', '');
    out.push('| replica | writes | median | p90 | max | min | to the start of that restore (median) | one restore (median poll) |');
    out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const { label, r } of rep.lag) {
      out.push(
        `| ${label} | ${r.lagMs.length} | **${ms(median(r.lagMs))}** | ${ms(percentile(r.lagMs, 90))} | ${ms(Math.max(...r.lagMs))} | ${ms(Math.min(...r.lagMs))} | ${ms(median(r.lagStartMs))} | ${ms(median(r.restoreMs))} |`,
      );
    }
    out.push('');
  }
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Wake latency section

/** Targets from the product issue (issue 5), for a 10 MB workspace. */
const WAKE_TARGET_MS: Record<WakeKind, number> = { warm: 20, suspended: 150, frozen: 300, 'frozen-s3': 300 };
const WAKE_LABEL: Record<WakeKind, string> = {
  warm: 'warm (already active)',
  suspended: 'suspended (local file)',
  frozen: 'frozen (local file:// cold copy)',
  'frozen-s3': 'frozen (s3:// cold copy on MinIO)',
};

function metText(x: number, target: number): string {
  return Number.isFinite(x) ? (x < target ? 'met' : 'not met') : '—';
}

/** One line per state: where p50 and p99 stand against the target. */
function wakeVerdicts(w: WakeLatencyResult): string[] {
  return w.series.map((s) => {
    const t = WAKE_TARGET_MS[s.kind];
    const p50 = percentile(s.wakeMs, 50);
    const p99 = percentile(s.wakeMs, 99);
    return `${s.kind} < ${t} ms: p50 ${ms(p50)} **${metText(p50, t)}**, p99 ${ms(p99)} **${metText(p99, t)}**`;
  });
}

function wakeTables(w: WakeLatencyResult): string {
  const out: string[] = [];
  if (w.series.some((s) => s.kind !== 'frozen-s3')) {
    out.push(`${w.wakes} timed wakes from each state, on one workspace whose live file is ${bytesLabel(w.fileBytes)} (${sizeLabel(w.sizeMiB)} of files; cold copy ${bytesLabel(w.coldBytes)}).`);
  }
  if (w.s3) {
    out.push(
      `Frozen on S3: ${w.s3.wakes} timed wakes of another workspace filled the same way (live file ${bytesLabel(w.s3.fileBytes)}; cold object ${bytesLabel(w.s3.coldBytes)}), its host's cold storage at \`${w.s3.coldUrl}\` on MinIO.`,
    );
  }
  out.push('');
  out.push('| woken from | wakes | p50 | p90 | p99 | max | min | baseline | baseline p50 | baseline p99 | p50 − baseline p50 | p50 ÷ baseline p50 | target (issue 5) | p50 | p99 |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|');
  for (const s of w.series) {
    const t = WAKE_TARGET_MS[s.kind];
    const p50 = percentile(s.wakeMs, 50);
    const p99 = percentile(s.wakeMs, 99);
    const b50 = percentile(s.baseMs, 50);
    out.push(
      `| ${WAKE_LABEL[s.kind]} | ${s.wakeMs.length} | **${ms(p50)}** | ${ms(percentile(s.wakeMs, 90))} | ${ms(p99)} | ${ms(Math.max(...s.wakeMs))} | ${ms(Math.min(...s.wakeMs))} | ${s.baseline} | ${ms(b50)} | ${ms(percentile(s.baseMs, 99))} | ${ms(p50 - b50)} | ${ratio(p50, b50)} | < ${t} ms | ${metText(p50, t)} | ${metText(p99, t)} |`,
    );
  }
  const fz = w.series.find((s) => s.kind === 'frozen');
  if (fz?.inProcessCopyMs?.length) {
    out.push(
      '',
      `The frozen baseline without process spawns (\`copyFile\` + \`fsync\` of the cold copy inside this process, same iterations): p50 ${ms(percentile(fz.inProcessCopyMs, 50))}, p99 ${ms(percentile(fz.inProcessCopyMs, 99))}.`,
    );
  }
  return out.join('\n');
}

function wakeNotes(w: WakeLatencyResult): string[] {
  return [
    '- **wake**: wall time (`performance.now()`) of `WorkbooksClient.wake(id)` as a caller sees it: one `wake` update',
    '  round trip to the workspace workflow, which runs the move and answers once the workspace is active. Every answer\'s',
    '  `path` is checked (`warm`, `local`, `cold`), so each sample is the kind it is filed under. Percentiles are nearest',
    `  rank over the ${w.wakes} timed wakes of each kind; ${w.warmups} untimed wakes of each kind went first.`,
    '- **warm**: the workspace is already active; the workflow answers from its state (one workflow task, no activity).',
    '  Baseline: a `describe` query round trip, in the same iteration (the two alternate which goes first).',
    '- **suspended**: the file is closed on the host\'s disk; the wake runs `startInstance` on the host (open the file,',
    '  clear `tmp`, register it with the Litestream daemon) and records the move. Baseline: SQLite open + a read of',
    '  the schema + close of a copy of the same suspended file (copied untimed just before), i.e. the file work alone.',
    '- **frozen**: only the verified cold copy is left (file:// on the same filesystem); the wake picks a host, copies',
    '  the cold copy back with its sha256 checked and fsynced (`recoverLocal`), then `startInstance` as above, which',
    '  registers the file with the Litestream daemon under a new replica generation (a full snapshot of the file).',
    '  Baseline: `cp` of the cold copy + `sync` of the copy, in the same iteration right before the wake.',
    '- Between timed wakes, untimed: `transition` to suspended (and to frozen), and `sync -f` of the data dir before each',
    '  timed step so writeback of earlier steps is not billed to it. One worker host runs in the bench process (its',
    '  activities share the event loop with the client that times them), against the Temporal dev server, on the same',
    '  CPUs as everything else; the load averages in the machine table show what else ran.',
    ...(w.s3
      ? [
          '- **frozen (S3)**: only the verified cold object is left, on MinIO (on loopback, see the S3 section); the',
          '  wake downloads it with parallel ranged GETs (sha256 checked, fsync), then `startInstance` as above. Target: the',
          '  frozen target of issue 5 (which does not say which cold storage). Baseline: one plain GetObject of the same',
          '  object streamed to a file on the data dir\'s filesystem + fsync, in the same iteration right before the wake.',
          `  Its own host and workspace (${w.s3.warmups} untimed wakes first); MinIO must be running, so it runs with the S3 part.`,
        ]
      : []),
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Clone section (bench/clone.ts)

function cloneSerialRow(label: string, s: CloneSerial): string {
  const c = median(s.cloneMs);
  const prov = median(s.provisionMs);
  const start = median(s.startMs);
  const cp = median(s.cpMs);
  const cps = median(s.cpSyncMs);
  const cf = median(s.copyFsyncMs);
  const res = median(s.resolveMs);
  const wft = median(s.workflowTaskMs);
  return `| ${label} | ${s.cloneMs.length} | **${ms(c)}** | ${ms(percentile(s.cloneMs, 99))} | ${ms(res)} | ${ms(prov)} | ${ms(start)} | ${percentile(s.workflowTasks, 50)}: ${ms(wft)} | ${ms(c - res - prov - start - wft)} | ${ms(cp)} | ${ms(cps)} | ${ms(cf)} | ${ratio(c, cp)} | ${ratio(c, cps)} | ${ratio(prov, cp)} |`;
}

function cloneTables(c: CloneResult): string {
  const out: string[] = [];
  out.push(
    `Template: ${sizeLabel(c.sizeMiB)} of random files, live file ${bytesLabel(c.templateBytes)}, suspended (a closed file: the clone copies it with`,
    '`copyFile`, asking for a reflink, which this filesystem does not do). Clones get `suspendAfter: never`. Replication is',
    `**off** on the host of ${c.bulk ? 'the bulk and ' : ''}the first two one-at-a-time rows` +
      (c.serialReplicated ? "; the last row is a host with the product's default file:// replicas (Litestream registers each new clone and snapshots the whole file in the background)." : '.'),
    '',
  );
  const b = c.bulk;
  if (b) {
    const ok = b.perCloneMs.length;
    out.push(`### ${b.n.toLocaleString('en-US')} clones, ${b.concurrency} at a time (replication off)`, '');
    out.push('| clones | concurrency | total | clones/s | total ÷ clones | per create p50 | p90 | p99 | max | failed | `cp` × N, same concurrency | copyFile + fsync × N | total ÷ `cp` total | total ÷ copy + fsync total |');
    out.push('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    out.push(
      `| ${b.n} | ${b.concurrency} | **${ms(b.totalMs)}** | ${(ok / (b.totalMs / 1000)).toFixed(1)} | ${ms(b.totalMs / b.n)} | ${ms(percentile(b.perCloneMs, 50))} | ${ms(percentile(b.perCloneMs, 90))} | ${ms(percentile(b.perCloneMs, 99))} | ${ms(Math.max(...b.perCloneMs))} | ${b.failures} | ${ms(b.cpTotalMs)} (each p50 ${ms(percentile(b.cpMs, 50))}) | ${ms(b.copyFsyncTotalMs)} (each p50 ${ms(percentile(b.copyFsyncMs, 50))}) | ${ratio(b.totalMs, b.cpTotalMs)} | ${ratio(b.totalMs, b.copyFsyncTotalMs)} |`,
    );
    out.push(
      '',
      `Host process after the bulk: ${b.openInstances} workspaces open, resident memory ${mib(b.rssBeforeBytes)} → ${mib(b.rssAfterBytes)} ` +
        `(+${((b.rssAfterBytes - b.rssBeforeBytes) / 1024 / Math.max(1, ok)).toFixed(0)} KiB per clone; bench, worker host and its workflow cache share the process); live dir ${bytesLabel(b.liveDirBytes)} on disk. ` +
        `CPU used during the bulk: Temporal dev server ${b.cpu.devServerS.toFixed(0)} s, bench process (client + worker host) ${b.cpu.benchS.toFixed(0)} s, ` +
        `in ${(b.totalMs / 1000).toFixed(0)} s of wall time on ${os.availableParallelism()} CPUs (${(((b.cpu.devServerS + b.cpu.benchS) / (b.totalMs / 1000)) * 100).toFixed(0)}% of one CPU; the rest of the machine was shared). ` +
        `Cleanup (stop the host, terminate every workflow, remove the files): ${ms(b.cleanupMs)}.` +
        (b.failures ? ` **${b.failures} clone(s) failed**; the first: ${b.firstFailure}` : ''),
      '',
    );
  }
  out.push(`### One at a time (${c.serialN} clones per row; medians; baselines in the same iteration on the template's live file)`, '');
  out.push('| template | clones | clone (`create`) | p99 | resolveTemplate | provision | startInstance | workflow tasks (n: time) | rest | `cp` | `cp` + `sync` | copyFile + fsync | clone ÷ `cp` | clone ÷ (`cp` + `sync`) | provision ÷ `cp` |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  out.push(cloneSerialRow('suspended, replication off', c.serial));
  out.push(cloneSerialRow('active (SQLite backup API), replication off', c.serialActive));
  if (c.serialReplicated) out.push(cloneSerialRow('suspended, replication on (file://)', c.serialReplicated));
  return out.join('\n');
}

function cloneVerdict(c: CloneResult): string[] {
  const b = c.bulk;
  const s = median(c.serial.cloneMs);
  const lines = [
    '**Target** (product issue): *clone of a 10 MB template into 1,000 tenants: total time and per-clone cost against `cp`*. The issue sets',
    'no number to meet, so there is no met / not met here: the ratios are the result.',
  ];
  if (b) {
    lines.push(
      `${b.n.toLocaleString('en-US')} clones of ${sizeLabel(c.sizeMiB)} took **${ms(b.totalMs)}** at ${b.concurrency} at a time (${(b.perCloneMs.length / (b.totalMs / 1000)).toFixed(1)} clones/s), ` +
        `${ratio(b.totalMs, b.cpTotalMs)} ${b.n.toLocaleString('en-US')} \`cp\`s of the same file at the same concurrency (${ms(b.cpTotalMs)}) and ${ratio(b.totalMs, b.copyFsyncTotalMs)} ${b.n.toLocaleString('en-US')} copyFile + fsync (${ms(b.copyFsyncTotalMs)}).`,
    );
  }
  lines.push(`One clone at a time: **${ms(s)}** against ${ms(median(c.serial.cpMs))} for \`cp\` (${ratio(s, median(c.serial.cpMs))}) and ${ms(median(c.serial.cpSyncMs))} for \`cp\` + \`sync\`.`);
  if (b) {
    const serialRate = c.serial.cloneMs.reduce((x, y) => x + y, 0) > 0 ? (c.serial.cloneMs.length / c.serial.cloneMs.reduce((x, y) => x + y, 0)) * 1000 : NaN;
    lines.push(
      `One at a time is ${serialRate.toFixed(1)} clones/s; ${b.concurrency} in flight gave ${(b.perCloneMs.length / (b.totalMs / 1000)).toFixed(1)} clones/s, each create taking ${ms(percentile(b.perCloneMs, 50))} (p50) instead of ${ms(s)}: ` +
        `the copy is a small part of a create (provision ${ms(median(c.serial.provisionMs))} of ${ms(s)} one at a time); creates in flight together queue for the same CPUs ` +
        '(the Temporal dev server and the worker host; their CPU use is below the table).',
    );
  }
  return lines;
}

function cloneNotes(): string[] {
  return [
    '- **clone (`create`)**: wall time of `WorkbooksClient.create({ workspaceId, tenant, template })` until it returns (the',
    '  workspace is active): a `describe` query of the template, starting the workflow, the `wake` update that waits for',
    '  the first move (resolveTemplate on the shared queue, provision and startInstance on the template\'s host).',
    '- **resolveTemplate / provision / startInstance**: the three activities of the first move, one after another, each',
    '  alone (ActivityTaskStarted → ActivityTaskCompleted in the clone\'s history). resolveTemplate (shared queue) finds',
    '  where the template lives; provision copies the closed template file (or, for an active template, copies it',
    '  through SQLite\'s backup API while it stays open), opens the copy, clears `tmp`, checkpoints, renames it into',
    '  place and fsyncs the directory; startInstance opens it (and registers it with Litestream when replication is on).',
    '  **workflow tasks**: how many the clone\'s workflow ran until it was active, and their summed time (scheduled →',
    '  completed). **rest** = create − all of those: starting the workflow, the update round trip, activity queueing.',
    '- **`cp` / `cp` + `sync` / copyFile + fsync**: the template\'s live file copied to the same filesystem with the `cp`',
    '  binary, with `cp` then `sync <copy>`, and in this process with `fs.copyFile` + fsync of the copy; each copy removed,',
    '  `sync -f` before each timed step. In the bulk the N copies run at the same concurrency as the clones, all kept',
    '  until the end of that baseline, then removed.',
    '- provision does not fsync the copied file: the copy (copy_file_range) is renamed into place and only the directory',
    '  is fsynced (seen with strace; the checkpoint of a fresh copy writes nothing). So `cp` without `sync` is the',
    '  like-for-like baseline; `cp` + `sync` and copyFile + fsync show what making the copy durable would cost.',
    '- The bulk\'s clones all stay active on the one host (open SQLite handles, the workflows in the worker\'s cache) until',
    '  cleanup terminates their workflows and removes the data dir.',
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Busy cost section (bench/busy-cost.ts)

/** What the idle deadline of an active, recently used workspace is allowed to add: the check and the re-armed timer. */
const REARM_TYPES = new Set(['TimerFired', 'WorkflowTaskScheduled', 'WorkflowTaskStarted', 'WorkflowTaskCompleted', 'ActivityTaskScheduled', 'ActivityTaskStarted', 'ActivityTaskCompleted', 'MarkerRecorded', 'TimerStarted']);

function busyMet(b: BusyCostResult): boolean {
  const rearmOnly = b.addedByDeadline.every(
    (e) =>
      REARM_TYPES.has(e.type) &&
      (e.type !== 'ActivityTaskScheduled' || e.detail === 'stopIfIdle' || e.detail === 'lastAccess') &&
      (e.type !== 'MarkerRecorded' || e.detail === 'stopIfIdleHere'),
  );
  return b.addedByLoad.length === 0 && rearmOnly && b.stateAfter === 'active' && b.loadEndAt < b.deadlineAt;
}

function busyVerdict(b: BusyCostResult): string {
  const total = b.ops + (b.client?.ops ?? 0);
  return (
    `**Target** (product issue): *a workspace serving 100,000 reads and writes in one idle window adds no history events beyond the timer re-arm*. ` +
    (busyMet(b)
      ? `**Met**: ${total.toLocaleString('en-US')} requests added **0** events; the deadline then added ${b.addedByDeadline.length} (the last-access check and the re-armed timer) and the workspace stayed active.`
      : `**Not met**: ${total.toLocaleString('en-US')} requests added ${b.addedByLoad.length} event(s) (${b.addedByLoad.map((e) => e.type).join(', ') || 'none'}); the deadline added ${b.addedByDeadline.length}; state afterwards ${b.stateAfter}` +
        (b.loadEndAt >= b.deadlineAt ? '; the load did not fit in the window (the deadline came during it)' : '') +
        '.')
  );
}

function busyTables(b: BusyCostResult): string {
  const base = median(b.baselineMs);
  const basePer = base / b.ops;
  const row = (name: string, l: LoadRun, added: string) =>
    `| ${name} | ${l.ops.toLocaleString('en-US')} (${l.reads} GET / ${l.writes} PUT) | ${ms(l.ms)} | **${(l.ops / (l.ms / 1000)).toFixed(0)}** | ${l.p50.toFixed(2)} ms | ${l.p99.toFixed(2)} ms | ${((l.ms / l.ops) * 1000).toFixed(0)} µs | ${ratio(l.ms / l.ops, basePer)} | ${added} |`;
  const rel = (t: number) => `${((t - b.loadStartAt) / 1000).toFixed(1)} s`;
  const out: string[] = [];
  out.push(`${b.files} files of ${b.payloadBytes} bytes in the workspace volume; even requests PUT one, odd ones GET one; ${b.concurrency} in flight at a time.`, '');
  out.push('| requests | count | time | requests/s | p50 | p99 | per request (time ÷ count) | ÷ Vfs in process | history events added |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  out.push(row('straight to the data server (`describe().endpoint`, keep-alive, from a worker thread)', b.load, `**${b.addedByDirect}**`));
  if (b.client) out.push(row('through `WorkbooksClient.putFile` / `getFile` (a `describe` query each)', b.client, `**${b.addedByLoad.length - b.addedByDirect}**`));
  out.push(`| the same ${b.ops.toLocaleString('en-US')} operations on the Vfs in this process (median of ${b.baselineMs.length}: ${b.baselineMs.map((x) => x.toFixed(0)).join(', ')} ms) | ${b.ops.toLocaleString('en-US')} | ${ms(base)} | ${(b.ops / (base / 1000)).toFixed(0)} | | | ${(basePer * 1000).toFixed(1)} µs | 1.0× | |`);
  out.push(`| **both loads together** | ${(b.ops + (b.client?.ops ?? 0)).toLocaleString('en-US')} | ${ms(b.loadEndAt - b.loadStartAt)} | | | | | | **${b.addedByLoad.length}** |`);
  out.push(
    '',
    `Idle window (\`suspendAfter\`): ${(b.windowMs / 1000).toFixed(0)} s (${b.windowFrom}). History: ${b.eventsBefore} events before the load (creation, the first move, the`,
    `working set, the armed timer); the load ran from 0 to ${rel(b.loadEndAt)}, the deadline came at ${rel(b.deadlineAt)}. Events it added:`,
    '',
  );
  b.addedByDeadline.forEach((e, i) => out.push(`${i + 1}. \`${e.type}\`${e.detail ? ` (${e.detail})` : ''} at ${rel(e.at)}`));
  out.push(
    '',
    `After it the workspace was **${b.stateAfter}**, its next deadline ${b.nextDeadlineAt ? `${rel(b.nextDeadlineAt)} (the last use + the window)` : 'none'}. ` +
      `Resident memory of the process (bench, worker host, load thread): ${mib(b.rss.before)} before, peak ${mib(b.rss.peak)}, ${mib(b.rss.after)} after.`,
  );
  return out.join('\n');
}

function busyNotes(): string[] {
  return [
    '- The workflow keeps one durable timer for the idle deadline and never hears of a request: the host notes each',
    '  access in memory (`withVfs`); at the deadline the host stops it only if idle (`stopIfIdle`, done inside the workflow task when',
    '  this host runs it) and, if the',
    '  workspace was used, moves its idle clock forward and re-arms the timer. Queries (`describe`, which the client',
    '  sends before each request) are answered without writing history.',
    '- **÷ Vfs in process**: time per request against the same operations (same paths, payloads and order) on the',
    '  product\'s Vfs class on a scratch file in this process: the SQLite work without HTTP, the host, or Temporal.',
    '- The host replicates the workspace to the default file:// replica while the load runs (Litestream follows the WAL).',
  ];
}

// ---------------------------------------------------------------------------------------------------------------
// Report

interface Report {
  m: Machine;
  sizes: number[];
  local: SizeResult<FileBaselines>[];
  s3: S3Section | null;
  s3Skipped: string | null;
  rep: ReplicationSection | null;
  wake: WakeLatencyResult | null;
  scale: ScaleResult[];
  clone: CloneResult | null;
  busy: BusyCostResult | null;
  load: { before: number[]; after: number[] };
  totalMs: number;
}

function glance(r: Report): string[] {
  const out: string[] = [];
  const big = [...r.local].sort((a, b) => b.sizeMiB - a.sizeMiB).find((x) => x.sizeMiB <= 100) ?? r.local[0];
  if (big) {
    out.push(
      `- Local disk, ${sizeLabel(big.sizeMiB)}: freeze **${ms(med(big, (s) => s.freezeMs))}** (cp + fsync ${ms(med(big, (s) => s.base.cpSyncLiveMs))}), ` +
        `resume **${ms(med(big, (s) => s.resumeMs))}** (cp + fsync ${ms(med(big, (s) => s.base.cpSyncColdMs))}).`,
    );
  }
  if (r.s3) {
    for (const x of r.s3.results) {
      out.push(
        `- S3 (MinIO), ${sizeLabel(x.sizeMiB)}: freeze **${ms(med(x, (s) => s.freezeMs))}** against one plain PutObject ${ms(med(x, (s) => s.base.plainPutMs))}; ` +
          `resume **${ms(med(x, (s) => s.resumeMs))}** against one plain GetObject + fsync ${ms(med(x, (s) => s.base.plainGetMs))}.`,
      );
    }
  }
  if (r.wake) {
    const part = (s: WakeSeries) => `${s.kind} **${ms(percentile(s.wakeMs, 50))}** (p99 ${ms(percentile(s.wakeMs, 99))}; target < ${WAKE_TARGET_MS[s.kind]} ms: p50 ${metText(percentile(s.wakeMs, 50), WAKE_TARGET_MS[s.kind])}, p99 ${metText(percentile(s.wakeMs, 99), WAKE_TARGET_MS[s.kind])})`;
    out.push(`- Wake latency, ${sizeLabel(r.wake.sizeMiB)} workspace, p50 of ${r.wake.wakes} wakes each${r.wake.s3 ? ` (${r.wake.s3.wakes} frozen on S3)` : ''}: ${r.wake.series.map(part).join('; ')}.`);
  }
  if (r.rep) {
    for (const { label, r: l } of r.rep.lag) out.push(`- Replication lag, ${label}: median **${ms(median(l.lagMs))}**, p90 ${ms(percentile(l.lagMs, 90))}, max ${ms(Math.max(...l.lagMs))} (${l.lagMs.length} writes).`);
    if (r.rep.memory.length > 0) {
      out.push(`- Litestream daemon memory: ${r.rep.memory.map((m) => `**${(m.perWorkspaceBytes / 1024).toFixed(0)} KiB** per workspace at ${m.workspaces}`).join(', ')}.`);
    }
  }
  for (const s of r.scale) out.push(scaleGlance(s));
  if (r.clone?.bulk) {
    const b = r.clone.bulk;
    out.push(
      `- Clone of a ${sizeLabel(r.clone.sizeMiB)} template into ${b.n.toLocaleString('en-US')} tenants, ${b.concurrency} at a time: **${ms(b.totalMs)}** (${(b.perCloneMs.length / (b.totalMs / 1000)).toFixed(1)} clones/s; ` +
        `${ratio(b.totalMs, b.cpTotalMs)} as many \`cp\`s); one at a time **${ms(median(r.clone.serial.cloneMs))}** per clone against \`cp\` ${ms(median(r.clone.serial.cpMs))}.`,
    );
  } else if (r.clone) {
    out.push(`- Clone of a ${sizeLabel(r.clone.sizeMiB)} template, one at a time: **${ms(median(r.clone.serial.cloneMs))}** per clone against \`cp\` ${ms(median(r.clone.serial.cpMs))}.`);
  }
  if (r.busy) {
    const b = r.busy;
    out.push(
      `- Busy workspace: ${(b.ops + (b.client?.ops ?? 0)).toLocaleString('en-US')} reads and writes in one idle window added **${b.addedByLoad.length}** history events ` +
        `(${(b.ops / (b.load.ms / 1000)).toFixed(0)} requests/s straight to the data server); the deadline then added ${b.addedByDeadline.length} (check + re-armed timer): target ${busyMet(b) ? 'met' : 'not met'}.`,
    );
  }
  return out;
}

/**
 * Hand-recorded comparisons kept in docs/BENCHMARKS.md across regenerations: each block from `<!-- record:NAME -->`
 * to `<!-- /record:NAME -->` in the old file (e.g. the before/after runs of a change, measured with one bench part
 * alone) goes back in after the section it followed (the `## ` heading above it), or at the end.
 */
function carryRecords(text: string, old: string): string {
  let out = text;
  for (const m of old.matchAll(/<!-- record:([\w-]+) -->[\s\S]*?<!-- \/record:\1 -->\n?/g)) {
    if (out.includes(`<!-- record:${m[1]} -->`)) continue;
    const before = old.slice(0, m.index);
    const heading = [...before.matchAll(/^## .*$/gm)].pop()?.[0];
    const at = heading ? out.indexOf(heading) : -1;
    const next = at >= 0 ? out.indexOf('\n## ', at + heading!.length) : -1;
    out = next >= 0 ? `${out.slice(0, next + 1)}${m[0]}\n${out.slice(next + 1)}` : `${out.trimEnd()}\n\n${m[0]}`;
  }
  return out;
}

function report(r: Report): string {
  const { m } = r;
  const load1 = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const skipped = [1, 100, 1024].filter((s) => !r.sizes.includes(s));
  const lines: string[] = [
    '# Benchmarks: freeze, resume, wake latency, clone, being busy, scale, S3 and replication',
    '',
    'Generated by `npm run bench` (`bench/run.ts`; `bench/freeze-resume.ts`, `bench/wake-latency.ts`,',
    '`bench/s3-throughput.ts`, `bench/litestream-memory.ts`, `bench/replication-lag.ts`, `bench/clone.ts`,',
    '`bench/busy-cost.ts`, `bench/scale.ts`; shared helpers in `bench/raw-ops.ts`). Medians unless said;',
    'raw runs at the end.',
    '',
    '## Machine',
    '',
    '| | |',
    '|---|---|',
    `| CPUs (\`nproc\`) | ${m.nproc} × ${m.cpu} |`,
    `| memory | ${m.memory} |`,
    `| kernel | ${m.kernel} |`,
    `| filesystem of the data dirs (\`df -T\`) | ${m.fs} |`,
    `| node | ${m.node} |`,
    `| date | ${m.date} |`,
    `| local sizes run | ${r.local.length === 0 ? 'not run (BENCH_LOCAL=0)' : `${r.sizes.map(sizeLabel).join(', ')}${skipped.length ? ` (not run: ${skipped.map(sizeLabel).join(', ')})` : ''}`} |`,
    `| S3 server | ${r.s3 ? `${r.s3.server} on 127.0.0.1 (loopback), single drive on the data dirs' filesystem, sharing the ${m.nproc} CPUs; part size ${mib(r.s3.partSize)}, ${r.s3.parallel} in parallel` : `not run (${r.s3Skipped})`} |`,
    `| Litestream | ${r.rep ? r.rep.litestream : 'not run (BENCH_REPLICATION=0)'} |`,
    `| wake latency | ${r.wake ? `${r.wake.wakes} wakes from each state at ${sizeLabel(r.wake.sizeMiB)}${r.wake.s3 ? ` (frozen on S3: ${r.wake.s3.wakes})` : ''} (${(r.wake.totalMs / 1000).toFixed(0)} s)` : 'not run (BENCH_WAKE=0)'} |`,
    `| clone | ${r.clone ? `${sizeLabel(r.clone.sizeMiB)} template; ${r.clone.bulk ? `${r.clone.bulk.n} clones, ${r.clone.bulk.concurrency} at a time; ` : ''}${r.clone.serialN} one at a time per kind (${(r.clone.totalMs / 1000).toFixed(0)} s)` : 'not run (BENCH_CLONE=0)'} |`,
    `| busy workspace | ${r.busy ? `${r.busy.ops.toLocaleString('en-US')} + ${r.busy.client?.ops ?? 0} requests, ${r.busy.concurrency} in flight, ${(r.busy.windowMs / 1000).toFixed(0)} s window (${(r.busy.totalMs / 1000).toFixed(0)} s)` : 'not run (BENCH_BUSY=0)'} |`,
    `| scale | ${r.scale.length ? r.scale.map((s) => `${s.server}: ${s.n} workspaces, ${s.due} due in one second (${(s.totalMs / 1000).toFixed(0)} s)`).join('; ') : 'not run (BENCH_SCALE=0)'} |`,
    `| load average 1/5/15 min, before / after | ${load1(r.load.before)} → ${load1(r.load.after)} |`,
    `| whole bench | ${(r.totalMs / 1000).toFixed(0)} s |`,
    '',
    '## At a glance',
    '',
    ...glance(r),
    ...(r.local.length > 0 ? ['', ...localTarget(r.local)] : []),
    ...(r.s3 ? ['', ...s3Target(r.s3)] : []),
    '',
    '## Local disk (file:// cold storage)',
    '',
    r.local.length > 0 ? localTables(r.local) : 'Not run (BENCH_LOCAL=0).',
    '',
    '- **freeze / resume (update)**: wall time of `WorkbooksClient.transition(id, "frozen")` from suspended, and of',
    '  `WorkbooksClient.wake(id)` from frozen, as a caller sees them (MiB/s = file size ÷ that time).',
    '- **storeLocal / recoverLocal activity**: the activity alone, ActivityTaskStarted → ActivityTaskCompleted in the',
    '  workflow history (a wake restores through recoverLocal, with the stored copy as its first source and the replica',
    '  as the fallback). **rest of the move** = update − activity: the describe query and update round trips, workflow',
    '  tasks, activity scheduling, and the other activities of the move (freeze: removeLocal, and from the second run on',
    '  the deletion of the previous cold copy; resume: a local pickHost and startInstance, which opens the file, clears `tmp`',
    '  and registers the file with the Litestream daemon).',
    '- **cp / cp + fsync**: `cp` of the same bytes in the same filesystem (freeze: the suspended live file; resume: the',
    '  cold copy), and `cp` followed by `sync <copy>` (an fsync of the copy). Ratios are against these.',
    '- **raw verified copy**: what a freeze proves, done with plain tools one after another on the suspended live file:',
    '  sha256 of it (node\'s OpenSSL sha256 over a read stream, as the product uses; coreutils `sha256sum` is slower here),',
    '  `cp` + `sync` of it, sha256 of the copy, SQLite\'s full integrity check of the copy (better-sqlite3 in the bench',
    '  process). The yardstick for a copy that is checked before the original is let go.',
    '- **Inside storeLocal**: each phase from its first heartbeat to the first heartbeat of the next (the last one to the',
    '  end of the activity), timed in the worker process (the host runs in the bench process). A phase\'s first progress',
    '  heartbeat comes after its first chunk, so each boundary is late by one chunk of the next phase (4 MiB locally;',
    '  on S3 the latency of the first ranged GET, which lands in the upload column). "traced" is the sum of the phases,',
    '  "history" the activity time from the workflow history (adds the task dispatch around it). Freeze proves the copy',
    '  restorable before it lets the local file go: the kernel copy into the store (reflink or copy_file_range) starts',
    '  with the hash of the file and is fsynced while it is read back and hashed; SQLite\'s full integrity check runs on',
    '  the unchanged local file on a worker thread from the checkpoint on (the same bytes once the read-back matches).',
    '  Phases that overlap show as the part of each left after the one before it ended.',
    '',
  ];

  if (r.wake) {
    lines.push('## Wake latency (`wake` as a caller sees it)', '', wakeTables(r.wake), '', ...wakeVerdicts(r.wake).map((v) => `- ${v}`), '', ...wakeNotes(r.wake), '');
  } else {
    lines.push('## Wake latency', '', 'Not run (BENCH_WAKE=0).', '');
  }

  if (r.clone) {
    lines.push('## Cloning a template into many tenants (`create` with `template`)', '', ...cloneVerdict(r.clone), '', cloneTables(r.clone), '', ...cloneNotes(), '');
  } else {
    lines.push('## Cloning a template', '', 'Not run (BENCH_CLONE=0).', '');
  }

  if (r.busy) {
    lines.push('## The cost of being busy (workflow history over one idle window)', '', busyVerdict(r.busy), '', busyTables(r.busy), '', ...busyNotes(), '');
  } else {
    lines.push('## The cost of being busy', '', 'Not run (BENCH_BUSY=0).', '');
  }

  if (r.s3) {
    lines.push('## S3 cold storage (MinIO)', '', s3Tables(r.s3), '', ...s3Caveats(r.s3), '');
    lines.push(
      '- **plain PutObject**: one PutObject of the suspended live file (a file stream with ContentLength, no checksum), to a',
      '  scratch key in the same bucket, right before the freeze. **plain GetObject + fsync**: one GetObject of the cold',
      '  object the freeze just wrote, streamed to a file on the data dir\'s filesystem and fsynced, right before the wake.',
      '- **of which upload**: the upload phase inside storeLocal (see "Inside storeLocal" above): the parallel multipart',
      '  upload with sha256 on the way, CompleteMultipartUpload, a HEAD, and the latency of the first ranged GET of the',
      '  verify download.',
      '- The resume downloads with the same parallel ranged GETs (sha256 verified, fsync) and then opens the file.',
      '',
    );
  } else {
    lines.push('## S3 cold storage', '', `Not run (${r.s3Skipped}).`, '');
  }

  if (r.rep) {
    lines.push('## Replication (Litestream)', '', replicationTables(r.rep));
    lines.push(
      '- **Memory**: one Litestream daemon (as each host runs it, `bench/litestream-memory.ts`), N small databases written',
      '  like workspaces are, registered at run time with file:// replicas, each synced once, written to again and left to',
      '  the daemon\'s 1 s cycle; resident memory (VmRSS) of the daemon before the first registration and at the end.',
      '  Per workspace = (RSS with all − RSS with none) ÷ N.',
      '- **Lag**: a real worker host replicating its active workspace (the product\'s default file:// replicas under the',
      '  host\'s data dir, and s3:// on MinIO when S3 is on). Each write is a `putFile` through the client (acknowledged =',
      '  committed on the host); then `restoreReplica()` of the workspace\'s replica (Litestream restore + integrity check)',
      '  into a scratch file is repeated, 50 ms apart, until the restored copy holds the file. Lag = acknowledgement → end',
      '  of the first restore that shows it (what a restore after losing the host would have got); a restore takes the time',
      '  in the last column, so that is the resolution. A random 0–1 s pause before each write spreads the writes over the',
      '  daemon\'s 1 s sync cycle.',
      '',
    );
  } else {
    lines.push('## Replication', '', 'Not run (BENCH_REPLICATION=0).', '');
  }

  for (const s of r.scale) {
    lines.push(`## Scale, ${scaleServerName(s)}: ${s.n.toLocaleString('en-US')} workspaces, ${s.due.toLocaleString('en-US')} due in the same second`, '', scaleMarkdown(s), '');
  }
  if (r.scale.length === 0) {
    lines.push('## Scale', '', 'Not run (BENCH_SCALE=0).', '');
  }

  lines.push(
    '## How measured',
    '',
    'One process starts a Temporal dev server (`.tools/bin/temporal`, throwaway data dir) and, per part, a real worker',
    'host (shared and host task queues, data server, its Litestream daemon replicating active workspaces to the default',
    'file:// replicas in its data dir) with cold storage at `file://<host data dir>/cold` for the local part and at',
    's3://<bucket>/frozen on MinIO for the S3 part, so live files, local cold copies and scratch copies are all on the',
    'filesystem above. For each size one workspace is created and filled through `putFile` with random bytes in',
    '16 MiB files, then suspended. Each run times, in order: the baseline on the suspended live file (`cp` and `cp` +',
    'fsync; on S3 one plain PutObject); the freeze (`transition` to `frozen`: checkpoint, sha256 of the file, copy or',
    'upload, read-back of the stored bytes with their sha256 checked (locally inside the put; on S3 a streamed re-hash),',
    'SQLite\'s full integrity check of the unchanged file alongside, release of the local file); the baseline on the cold copy (`cp` and `cp` + fsync; on S3 one',
    'plain GetObject + fsync); the wake (copy or download with sha256 verified, fsync, rename, open, clear `tmp`, start',
    'replicating), then one more `wake` (warm: the client\'s round trip alone). Between runs (untimed) a small marker file is written and the workspace suspended again, so every',
    'freeze has new bytes to copy (an unchanged file whose cold copy already matches would skip the copy). Every',
    'scratch copy is deleted after it is timed, and `sync -f` runs before each timed step so writeback of earlier',
    'steps is not billed to it. With this much memory every read is served from the page cache: the local figures are',
    `CPU (sha256, SQLite integrity check) and write-back bound, not read bound. Medians of ${runsText(r.local) || 'no runs'} locally` +
      (r.s3 ? `, ${runsText(r.s3.results)} on S3` : '') +
      ', freeze',
    'and resume alternating on the same workspace. After each wake the Litestream daemon takes a full snapshot of the',
    'file in the background, which competes for the 2 CPUs with what follows. Other work on the machine shows up in the',
    'load averages above and in the spread of the raw runs.',
    '',
    ...firstTouchNote(r.local),
    '## Raw runs',
    '',
    '### Local disk',
    '',
    r.local.length > 0 ? localRawRuns(r.local) : 'Not run (BENCH_LOCAL=0).',
    '',
  );
  if (r.s3) lines.push('### S3 (MinIO)', '', s3RawRuns(r.s3), '');
  if (r.rep && r.rep.lag.length > 0) {
    lines.push('### Replication lag, every write (ms, acknowledged → end of the restore that showed it)', '');
    for (const { label, r: l } of r.rep.lag) lines.push(`- ${label}: ${l.lagMs.map((x) => x.toFixed(0)).join(', ')}`);
    lines.push('');
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const sizes = parseSizes(process.env.BENCH_SIZES, 'BENCH_SIZES', '1,100,1024');
  const runsFor = parseRuns(process.env.BENCH_RUNS, 'BENCH_RUNS', (size) => (size >= 1024 ? 3 : 5));
  const doS3 = flag(process.env.BENCH_S3, 'BENCH_S3');
  const s3Sizes = parseSizes(process.env.BENCH_S3_SIZES, 'BENCH_S3_SIZES', '1,100,1024');
  const s3Runs = parseRuns(process.env.BENCH_S3_RUNS, 'BENCH_S3_RUNS', () => 5);
  const doS3Cli = flag(process.env.BENCH_S3_CLI, 'BENCH_S3_CLI');
  const doRep = flag(process.env.BENCH_REPLICATION, 'BENCH_REPLICATION');
  const litestreamNs = parseSizes(process.env.BENCH_LITESTREAM_N, 'BENCH_LITESTREAM_N', '100,500');
  if (litestreamNs.some((n) => !Number.isInteger(n))) throw new Error('BENCH_LITESTREAM_N must be whole numbers');
  const lagWrites = parseRuns(process.env.BENCH_LAG_WRITES, 'BENCH_LAG_WRITES', () => 20)(0);
  const doWake = flag(process.env.BENCH_WAKE, 'BENCH_WAKE');
  const wakes = parseRuns(process.env.BENCH_WAKES, 'BENCH_WAKES', () => 200)(0);
  const wakeMiB = parseSizes(process.env.BENCH_WAKE_MIB, 'BENCH_WAKE_MIB', '10');
  if (wakeMiB.length !== 1) throw new Error('BENCH_WAKE_MIB must be one size in MiB');
  const doWakeLocal = flag(process.env.BENCH_WAKE_LOCAL, 'BENCH_WAKE_LOCAL');
  const wakesS3 = parseRuns(process.env.BENCH_WAKES_S3, 'BENCH_WAKES_S3', () => 50)(0);
  const doS3Freeze = flag(process.env.BENCH_S3_FREEZE, 'BENCH_S3_FREEZE');
  const doClone = flag(process.env.BENCH_CLONE, 'BENCH_CLONE');
  const clones = process.env.BENCH_CLONES === '0' ? 0 : parseRuns(process.env.BENCH_CLONES, 'BENCH_CLONES', () => 1000)(0);
  const cloneMiB = parseSizes(process.env.BENCH_CLONE_MIB, 'BENCH_CLONE_MIB', '10');
  if (cloneMiB.length !== 1) throw new Error('BENCH_CLONE_MIB must be one size in MiB');
  const cloneConcurrency = parseRuns(process.env.BENCH_CLONE_CONCURRENCY, 'BENCH_CLONE_CONCURRENCY', () => 8)(0);
  const cloneSerial = parseRuns(process.env.BENCH_CLONE_SERIAL, 'BENCH_CLONE_SERIAL', () => 20)(0);
  const cloneReplicated = flag(process.env.BENCH_CLONE_REPLICATED, 'BENCH_CLONE_REPLICATED');
  const doBusy = flag(process.env.BENCH_BUSY, 'BENCH_BUSY');
  const busyOps = parseRuns(process.env.BENCH_BUSY_OPS, 'BENCH_BUSY_OPS', () => 100_000)(0);
  const busyClientOps = process.env.BENCH_BUSY_CLIENT_OPS === '0' ? 0 : parseRuns(process.env.BENCH_BUSY_CLIENT_OPS, 'BENCH_BUSY_CLIENT_OPS', () => 1000)(0);
  const busyConcurrency = parseRuns(process.env.BENCH_BUSY_CONCURRENCY, 'BENCH_BUSY_CONCURRENCY', () => 8)(0);
  const busyWindow = process.env.BENCH_BUSY_WINDOW ? parseRuns(process.env.BENCH_BUSY_WINDOW, 'BENCH_BUSY_WINDOW', () => 0)(0) : undefined;
  const doLocal = flag(process.env.BENCH_LOCAL, 'BENCH_LOCAL');
  const doScale = flag(process.env.BENCH_SCALE, 'BENCH_SCALE');
  const scaleN = parseRuns(process.env.BENCH_SCALE_N, 'BENCH_SCALE_N', () => 10_000)(0);
  const scaleDue = parseRuns(process.env.BENCH_SCALE_DUE, 'BENCH_SCALE_DUE', () => 1_000)(0);
  if (scaleDue > scaleN) throw new Error(`BENCH_SCALE_DUE (${scaleDue}) must not exceed BENCH_SCALE_N (${scaleN})`);
  const scaleConcurrency = parseRuns(process.env.BENCH_SCALE_CONCURRENCY, 'BENCH_SCALE_CONCURRENCY', () => 16)(0);
  // Always passed: the scale section reports the cache it ran with (the product's default when not set here).
  const scaleCache = process.env.BENCH_SCALE_CACHE ? parseRuns(process.env.BENCH_SCALE_CACHE, 'BENCH_SCALE_CACHE', () => DEFAULT_WORKFLOW_WORKER.cache)(0) : DEFAULT_WORKFLOW_WORKER.cache;
  const scaleServers = (process.env.BENCH_SCALE_SERVERS || 'embedded,cluster').split(',').map((x) => x.trim()).filter(Boolean) as ServerKind[];
  for (const k of scaleServers) if (!SERVER_KINDS.includes(k)) throw new Error(`BENCH_SCALE_SERVERS: '${k}' is not one of ${SERVER_KINDS.join(', ')}`);
  const scaleWakes = process.env.BENCH_SCALE_WAKES === '0' ? 0 : parseRuns(process.env.BENCH_SCALE_WAKES, 'BENCH_SCALE_WAKES', () => 50)(0);
  const scaleWakeWindow = parseRuns(process.env.BENCH_SCALE_WAKE_WINDOW, 'BENCH_SCALE_WAKE_WINDOW', () => 10)(0);
  const baseDir = process.env.BENCH_DIR || undefined;
  const outFile = process.env.BENCH_OUT === '-' ? null : path.resolve(REPO_ROOT, process.env.BENCH_OUT || 'docs/BENCHMARKS.md');
  const log = (l: string) => console.log(l);

  installInterruptCleanup();
  installHeartbeatTap();
  const t0 = performance.now();
  const before = os.loadavg();
  let m: Machine | undefined;
  let server: TestDevServer | undefined;
  let minio: MinioServer | undefined;
  let restoreEnv: (() => void) | undefined;
  const stopAll = async () => {
    restoreEnv?.();
    restoreEnv = undefined;
    await minio?.stop().catch(() => undefined);
    minio = undefined;
    await server?.stop().catch(() => undefined);
    server = undefined;
  };
  const forget = onInterrupt(stopAll);
  try {
    log('starting Temporal dev server…');
    server = await startTestDevServer();

    let local: SizeResult<FileBaselines>[] = [];
    if (doLocal) {
      log(`local freeze/resume (${sizes.map(sizeLabel).join(', ')})`);
      local = await runFreezeResume({ server, sizesMiB: sizes, runsFor, baseDir, log, onEnv: (env) => (m = machine(env.dataDir)) });
    }

    let wake: WakeLatencyResult | null = null;
    if (doWake && doWakeLocal) {
      log(`wake latency (${wakes} wakes each from active, suspended and frozen; ${sizeLabel(wakeMiB[0]!)} workspace)`);
      wake = await measureWakeLatency({ server, wakes, sizeMiB: wakeMiB[0]!, baseDir, log });
      for (const v of wakeVerdicts(wake)) log(`  ${v.replace(/\*\*/g, '')}`);
    }

    let clone: CloneResult | null = null;
    if (doClone) {
      log(`clone: ${sizeLabel(cloneMiB[0]!)} template, ${cloneSerial} one at a time per kind${clones > 0 ? `, then ${clones} clones ${cloneConcurrency} at a time` : ''}`);
      clone = await measureClone({ server, clones, sizeMiB: cloneMiB[0]!, concurrency: cloneConcurrency, serial: cloneSerial, replicated: cloneReplicated, baseDir, log });
    }

    let busy: BusyCostResult | null = null;
    if (doBusy) {
      log(`cost of being busy: ${busyOps} requests (+${busyClientOps} through the client) in one idle window`);
      busy = await measureBusyCost({ server, ops: busyOps, clientOps: busyClientOps, concurrency: busyConcurrency, windowSeconds: busyWindow, baseDir, log });
      log(`  ${busyVerdict(busy).replace(/\*\*/g, '').replace(/\*/g, '')}`);
    }

    let s3: S3Section | null = null;
    if (doS3) {
      log('starting MinIO…');
      minio = await startMinio({ parentDir: baseDir });
      restoreEnv = useS3Env(minio);
      for (const b of ['wb-cold', 'wb-replicas', 'wb-bench']) await minio.createBucket(b);
      if (doWake) {
        log(`wake latency, frozen on S3 (${wakesS3} wakes; ${sizeLabel(wakeMiB[0]!)} workspace; MinIO at ${minio.endpoint})`);
        const ws3 = await measureWakeLatencyS3({ server, wakes: wakesS3, sizeMiB: wakeMiB[0]!, coldUrl: 's3://wb-cold/wake', baseDir, log });
        wake = wake
          ? { ...wake, series: [...wake.series, ws3.series], s3: ws3, totalMs: wake.totalMs + ws3.totalMs }
          : { sizeMiB: ws3.sizeMiB, fileBytes: ws3.fileBytes, coldBytes: ws3.coldBytes, wakes: ws3.wakes, warmups: ws3.warmups, series: [ws3.series], totalMs: ws3.totalMs, s3: ws3 };
        for (const v of wakeVerdicts({ ...wake, series: [ws3.series] })) log(`  ${v.replace(/\*\*/g, '')}`);
      }
    }
    if (doS3 && doS3Freeze && minio) {
      const settings = s3SettingsFromEnv();
      s3 = { server: `MinIO ${minioVersion()}`, partSize: settings.partSize, parallel: settings.parallel, results: [], store: [], cli: null };
      log(`S3 freeze/resume on ${s3.server} at ${minio.endpoint} (${s3Sizes.map(sizeLabel).join(', ')}; part ${mib(settings.partSize)}, ${settings.parallel} parallel)`);
      s3.results = await runFreezeResumeS3({ server, coldUrl: 's3://wb-cold/frozen', sizesMiB: s3Sizes, runsFor: s3Runs, baseDir, log });
      for (const storeMiB of s3Sizes.filter((x) => x >= 100)) {
        const storeBytes = Math.round(storeMiB * MiB);
        log(`S3 store alone vs plain PutObject/GetObject (${bytesLabel(storeBytes)}, ${s3Runs(storeMiB)} runs)`);
        s3.store.push(await measureS3Throughput({ bytes: storeBytes, runs: s3Runs(storeMiB), endpointEnv: minio.env, bucket: 'wb-bench', dir: baseDir, log }));
      }
      if (doS3Cli) {
        const cliSizes = s3Sizes.filter((x) => x >= 100);
        log(`freeze / wake through the CLI on a MinIO of its own (${cliSizes.map(sizeLabel).join(', ')})`);
        s3.cli = await measureS3Cli({ sizesMiB: cliSizes, runs: Math.min(...cliSizes.map(s3Runs)), baseDir, log });
      }
    }

    let rep: ReplicationSection | null = null;
    if (doRep) {
      rep = { litestream: `Litestream ${litestreamVersion()} (one daemon per host, driven over its control socket)`, memory: [], lag: [] };
      for (const n of litestreamNs) {
        log(`Litestream daemon memory, ${n} workspaces`);
        const r = await measureLitestreamMemory({ workspaces: n });
        log(`  RSS ${mib(r.baselineRssBytes)} → ${mib(r.rssBytes)}: ${(r.perWorkspaceBytes / 1024).toFixed(0)} KiB per workspace`);
        rep.memory.push(r);
      }
      log(`replication lag, file:// replica (${lagWrites} writes)`);
      rep.lag.push({ label: 'file:// (host data dir)', r: await measureReplicationLag({ server, writes: lagWrites, baseDir, log }) });
      if (minio) {
        log(`replication lag, s3:// replica on MinIO (${lagWrites} writes)`);
        rep.lag.push({ label: 's3:// on MinIO', r: await measureReplicationLag({ server, replicaUrl: 's3://wb-replicas/live', writes: lagWrites, baseDir, log }) });
      }
    }

    const scale: ScaleResult[] = [];
    for (const server of doScale ? scaleServers : []) {
      log(`scale on ${server}: ${scaleN} workspaces, ${scaleDue} due in the same second (${scaleConcurrency} creates at a time)`);
      scale.push(await measureScale({ server, n: scaleN, due: scaleDue, concurrency: scaleConcurrency, cacheSize: scaleCache, wakes: scaleWakes, wakeWindowMs: scaleWakeWindow * 1000, baseDir, log }));
    }

    const load = { before, after: os.loadavg() };
    const text = report({ m: m ?? machine(baseDir ?? os.tmpdir()), sizes, local, s3, s3Skipped: !doS3 ? 'BENCH_S3=0' : doS3Freeze ? null : 'BENCH_S3_FREEZE=0; MinIO ran only for the S3 wakes', rep, wake, scale, clone, busy, load, totalMs: performance.now() - t0 });
    console.log('\n' + text);
    if (outFile) {
      fs.mkdirSync(path.dirname(outFile), { recursive: true });
      fs.writeFileSync(outFile, carryRecords(text, fs.existsSync(outFile) ? fs.readFileSync(outFile, 'utf8') : ''));
      console.log(`written to ${path.relative(process.cwd(), outFile) || outFile}`);
    }
  } finally {
    forget();
    await stopAll();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
