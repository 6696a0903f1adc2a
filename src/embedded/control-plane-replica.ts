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
 * - Retention: after its banner, `up` keeps the newest WORKBOOKS_CONTROL_PLANE_GENERATIONS (default 3) generations
 *   and deletes older ones (pruneControlPlaneGenerations), only once the current generation is confirmed replicating
 *   (synced, and restored into a scratch file that passes SQLite's integrity check), and never the current one or a
 *   newer name, so the newest generation holding data (what a restore uses) always stays; names under the root that
 *   are not generations are never touched. The rule is generationsPastRetention's, the one workspaces' generations
 *   follow; the deletion is deleteReplica's, which refuses a generation holding anything but Litestream's files. A
 *   failure is a warning (`up` runs on) and the next start tries again.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Replicator } from '../replication/replicator';
import { deleteReplica, removeWithJournals, replicaInfo, restoreReplica } from '../replication/restore';
import { generationsPastRetention } from '../contract/recovery';
import { replicaChildren } from '../replication/replica-children';
import { ReplicaMissingError, ReplicationError } from '../replication/errors';
import { localStateDir, parseReplicaUrl } from '../replication/urls';
import { tempNameFor } from '../storage/copy';

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

/**
 * The control-plane generations (names under the root) past retention: all but the newest `keep` (at least 1), and
 * only those older than `current`, the generation in use (confirmed replicating by the caller): the current one and
 * any newer name are never dropped, so neither is the newest generation holding data. Names that are not
 * generations are never returned; nothing is when `current` is not among the names listed.
 */
export function controlPlaneGenerationsPastRetention(names: readonly string[], current: string, keep: number): string[] {
  const oldestFirst = generationsNewestFirst(names).reverse();
  if (!oldestFirst.includes(current)) return [];
  // As the workspaces' rule sees generations: each one older than the current was stopped (at the latest) when the
  // next one started; the current one and anything newer still run.
  const asReplicas = oldestFirst.map((name, i) => ({
    url: name,
    host: '',
    from: generationStart(name),
    to: name < current ? generationStart(oldestFirst[i + 1]!) : null,
  }));
  return generationsPastRetention(asReplicas, Math.max(1, Math.floor(keep))).map((g) => g.url);
}

function generationStart(name: string): string {
  return new Date(Number(name.slice(0, 13))).toISOString();
}

/** What pruneControlPlaneGenerations did. */
export interface ControlPlanePrune {
  /** The generations left under the root (the current one among them), newest first. */
  kept: string[];
  /** Deleted generations (URLs) with the number of files or objects each held. */
  deleted: { url: string; files: number }[];
  /** Generations that could not be deleted (retried at the next start). */
  failed: { url: string; error: string }[];
}

/**
 * Once `current` (the generation `replicateControlPlane` registered) is confirmed replicating (it holds data, which
 * Litestream ships about a second after the registration: waited for up to `waitMs`; then it restores into a
 * temporary file in `scratchDir` that passes SQLite's integrity check, removed again), deletes the control-plane
 * generations past retention (controlPlaneGenerationsPastRetention) with deleteReplica, one by one, calling
 * `onDeleted` after each. Only reads the replica before that: the daemon is not asked for anything. Throws when the
 * current generation cannot be confirmed or the root cannot be listed (nothing deleted); a generation that cannot be
 * deleted is reported in `failed` and the others are still tried.
 */
export async function pruneControlPlaneGenerations(opts: {
  replicaUrl: string;
  current: string;
  keep: number;
  scratchDir: string;
  waitMs?: number;
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  onDeleted?: (d: { url: string; files: number }) => void;
}): Promise<ControlPlanePrune> {
  const env = opts.env ?? process.env;
  if (!isControlPlaneGeneration(opts.current, opts.replicaUrl)) {
    throw new ReplicationError(`${opts.current} is not a control-plane generation under ${opts.replicaUrl}`);
  }
  const root = controlPlaneReplicaRoot(opts.replicaUrl);
  const currentName = opts.current.slice(root.length + 1);
  const signal = opts.signal ? { signal: opts.signal } : {};
  const deadline = Date.now() + (opts.waitMs ?? 60_000);
  while (!(await replicaInfo(opts.current, { env, ...signal }))) {
    if (Date.now() >= deadline) throw new ReplicationError(`the current generation ${opts.current} holds nothing yet`);
    await sleep(1000, undefined, signal);
  }
  const check = tempNameFor(path.join(opts.scratchDir, 'control-plane.db'), 'check');
  try {
    await restoreReplica({ replicaUrl: opts.current, outFile: check, env, ...signal });
  } catch (err) {
    if (opts.signal?.aborted) throw err;
    throw new ReplicationError(`the current generation ${opts.current} does not restore: ${(err as Error).message}`);
  } finally {
    await removeWithJournals(check);
  }
  const names = await replicaChildren(root, { env, ...signal });
  const deleted: ControlPlanePrune['deleted'] = [];
  const failed: ControlPlanePrune['failed'] = [];
  for (const name of controlPlaneGenerationsPastRetention(names, currentName, opts.keep)) {
    opts.signal?.throwIfAborted();
    const url = `${root}/${name}`;
    try {
      const files = (await deleteReplica(url, { env, ...signal })).deleted;
      deleted.push({ url, files });
      opts.onDeleted?.({ url, files });
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      failed.push({ url, error: (err as Error).message });
    }
  }
  const gone = new Set(deleted.map((d) => d.url));
  return { kept: generationsNewestFirst(names).map((n) => `${root}/${n}`).filter((u) => !gone.has(u)), deleted, failed };
}
