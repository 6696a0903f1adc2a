/** Runs one `litestream` CLI command (restore, ltx, reset) and collects its output. */
import { spawn } from 'node:child_process';
import { resolveBinary } from '../tools';
import { ReplicationError } from './errors';
import { litestreamEnv } from './urls';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function litestreamBinary(binary: string | undefined, env: NodeJS.ProcessEnv): string {
  if (binary !== undefined) {
    if (typeof binary !== 'string' || binary === '') throw new ReplicationError('binary must be a non-empty path');
    return binary;
  }
  try {
    return resolveBinary('litestream', env);
  } catch (err) {
    throw new ReplicationError((err as Error).message);
  }
}

/**
 * Runs `litestream <args>` with the sanitized environment (credentials come only from there). Aborting the signal
 * stops the process (SIGTERM, then SIGKILL after 2 s) and rejects with the signal's reason.
 */
export function runLitestream(
  binary: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; signal?: AbortSignal; timeoutMs?: number },
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) {
      reject(opts.signal.reason ?? new Error('aborted'));
      return;
    }
    const child = spawn(binary, args, { env: litestreamEnv(opts.env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => {
      if (stdout.length < 16 * 1024 * 1024) stdout += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-64 * 1024);
    });
    let killTimer: NodeJS.Timeout | undefined;
    let aborted: unknown = null;
    const stop = (reason: unknown) => {
      if (aborted !== null) return;
      aborted = reason;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 2000);
    };
    const onAbort = () => stop(opts.signal!.reason ?? new Error('aborted'));
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    const timeout = opts.timeoutMs
      ? setTimeout(() => stop(new ReplicationError(`litestream ${args[0]} did not finish within ${opts.timeoutMs} ms`)), opts.timeoutMs)
      : undefined;
    child.once('error', (err) => {
      opts.signal?.removeEventListener('abort', onAbort);
      clearTimeout(timeout);
      clearTimeout(killTimer);
      reject(new ReplicationError(`cannot run ${binary}: ${err.message}`));
    });
    child.once('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort);
      clearTimeout(timeout);
      clearTimeout(killTimer);
      if (aborted !== null) reject(aborted);
      else resolve({ code, signal, stdout, stderr });
    });
  });
}

/** The last meaningful line Litestream printed on stderr ("Error: …" without the prefix). */
export function cliError(r: CliResult): string {
  const lines = r.stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const err = [...lines].reverse().find((l) => l.startsWith('Error:')) ?? lines[lines.length - 1];
  if (!err) return r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
  return err.replace(/^Error:\s*/, '');
}
