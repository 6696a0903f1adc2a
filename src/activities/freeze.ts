/**
 * Freeze and archive of a stopped local file (storeLocal): fold its WAL in, upload it under a content-addressed
 * key, prove the stored object restorable (verifyRestorable), and only then release the local file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { StoredCopy } from '../contract/types';
import { activeMarkerPath, liveFile, placementPath, releasedPath, verifiedPath } from '../host/data-dir';
import { BlobStore, ObjectMissingError, keyForCopy } from '../storage/blob-store';
import { fsyncDir, hashFile, tempNameFor, writeFileAtomic } from '../storage/copy';
import { FileStore } from '../storage/file-store';
import { openStore } from '../storage/open-store';
import { integrityCheckOffThread } from '../storage/sqlite-check';
import { Vfs, VfsError } from '../vfs/vfs';
import { startCopy } from '../metrics/host-metrics';
import { faultPoint } from '../faults/fault-points';
import { cancellationSignal, copyDetails, heartbeat, invalidInput, isAbort, mapStoreError, progress, sizeForHeartbeat, withTicker } from './activity-context';
import { checkId, checkObject } from './input-checks';
import { HostFiles, ReleasedRecord, exists, readJson, rmAll, withJournals } from './local-files';
import type { HostActivities } from './types';

export function freezeActivities(f: HostFiles): Pick<HostActivities, 'storeLocal'> {
  const { cfg, instances, replication, live, throttleBps } = f;
  return {
    async storeLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      if (inp.target !== 'cold' && inp.target !== 'archive') throw invalidInput(`target must be 'cold' or 'archive'`);
      const target = inp.target;
      const store = targetStore(f, target);
      const signal = cancellationSignal();
      if (instances.isOpen(id)) {
        throw ApplicationFailure.nonRetryable(`workspace '${id}' is open on host '${cfg.hostId}'; stop it before storing it`, 'NotStopped');
      }
      const file = liveFile(cfg, id);

      try {
        if (!exists(file)) {
          // A retry after this host already released the file: the record says where the verified copy went.
          const rel = await readJson<ReleasedRecord>(releasedPath(cfg, id));
          if (rel && rel.target === target && typeof rel.sha256 === 'string' && typeof rel.bytes === 'number' && store.keyFromUrl(rel.url) !== null) {
            const relKey = store.keyFromUrl(rel.url)!;
            const head = await store.head(relKey);
            if (!head || head.sha256 !== rel.sha256 || head.bytes !== rel.bytes) {
              throw ApplicationFailure.nonRetryable(`the verified copy ${rel.url} this host released '${id}' to is no longer there`, 'SourceMissing');
            }
            // The bytes, not just the metadata: the workflow is about to record this copy as verified.
            const re = await store.rehash(relKey, { signal, onProgress: progress('verify') });
            if (re.sha256 !== rel.sha256 || re.bytes !== rel.bytes) {
              throw ApplicationFailure.nonRetryable(`the copy ${rel.url} this host released '${id}' to now reads as sha256 ${re.sha256}; expected ${rel.sha256}`, 'ChecksumMismatch');
            }
            return { url: rel.url, sha256: rel.sha256, bytes: rel.bytes, at: head.at };
          }
          throw ApplicationFailure.nonRetryable(`workspace '${id}' has no local file on host '${cfg.hostId}' to store (${file})`, 'SourceMissing');
        }

        heartbeat(copyDetails('fold', 0, sizeForHeartbeat(file)));
        await replication.forget(id);
        foldLocalFile(id, file);
        faultPoint('storeLocal:after-fold');

        // The sha256 goes with the object (its metadata and its key), so it is known before the upload.
        const timer = startCopy(target === 'cold' ? 'freeze' : 'archive');
        const local = await hashFile(file, progress('hash'), { signal });
        const key = keyForCopy(id, local.sha256);
        const url = store.urlFor(key);
        const existing = await store.head(key);
        // Counted only when the bytes were uploaded now (not when an earlier attempt already did).
        let uploaded = false;
        if (!existing || existing.sha256 !== local.sha256 || existing.bytes !== local.bytes) {
          await store.put(file, key, { sha256: local.sha256, bytes: local.bytes, workspaceId: id }, { throttleBps, signal, onProgress: progress('copy') });
          uploaded = true;
        }
        faultPoint('storeLocal:after-upload');
        const head = await store.head(key);
        if (!head || head.sha256 !== local.sha256 || head.bytes !== local.bytes) {
          throw ApplicationFailure.nonRetryable(`stored copy ${url} has no matching metadata after the upload`, 'VerifyFailed');
        }
        try {
          await verifyRestorable(f, store, key, local, signal);
        } catch (err) {
          // An unverifiable object must not be mistaken for a good copy later: remove it (it is content-addressed,
          // so nothing else refers to it). The local file stays where it is.
          if (err instanceof ApplicationFailure && err.type === 'VerifyFailed') await store.delete(key).catch(() => undefined);
          throw err;
        }
        faultPoint('storeLocal:after-verify');
        const copy: StoredCopy = { url, sha256: local.sha256, bytes: local.bytes, at: head.at };
        if (uploaded) timer.done(local.bytes);

        // Verified: record the release first, then let the local copy go.
        const record: ReleasedRecord = { target, url, sha256: copy.sha256, bytes: copy.bytes, at: copy.at };
        await writeFileAtomic(releasedPath(cfg, id), JSON.stringify(record) + '\n');
        faultPoint('storeLocal:after-release-record');
        await rmAll([...withJournals(file), activeMarkerPath(cfg, id), verifiedPath(cfg, id), placementPath(cfg, id)]);
        await fsyncDir(live);
        faultPoint('storeLocal:after-delete-local');
        return copy;
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        throw mapStoreError(err, `store '${id}' to ${target}`);
      }
    },
  };
}

function targetStore(f: HostFiles, target: 'cold' | 'archive'): BlobStore {
  const { cfg } = f;
  try {
    return target === 'cold' ? openStore(cfg.coldUrl) : openStore(cfg.archiveUrl, { storageClass: cfg.archiveStorageClass });
  } catch (err) {
    throw mapStoreError(err, `open ${target} store`);
  }
}

/**
 * Folds a stopped local file's WAL into it (checkpoint) so the file alone is the whole state. The file is
 * verified later, on a copy restored from the store (see storeLocal).
 */
