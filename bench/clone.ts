/**
 * Clone cost: one template workspace of `sizeMiB` (filled through `putFile` with random bytes, then suspended),
 * cloned into many tenants with `create({ workspaceId, tenant: 'tenant-<i>', template })`, against copying the
 * template's live file with `cp` (and in-process copyFile + fsync) on the same filesystem, in the same run.
 *
 *   serial sample   `serial` clones one after another, each iteration also timing `cp`, `cp` + `sync` of the
 *                   copy, and copyFile + fsync in this process of the same file (the template's live file);
 *                   the clone's provision / startInstance activities from its history; then `serial` clones of
 *                   the same template while it is active (open: cloned through SQLite's backup API)
 *   bulk            `clones` clones at `concurrency` at a time: total wall time, clones/s, each create's wall
 *                   time; against `clones` `cp`s and `clones` copyFile + fsync at the same concurrency
 *   replication on  (optional) a second host with the product's default file:// replicas: a fresh template of
 *                   the same size and a serial sample on it (Litestream registers each clone, which starts with
 *                   a full snapshot of the file in the background)
 *
 * The host for the serial sample and the bulk runs with replication off (Litestream would take a full snapshot
 * of every new clone: 1,000 × the file again on the same disk, all in the background of the next clones). Clones
 * get `suspendAfter: never` so no idle move runs while the bench does. At the end every clone's workflow is
 * terminated and the data dirs removed (clones, copies, replicas).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestDevServer } from '../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../harness/stack';
import type { WorkbooksClient } from '../src/client/workbooks-client';
import { workflowIdFor } from '../src/contract/ids';
import { onInterrupt } from './cleanup';
import { copyFsync, elapsed, median, run, settle } from './raw-ops';

const MiB = 1024 * 1024;
const NO_IDLE = { suspendAfter: 'never', freezeAfter: 'never' } as const;

export interface CloneSerial {
  /** Wall time of each `create` with the template (ms). */
  cloneMs: number[];
  /** The clone's provision activity (copy, open, clear tmp, checkpoint, rename) and startInstance, from its history. */
  provisionMs: number[];
  startMs: number[];
  /** resolveTemplate (shared queue: where the template is), from the history. */
  resolveMs: number[];
  /** Workflow tasks until the clone was active: how many, and their time (scheduled → completed, summed). */
  workflowTasks: number[];
  workflowTaskMs: number[];
  /** Same iteration, same file: `cp`, `cp` + `sync` of the copy, copyFile + fsync in this process (ms). */
  cpMs: number[];
  cpSyncMs: number[];
  copyFsyncMs: number[];
}

export interface CloneBulk {
  n: number;
  concurrency: number;
  totalMs: number;
  /** Wall time of each create (ms). */
  perCloneMs: number[];
  failures: number;
  firstFailure: string | null;
  /** `n` × `cp` at the same concurrency: total, each (ms). */
  cpTotalMs: number;
  cpMs: number[];
  /** `n` × copyFile + fsync in this process at the same concurrency. */
  copyFsyncTotalMs: number;
  copyFsyncMs: number[];
  /** This process (bench + worker host) resident memory before and after the bulk, and workspaces open on the host. */
  rssBeforeBytes: number;
  rssAfterBytes: number;
  openInstances: number;
  /** Bytes of the host's live dir after the bulk (du). */
  liveDirBytes: number;
  /** Terminating every clone's workflow afterwards. */
  cleanupMs: number;
  /** CPU time (s) used during the bulk by the Temporal dev server and by this process (bench + worker host). */
  cpu: { devServerS: number; benchS: number };
}

export interface CloneResult {
  sizeMiB: number;
  /** The template's live file (suspended, checkpointed). */
  templateBytes: number;
  serialN: number;
  /** Replication off; template suspended (closed file: copyFile). */
  serial: CloneSerial;
  /** Replication off; template active (open: SQLite backup API). */
  serialActive: CloneSerial;
  bulk: CloneBulk | null;
  /** Replication on (file:// replicas in the host's data dir); template suspended. */
  serialReplicated: CloneSerial | null;
  totalMs: number;
}

export interface CloneOptions {
  server: TestDevServer;
  /** Bulk clones (0 = no bulk). */
  clones: number;
  sizeMiB: number;
  concurrency: number;
  /** Serial sample size (each kind). */
  serial: number;
  /** Also a serial sample with replication on. */
  replicated: boolean;
  baseDir?: string;
  log?(line: string): void;
}

// ---------------------------------------------------------------------------------------------------------------





