/**
 * The workspaces open on this host (one HostInstances per worker process).
 *
 * - Open Vfs handles are kept per workspace id.
 * - Every read/write through `withVfs` records the access time in memory only (a Map set: no disk write per
 *   request); `lastAccess` reports it, or null when this process saw no access yet.
 * - An instance that is open ("active") has a marker file `<dataDir>/live/<id>.active`. After a process restart
 *   the marker lets the host reopen the workspace lazily on its first request; `closeAll` (process shutdown)
 *   closes handles but keeps markers, `close` (stopInstance) removes the marker.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Config } from '../config';
import { activeMarkerPath, liveDir, liveFile, placementPath, scratchDir } from './data-dir';
import { checkWorkspaceId } from '../contract/ids';
import { Vfs } from '../vfs/vfs';
import { alive } from '../process-alive';

export class NotActiveError extends Error {
  override name = 'NotActiveError';
  readonly code = 'not_active';
  constructor(readonly workspaceId: string) {
    super(`workspace '${workspaceId}' is not active on this host`);
  }
}

/**
 * Temporary files (`….partial`, and SQLite journals of them) in `live/` and `scratch/` are leftovers of a copy
 * that crashed when the process that made them is gone, and are swept when a HostInstances starts. Names that
 * do not say their process are swept once they are older than this.
 */
const STALE_TEMP_MS = 60 * 60 * 1000;

/**
 * The process id a temporary name carries (`.<name>.<tag>-<pid>-<hex>.partial` from tempNameFor,
 * `<name>.<pid>.partial` for markers, either with a `-wal`/`-shm`/`-journal` suffix), or null.
 */
function pidOfTemp(name: string): number | null {
  const m = /[.-](\d{1,7})(?:-[0-9a-f]{12})?\.partial(?:-wal|-shm|-journal)?$/.exec(name);
  if (!m) return null;
  const pid = Number(m[1]);
  return pid > 0 && pid <= 4_194_304 ? pid : null;
}


export class HostInstances {
  private readonly handles = new Map<string, Vfs>();
  /** The placement each loaded instance is served under (null: opened by an older build, any is taken). */
  private readonly placements = new Map<string, number | null>();
  private readonly access = new Map<string, number>();
  /** Now, for idle checks; replaceable in tests whose timeline is a time-skipping server's. */
  currentTime: () => Promise<number>;
  /**
   * Whether closing this workspace may checkpoint its WAL: not while Litestream replicates it (Litestream owns
   * checkpoints then; see ReplicationPort). Set by the worker host.
   */
  mayCheckpoint: (id: string) => boolean = () => true;
  /** Called after an instance was opened or closed here (the worker host keeps a metrics gauge with it). */
  onChange: () => void = () => undefined;

  /**
   * `clock` is the host's notion of now for access times (default Date.now); a test on a time-skipping
   * server passes the server's timeline.
   */
  constructor(
    readonly cfg: Pick<Config, 'dataDir'>,
    readonly clock: () => number = Date.now,
  ) {
    this.currentTime = async () => this.clock();
    fs.mkdirSync(liveDir(cfg), { recursive: true });
    this.sweepStaleTemps();
  }

  /** Path of the workspace's live file on this host. */
  fileOf(id: string): string {
    return liveFile(this.cfg, checkWorkspaceId(id));
  }

  private markerOf(id: string): string {
    return activeMarkerPath(this.cfg, id);
  }

  /**
   * Opens the workspace's existing live file and marks it active. `clearTmp` empties the tmp volume, but only
   * when this call actually activates the instance: opening an instance that is already active (loaded, or
   * marked active before a restart) returns it unchanged, so a retried start never clears tmp twice.
   */
  open(id: string, opts: { clearTmp?: boolean; placement?: number } = {}): Vfs {
    checkWorkspaceId(id);
    // The workflow's placement wins over whatever this host served the workspace under before.
    if (opts.placement !== undefined) this.recordPlacement(id, opts.placement);
    const loaded = this.handles.get(id);
    if (loaded) return loaded;
    const wasActive = fs.existsSync(this.markerOf(id));
    const vfs = Vfs.open(this.fileOf(id), { create: false });
    try {
      if (opts.clearTmp && !wasActive) vfs.clear('tmp');
      if (!wasActive) this.writeMarker(id);
    } catch (err) {
      vfs.close();
      throw err;
    }
    this.handles.set(id, vfs);
    this.placements.set(id, this.placementOfFile(id));
    this.onChange();
    return vfs;
  }

  /**
   * Records the placement the workspace's local file is (or is about to be) served under; kept next to the file
   * while it is local (suspended files too), so a recovery can tell a newer local file from a stale one.
   */
  recordPlacement(id: string, placement: number): void {
    checkWorkspaceId(id);
    if (!Number.isSafeInteger(placement) || placement < 1) throw new Error(`placement must be a positive integer, got ${placement}`);
    const p = placementPath(this.cfg, id);
    const tmp = `${p}.${process.pid}.partial`;
    fs.writeFileSync(tmp, `${placement}\n`, { mode: 0o600 });
    fs.renameSync(tmp, p);
    if (this.handles.has(id)) this.placements.set(id, placement);
  }

