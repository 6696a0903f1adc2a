/**
 * Runs bench/scale.ts at a reduced size under several worker and dev-server settings, interleaved (A B C … A B C …)
 * so that load from other processes on the machine spreads over all of them, each run in a fresh process (RSS is
 * never returned: a run after another in one process would carry the first one's); one JSON line per run, then
 * medians per setting. Used to choose the workflow worker's defaults and the embedded server's journal (issue 14; the
 * figures are in docs/BENCHMARKS.md, record "worker-options").
 *
 *   node dist/bench/worker-options.js --n 1000 --due 300 --repeat 2 --out runs.jsonl \
 *     --setting 'cache=2000,sticky=10' --setting 'cache=250,sticky=30' --setting 'cache=250,sticky=30,wal=1'
 *
 * Setting keys: cache (maxCachedWorkflows), sticky (seconds), slots, pollers (workflow worker), wal=1 (dev server
 * `--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=full`), journal=rollback (the SQLite default:
 * `--sqlite-pragma journal_mode=delete`, for runs after the embedded server moved to WAL).
 *
 * The scale bench's worker host (bench/scale-worker.ts, a forked process) reads the workflow worker's options from
 * WORKBOOKS_WORKFLOW_* and WORKBOOKS_STICKY_TIMEOUT_SECONDS in its environment: each run sets them here.
 */
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import * as config from '../src/config';
import { CpuUse, measureScale, ScaleResult } from './scale';
import { median, percentile } from './raw-ops';

interface Setting {
  label: string;
  worker: config.WorkflowWorkerOptions;
  env: NodeJS.ProcessEnv;
  serverArgs: string[];
}

function parseSetting(raw: string): Setting {
  const kv = new Map(raw.split(',').map((p) => p.split('=') as [string, string]));
  const env: NodeJS.ProcessEnv = {};
  if (kv.has('cache')) env.WORKBOOKS_WORKFLOW_CACHE = kv.get('cache');
  if (kv.has('sticky')) env.WORKBOOKS_STICKY_TIMEOUT_SECONDS = kv.get('sticky');
  if (kv.has('slots')) env.WORKBOOKS_WORKFLOW_SLOTS = kv.get('slots');
  if (kv.has('pollers')) env.WORKBOOKS_WORKFLOW_POLLERS = kv.get('pollers');
  const worker = config.loadConfig({ ...env, WORKBOOKS_DATA_DIR: '/tmp/unused' }, { temporalAddress: 'unused' }).workflowWorker;
  const serverArgs: string[] = [];
  if (kv.get('wal') === '1') serverArgs.push('--sqlite-pragma', 'journal_mode=wal', '--sqlite-pragma', 'synchronous=full');
  if (kv.get('journal') === 'rollback') serverArgs.push('--sqlite-pragma', 'journal_mode=delete');
  return { label: raw, worker, env, serverArgs };
}

const MiB = 1024 * 1024;

/** Temporal server CPU, plus PostgreSQL's on the cluster. */
function serverMs(c: CpuUse): number {
  return (c.temporalMs ?? NaN) + (c.postgresMs ?? 0);
}

