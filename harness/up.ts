/**
 * `workbooks up` as a user runs it, for tests: the compiled CLI in a child process (started with `spawn`, so the
 * test's own event loop keeps running), stopped with Ctrl-C (SIGINT), and CLI commands against it. Those commands
 * use `spawnSync`: fine here, since `up` (the worker included) runs in its own process; a test whose worker runs
 * in-process must spawn its CLI commands asynchronously instead.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { freePorts } from './temporal';

/** The compiled CLI (dist/src/cli/main.js). */
export const CLI = path.resolve(__dirname, '../src/cli/main.js');

export class WorkbooksUp {
  /** What the running (or last) `up` printed, stdout and stderr, since it was started. */
  log = '';
  /** The running `up`, or null. */
  child: ChildProcess | null = null;

  constructor(readonly env: NodeJS.ProcessEnv) {}

  /** Starts `up`; resolves once its banner is printed, rejects if it exits first or takes over 90 s. */
  start(): Promise<ChildProcess> {
    assert.equal(this.child, null, 'up is already running');
    this.log = '';
    const child = spawn(process.execPath, [CLI, 'up'], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (d) => (this.log += d));
    child.stderr!.on('data', (d) => (this.log += d));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`up did not start: ${this.log}`)), 90_000);
      const onData = () => {
        if (this.log.includes('Ctrl-C stops everything')) {
          clearTimeout(t);
          child.stdout!.off('data', onData);
          resolve(child);
        }
      };
      child.stdout!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`up exited ${code}: ${this.log}`));
      });
    });
  }

  /** Ctrl-C; resolves with `up`'s exit code once it exited (null when none was running). */
  stop(): Promise<number | null> {
    const child = this.child;
    this.child = null;
    if (!child) return Promise.resolve(null);
    return new Promise((resolve) => {
      child.removeAllListeners('exit');
      if (child.exitCode !== null) return resolve(child.exitCode);
      child.once('exit', (code) => resolve(code));
      child.kill('SIGINT');
    });
  }

  /** `workbooks <args>` with this `up`'s environment. */
  wb(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
    const r = spawnSync(process.execPath, [CLI, ...args], { env: this.env, input, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** `workbooks <args>`, which must succeed: its stdout. */
  ok(args: string[], input?: string): string {
    const r = this.wb(args, input);
    assert.equal(r.code, 0, `workbooks ${args.join(' ')} failed: ${r.stderr}`);
    return r.stdout;
  }
}

/**
 * Kills the Litestream daemon `up` started for `dataDir` if one is left (it should leave none): only the process
 * its pid file names, and only if that process's command line names this data dir.
 */
export function killLeftoverDaemon(dataDir: string): void {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'litestream', 'litestream.pid'), 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 1) return;
    if (!fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dataDir)) return;
    process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file, or the process is gone
  }
}

/**
 * The environment of an `up` on `dataDir` whose replicas, cold copies and archive are on another disk (`otherDisk`:
 * `replicas/`, `cold/`, `archive/`), on free ports, without metrics, and without any of the caller's settings that
 * would point it elsewhere (tokens, a Temporal address, S3, a task queue, a data key); `extra` on top.
 */
export async function upEnvWithOtherDisk(dataDir: string, otherDisk: string, extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  const [temporalPort, uiPort, hostPort, httpPort] = await freePorts(4);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WORKBOOKS_DATA_DIR: dataDir,
    WORKBOOKS_REPLICA_URL: `file://${path.join(otherDisk, 'replicas')}`,
    WORKBOOKS_COLD_URL: `file://${path.join(otherDisk, 'cold')}`,
    WORKBOOKS_ARCHIVE_URL: `file://${path.join(otherDisk, 'archive')}`,
    WORKBOOKS_TEMPORAL_PORT: String(temporalPort),
    WORKBOOKS_UI_PORT: String(uiPort),
    WORKBOOKS_HOST_PORT: String(hostPort),
    WORKBOOKS_HTTP_PORT: String(httpPort),
    WORKBOOKS_METRICS_PORT: 'off',
  };
  for (const k of ['WORKBOOKS_TOKENS', 'WORKBOOKS_TOKENS_FILE', 'TEMPORAL_ADDRESS', 'WORKBOOKS_S3_ENDPOINT', 'WORKBOOKS_TASK_QUEUE', 'WORKBOOKS_DATA_KEY', 'WORKBOOKS_DATA_KEY_FILE']) {
    delete env[k];
  }
  return { ...env, ...extra };
}
