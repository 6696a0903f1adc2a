/**
 * Making a workspace's data local on this host: from a stored copy (restoreLocal), or from the newest usable
 * source of a lost or unreadable file (recoverLocal: the last placement's file, a replica, stored copies).
 * A restore never overwrites a local file it cannot prove is kept elsewhere (see replaceLiveFile).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { Placement, StoredCopy } from '../contract/types';
import { liveFile, placementPath, releasedPath, setAside, verifiedPath } from '../host/data-dir';
import { BlobStore } from '../storage/blob-store';
import { fsyncDir, hashFile, tempNameFor } from '../storage/copy';
import { integrityCheckOffThread } from '../storage/sqlite-check';
import { Vfs, VfsError } from '../vfs/vfs';
import { startCopy } from '../metrics/host-metrics';
import { faultPoint } from '../faults/fault-points';
import { activityContext, cancellationSignal, isAbort, log, mapStoreError, progress, withTicker } from './activity-context';
import { foldLocalFile } from './freeze';
import { checkId, checkKeep, checkObject, checkPlacement, checkSources, checkStoredCopy } from './input-checks';
import { HostFiles, VerifiedSidecar, exists, localResult, readJson, rmAll, sizeOf, withJournals, writeVerifiedSidecar } from './local-files';
import type { HostActivities, RecoverySource } from './types';

export function restoreActivities(f: HostFiles): Pick<HostActivities, 'restoreLocal' | 'recoverLocal'> {
  const { cfg, instances, replication } = f;
  return {
    async restoreLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const checked = checkStoredCopy(inp.copy, id);
      refuseIfOpen(f, id);
      try {
        await restoreStored(f, id, checked, 'restoreLocal');
        return await localResult(f, id);
      } catch (err) {
        if (isAbort(err, cancellationSignal())) throw err;
        throw mapStoreError(err, `restore '${id}' from ${checked.copy.url}`);
      }
    },

    async recoverLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const keep = checkKeep(inp.keep);
      const placement = checkPlacement(inp.placement);
      const sources = checkSources(inp.sources, id, keep !== null);
      const skipped: string[] = [];
      // The newest data may be right here: the file of the last placement, on the host that held it. It is kept,
      // never replaced by an older source.
      const local = await newestLocalFile(f, id, keep);
      if (local && 'placement' in local) {
        if (placement !== undefined) instances.recordPlacement(id, placement);
        return { ...(await localResult(f, id)), used: { kind: 'local', placement: local.placement }, skipped };
      }
      if (local) skipped.push(local.problem);
      // Anything else open here is a stale instance of an earlier placement: closed, and its file set aside. A
      // workflow that names no last placement (state carried by an older build) cannot say so: refused.
      if (instances.isOpen(id) && !keep) refuseIfOpen(f, id);
      if (instances.isOpen(id)) {
        await replication.forget(id);
        instances.close(id, { checkpoint: false });
        f.fence?.forget(id);
        if (exists(liveFile(cfg, id))) {
          const movedTo = setAside(cfg, id);
          skipped.push(`a stale open copy here was set aside (${path.basename(movedTo ?? '')})`);
        }
      }
      if (sources.length === 0) {
        throw ApplicationFailure.nonRetryable(
          `no source could restore '${id}': its newest file is on host '${keep?.host ?? '?'}' (placement ${keep?.placement ?? '?'}), not here${skipped.length ? `; ${skipped.join('; ')}` : ''}`,
          'NoUsableSource',
        );
      }
      const signal = cancellationSignal();
      const done = async (source: RecoverySource) => {
        if (placement !== undefined) instances.recordPlacement(id, placement);
        return { ...(await localResult(f, id)), used: source, skipped };
      };
      for (const source of sources) {
        try {
          if (source.kind === 'stored') {
            await restoreStored(f, id, checkStoredCopy(source.copy, id), 'recoverLocal');
          } else {
            await restoreFromReplica(f, id, source.replicaUrl, signal);
          }
          return await done(source);
        } catch (err) {
          if (isAbort(err, signal)) throw err;
          const mapped = mapStoreError(err, source.kind === 'stored' ? `stored copy ${source.copy.url}` : `replica ${source.replicaUrl}`);
          // Errors that another source can get around are skipped. Others (a replica store briefly unreachable,
          // this host's disk) are retried first: falling back to an older source too eagerly would lose the
          // newest writes. From the third attempt on, a source that still fails is skipped.
          if (mapped instanceof ApplicationFailure && mapped.nonRetryable) {
            skipped.push(mapped.message);
            continue;
          }
          if ((activityContext()?.info.attempt ?? 1) >= 3) {
            skipped.push(`${source.kind === 'stored' ? `stored copy ${source.copy.url}` : `replica ${source.replicaUrl}`}: ${(err as Error).message}`);
            continue;
          }
          throw mapped;
        }
      }
      throw ApplicationFailure.nonRetryable(`no source could restore '${id}': ${skipped.join('; ')}`, 'NoUsableSource');
    },
  };
}

/**
 * Refuses to restore over an open instance. A marker left by an earlier process whose file is gone (a host
 * that restarted without its disk) is not an instance: it is dropped.
 */
