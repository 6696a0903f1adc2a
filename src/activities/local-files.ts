/**
 * A host's workspace files as the host activities see them: the context they share (HostFiles, built once per
 * host), small file helpers, and the sidecar records kept next to a live file.
 *
 * Local layout under `<dataDir>/live/` for workspace `<id>`:
 *   <id>.sqlite (+ -wal, -shm)    the live file
 *   <id>.active                   marker: the instance is open (see HostInstances)
 *   <id>.placement                the placement the file was last placed under (see Fence, recoverLocal)
 *   <id>.verified.json            written by restoreLocal: which stored copy the file was verified against, and
 *                                 the file's size and mtime at that moment (a later restoreLocal of the same copy
 *                                 skips the copy while the file is unchanged)
 *   <id>.released.json            written by storeLocal just before it deletes the file: where the verified copy
 *                                 went, so a retry after the release returns that copy instead of failing
 *   .<id>.sqlite.<op>-….partial   temporary names of copies in progress (renamed into place when complete)
 */
import fs from 'node:fs';
import type { Config } from '../config';
import type { HostInfo, StoredCopy } from '../contract/types';
import { liveDir, liveFile, scratchDir, verifiedPath } from '../host/data-dir';
import type { Fence } from '../host/fence';
import { HostInstances } from '../host/instances';
import { NO_REPLICATION, ReplicationPort } from '../host/replication-port';
import { writeFileAtomic } from '../storage/copy';

/** What the host's worker gives createHostActivities. */
export interface HostActivityContext {
  cfg: Config;
  instances: HostInstances;
  hostInfo: () => HostInfo;
  /** This host's replication (default: none). */
  replication?: ReplicationPort;
  /** This host's fence: a start of an instance confirms it (default: none, for activity-only tests). */
  fence?: Fence;
}

/** HostActivityContext with its defaults applied and the paths and limits derived from the config. */
export interface HostFiles {
  cfg: Config;
  instances: HostInstances;
  hostInfo: () => HostInfo;
  replication: ReplicationPort;
  fence?: Fence;
  /** `<dataDir>/live`: the live files, their sidecars and their temporaries. */
  live: string;
  /** Where stored copies are restored to be verified. */
  scratchDir: string;
  /** The copy throttle, undefined when copies are not throttled. */
  throttleBps: number | undefined;
}

export function hostFiles(ctx: HostActivityContext): HostFiles {
  const { cfg } = ctx;
  return {
    cfg,
    instances: ctx.instances,
    hostInfo: ctx.hostInfo,
    replication: ctx.replication ?? NO_REPLICATION,
    ...(ctx.fence ? { fence: ctx.fence } : {}),
    live: liveDir(cfg),
    scratchDir: scratchDir(cfg),
    throttleBps: cfg.copyThrottleBps > 0 ? cfg.copyThrottleBps : undefined,
  };
}

export type LocalResult = { host: HostInfo; filePath: string; bytes: number };

/** The workspace's live file on this host, as most host activities return it. */
export async function localResult(f: HostFiles, id: string): Promise<LocalResult> {
  const filePath = liveFile(f.cfg, id);
  return { host: f.hostInfo(), filePath, bytes: await sizeOf(filePath) };
}

// ---------------------------------------------------------------------------------------------------------------
// Files

export function exists(p: string): boolean {
  return fs.existsSync(p);
}

export async function readJson<T>(p: string): Promise<T | null> {
  try {
    return JSON.parse(await fs.promises.readFile(p, 'utf8')) as T;
  } catch {
    return null;
  }
}

/** Removes the files that exist; true if any did. */
export async function rmAll(files: string[]): Promise<boolean> {
  let any = false;
  for (const f of files) {
    try {
      await fs.promises.unlink(f);
      any = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return any;
}

/** A SQLite file and the journal files SQLite may keep next to it. */
export function withJournals(file: string): string[] {
  return [file, `${file}-wal`, `${file}-shm`, `${file}-journal`];
}

export async function sizeOf(file: string): Promise<number> {
  return (await fs.promises.stat(file)).size;
}

// ---------------------------------------------------------------------------------------------------------------
// Sidecars

/** `<id>.verified.json`: the stored copy the live file was verified against, and the file's size and mtime then. */
export interface VerifiedSidecar {
  url: string;
  sha256: string;
  bytes: number;
  size: number;
  mtimeMs: number;
}

/** `<id>.released.json`: where storeLocal's verified copy went before the live file was deleted. */
export interface ReleasedRecord {
  target: 'cold' | 'archive';
  url: string;
  sha256: string;
  bytes: number;
  at: string;
}

/** Records the live file, as it is now, as a verified copy of `copy`. */
export async function writeVerifiedSidecar(cfg: Config, id: string, copy: StoredCopy): Promise<void> {
  const st = await fs.promises.stat(liveFile(cfg, id));
  const sc: VerifiedSidecar = { url: copy.url, sha256: copy.sha256, bytes: copy.bytes, size: st.size, mtimeMs: st.mtimeMs };
  await writeFileAtomic(verifiedPath(cfg, id), JSON.stringify(sc) + '\n');
}