/** Runs fn(0..n-1), at most `concurrency` at a time, in index order. */
async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  };
  await Promise.all(Array.from({ length: Math.min(n, concurrency) }, lane));
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/** utime + stime of a process (s), from /proc; NaN when unreadable. */
function procCpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return NaN;
  }
}

function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function duBytes(dir: string): number {
  const out = spawnSync('du', ['-sb', dir], { encoding: 'utf8' });
  return out.status === 0 ? Number(out.stdout.split(/\s+/)[0]) : NaN;
}

type Long = { toString(): string } | number | string | null | undefined;
function tsMs(t: { seconds?: Long; nanos?: number | null } | null | undefined): number {
  if (!t) return NaN;
  return Number(String(t.seconds ?? 0)) * 1000 + (t.nanos ?? 0) / 1e6;
}

/**
 * ActivityTaskStarted → ActivityTaskCompleted of each named activity in the workflow's history (ms), and the
 * workflow tasks (count, summed WorkflowTaskScheduled → WorkflowTaskCompleted).
 */
async function historyTimes(server: TestDevServer, id: string, names: string[]): Promise<{ activities: Record<string, number>; workflowTasks: number; workflowTaskMs: number }> {
  const events = (await server.client.workflow.getHandle(workflowIdFor(id)).fetchHistory()).events ?? [];
  const byId = new Map(events.map((e) => [Number(String(e.eventId)), e]));
  const out: Record<string, number> = {};
  let workflowTasks = 0;
  let workflowTaskMs = 0;
  for (const e of events) {
    const wft = e.workflowTaskCompletedEventAttributes;
    if (wft) {
      workflowTasks++;
      workflowTaskMs += tsMs(e.eventTime) - tsMs(byId.get(Number(String(wft.scheduledEventId)))?.eventTime);
    }
    const done = e.activityTaskCompletedEventAttributes;
    if (!done) continue;
    const name = byId.get(Number(String(done.scheduledEventId)))?.activityTaskScheduledEventAttributes?.activityType?.name;
    const started = byId.get(Number(String(done.startedEventId)));
    if (name && names.includes(name)) out[name] = tsMs(e.eventTime) - tsMs(started?.eventTime);
  }
  return { activities: out, workflowTasks, workflowTaskMs };
}

async function fillTemplate(wb: WorkbooksClient, id: string, sizeMiB: number): Promise<void> {
  await wb.create({ workspaceId: id, tenant: 'bench-templates', policy: NO_IDLE });
  const total = Math.round(sizeMiB * MiB);
  for (let off = 0, n = 0; off < total; off += MiB, n++) {
    await wb.putFile(id, 'workspace', `/data/${String(n).padStart(4, '0')}.bin`, crypto.randomBytes(Math.min(MiB, total - off)));
  }
}

async function terminateAll(server: TestDevServer, ids: string[], concurrency = 16): Promise<void> {
  await pool(ids.length, concurrency, async (i) => {
    await server.client.workflow
      .getHandle(workflowIdFor(ids[i]!))
      .terminate('bench cleanup')
      .catch(() => undefined);
  });
}

/**
 * `n` serial clones of `template`, each iteration timing first the baselines on the template's live file
 * (`cp`, `cp` + sync, copyFile + fsync; each copy removed, `sync -f` before each step), then the clone.
 */
