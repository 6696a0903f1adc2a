/**
 * The Temporal server a scale run measures against, and which processes are "the server" for CPU and memory:
 *
 *   - embedded: a dev server of its own (`temporal server start-dev`, SQLite file, throwaway): one process.
 *   - cluster: the production topology of scripts/cluster.sh (Temporal server on PostgreSQL, MinIO, two worker hosts,
 *     API): brought up with `scripts/cluster.sh up` unless it already runs. The server is the Temporal server process
 *     plus every PostgreSQL process (postmaster and backends, re-read at each sample: backends come and go). Left
 *     running at the end only if it ran before; else `down`, with `--wipe` only if there was no cluster state at all
 *     before (a fresh cluster leaves nothing behind; a stopped one keeps its data).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { startTestDevServer, TestDevServer } from '../harness/temporal';
import { resolveBinary } from '../src/tools';
import { procChildren, procCpuMs, procPss, procStatusBytes, sumOrNull } from './proc-stats';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const CLUSTER_SCRIPT = path.join(REPO_ROOT, 'scripts', 'cluster.sh');

export type ServerKind = 'embedded' | 'cluster';
export const SERVER_KINDS: readonly ServerKind[] = ['embedded', 'cluster'];

/** CPU (ms, cumulative) and memory (bytes) of the server's processes at one moment. */
export interface ServerSample {
  /** Temporal server (dev server or the cluster's server), user + system, with waited-for children. */
  temporalCpuMs: number | null;
  /** PostgreSQL: every postgres process + what exited backends used (the postmaster's cutime/cstime); null: none. */
  postgresCpuMs: number | null;
  temporalRss: number | null;
  temporalHwm: number | null;
  /** PostgreSQL: sum of PSS (shared buffers counted once), and how many processes. */
  postgresPss: number | null;
  postgresProcs: number;
}

export interface ScaleServer {
  kind: ServerKind;
  /** For the report, e.g. "cluster: Temporal server 1.32.0 on PostgreSQL 16.10 (netns mode)". */
  label: string;
  address: string;
  namespace: string;
  client: Client;
  /** How the server was got (e.g. "started with scripts/cluster.sh up in 74 s"). */
  origin: string;
  sample(): ServerSample;
  /** Bytes the server's database holds on disk (dev server: its SQLite files; cluster: PostgreSQL's data dir). */
  dbBytes(): { bytes: number; what: string };
  /** Removes a run's workflows (cluster: a batch delete by task queue; embedded: nothing, the server is thrown away). */
  forget(taskQueue: string, log: (l: string) => void): Promise<string>;
  stop(log: (l: string) => void): Promise<void>;
}

export async function openScaleServer(kind: ServerKind, opts: { serverArgs?: string[]; log: (l: string) => void }): Promise<ScaleServer> {
  if (kind === 'embedded') return openEmbedded(opts.serverArgs);
  if (kind === 'cluster') return openCluster(opts.log);
  throw new Error(`scale: server must be one of ${SERVER_KINDS.join(', ')}, got '${String(kind)}'`);
}

