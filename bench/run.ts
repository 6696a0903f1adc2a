/**
 * `npm run bench`: freeze / resume through the real workflow against `cp`, printed and written to
 * docs/BENCHMARKS.md.
 *
 * Environment:
 *   BENCH_SIZES  comma-separated workspace sizes in MiB (default "1,100,1024")
 *   BENCH_RUNS   runs per size (default 5, and 3 for sizes of 1 GiB and more)
 *   BENCH_DIR    parent directory of the temporary data dir (default: the OS temp dir); its filesystem is measured
 *   BENCH_OUT    where to write the report (default docs/BENCHMARKS.md; "-" = print only)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runFreezeResume, MiB, RunSample, SizeResult } from './freeze-resume';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

function parseSizes(raw: string | undefined): number[] {
  const sizes = (raw ?? '1,100,1024')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  if (sizes.length === 0 || sizes.some((n) => !Number.isFinite(n) || n <= 0)) throw new Error(`BENCH_SIZES must be comma-separated sizes in MiB, got '${raw}'`);
  return sizes;
}

function parseRuns(raw: string | undefined): ((size: number) => number) {
  if (raw === undefined || raw === '') return (size) => (size >= 1024 ? 3 : 5);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`BENCH_RUNS must be a positive integer, got '${raw}'`);
  return () => n;
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function ms(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (x >= 1000) return `${(x / 1000).toFixed(2)} s`;
  return `${x >= 100 ? x.toFixed(0) : x.toFixed(1)} ms`;
}

function ratio(a: number, b: number): string {
  return b > 0 ? `${(a / b).toFixed(1)}×` : '—';
}

function sizeLabel(mib: number): string {
  return mib >= 1024 && mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

function bytesLabel(b: number): string {
  return b >= 1024 * MiB ? `${(b / (1024 * MiB)).toFixed(2)} GiB` : `${(b / MiB).toFixed(1)} MiB`;
}

function mibps(bytes: number, msTaken: number): string {
  return msTaken > 0 ? `${(bytes / MiB / (msTaken / 1000)).toFixed(0)} MiB/s` : '—';
}

function med(r: SizeResult, f: (s: RunSample) => number): number {
  return median(r.runs.map(f));
}

function tables(results: SizeResult[]): string {
  const out: string[] = [];
  out.push('### Freeze (suspended → frozen)', '');
  out.push('| size | file | runs | freeze (update) | storeLocal activity | rest of the move | cp | cp + fsync | freeze ÷ cp | freeze ÷ (cp + fsync) | activity ÷ (cp + fsync) |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const f = med(r, (s) => s.freezeMs);
    const a = med(r, (s) => s.storeLocal.runMs);
    const rest = med(r, (s) => s.freezeMs - s.storeLocal.runMs);
    const cp = med(r, (s) => s.cpLiveMs);
    const cps = med(r, (s) => s.cpSyncLiveMs);
    out.push(`| ${sizeLabel(r.sizeMiB)} | ${bytesLabel(r.fileBytes)} | ${r.runs.length} | **${ms(f)}** (${mibps(r.fileBytes, f)}) | ${ms(a)} | ${ms(rest)} | ${ms(cp)} | ${ms(cps)} | ${ratio(f, cp)} | ${ratio(f, cps)} | ${ratio(a, cps)} |`);
  }
  out.push('', '### Resume (frozen → active, `wake`)', '');
  out.push('| size | file | runs | resume (update) | restoreLocal activity | rest of the move | cp back | cp back + fsync | resume ÷ cp | resume ÷ (cp + fsync) | activity ÷ (cp + fsync) |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of results) {
    const w = med(r, (s) => s.resumeMs);
    const a = med(r, (s) => s.restoreLocal.runMs);
    const rest = med(r, (s) => s.resumeMs - s.restoreLocal.runMs);
    const cp = med(r, (s) => s.cpColdMs);
    const cps = med(r, (s) => s.cpSyncColdMs);
    out.push(`| ${sizeLabel(r.sizeMiB)} | ${bytesLabel(r.fileBytes)} | ${r.runs.length} | **${ms(w)}** (${mibps(r.fileBytes, w)}) | ${ms(a)} | ${ms(rest)} | ${ms(cp)} | ${ms(cps)} | ${ratio(w, cp)} | ${ratio(w, cps)} | ${ratio(a, cps)} |`);
  }
  return out.join('\n');
}

function rawRuns(results: SizeResult[]): string {
  const out: string[] = ['| size | run | freeze | storeLocal | cp | cp + fsync | resume | restoreLocal | cp back | cp back + fsync |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|'];
  for (const r of results) {
    r.runs.forEach((s, i) => {
      const retried = s.storeLocal.attempt > 1 || s.restoreLocal.attempt > 1 ? ' (retried)' : '';
      out.push(
        `| ${sizeLabel(r.sizeMiB)} | ${i + 1}${retried} | ${ms(s.freezeMs)} | ${ms(s.storeLocal.runMs)} | ${ms(s.cpLiveMs)} | ${ms(s.cpSyncLiveMs)} | ${ms(s.resumeMs)} | ${ms(s.restoreLocal.runMs)} | ${ms(s.cpColdMs)} | ${ms(s.cpSyncColdMs)} |`,
      );
    });
  }
  return out.join('\n');
}

/** Said only when it happened: a plain cp slower than cp + fsync of the same file is not the disk. */
function firstTouchNote(results: SizeResult[]): string[] {
  const odd = results.flatMap((r) => r.runs.filter((s) => s.cpLiveMs > 1.5 * s.cpSyncLiveMs || s.cpColdMs > 1.5 * s.cpSyncColdMs).map(() => r.sizeMiB));
  if (odd.length === 0) return [];
  return [
    `Note: in ${odd.length} run${odd.length === 1 ? '' : 's'} (${[...new Set(odd)].map(sizeLabel).join(', ')}) a plain \`cp\` took more than 1.5× as long as`,
    '`cp` + fsync of the same file right after it (raw runs below). That is not the disk: it is page cache growing into memory',
    'the machine has to back on first touch (seen on VMs that hand freed guest memory back to the host; the first of',
    'several back-to-back `cp`s of a new 1 GiB file is several times slower than the rest). The copies inside freeze and',
    'resume pay the same cost when it hits them, so compare against the medians and the fsync column, not single runs.',
    '',
  ];
}