export function foldLocalFile(id: string, file: string): void {
  let vfs: Vfs;
  try {
    vfs = Vfs.open(file, { create: false });
  } catch (err) {
    if (err instanceof VfsError) throw ApplicationFailure.nonRetryable(`workspace '${id}': ${err.message}`, 'IntegrityError');
    throw err;
  }
  try {
    vfs.checkpoint();
  } finally {
    vfs.close();
  }
  if (exists(`${file}-wal`) && fs.statSync(`${file}-wal`).size > 0) {
    // Someone else holds the file open: copying now would miss what is in the WAL.
    throw ApplicationFailure.retryable(`workspace '${id}' still has a write-ahead log after closing; is another process using it?`, 'FileBusy');
  }
}

/**
 * Hard-links `src` to `link` so a stored copy can be read in place under a scratch name. False when the two
 * are on different filesystems or the filesystem has no hard links (the caller copies instead).
 */
async function linkForCheck(src: string, link: string): Promise<boolean> {
  try {
    await fs.promises.link(src, link);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOENT too: the store's own read then reports the missing object.
    if (['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EACCES', 'ENOENT'].includes(code ?? '')) return false;
    throw err;
  }
}

/**
 * Proves a stored object restorable: its bytes must hash to the sha256 and size recorded for it, and they must
 * be a workspace file that passes SQLite's full integrity check. Throws VerifyFailed (non-retryable) otherwise.
 *
 * A copy in a file store this host can hard-link is checked in place: SQLite reads the stored bytes themselves
 * through a link in the scratch dir (read-only; its -wal/-shm files land in scratch), while the same bytes are
 * hashed. Any other store (S3, a file store on another filesystem) is restored to a scratch file first, with
 * its sha256 checked on the way, and the integrity check runs on that restored copy.
 */
async function verifyRestorable(f: HostFiles, store: BlobStore, key: string, want: { sha256: string; bytes: number }, signal?: AbortSignal): Promise<void> {
  const url = store.urlFor(key);
  await fs.promises.mkdir(f.scratchDir, { recursive: true });
  const scratch = tempNameFor(path.join(f.scratchDir, key), 'verify');
  const missing = () => ApplicationFailure.nonRetryable(`stored copy ${url} is missing right after the upload`, 'VerifyFailed');
  const mismatch = (got: { sha256: string; bytes: number }, how: string) =>
    ApplicationFailure.nonRetryable(`stored copy ${url} ${how} as sha256 ${got.sha256} (${got.bytes} bytes); expected ${want.sha256} (${want.bytes} bytes)`, 'VerifyFailed');
  try {
    let problems: string[];
    const inPlace = store instanceof FileStore && (await linkForCheck(store.pathFor(key), scratch));
    if (inPlace) {
      faultPoint('storeLocal:after-scratch-restore');
      let hashedBytes = 0;
      const onHash = progress('verify-in-place');
      const [hashed, checked] = await Promise.allSettled([
        store.rehash(key, { signal, onProgress: (done, total) => ((hashedBytes = done), onHash(done, total)) }),
        withTicker('verify-in-place', () => hashedBytes, () => integrityCheckOffThread(scratch, 'full'), want.bytes),
      ]);
      if (hashed.status === 'rejected') throw hashed.reason instanceof ObjectMissingError ? missing() : hashed.reason;
      if (checked.status === 'rejected') throw checked.reason;
      if (hashed.value.sha256 !== want.sha256 || hashed.value.bytes !== want.bytes) throw mismatch(hashed.value, 'reads');
      problems = checked.value;
    } else {
      let got;
      try {
        got = await store.get(key, scratch, { signal, onProgress: progress('verify') });
      } catch (err) {
        if (err instanceof ObjectMissingError) throw missing();
        throw err;
      }
      if (got.sha256 !== want.sha256 || got.bytes !== want.bytes) throw mismatch(got, 'restores');
      faultPoint('storeLocal:after-scratch-restore');
      problems = await withTicker('integrity', () => want.bytes, () => integrityCheckOffThread(scratch, 'full'));
    }
    // A file that opens but is not a workspace file is as bad as a corrupt one.
    if (problems.length === 0) {
      try {
        Vfs.open(scratch, { create: false, readonly: true }).close();
      } catch (err) {
        if (!(err instanceof VfsError)) throw err;
        problems = [err.message];
      }
    }
    if (problems.length > 0) {
      throw ApplicationFailure.nonRetryable(`stored copy ${url} is a file that fails SQLite's integrity check: ${problems.slice(0, 5).join('; ')}`, 'VerifyFailed');
    }
  } finally {
    await rmAll(withJournals(scratch));
  }
}