/** Bytes of the files under a directory (0 if it cannot be read). */
export function dirBytes(dir: string): number {
  let total = 0;
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    try {
      if (e.isDirectory()) total += dirBytes(p);
      else if (e.isFile()) total += fs.statSync(p).size;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

// ---- embedded -------------------------------------------------------------------------------------------------------

async function openEmbedded(serverArgs: string[] | undefined): Promise<ScaleServer> {
  const t0 = performance.now();
  const server: TestDevServer = await startTestDevServer({ extraArgs: serverArgs });
  const pid = server.server.pid;
  let version = 'unknown version';
  try {
    version = /version (\S+)/.exec(spawnSync(resolveBinary('temporal'), ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? version;
  } catch {
    // keep the placeholder
  }
  return {
    kind: 'embedded',
    label: `embedded: Temporal CLI ${version} dev server (SQLite file)`,
    address: server.address,
    namespace: server.namespace,
    client: server.client,
    origin: `a dev server of its own, started in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    sample: () => ({
      temporalCpuMs: procCpuMs(pid, { children: true }),
      postgresCpuMs: null,
      temporalRss: procStatusBytes(pid, 'VmRSS'),
      temporalHwm: procStatusBytes(pid, 'VmHWM'),
      postgresPss: null,
      postgresProcs: 0,
    }),
    dbBytes: () => ({ bytes: dirBytes(server.dataDir), what: 'the dev server\'s data dir (SQLite file, WAL)' }),
    forget: async () => 'not needed (the dev server and its data are thrown away)',
    stop: () => server.stop(),
  };
}

// ---- cluster --------------------------------------------------------------------------------------------------------

function clusterDir(): string {
  return process.env.WORKBOOKS_CLUSTER_DIR || path.join(REPO_ROOT, '.cluster');
}

function cluster(args: string[], timeoutMs: number): { ok: boolean; stdout: string; stderr: string } {
  const r = spawnSync('bash', [CLUSTER_SCRIPT, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return { ok: r.status === 0, stdout: r.stdout ?? '', stderr: `${r.stderr ?? ''}${r.error ? `\n${r.error.message}` : ''}` };
}

/** The parts `scripts/cluster.sh status` shows as up. */
function partsUp(): Set<string> {
  const up = new Set<string>();
  for (const line of cluster(['status'], 60_000).stdout.split('\n')) {
    const [part, state] = line.trim().split(/\s+/);
    if (part && state === 'up') up.add(part);
  }
  return up;
}

function pinned(name: string): string {
  try {
    const m = new RegExp(`^${name}=(\\S+)`, 'm').exec(fs.readFileSync(CLUSTER_SCRIPT, 'utf8'));
    return m ? m[1]!.replace(/^["']|["']$/g, '') : '?';
  } catch {
    return '?';
  }
}

function readPid(file: string): number | null {
  try {
    const pid = Number(fs.readFileSync(file, 'utf8').split('\n')[0]!.trim());
    return Number.isInteger(pid) && pid > 0 && fs.existsSync(`/proc/${pid}`) ? pid : null;
  } catch {
    return null;
  }
}

async function openCluster(log: (l: string) => void): Promise<ScaleServer> {
  const dir = clusterDir();
  const hadDir = fs.existsSync(dir);
  const hadState = fs.existsSync(path.join(dir, 'data'));
  const before = partsUp();
  const wasUp = before.has('temporal') && before.has('postgres');
  let origin: string;
  if (wasUp) {
    origin = `already running (scripts/cluster.sh status: ${[...before].join(', ')} up); left running`;
    log(`  cluster: already running (${[...before].join(', ')}); it stays up afterwards`);
  } else {
    log(`  cluster: scripts/cluster.sh up (${hadState ? 'its data from an earlier run is kept' : 'fresh state, wiped afterwards'})…`);
    const t0 = performance.now();
    const r = cluster(['up'], 20 * 60_000);
    if (!r.ok) {
      cluster(['down', ...(hadState ? [] : ['--wipe'])], 180_000);
      throw new Error(`scripts/cluster.sh up failed: ${r.stderr.trim().split('\n').slice(-8).join('\n')}`);
    }
    origin = `started with scripts/cluster.sh up in ${((performance.now() - t0) / 1000).toFixed(0)} s; \`down\`${hadState ? '' : ' --wipe'} afterwards`;
    log(`  cluster: up in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const stopCluster = (l: (x: string) => void) => {
    if (wasUp) return;
    const args = ['down', ...(hadState ? [] : ['--wipe'])];
    const r = cluster(args, 300_000);
    l(`  cluster: scripts/cluster.sh ${args.join(' ')}${r.ok ? '' : ` failed: ${r.stderr.trim().split('\n').slice(-4).join(' | ')}`}`);
    // A fresh cluster leaves nothing behind, not even its (emptied) state dir.
    if (r.ok && !hadDir) fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Only the Temporal address and namespace are taken from the exports (the rest are the cluster's secrets).
    const env: Record<string, string> = {};
    for (const line of cluster(['env'], 60_000).stdout.split('\n')) {
      const m = /^export (TEMPORAL_ADDRESS|TEMPORAL_NAMESPACE)=(\S+)/.exec(line);
      if (m) env[m[1]!] = m[2]!;
    }
    const address = env.TEMPORAL_ADDRESS;
    const namespace = env.TEMPORAL_NAMESPACE ?? 'default';
    if (!address) throw new Error('scripts/cluster.sh env gave no TEMPORAL_ADDRESS');
    const mode = fs.existsSync(path.join(dir, 'run', 'mode')) ? fs.readFileSync(path.join(dir, 'run', 'mode'), 'utf8').trim() : '?';
    const connection = await Connection.connect({ address, connectTimeout: '10s' });
    const client = new Client({ connection, namespace });
    const temporalPid = () => readPid(path.join(dir, 'run', 'temporal.pid'));
    const postmasterPid = () => readPid(path.join(dir, 'data', 'postgres', 'postmaster.pid'));
    if (!temporalPid() || !postmasterPid()) throw new Error(`the cluster's Temporal or PostgreSQL pid is not readable under ${dir} (run/temporal.pid, data/postgres/postmaster.pid)`);
    return {
      kind: 'cluster',
      label: `cluster: Temporal server ${pinned('TEMPORAL_VERSION')} on PostgreSQL ${pinned('POSTGRES_VERSION')} (scripts/cluster.sh, ${mode} mode)`,
      address,
      namespace,
      client,
      origin,
      sample() {
        const t = temporalPid();
        const pm = postmasterPid();
        const pg = pm ? [pm, ...procChildren(pm)] : [];
        return {
          temporalCpuMs: t ? procCpuMs(t, { children: true }) : null,
          postgresCpuMs: pm ? sumOrNull(pg.map((p) => procCpuMs(p, { children: p === pm }))) : null,
          temporalRss: t ? procStatusBytes(t, 'VmRSS') : null,
          temporalHwm: t ? procStatusBytes(t, 'VmHWM') : null,
          postgresPss: sumOrNull(pg.map(procPss)),
          postgresProcs: pg.length,
        };
      },
      dbBytes: () => ({ bytes: dirBytes(path.join(dir, 'data', 'postgres', 'base')), what: "PostgreSQL's table files (data dir's base/: both Temporal databases, with the cluster's own workspaces; WAL not counted)" }),
      forget: (taskQueue, l) => batchDelete(client, namespace, taskQueue, l),
      async stop(l) {
        await connection.close().catch(() => undefined);
        stopCluster(l);
      },
    };
  } catch (err) {
    stopCluster(log);
    throw err;
  }
}

/** Deletes every workflow of a task queue (running ones are terminated first) with one batch operation; waits for it. */
async function batchDelete(client: Client, namespace: string, taskQueue: string, log: (l: string) => void): Promise<string> {
  const jobId = `bench-scale-forget-${crypto.randomBytes(6).toString('hex')}`;
  const t0 = performance.now();
  try {
    await client.workflowService.startBatchOperation({
      namespace,
      jobId,
      visibilityQuery: `TaskQueue = '${taskQueue}'`,
      reason: 'bench/scale.ts: the run is over',
      deletionOperation: {},
    });
    const RUNNING = temporal.api.enums.v1.BatchOperationState.BATCH_OPERATION_STATE_RUNNING;
    for (;;) {
      const d = await client.workflowService.describeBatchOperation({ namespace, jobId });
      if (d.state !== RUNNING && d.state !== temporal.api.enums.v1.BatchOperationState.BATCH_OPERATION_STATE_UNSPECIFIED) {
        const text = `batch delete of task queue ${taskQueue}: ${String(d.completeOperationCount ?? 0)} of ${String(d.totalOperationCount ?? 0)} deleted, ${String(d.failureOperationCount ?? 0)} failed (${((performance.now() - t0) / 1000).toFixed(0)} s)`;
        log(`  ${text}`);
        return text;
      }
      if (performance.now() - t0 > 15 * 60_000) return `batch delete ${jobId} still running after 15 min (left to finish on its own)`;
      await new Promise((r) => setTimeout(r, 2000));
    }
  } catch (err) {
    const text = `batch delete of task queue ${taskQueue} failed: ${(err as Error).message}`;
    log(`  ${text}`);
    return text;
  }
}
