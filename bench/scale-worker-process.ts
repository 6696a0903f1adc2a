/**
 * The parent side of bench/scale-worker.ts: forks the worker host process, waits for it to be up, learns from it
 * (IPC) when the files it was asked to watch are closed, and measures it from /proc (CPU: utime + stime of all its
 * threads; memory: VmRSS, VmHWM, open fds). Nothing here loads Temporal.
 */
import { ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import type { FromWorker, ScaleWorkerSettings, ToWorker } from './scale-worker';
import { procCpuMs, procFds, procStatusBytes } from './proc-stats';

const ENTRY = path.join(__dirname, 'scale-worker.js');

export interface WorkerProcSample {
  rss: number | null;
  hwm: number | null;
  fds: number | null;
}

export class ScaleWorkerProcess {
  /** When each watched workspace's file was seen closed (Date.now() in the child). */
  readonly closedAt = new Map<string, number>();
  private heapWaiters: ((h: { heapUsed: number; heapTotal: number }) => void)[] = [];
  private exited: Promise<void>;
  private stderrTail = '';

  private constructor(
    private readonly child: ChildProcess,
    readonly hostQueue: string,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    child.on('message', (msg: FromWorker) => {
      if (msg.type === 'closed') for (const id of msg.ids) this.closedAt.set(id, msg.at);
      else if (msg.type === 'heap') this.heapWaiters.shift()?.({ heapUsed: msg.heapUsed, heapTotal: msg.heapTotal });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  static async start(settings: ScaleWorkerSettings, log: (l: string) => void): Promise<ScaleWorkerProcess> {
    const child = fork(ENTRY, [], {
      // MALLOC_ARENA_MAX as bin/workbooks sets it for the product's processes.
      env: { MALLOC_ARENA_MAX: '2', ...process.env, BENCH_SCALE_WORKER: JSON.stringify(settings) },
      // e.g. BENCH_SCALE_WORKER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' to profile the worker host (every thread).
      execArgv: [...process.execArgv, ...(process.env.BENCH_SCALE_WORKER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean)],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let tail = '';
    const keep = (d: Buffer) => {
      tail = (tail + d.toString()).slice(-4000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const hostQueue = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`the scale worker did not come up in 120 s: ${tail}`));
      }, 120_000);
      child.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          clearTimeout(t);
          resolve(msg.hostQueue);
        } else if (msg.type === 'failed') {
          clearTimeout(t);
          reject(new Error(`the scale worker failed to start: ${msg.message}`));
        }
      });
      child.once('exit', (code, sig) => {
        clearTimeout(t);
        reject(new Error(`the scale worker exited (${code ?? sig}) before it was up: ${tail}`));
      });
    });
    const w = new ScaleWorkerProcess(child, hostQueue);
    child.stdout!.on('data', (d: Buffer) => (w.stderrTail = (w.stderrTail + d.toString()).slice(-4000)));
    child.stderr!.on('data', (d: Buffer) => (w.stderrTail = (w.stderrTail + d.toString()).slice(-4000)));
    child.on('exit', (code, sig) => {
      if (code !== 0) log(`  scale worker (pid ${child.pid}) exited ${code ?? sig}${w.stderrTail ? `: ${w.stderrTail.trim().split('\n').slice(-5).join(' | ')}` : ''}`);
    });
    return w;
  }

  private send(msg: ToWorker): void {
    if (this.child.connected) this.child.send(msg);
  }

  watch(ids: string[]): void {
    this.send({ type: 'watch', ids });
  }

  /** The child's main-thread V8 heap (asked over IPC; null if it does not answer within 5 s). */
  heap(): Promise<{ heapUsed: number; heapTotal: number } | null> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.heapWaiters = this.heapWaiters.filter((w) => w !== done);
        resolve(null);
      }, 5000);
      const done = (h: { heapUsed: number; heapTotal: number }) => {
        clearTimeout(t);
        resolve(h);
      };
      this.heapWaiters.push(done);
      this.send({ type: 'heap' });
    });
  }

  cpuMs(): number | null {
    return procCpuMs(this.pid);
  }

  mem(): WorkerProcSample {
    return { rss: procStatusBytes(this.pid, 'VmRSS'), hwm: procStatusBytes(this.pid, 'VmHWM'), fds: procFds(this.pid) };
  }

  /** Asks the host to shut down; SIGKILL after 30 s. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.send({ type: 'stop' });
    const t = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
    await this.exited;
    clearTimeout(t);
  }
}
