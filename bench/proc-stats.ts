/**
 * Per-process CPU and memory from /proc, for benches that measure other processes (a worker host in a child
 * process, a Temporal server, PostgreSQL's postmaster and backends). Every reader returns null when the process is
 * gone or /proc does not show it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

let clkTck: number | null = null;

function ticksToMs(ticks: number): number {
  clkTck ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  return (ticks / clkTck) * 1000;
}

/** The fields of /proc/<pid>/stat after the command name (field 3, `state`, is index 0). */
function statFields(pid: number | 'self'): string[] | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/**
 * CPU time (user + system, ms) of a process, all its threads; with `children`, plus what its children that have
 * exited and were waited for used (cutime + cstime): PostgreSQL's postmaster collects its backends' time so.
 */
export function procCpuMs(pid: number | 'self', opts: { children?: boolean } = {}): number | null {
  const f = statFields(pid);
  if (!f) return null;
  let ticks = Number(f[11]) + Number(f[12]);
  if (opts.children) ticks += Number(f[13]) + Number(f[14]);
  return ticksToMs(ticks);
}

/** Parent pid of a process. */
export function procParent(pid: number): number | null {
  const f = statFields(pid);
  return f ? Number(f[1]) : null;
}

/** A `Key:  N kB` line of /proc/<pid>/status (VmRSS, VmHWM, …), in bytes. */
export function procStatusBytes(pid: number | 'self', key: string): number | null {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Proportional set size (bytes): shared pages split between the processes that map them (smaps_rollup). */
export function procPss(pid: number): number | null {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Open file descriptors of a process. */
export function procFds(pid: number | 'self'): number | null {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
}

/** The live children of a process (one /proc scan). */
export function procChildren(ppid: number): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    if (procParent(Number(name)) === ppid) out.push(Number(name));
  }
  return out;
}

/** Sum of non-null numbers, or null when all are null. */
export function sumOrNull(xs: (number | null)[]): number | null {
  const known = xs.filter((x): x is number => x !== null);
  return known.length === 0 ? null : known.reduce((a, x) => a + x, 0);
}
