/** `workbooks worker` as a child process (a real host that tests can kill -9), and killing it. */
import path from 'node:path';
import { ChildProcess, spawn } from 'node:child_process';
import { TEST_DATA_KEY_SECRET, TEST_LEASE_SECONDS } from './stack';

const CLI = path.resolve(__dirname, '../src/cli/main.js');

/**
 * Starts `workbooks worker --host <host> --data-dir <dir> --port <port>` and resolves once it says it is up.
 * `onStdout`/`onStderr` see everything the process writes, from its first byte.
 */
export function spawnWorker(opts: {
  host: string;
  dataDir: string;
  port?: number;
  env: Record<string, string>;
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
}): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, 'worker', '--host', opts.host, '--data-dir', opts.dataDir, '--port', String(opts.port ?? 0)], {
    // Metrics off unless asked for: tests run several workers on one machine.
    env: { ...process.env, WORKBOOKS_LOG_LEVEL: 'ERROR', WORKBOOKS_METRICS_PORT: 'off', WORKBOOKS_HOST_LEASE_SECONDS: String(TEST_LEASE_SECONDS), WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.setEncoding('utf8');
  child.stderr!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    output += d;
    opts.onStdout?.(d);
  });
  child.stderr!.on('data', (d: string) => {
    output += d;
    opts.onStderr?.(d);
  });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`worker ${opts.host} did not start: ${output}`)), 60_000);
    child.stdout!.on('data', () => {
      if (output.includes(' up:')) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`worker ${opts.host} exited ${code}: ${output}`));
    });
  });
}

/** SIGKILL, no goodbyes; resolves once the process is gone. */
export function kill9(child: ChildProcess | null | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}