function summary(label: string, r: ScaleResult) {
  const bgOk = r.background.count - r.background.failed;
  const dueOk = r.dueCreate.count - r.dueCreate.failed;
  const moves = r.doneOffsetMs.length;
  return {
    label,
    n: r.n,
    due: r.due,
    createRate: +(bgOk / (r.background.ms / 1000)).toFixed(2),
    createP50Ms: Math.round(median(r.background.createMs)),
    cpuCreateWorkerMs: +((r.cpu.background.workerMs ?? NaN) / bgOk).toFixed(1),
    cpuCreateServerMs: +(serverMs(r.cpu.background) / bgOk).toFixed(1),
    cpuDueWorkerMs: +((r.cpu.due.workerMs ?? NaN) / dueOk).toFixed(1),
    cpuDueServerMs: +(serverMs(r.cpu.due) / dueOk).toFixed(1),
    cpuMoveWorkerMs: +((r.cpu.burst.workerMs ?? NaN) / moves).toFixed(1),
    cpuMoveServerMs: +(serverMs(r.cpu.burst) / moves).toFixed(1),
    lateP50Ms: Math.round(median(r.lateMs)),
    lateP99Ms: Math.round(percentile(r.lateMs, 99)),
    lateMaxMs: Math.round(Math.max(...r.lateMs)),
    stickyTimeouts: r.wftTrouble.timedOut.SCHEDULE_TO_START ?? 0,
    missing: r.missing.length,
    rssStartMiB: Math.round((r.mem.start.workerRss ?? NaN) / MiB),
    rssAfterBackgroundMiB: Math.round((r.mem.afterBackground.workerRss ?? NaN) / MiB),
    rssAfterDueMiB: Math.round((r.mem.afterDue.workerRss ?? NaN) / MiB),
    rssBurstPeakMiB: Math.round((r.mem.burstPeak.workerRss ?? NaN) / MiB),
    rssAfterBurstMiB: Math.round((r.mem.afterBurst.workerRss ?? NaN) / MiB),
    hwmMiB: Math.round((r.mem.workerHwm ?? NaN) / MiB),
    serverRssAfterDueMiB: Math.round((r.mem.afterDue.serverRss ?? NaN) / MiB),
    historyDueMedian: median(r.history.dueTotal),
    totalS: Math.round(r.totalMs / 1000),
    at: new Date().toISOString(),
  };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string, def?: string) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1]! : def;
  };
  const settings = args.flatMap((a, i) => (a === '--setting' ? [parseSetting(args[i + 1]!)] : []));
  if (settings.length === 0) throw new Error('give at least one --setting');
  const n = Number(opt('n', '1000'));
  const due = Number(opt('due', '300'));
  const repeat = Number(opt('repeat', '1'));
  const out = opt('out', 'worker-options.jsonl')!;
  const concurrency = Number(opt('concurrency', '16'));
  if (args.includes('--child')) {
    // One run of one setting in this (fresh) process: its RSS is the run's alone.
    const s = settings[0]!;
    // The worker host runs in a forked process (bench/scale-worker.ts) that reads WORKBOOKS_WORKFLOW_* from its
    // environment, which it inherits from this one.
    Object.assign(process.env, s.env);
    const r = await measureScale({ n, due, concurrency, cacheSize: s.worker.cache, serverArgs: s.serverArgs, log: (l) => console.error(l) });
    console.log(JSON.stringify(summary(s.label, r)));
    return;
  }
  const rows: ReturnType<typeof summary>[] = [];
  for (let k = 0; k < repeat; k++) {
    for (const s of settings) {
      console.error(`[worker-options] run ${k + 1}/${repeat}: ${s.label}`);
      const child = spawnSync(process.execPath, [__filename, '--child', '--n', String(n), '--due', String(due), '--concurrency', String(concurrency), '--setting', s.label], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
        maxBuffer: 64 * 1024 * 1024,
      });
      const line = child.stdout.trim().split('\n').pop() ?? '';
      if (child.status !== 0 || !line.startsWith('{')) {
        console.error(`[worker-options] run failed (exit ${child.status})`);
        continue;
      }
      const row = JSON.parse(line) as ReturnType<typeof summary>;
      rows.push(row);
      fs.appendFileSync(out, `${line}\n`);
      console.error(line);
    }
  }
  for (const s of settings) {
    const mine = rows.filter((r) => r.label === s.label);
    const med: Record<string, number | string> = { label: s.label, runs: mine.length };
    for (const key of Object.keys(mine[0] ?? {}) as (keyof (typeof mine)[0])[]) {
      if (typeof mine[0]![key] === 'number') med[key] = median(mine.map((r) => r[key] as number));
    }
    console.log(JSON.stringify(med));
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
