/** Small timing, statistics and raw-operation helpers the bench sections share (baselines: cp, sync, copy + fsync). */
import fs from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';

export function elapsed(t0: number): number {
  return performance.now() - t0;
}

/** Lets pending writeback of earlier steps finish so it is not billed to the next measurement. */
export function settle(dir: string): void {
  spawnSync('sync', ['-f', dir]);
}

/** Runs a command (e.g. `cp`, `sync`) and resolves when it exits 0. */
export function run(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

/** Copies a file in this process and fsyncs the copy. */
export async function copyFsync(src: string, dst: string): Promise<void> {
  await fs.promises.copyFile(src, dst);
  const fh = await fs.promises.open(dst, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Median (mean of the middle two for an even count); NaN for no samples. */
export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Nearest-rank percentile (p in 0..100); NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
}