  /** The placement recorded with the local file, or null (none recorded, or unreadable). */
  placementOfFile(id: string): number | null {
    try {
      const n = Number(fs.readFileSync(placementPath(this.cfg, checkWorkspaceId(id)), 'utf8').trim());
      return Number.isSafeInteger(n) && n >= 1 ? n : null;
    } catch {
      return null;
    }
  }

  /** The placement an open instance is served under (null: any; opened by an older build). */
  servedPlacement(id: string): number | null {
    if (this.placements.has(id)) return this.placements.get(id)!;
    return this.placementOfFile(id);
  }

  /**
   * Checkpoints (TRUNCATE, unless `checkpoint: false`) and closes the instance and removes its active marker.
   * Returns whether it was active.
   */
  close(id: string, opts: { checkpoint?: boolean } = {}): boolean {
    checkWorkspaceId(id);
    const vfs = this.handles.get(id);
    let was = false;
    this.placements.delete(id);
    if (vfs) {
      was = true;
      this.handles.delete(id);
      try {
        if (opts.checkpoint ?? this.mayCheckpoint(id)) vfs.checkpoint();
      } finally {
        vfs.close();
      }
    }
    try {
      fs.unlinkSync(this.markerOf(id));
      was = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (was) this.onChange();
    return was;
  }

  /**
   * Runs `fn` with the workspace's open Vfs, reopening it lazily when it is marked active but not loaded (after a
   * restart). Throws NotActiveError when the workspace is not active on this host. Records the access time.
   */
  withVfs<T>(id: string, fn: (vfs: Vfs) => T): T {
    const vfs = this.handles.get(id) ?? this.reopen(id);
    this.access.set(id, this.clock());
    return fn(vfs);
  }

  /** The last access this process saw (epoch ms), or null. */
  lastAccess(id: string): number | null {
    return this.access.get(id) ?? null;
  }

  /** How long ago that last access was (ms, by currentTime), or null if there was none. */
  async idleMs(id: string): Promise<number | null> {
    const at = this.lastAccess(id);
    return at === null ? null : Math.max(0, (await this.currentTime()) - at);
  }

  /** Active on this host: loaded, or marked active (reopens lazily). */
  isOpen(id: string): boolean {
    if (this.handles.has(id)) return true;
    try {
      checkWorkspaceId(id);
    } catch {
      return false;
    }
    return fs.existsSync(this.markerOf(id));
  }

  /** Loaded in this process right now. */
  isLoaded(id: string): boolean {
    return this.handles.has(id);
  }

  /** Ids marked active on this host (loaded or not). */
  activeIds(): string[] {
    const out = new Set(this.handles.keys());
    for (const name of fs.readdirSync(liveDir(this.cfg))) {
      if (name.endsWith('.active')) out.add(name.slice(0, -'.active'.length));
    }
    return [...out].sort();
  }

  /**
   * A consistent copy of an active workspace's whole file at `destFile`, through its open handle (SQLite
   * backup API); the workspace stays usable meanwhile. Not an access: lastAccess is not touched.
   */
  async backupTo(id: string, destFile: string, onProgress?: (pagesDone: number, totalPages: number) => void): Promise<void> {
    const vfs = this.handles.get(id) ?? this.reopen(id);
    await vfs.backupTo(destFile, onProgress);
  }

  /** Closes every handle (checkpointing each) but keeps the active markers: for process shutdown. */
  closeAll(): void {
    this.placements.clear();
    for (const [id, vfs] of this.handles) {
      this.handles.delete(id);
      try {
        if (this.mayCheckpoint(id)) vfs.checkpoint();
      } catch {
        // a busy or broken file still gets closed
      } finally {
        vfs.close();
      }
    }
  }

  private reopen(id: string): Vfs {
    checkWorkspaceId(id);
    if (!fs.existsSync(this.markerOf(id))) throw new NotActiveError(id);
    const vfs = Vfs.open(this.fileOf(id), { create: false });
    this.handles.set(id, vfs);
    this.placements.set(id, this.placementOfFile(id));
    return vfs;
  }

  private writeMarker(id: string): void {
    const marker = this.markerOf(id);
    const tmp = `${marker}.${process.pid}.partial`;
    fs.writeFileSync(tmp, JSON.stringify({ workspaceId: id, openedAt: new Date().toISOString(), pid: process.pid }) + '\n');
    fs.renameSync(tmp, marker);
  }

  /** Removes temporaries of dead processes (and any older than STALE_TEMP_MS) from live/ and scratch/. */
  private sweepStaleTemps(): void {
    const now = Date.now();
    for (const dir of [liveDir(this.cfg), scratchDir(this.cfg)]) {
      let names: string[];
      try {
        names = fs.readdirSync(dir);
      } catch {
        continue; // no scratch dir yet
      }
      for (const name of names) {
        if (!name.includes('.partial')) continue;
        const p = path.join(dir, name);
        try {
          const pid = pidOfTemp(name);
          const orphaned = pid !== null && !alive(pid);
          if (orphaned || now - fs.statSync(p).mtimeMs > STALE_TEMP_MS) fs.rmSync(p, { force: true });
        } catch {
          // gone meanwhile
        }
      }
    }
  }
}