async function serialSample(
  server: TestDevServer,
  wb: WorkbooksClient,
  template: string,
  prefix: string,
  n: number,
  scratch: string,
  ids: string[],
  log: (l: string) => void,
): Promise<CloneSerial> {
  const s: CloneSerial = { cloneMs: [], provisionMs: [], startMs: [], resolveMs: [], workflowTasks: [], workflowTaskMs: [], cpMs: [], cpSyncMs: [], copyFsyncMs: [] };
  const src = (await wb.describe(template)).filePath;
  if (!src) throw new Error(`template ${template} has no file path`);
  for (let i = -1; i < n; i++) {
    // i = -1: one untimed warm-up iteration.
    const dst = path.join(scratch, `cp-${prefix}-${i}`);
    settle(scratch);
    let t0 = performance.now();
    await run('cp', ['--', src, dst]);
    const cp = elapsed(t0);
    fs.rmSync(dst, { force: true });
    settle(scratch);
    t0 = performance.now();
    await run('cp', ['--', src, dst]);
    await run('sync', ['--', dst]);
    const cpSync = elapsed(t0);
    fs.rmSync(dst, { force: true });
    settle(scratch);
    t0 = performance.now();
    await copyFsync(src, dst);
    const copy = elapsed(t0);
    fs.rmSync(dst, { force: true });
    settle(scratch);

    const id = `${prefix}-${i < 0 ? 'w' : i}`;
    ids.push(id);
    t0 = performance.now();
    const r = await wb.create({ workspaceId: id, tenant: `tenant-${prefix}-${i < 0 ? 'w' : i}`, template, policy: NO_IDLE });
    const clone = elapsed(t0);
    if (r.state !== 'active') throw new Error(`clone ${id} is ${r.state}`);
    if (i < 0) continue;
    const h = await historyTimes(server, id, ['resolveTemplate', 'provision', 'startInstance']);
    const acts = h.activities;
    s.resolveMs.push(acts.resolveTemplate ?? NaN);
    s.workflowTasks.push(h.workflowTasks);
    s.workflowTaskMs.push(h.workflowTaskMs);
    s.cloneMs.push(clone);
    s.cpMs.push(cp);
    s.cpSyncMs.push(cpSync);
    s.copyFsyncMs.push(copy);
    s.provisionMs.push(acts.provision ?? NaN);
    s.startMs.push(acts.startInstance ?? NaN);
  }
  log(`    ${prefix}: ${n} serial clones, median ${median(s.cloneMs).toFixed(1)} ms (resolveTemplate ${median(s.resolveMs).toFixed(1)}, provision ${median(s.provisionMs).toFixed(1)}, startInstance ${median(s.startMs).toFixed(1)}, ${median(s.workflowTasks)} workflow tasks ${median(s.workflowTaskMs).toFixed(1)} ms); cp ${median(s.cpMs).toFixed(1)} ms, cp + sync ${median(s.cpSyncMs).toFixed(1)} ms, copyFile + fsync ${median(s.copyFsyncMs).toFixed(1)} ms`);
  return s;
}

/** Starts a host of its own (own task queue and data dir under `root`). */
async function hostIn(server: TestDevServer, root: string, name: string, replicaUrl: string | undefined): Promise<{ host: TestHost; wb: WorkbooksClient; dataDir: string }> {
  const dataDir = path.join(root, name);
  fs.mkdirSync(path.join(dataDir, 'scratch'), { recursive: true });
  const taskQueue = uniqueQueue(`bench-${name}`);
  const host = await startTestHost({
    connection: server.connection,
    client: server.client,
    taskQueue,
    hostId: `bench-${name}-${crypto.randomBytes(2).toString('hex')}`,
    dataDir,
    ...(replicaUrl !== undefined ? { replicaUrl } : {}),
  });
  await host.host.reconciled;
  return { host, wb: clientFor(server.client, taskQueue), dataDir };
}