function refuseIfOpen(f: HostFiles, id: string): void {
  const { cfg, instances } = f;
  if (!instances.isOpen(id)) return;
  if (!instances.isLoaded(id) && !exists(liveFile(cfg, id))) {
    instances.close(id, { checkpoint: false });
    return;
  }
  throw ApplicationFailure.nonRetryable(`workspace '${id}' is open on host '${cfg.hostId}'; it cannot be restored over`, 'NotStopped');
}

/**
 * Makes a stored copy the workspace's local file: skipped when a file verified against this very copy is
 * already here (prefetched) or the file hashes to it; otherwise copied under a temporary name, checked
 * against the recorded sha256 and size (a mismatch is never opened or placed), then renamed into place.
 *
 * No SQLite integrity check here, by design. A stored copy is only ever recorded after storeLocal proved it: its
 * bytes read back to the recorded sha256 and the same bytes passed SQLite's full integrity check. The copy made
 * here is checked against that sha256 (file://: read back from the temporary file after the copy; S3: hashed as
 * it arrives), so it is byte for byte the file that passed; a full check again would only re-prove it at the
 * cost of reading and decoding every page. What a placed file still gets is the schema check of Vfs.open when
 * startInstance opens it (a file that is not a workspace file is refused there). Files whose pedigree is not a
 * verified copy are checked: a replica's restore runs its own integrity check (restoreFromReplica), and a local
 * file of the last placement gets a quick check (newestLocalFile).
 */
