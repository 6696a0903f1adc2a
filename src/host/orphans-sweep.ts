/**
 * The orphans sweep: files set aside in `<data dir>/orphans/` (setAside: reconcile, the fence, a restore that
 * replaced an unverified local file) are kept for an operator for a grace period (WORKBOOKS_ORPHANS_GRACE, default
 * 7d; `never` keeps them), then removed by the host, each removal logged with the file's name and age. A deleted
 * workspace is therefore nowhere once its orphans' grace is over.
 *
 * A set-aside is the files `<id>.<stamp>.sqlite` (+ `-wal`, `-shm`) with one stamp (the time it was set aside). Its
 * age counts from the later of that stamp and the newest modification time of its files: touching a file restarts
 * the grace, and a file set aside by an older build (whose modification time is its last write) is not judged by
 * when it was last written. The files of a set-aside go together. Anything else in orphans/ (an operator's notes,
 * a directory, a name the service does not write) is left alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import { WORKSPACE_KEY_PATTERN } from '../contract/ids';
import { orphansDir } from './data-dir';

/** `<id>.<stamp>.sqlite[-wal|-shm]`, the stamp as setAside writes it (an ISO time with `-` for `:` and `.`). */
const ORPHAN_NAME = /^(.+)\.(\d{4}-\d{2}-\d{2})T(\d{2})-(\d{2})-(\d{2})-(\d{3})Z\.sqlite(-wal|-shm)?$/;

export interface OrphanRemoval {
  /** The removed file's name in orphans/. */
  file: string;
  workspaceId: string;
  /** How long ago it was set aside (or last touched), in ms. */
  ageMs: number;
}

export interface OrphansSweepOptions {
  /** Now, in ms since the epoch (default Date.now()). */
  now?: number;
  /** Called for every removed file (the host logs it). */
  onRemoved?: (r: OrphanRemoval) => void;
}

/** What the name says: the workspace and the set-aside time (ms), or null for a name the service does not write. */
export function parseOrphanName(name: string): { workspaceId: string; stamp: string; setAsideAt: number } | null {
  const m = ORPHAN_NAME.exec(name);
  if (!m || !WORKSPACE_KEY_PATTERN.test(m[1]!)) return null;
  const at = Date.parse(`${m[2]}T${m[3]}:${m[4]}:${m[5]}.${m[6]}Z`);
  if (Number.isNaN(at)) return null;
  return { workspaceId: m[1]!, stamp: name.slice(m[1]!.length + 1, name.lastIndexOf('.sqlite')), setAsideAt: at };
}

/**
 * Removes the set-asides in orphans/ older than `graceMs` (null: none, the files are kept); returns what it removed.
 * A file that cannot be read or removed is skipped (the next sweep tries again).
 */
export function sweepOrphans(cfg: { dataDir: string }, graceMs: number | null, opts: OrphansSweepOptions = {}): OrphanRemoval[] {
  if (graceMs === null) return [];
  const dir = orphansDir(cfg);
  const now = opts.now ?? Date.now();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return []; // no orphans/ yet
  }
  // Set-asides by workspace and stamp: their files and the youngest time each says.
  const groups = new Map<string, { workspaceId: string; files: string[]; youngest: number }>();
  for (const name of names) {
    const parsed = parseOrphanName(name);
    if (!parsed) continue;
    let st: fs.Stats;
    try {
      st = fs.lstatSync(path.join(dir, name));
    } catch {
      continue; // gone meanwhile
    }
    if (!st.isFile()) continue;
    const id = `${parsed.workspaceId}.${parsed.stamp}`;
    const g = groups.get(id) ?? { workspaceId: parsed.workspaceId, files: [], youngest: parsed.setAsideAt };
    g.files.push(name);
    g.youngest = Math.max(g.youngest, st.mtimeMs);
    groups.set(id, g);
  }
  const removed: OrphanRemoval[] = [];
  for (const g of groups.values()) {
    const ageMs = Math.max(0, Math.floor(now - g.youngest));
    if (ageMs <= graceMs) continue;
    // The main file last: a set-aside interrupted half-way still has its database file, and is swept next time.
    for (const file of g.files.sort((a, b) => b.length - a.length)) {
      try {
        fs.rmSync(path.join(dir, file));
      } catch {
        continue;
      }
      const r = { file, workspaceId: g.workspaceId, ageMs };
      removed.push(r);
      opts.onRemoved?.(r);
    }
  }
  return removed;
}

/** How often a host sweeps: hourly, or more often for a grace under two hours (at least every second). */
export function sweepEveryMs(graceMs: number): number {
  return Math.max(1000, Math.min(3_600_000, Math.floor(graceMs / 2)));
}

/**
 * Sweeps now and then every sweepEveryMs(graceMs) until stopped (nothing with `never`). Removals go to `log`.
 */
export function startOrphansSweep(
  cfg: { dataDir: string },
  graceMs: number | null,
  log: (msg: string, fields?: Record<string, unknown>) => void,
): { stop(): void } {
  if (graceMs === null) return { stop: () => undefined };
  const sweep = () => {
    try {
      sweepOrphans(cfg, graceMs, {
        onRemoved: (r) => log('removed a set-aside file after the orphans grace period', { file: r.file, workspaceId: r.workspaceId, ageSeconds: Math.floor(r.ageMs / 1000), graceSeconds: Math.floor(graceMs / 1000) }),
      });
    } catch (err) {
      log('orphans sweep failed', { error: (err as Error).message });
    }
  };
  sweep();
  const timer = setInterval(sweep, sweepEveryMs(graceMs));
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