function runsText(results: SizeResult[]): string {
  return results.map((r) => `${r.runs.length} run${r.runs.length === 1 ? '' : 's'} at ${sizeLabel(r.sizeMiB)}`).join(', ');
}

function report(m: Machine, results: SizeResult[], sizes: number[], load: { before: number[]; after: number[] }, totalMs: number): string {
  const load1 = (l: number[]) => l.map((x) => x.toFixed(2)).join(' / ');
  const skipped = [1, 100, 1024].filter((s) => !sizes.includes(s));
  return [
    '# Benchmarks: freeze and resume',
    '',
    'Generated by `npm run bench` (`bench/run.ts`, `bench/freeze-resume.ts`). Medians; raw runs at the end.',
    '',
    '## Machine',
    '',
    '| | |',
    '|---|---|',
    `| CPUs (\`nproc\`) | ${m.nproc} × ${m.cpu} |`,
    `| memory | ${m.memory} |`,
    `| kernel | ${m.kernel} |`,
    `| filesystem of the data dir (\`df -T\`) | ${m.fs} |`,
    `| node | ${m.node} |`,
    `| date | ${m.date} |`,
    `| sizes run | ${sizes.map(sizeLabel).join(', ')}${skipped.length ? ` (not run: ${skipped.map(sizeLabel).join(', ')})` : ''} |`,
    `| load average 1/5/15 min, before / after | ${load1(load.before)} → ${load1(load.after)} |`,
    `| whole bench | ${(totalMs / 1000).toFixed(0)} s |`,
    '',
    '## Results',
    '',
    tables(results),
    '',
    '- **freeze / resume (update)**: wall time of `WorkbooksClient.transition(id, "frozen")` from suspended, and of',
    '  `WorkbooksClient.wake(id)` from frozen, as a caller sees them (MiB/s = file size ÷ that time).',
    '- **storeLocal / restoreLocal activity**: the activity alone, ActivityTaskStarted → ActivityTaskCompleted in the',
    '  workflow history. **rest of the move** = update − activity: the describe query and update round trips, workflow',
    '  tasks, activity scheduling, and the other activities of the move (freeze: removeLocal; resume: pickHost and',
    '  startInstance, which opens the file and clears `tmp`).',
    '- **cp / cp + fsync**: `cp` of the same bytes in the same filesystem (freeze: the suspended live file; resume: the',
    '  cold copy), and `cp` followed by `sync <copy>` (an fsync of the copy). Ratios are against these.',
    '',
    '## How measured',
    '',
    'One process starts a Temporal dev server (`.tools/bin/temporal`, throwaway data dir) and a real worker host',
    '(shared and host task queues, data server) with cold storage at `file://<host data dir>/cold`, so live files,',
    'cold copies and the `cp` scratch copies are all on the filesystem above. For each size one workspace is created',
    'and filled through `putFile` with random bytes in 16 MiB files, then suspended. Each run times, in order: `cp`',
    'and `cp` + fsync of the suspended live file; the freeze (`transition` to `frozen`: checkpoint and full integrity',
    'check, sha256 of the file, copy with streaming sha256 and fsync, re-hash of the stored copy, release of the local',
    'file); `cp` and `cp` + fsync of the cold copy; the wake (copy back with sha256 verified, fsync, rename, open,',
    'clear `tmp`). Between runs (untimed) a small marker file is written and the workspace suspended again, so every',
    'freeze has new bytes to copy (an unchanged file whose cold copy already matches would skip the copy). Every',
    'scratch copy is deleted after it is timed, and `sync -f` runs before each timed step so writeback of earlier',
    'steps is not billed to it. With this much memory every read is served from the page cache: the figures are',
    `CPU (sha256, SQLite integrity check) and write-back bound, not read bound. Medians of ${runsText(results)}, freeze`,
    'and resume alternating on the same workspace. Other work on the machine shows up in the load averages above and',
    'in the spread of the raw runs.',
    '',
    ...firstTouchNote(results),
    '## Raw runs',
    '',
    rawRuns(results),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const sizes = parseSizes(process.env.BENCH_SIZES);
  const runsFor = parseRuns(process.env.BENCH_RUNS);
  const outFile = process.env.BENCH_OUT === '-' ? null : path.resolve(REPO_ROOT, process.env.BENCH_OUT || 'docs/BENCHMARKS.md');
  const t0 = performance.now();
  const before = os.loadavg();
  let m: Machine | undefined;
  const results = await runFreezeResume({
    sizesMiB: sizes,
    runsFor,
    baseDir: process.env.BENCH_DIR || undefined,
    onEnv: (env) => {
      m = machine(env.dataDir);
    },
  });
  const load = { before, after: os.loadavg() };
  const text = report(m!, results, sizes, load, performance.now() - t0);
  console.log('\n' + text);
  if (outFile) {
    fs.mkdirSync(path.dirname(outFile), { recursive: true });
    fs.writeFileSync(outFile, text);
    console.log(`written to ${path.relative(process.cwd(), outFile) || outFile}`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