async function restoreStored(
  f: HostFiles,
  id: string,
  { copy, store, key }: { copy: StoredCopy; store: BlobStore; key: string },
  op: 'restoreLocal' | 'recoverLocal',
): Promise<void> {
  const { cfg } = f;
  const file = liveFile(cfg, id);
  const signal = cancellationSignal();
  await fs.promises.mkdir(f.live, { recursive: true });
  if (exists(file)) {
    const st = await fs.promises.stat(file);
    const side = await readJson<VerifiedSidecar>(verifiedPath(cfg, id));
    if (side && side.sha256 === copy.sha256 && side.bytes === copy.bytes && side.size === st.size && side.mtimeMs === st.mtimeMs) return;
    // No (matching) sidecar: a crash between the rename and the sidecar, or a file of unknown provenance.
    // If it hashes to the copy (and no WAL says otherwise), it is the copy.
    const walSize = exists(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0;
    if (walSize === 0 && st.size === copy.bytes) {
      const h = await hashFile(file, progress('verify'), { signal });
      if (h.sha256 === copy.sha256) {
        await rmAll([`${file}-wal`, `${file}-shm`, releasedPath(cfg, id)]);
        await writeVerifiedSidecar(cfg, id, copy);
        return;
      }
    }
  }
  const tmp = tempNameFor(file, 'restore');
  const timer = startCopy('restore');
  // Litestream's state of the file being replaced is dropped while the bytes are copied (awaited before the rename).
  const forgetting = f.replication.forget(id).then(
    () => null,
    (err: unknown) => ({ err }),
  );
  try {
    const got = await store.get(key, tmp, { throttleBps: f.throttleBps, signal, onProgress: progress('copy'), onReadBack: progress('verify') });
    if (got.sha256 !== copy.sha256 || got.bytes !== copy.bytes) {
      // Never opened, never placed: the temporary file goes away in `finally`.
      throw ApplicationFailure.nonRetryable(
        `stored copy ${copy.url} read as ${got.bytes} bytes sha256 ${got.sha256}; expected ${copy.bytes} bytes sha256 ${copy.sha256}`,
        'ChecksumMismatch',
      );
    }
    faultPoint(`${op}:after-download`);
    await replaceLiveFile(f, id, tmp, forgetting);
    faultPoint(`${op}:after-rename`);
    timer.done(got.bytes);
  } finally {
    await forgetting;
    await rmAll([tmp]);
  }
  await writeVerifiedSidecar(cfg, id, copy);
}

/** Restores a replica's newest state (integrity-checked by the restore) as the workspace's local file. */
async function restoreFromReplica(f: HostFiles, id: string, replicaUrl: string, signal: AbortSignal | undefined): Promise<void> {
  const file = liveFile(f.cfg, id);
  await fs.promises.mkdir(f.live, { recursive: true });
  const tmp = tempNameFor(file, 'replica');
  const timer = startCopy('restore');
  try {
    await withTicker('restore', () => 0, () => f.replication.restore(replicaUrl, tmp, { signal }));
    const bytes = await sizeOf(tmp);
    faultPoint('recoverLocal:after-replica-restore');
    await replaceLiveFile(f, id, tmp);
    timer.done(bytes);
  } finally {
    await rmAll(withJournals(tmp));
  }
}

/**
 * Renames a complete, verified temporary file over the live name. A file already there is replaced only if it
 * is a verified copy of a stored object (nothing of it is only here); any other is set aside in orphans/ first:
 * a restore never overwrites data it cannot prove is kept elsewhere.
 */
async function replaceLiveFile(f: HostFiles, id: string, tmp: string, forgetting?: Promise<{ err: unknown } | null>): Promise<void> {
  const { cfg } = f;
  const file = liveFile(cfg, id);
  // Litestream must not keep state of the file being replaced (`forgetting`: that was started earlier); journals
  // of that file belong to it.
  if (forgetting) {
    const r = await forgetting;
    if (r) throw r.err;
  } else {
    await f.replication.forget(id);
  }
  if (exists(file) && !(await isVerifiedStoredCopy(f, id))) {
    const movedTo = setAside(cfg, id);
    log('a local file that is not a stored copy was set aside before a restore', { workspaceId: id, movedTo });
  }
  await rmAll([`${file}-wal`, `${file}-shm`, `${file}-journal`, verifiedPath(cfg, id), releasedPath(cfg, id), placementPath(cfg, id)]);
  await fs.promises.rename(tmp, file);
  await fsyncDir(f.live);
}

/** Whether the live file is, unchanged, a copy verified against a stored object (restoreLocal's sidecar). */
async function isVerifiedStoredCopy(f: HostFiles, id: string): Promise<boolean> {
  const file = liveFile(f.cfg, id);
  const side = await readJson<VerifiedSidecar>(verifiedPath(f.cfg, id));
  if (!side) return false;
  try {
    const st = await fs.promises.stat(file);
    const walSize = exists(`${file}-wal`) ? (await fs.promises.stat(`${file}-wal`)).size : 0;
    return walSize === 0 && side.size === st.size && side.mtimeMs === st.mtimeMs;
  } catch {
    return false;
  }
}

/**
 * The local file of the workspace's last placement, if this host holds it: that file has the newest data (the
 * replica and any stored copy were made from it). Checked with SQLite's quick check when it is not open.
 */
async function newestLocalFile(f: HostFiles, id: string, keep: Placement | null): Promise<{ placement: number } | { problem: string } | null> {
  const { cfg, instances, replication } = f;
  if (!keep || keep.host !== cfg.hostId) return null;
  const file = liveFile(cfg, id);
  if (!exists(file) || instances.placementOfFile(id) !== keep.placement) return null;
  // Still open from that placement (the workflow lost this host for a while): close it as a stop would, so
  // the file alone holds everything; the workflow starts it again, or stores it.
  if (instances.isOpen(id)) {
    const replicated = replication.current(id) !== null;
    instances.close(id, { checkpoint: !replicated });
    f.fence?.forget(id);
    if (replicated) {
      await replication.stop(id);
      try {
        foldLocalFile(id, file);
      } catch (err) {
        if (!(err instanceof ApplicationFailure && err.type === 'IntegrityError')) throw err;
        return { problem: `the local file of placement ${keep.placement} is refused: ${err.message}` };
      }
    }
  }
  // A workspace file, by its schema (nothing of it runs), and intact, by SQLite's quick check.
  try {
    Vfs.open(file, { create: false, readonly: true }).close();
  } catch (err) {
    if (!(err instanceof VfsError)) throw err;
    return { problem: `the local file of placement ${keep.placement} is refused: ${err.message}` };
  }
  const problems = await integrityCheckOffThread(file, 'quick', { readonly: false });
  if (problems.length > 0) return { problem: `the local file of placement ${keep.placement} fails SQLite's check: ${problems.slice(0, 3).join('; ')}` };
  return { placement: keep.placement };
}
