/**
 * The embedded control plane (the Temporal dev server's SQLite database, `<data dir>/temporal/temporal.db`)
 * replicated off the disk the way workspace files are: by the host's one Litestream daemon, registered at run
 * time, about a second behind, to `<WORKBOOKS_REPLICA_URL>/_control-plane/_temporal/<generation>`.
 *
 * - Workspace keys start with a letter or digit (src/contract/ids.ts) and a workspace replicates to
 *   `<replica URL>/<key>/<generation>`: with a leading underscore on both segments, `_control-plane` is never a
 *   workspace's replica root (what a workspace's delete removes), and a control-plane generation is never taken
 *   for one of a workspace's (checkReplicaUrl matches the segment before the generation against the key: a
 *   plain `temporal` there would match a workspace keyed `temporal`).
 * - Litestream replicates a database another process writes as long as it is in WAL mode (the dev server's is:
 *   SQLITE_PRAGMAS): it keeps a read transaction open, so the server's own (passive) checkpoints cannot restart
 *   the WAL under it; Litestream does the restarting checkpoints. Both programs carry SQLite 3.53 (after the
 *   3.51.3 fix of the two-process WAL-reset bug).
 * - A generation is `<epoch ms, 13 digits>-<8 hex>`, so names sort by age. A new one starts whenever the file on
 *   this disk did not come from continuing the current one (a fresh database, a restore, another replica URL):
 *   never two lineages of one file in one replica, and never a restored file on top of the replica it came from.
 *   Older generations are left in place (the newest one is what a restore uses).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Replicator } from '../replication/replicator';
import { restoreReplica } from '../replication/restore';
import { replicaChildren } from '../replication/replica-children';
import { ReplicaMissingError, ReplicationError } from '../replication/errors';
import { localStateDir, parseReplicaUrl } from '../replication/urls';

/** Where under the replica URL the control plane's generations live. */
export const CONTROL_PLANE_REPLICA_PATH = '_control-plane/_temporal';
const GENERATION = /^\d{13}-[0-9a-f]{8}$/;

/** `<replica URL>/_control-plane/_temporal` (the replica URL in its canonical form). */
export function controlPlaneReplicaRoot(replicaUrl: string): string {
  return `${parseReplicaUrl(replicaUrl, 'WORKBOOKS_REPLICA_URL').url}/${CONTROL_PLANE_REPLICA_PATH}`;
}

/** A new generation name: the time it starts, then 8 random hex digits. */
export function newControlPlaneGeneration(now = Date.now()): string {
  if (!Number.isSafeInteger(now) || now < 0) throw new ReplicationError(`not a time: ${now}`);
  return `${String(now).padStart(13, '0')}-${crypto.randomBytes(4).toString('hex')}`;
}

/** The names that are control-plane generations, newest first; anything else under the root is ignored. */
export function generationsNewestFirst(names: readonly string[]): string[] {
  return names.filter((n) => GENERATION.test(n)).sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
}

/** Whether `url` is one generation of the control plane under `replicaUrl`. */
export function isControlPlaneGeneration(url: string | null, replicaUrl: string): boolean {
  if (!url) return false;
  const root = controlPlaneReplicaRoot(replicaUrl);
  return url.startsWith(`${root}/`) && GENERATION.test(url.slice(root.length + 1));
}

/**
 * True when the replica URL is a `file://` directory inside the data dir: then the replica lives on the very
 * disk it is meant to outlive.
 */
export function replicaInsideDataDir(replicaUrl: string, dataDir: string): boolean {
  const replica = parseReplicaUrl(replicaUrl, 'WORKBOOKS_REPLICA_URL');
  if (replica.kind !== 'file') return false;
  const rel = path.relative(path.resolve(dataDir), replica.dir);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** What `up` found for the control plane before starting the dev server. */
export type ControlPlaneStart =
  /** The database is on this disk: the server opens it. */
  | { kind: 'present' }
  /** No database here and no replica with data: the server starts an empty one. */
  | { kind: 'fresh'; skipped: string[] }
  /** No database here: restored from the newest generation holding data (integrity-checked). */
  | { kind: 'restored'; from: string; bytes: number; txid: string | null; skipped: string[] };

/**
 * Before the dev server starts: when its database is missing and the replica holds a control plane, restore the
 * newest one into place (never over an existing file: `restoreReplica` writes a temporary name and links it in
 * only if nothing appeared meanwhile). Generations that hold nothing (a start that died before its first
 * shipment) are skipped; a generation that holds data but cannot be restored stops the start: an empty control
 * plane over a replica that has one would orphan every workspace.
 *
 * Call it after the host's Litestream daemon started (its saved registry drops a database whose file is gone,
 * so nothing replicates a stale registration of this path) and before the dev server opens the file.
 */
export async function restoreControlPlaneIfMissing(opts: {
  dbFile: string;
  replicaUrl: string;
  env?: NodeJS.ProcessEnv;
}): Promise<ControlPlaneStart> {
  const db = opts.dbFile;
  if (fs.existsSync(db)) return { kind: 'present' };
  const strays = ['-wal', '-shm', '-journal'].map((s) => `${db}${s}`).filter((p) => fs.existsSync(p));
  if (strays.length > 0) {
    throw new ReplicationError(
      `the Temporal database ${db} is missing but ${strays.join(' and ')} ${strays.length > 1 ? 'are' : 'is'} there: put the database back beside ${strays.length > 1 ? 'them' : 'it'}, or remove ${strays.length > 1 ? 'them' : 'it'} to start from the control-plane replica (or fresh)`,
    );
  }
  // Litestream's local state of a database that is gone belongs to that database, not to the one about to appear.
  await fs.promises.rm(localStateDir(db), { recursive: true, force: true });
  const root = controlPlaneReplicaRoot(opts.replicaUrl);
  const env = opts.env ?? process.env;
  const skipped: string[] = [];
  for (const generation of generationsNewestFirst(await replicaChildren(root, { env }))) {
    const from = `${root}/${generation}`;
    try {
      const r = await restoreReplica({ replicaUrl: from, outFile: db, env });
      return { kind: 'restored', from, bytes: r.bytes, txid: r.txid, skipped };
    } catch (err) {
      if (err instanceof ReplicaMissingError) {
        skipped.push(from);
        continue;
      }
      throw new ReplicationError(
        `cannot restore the Temporal database from ${from}: ${(err as Error).message}. Not starting an empty control plane over a replica that holds one (every workspace would be orphaned): fix the replica, or move ${root} aside to start fresh`,
      );
    }
  }
  return { kind: 'fresh', skipped };
}

/**
 * Once the dev server has the database open: replicate it. The generation the daemon's saved registry already
 * replicates it to continues (a restart on the same disk); otherwise (`newGeneration`, or the file was replicated
 * elsewhere or not at all) Litestream's local state is reset and a new generation starts from a full snapshot.
 */
export async function replicateControlPlane(
  replicator: Replicator,
  opts: { dbFile: string; replicaUrl: string; newGeneration: boolean },
): Promise<{ url: string; continued: boolean }> {
  const current = replicator.replicaUrlOf(opts.dbFile);
  if (!opts.newGeneration && isControlPlaneGeneration(current, opts.replicaUrl)) {
    await replicator.register(opts.dbFile, current!); // idempotent: the daemon re-registered it at its start
    return { url: current!, continued: true };
  }
  await replicator.resetLocalState(opts.dbFile);
  const url = `${controlPlaneReplicaRoot(opts.replicaUrl)}/${newControlPlaneGeneration()}`;
  await replicator.register(opts.dbFile, url);
  return { url, continued: false };
}
