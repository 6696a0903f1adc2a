/**
 * Every path under a host's data dir, in one place:
 *
 *   live/<id>.sqlite (+ -wal, -shm)   the workspace's live file
 *   live/<id>.active                  marker: the instance is open (see HostInstances)
 *   live/<id>.placement               the placement number the file was last placed under (see Fence)
 *   live/<id>.verified.json           which stored copy the file was verified against (restoreLocal)
 *   live/<id>.released.json           where a verified copy went just before the file was released (storeLocal)
 *   live/.<id>.sqlite.<op>-….partial  temporaries of copies in progress
 *   scratch/                          temporaries of verifications and restores
 *   exports/                          exports being streamed (unlinked while open)
 *   orphans/<id>.<time>.sqlite        files set aside, kept for an operator for WORKBOOKS_ORPHANS_GRACE (default 7d;
 *                                     `never`: for good), then removed by the host's sweep (orphans-sweep.ts)
 */
import fs from 'node:fs';
import path from 'node:path';

type DataDir = { dataDir: string };

export function liveDir(cfg: DataDir): string {
  return path.join(cfg.dataDir, 'live');
}

/** Where a host verifies and restores copies before they are placed (temporaries only). */
export function scratchDir(cfg: DataDir): string {
  return path.join(cfg.dataDir, 'scratch');
}

export function liveFile(cfg: DataDir, workspaceId: string): string {
  return path.join(liveDir(cfg), `${workspaceId}.sqlite`);
}

export function activeMarkerPath(cfg: DataDir, workspaceId: string): string {
  return path.join(liveDir(cfg), `${workspaceId}.active`);
}

export function placementPath(cfg: DataDir, workspaceId: string): string {
  return path.join(liveDir(cfg), `${workspaceId}.placement`);
}

export function verifiedPath(cfg: DataDir, workspaceId: string): string {
  return path.join(liveDir(cfg), `${workspaceId}.verified.json`);
}

export function releasedPath(cfg: DataDir, workspaceId: string): string {
  return path.join(liveDir(cfg), `${workspaceId}.released.json`);
}

/** Where exports are written before streaming (each is unlinked as soon as it is opened for streaming). */
export function exportsDir(cfg: DataDir): string {
  return path.join(cfg.dataDir, 'exports');
}

export function orphansDir(cfg: DataDir): string {
  return path.join(cfg.dataDir, 'orphans');
}

/** The sidecars of a workspace's live file: removed with the file. */
export function sidecarsOf(cfg: DataDir, workspaceId: string): string[] {
  return [activeMarkerPath(cfg, workspaceId), placementPath(cfg, workspaceId), verifiedPath(cfg, workspaceId), releasedPath(cfg, workspaceId)];
}

/**
 * Moves a workspace's local file (and its journals) out of the live dir into orphans/, and drops its sidecars:
 * the file is kept for an operator, never overwritten, until the orphans grace period is over. Returns where the file went (undefined when
 * there was none). The caller closes the instance and stops its replication first.
 */
export function setAside(cfg: DataDir, workspaceId: string): string | undefined {
  const dir = orphansDir(cfg);
  fs.mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = liveFile(cfg, workspaceId);
  let movedTo: string | undefined;
  for (const suffix of ['', '-wal', '-shm']) {
    if (!fs.existsSync(file + suffix)) continue;
    const dest = path.join(dir, `${workspaceId}.${stamp}.sqlite${suffix}`);
    fs.renameSync(file + suffix, dest);
    if (suffix === '') movedTo = dest;
  }
  for (const p of sidecarsOf(cfg, workspaceId)) fs.rmSync(p, { force: true });
  return movedTo;
}
