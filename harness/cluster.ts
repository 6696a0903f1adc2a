/**
 * The production topology of scripts/cluster.sh, started for a test in a state dir of its own (a temporary
 * WORKBOOKS_CLUSTER_DIR: a user's `.cluster/` is never touched) and wiped at the end: PostgreSQL, the Temporal
 * server on it, MinIO, hosts host-a and host-b (each in its network namespace as root with `ip netns`, else on
 * loopback) and the HTTP API. The faults (kill-host, partition, heal, restart-temporal) are the script's own.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const SCRIPT = path.join(ROOT, 'scripts/cluster.sh');
export const CLUSTER_HOSTS = ['host-a', 'host-b'] as const;
export type ClusterHost = (typeof CLUSTER_HOSTS)[number];
/** The fixed names a namespaced cluster uses (one per machine). */
const NETNS_NAMES = ['wb-host-a', 'wb-host-b'];
const BRIDGE = 'wb-br0';
/** Ports of a loopback cluster (scripts/cluster.sh: the usual ones + 10000). */
const LOOPBACK_PORTS = [15432, 17233, 19000, 18787, 18788, 18789];

export type ClusterMode = 'netns' | 'loopback';

/** Whether this machine can run the cluster, and in which mode (with the reason when not namespaced). */
export async function clusterPlan(): Promise<{ mode: ClusterMode; why: string } | { skip: string }> {
  let netnsWhy = '';
  if (process.env.WORKBOOKS_CLUSTER_NETNS === '0') netnsWhy = 'WORKBOOKS_CLUSTER_NETNS=0';
  else if (process.getuid?.() !== 0) netnsWhy = 'not root';
  else if (spawnSync('ip', ['netns', 'list'], { stdio: 'ignore' }).status !== 0) netnsWhy = '`ip netns` is not available';
  else {
    const taken = [...NETNS_NAMES.filter((n) => fs.existsSync(`/run/netns/${n}`)), ...(fs.existsSync(`/sys/class/net/${BRIDGE}`) ? [BRIDGE] : [])];
    if (taken.length) netnsWhy = `another namespaced cluster runs on this machine (${taken.join(', ')} exist; one per machine)`;
  }
  if (!netnsWhy) return { mode: 'netns', why: 'root with ip netns' };
  const busy: number[] = [];
  for (const p of LOOPBACK_PORTS) if (!(await portFree(p))) busy.push(p);
  if (busy.length) return { skip: `no namespaces (${netnsWhy}) and the loopback cluster's ports are taken (${busy.join(', ')}): another cluster runs here` };
  return { mode: 'loopback', why: netnsWhy };
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export class Cluster {
  /** The cluster's exports (`scripts/cluster.sh env`). */
  env: Record<string, string> = {};
  /** How long `up` took (ms). */
  upMs = 0;
  private onSignal: ((sig: NodeJS.Signals) => void) | null = null;

  private constructor(
    readonly dir: string,
    readonly mode: ClusterMode,
  ) {}

  /** Starts a new cluster in a fresh temporary state dir. Throws (after tearing down) if it does not come up. */
  static async up(mode: ClusterMode): Promise<Cluster> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-e2e-cluster-'));
    // PostgreSQL runs as its own user when we are root: it must be able to reach its data dir below this one.
    fs.chmodSync(dir, 0o711);
    const c = new Cluster(dir, mode);
    // A test process stopped by a signal (Ctrl-C, the runner's timeout) still takes its cluster down.
    c.onSignal = (sig) => {
      c.down();
      process.kill(process.pid, sig);
    };
    process.once('SIGINT', c.onSignal);
    process.once('SIGTERM', c.onSignal);
    const t0 = Date.now();
    try {
      c.run(['up'], 15 * 60_000);
    } catch (err) {
      c.down();
      throw err;
    }
    c.upMs = Date.now() - t0;
    const actual = fs.readFileSync(path.join(dir, 'run/mode'), 'utf8').trim();
    if (actual !== mode) {
      c.down();
      throw new Error(`the cluster came up in ${actual} mode, ${mode} was planned`);
    }
    for (const line of c.run(['env']).split('\n')) {
      const m = /^export ([A-Z0-9_]+)=(\S*)/.exec(line);
      if (m) c.env[m[1]!] = m[2]!;
    }
    return c;
  }

  /** Runs scripts/cluster.sh with this cluster's state dir; its stderr (the script's log) goes to logs/e2e.log. */
  run(args: string[], timeoutMs = 120_000): string {
    const r = spawnSync('bash', [SCRIPT, ...args], {
      cwd: ROOT,
      env: { ...process.env, WORKBOOKS_CLUSTER_DIR: this.dir, WORKBOOKS_CLUSTER_NETNS: this.mode === 'netns' ? '1' : '0' },
      encoding: 'utf8',
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    try {
      fs.mkdirSync(path.join(this.dir, 'logs'), { recursive: true });
      fs.appendFileSync(path.join(this.dir, 'logs/e2e.log'), `\n$ cluster.sh ${args.join(' ')} → ${r.status}\n${r.stderr ?? ''}`);
    } catch {
      // wiped
    }
    if (r.status !== 0) throw new Error(`scripts/cluster.sh ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}): ${(r.stderr ?? '').trim().split('\n').slice(-8).join('\n')}`);
    return r.stdout;
  }

  /**
   * The same, without blocking this process: a test's writers keep running (and timing their acknowledgements)
   * while a fault is applied.
   */
  runAsync(args: string[], timeoutMs = 120_000): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn('bash', [SCRIPT, ...args], {
        cwd: ROOT,
        env: { ...process.env, WORKBOOKS_CLUSTER_DIR: this.dir, WORKBOOKS_CLUSTER_NETNS: this.mode === 'netns' ? '1' : '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        try {
          fs.appendFileSync(path.join(this.dir, 'logs/e2e.log'), `\n$ cluster.sh ${args.join(' ')} → ${code ?? signal}\n${stderr}`);
        } catch {
          // wiped
        }
        if (code === 0) resolve(stdout);
        else reject(new Error(`scripts/cluster.sh ${args.join(' ')} failed (${code ?? signal}): ${stderr.trim().split('\n').slice(-8).join('\n')}`));
      });
    });
  }

  async killHost(h: ClusterHost): Promise<void> {
    await this.runAsync(['kill-host', h]);
  }
  async partition(h: ClusterHost): Promise<void> {
    await this.runAsync(['partition', h]);
  }
  async heal(h: ClusterHost): Promise<void> {
    await this.runAsync(['heal', h]);
  }
  async restartTemporal(): Promise<void> {
    await this.runAsync(['restart-temporal'], 180_000);
  }
  /** `up` again: restarts what was killed, leaves what runs. */
  async upAgain(): Promise<void> {
    await this.runAsync(['up'], 300_000);
  }

  /** Keeps the logs (for a failed run) in a directory of their own before the state dir is wiped; returns it. */
  keepLogs(): string | null {
    const from = path.join(this.dir, 'logs');
    if (!fs.existsSync(from)) return null;
    const to = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-e2e-logs-'));
    fs.cpSync(from, to, { recursive: true });
    return to;
  }

  hostDataDir(h: ClusterHost): string {
    return path.join(this.dir, 'data', h);
  }
  /** The network namespace of a host (netns mode). */
  hostNetns(h: ClusterHost): string {
    return `wb-${h}`;
  }

  /** The last lines of each log (for a failure message). */
  logTail(lines = 15): string {
    const dir = path.join(this.dir, 'logs');
    let out = '';
    for (const f of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
      const text = fs.readFileSync(path.join(dir, f), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      out += `\n--- ${f}\n${text}`;
    }
    return out;
  }

  /**
   * Stops everything and wipes the state dir (`down --wipe`), then returns what is left over: processes of this
   * cluster, Litestream daemons of its hosts, its namespaces and bridge. Never throws on a failed `down`: the
   * leftovers say what it failed to stop.
   */
  down(): string[] {
    if (this.onSignal) {
      process.removeListener('SIGINT', this.onSignal);
      process.removeListener('SIGTERM', this.onSignal);
      this.onSignal = null;
    }
    let failure = '';
    try {
      this.run(['down', '--wipe'], 180_000);
    } catch (err) {
      failure = (err as Error).message;
    }
    const left = this.leftovers();
    if (failure) left.unshift(`down --wipe failed: ${failure}`);
    fs.rmSync(this.dir, { recursive: true, force: true });
    return left;
  }

  leftovers(): string[] {
    const left: string[] = [];
    const mark = `WB_CLUSTER_PART=${this.dir}:`;
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let environ = '';
      let cmdline = '';
      try {
        environ = fs.readFileSync(`/proc/${pid}/environ`, 'latin1');
        cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ').trim();
      } catch {
        continue;
      }
      if (environ.split('\0').some((e) => e.startsWith(mark)) || cmdline.includes(this.dir)) left.push(`process ${pid}: ${cmdline.slice(0, 200)}`);
    }
    if (this.mode === 'netns') {
      for (const n of NETNS_NAMES) if (fs.existsSync(`/run/netns/${n}`)) left.push(`network namespace ${n}`);
      if (fs.existsSync(`/sys/class/net/${BRIDGE}`)) left.push(`bridge ${BRIDGE}`);
    }
    if (fs.existsSync(path.join(this.dir, 'data')) || fs.existsSync(path.join(this.dir, 'run'))) left.push(`state in ${this.dir}`);
    return left;
  }
}