export async function measureClone(opts: CloneOptions): Promise<CloneResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const t00 = performance.now();
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-clone-'));
  const tag = crypto.randomBytes(2).toString('hex');
  const ids: string[] = [];
  let host: TestHost | undefined;
  const cleanup = async () => {
    await host?.stop().catch(() => undefined);
    host = undefined;
    await terminateAll(opts.server, ids.splice(0));
    fs.rmSync(root, { recursive: true, force: true });
  };
  const forget = onInterrupt(cleanup);
  try {
    // ---- replication off: template, serial samples, bulk
    const a = await hostIn(opts.server, root, 'clone-host', 'off');
    host = a.host;
    const scratch = path.join(a.dataDir, 'scratch');
    const template = `tpl-${tag}`;
    ids.push(template);
    await fillTemplate(a.wb, template, opts.sizeMiB);
    await a.wb.transition(template, 'suspended');
    const src = (await a.wb.describe(template)).filePath!;
    const templateBytes = fs.statSync(src).size;
    log(`  template ${template}: ${(templateBytes / MiB).toFixed(1)} MiB live file (suspended); replication off`);

    const serial = await serialSample(opts.server, a.wb, template, `c${tag}`, opts.serial, scratch, ids, log);
    await a.wb.wake(template);
    const serialActive = await serialSample(opts.server, a.wb, template, `a${tag}`, opts.serial, scratch, ids, log);
    await a.wb.transition(template, 'suspended');

    let bulk: CloneBulk | null = null;
    if (opts.clones > 0) {
      const n = opts.clones;
      const c = opts.concurrency;
      // Baselines first: n copies with `cp`, removed; n copyFile + fsync, removed.
      const bdir = path.join(scratch, 'bulk');
      fs.mkdirSync(bdir, { recursive: true });
      settle(scratch);
      const cpMs: number[] = new Array(n);
      let t0 = performance.now();
      await pool(n, c, async (i) => {
        const t = performance.now();
        await run('cp', ['--', src, path.join(bdir, `cp-${i}`)]);
        cpMs[i] = elapsed(t);
      });
      const cpTotalMs = elapsed(t0);
      fs.rmSync(bdir, { recursive: true, force: true });
      fs.mkdirSync(bdir, { recursive: true });
      settle(scratch);
      const copyFsyncMs: number[] = new Array(n);
      t0 = performance.now();
      await pool(n, c, async (i) => {
        const t = performance.now();
        await copyFsync(src, path.join(bdir, `copy-${i}`));
        copyFsyncMs[i] = elapsed(t);
      });
      const copyFsyncTotalMs = elapsed(t0);
      fs.rmSync(bdir, { recursive: true, force: true });
      settle(scratch);
      log(`    baselines: ${n} × cp at ${c} in ${(cpTotalMs / 1000).toFixed(1)} s; ${n} × copyFile + fsync in ${(copyFsyncTotalMs / 1000).toFixed(1)} s`);

      const perCloneMs: number[] = [];
      let failures = 0;
      let firstFailure: string | null = null;
      const rssBeforeBytes = process.memoryUsage().rss;
      const devPid = opts.server.server.pid;
      const cpu0 = { dev: procCpuSeconds(devPid), self: selfCpuSeconds() };
      const every = Math.max(1, Math.ceil(n / 10));
      let done = 0;
      t0 = performance.now();
      await pool(n, c, async (i) => {
        const id = `t${tag}-${i}`;
        ids.push(id);
        const t = performance.now();
        try {
          const r = await a.wb.create({ workspaceId: id, tenant: `tenant-${i}`, template, policy: NO_IDLE });
          if (r.state !== 'active') throw new Error(`clone ${id} is ${r.state}`);
          perCloneMs.push(elapsed(t));
        } catch (err) {
          failures++;
          firstFailure ??= `${id}: ${(err as Error).message}`;
        }
        if (++done % every === 0 || done === n) {
          log(`    bulk: ${done}/${n} in ${(elapsed(t0) / 1000).toFixed(1)} s (${(done / (elapsed(t0) / 1000)).toFixed(1)} clones/s, last create ${elapsed(t).toFixed(0)} ms)`);
        }
      });
      const totalMs = elapsed(t0);
      const cpu = { devServerS: procCpuSeconds(devPid) - cpu0.dev, benchS: selfCpuSeconds() - cpu0.self };
      const rssAfterBytes = process.memoryUsage().rss;
      const liveDirBytes = duBytes(path.join(a.dataDir, 'live'));
      const openInstances = fs.readdirSync(path.join(a.dataDir, 'live')).filter((f) => f.endsWith('.active')).length;
      if (failures > 0) log(`    bulk: ${failures} clone(s) failed; first: ${firstFailure}`);

      // Cleanup of the bulk now (the replicated sample below needs neither the clones nor their memory).
      t0 = performance.now();
      await a.host.stop();
      host = undefined;
      const gone = ids.splice(0);
      await terminateAll(opts.server, gone);
      fs.rmSync(a.dataDir, { recursive: true, force: true });
      const cleanupMs = elapsed(t0);
      log(`    cleanup: host stopped, ${gone.length} workflows terminated, files removed in ${(cleanupMs / 1000).toFixed(1)} s`);
      bulk = { n, concurrency: c, totalMs, perCloneMs, failures, firstFailure, cpTotalMs, cpMs, copyFsyncTotalMs, copyFsyncMs, rssBeforeBytes, rssAfterBytes, openInstances, liveDirBytes, cleanupMs, cpu };
    } else {
      await a.host.stop();
      host = undefined;
      await terminateAll(opts.server, ids.splice(0));
      fs.rmSync(a.dataDir, { recursive: true, force: true });
    }

    // ---- replication on (the product default: file:// replicas in the host's data dir)
    let serialReplicated: CloneSerial | null = null;
    if (opts.replicated) {
      const b = await hostIn(opts.server, root, 'clone-host-rep', undefined);
      host = b.host;
      const tpl = `tpl-${tag}-r`;
      ids.push(tpl);
      await fillTemplate(b.wb, tpl, opts.sizeMiB);
      await b.wb.transition(tpl, 'suspended');
      log(`  template ${tpl}: replication on (file:// replicas)`);
      serialReplicated = await serialSample(opts.server, b.wb, tpl, `r${tag}`, opts.serial, path.join(b.dataDir, 'scratch'), ids, log);
    }

    return { sizeMiB: opts.sizeMiB, templateBytes, serialN: opts.serial, serial, serialActive, bulk, serialReplicated, totalMs: elapsed(t00) };
  } finally {
    forget();
    await cleanup();
  }
}

