/**
 * Freeze and archive of a stopped local file (storeLocal): fold its WAL in, upload it under a content-addressed
 * key, prove the stored object restorable, and only then release the local file.
 *
 * "Restorable" is proven with as few reads as the proof allows: the file's sha256 (its key); the stored bytes read
 * back and hashed to that sha256 (file://: inside the put, while the copy is fsynced; other stores: a streamed
 * re-hash of the object); and SQLite's full integrity check, run on the local file (bytes equal to the stored ones
 * once the sha256 matches) on a worker thread while the hash, the copy and the read-back run, with the file's
 * stamp (inode, size, mtime, ctime) unchanged from before the hash to after the check.
 */
import fs from 'node:fs';
import { ApplicationFailure } from '@temporalio/activity';
import type { StoredCopy } from '../contract/types';
import { activeMarkerPath, liveFile, placementPath, releasedPath, verifiedPath } from '../host/data-dir';
import { BlobStore, ChecksumMismatchError, ObjectMissingError, keyForCopy } from '../storage/blob-store';
import { fsyncDir, hashFile, writeFileAtomic } from '../storage/copy';
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
      let copy: StoredCopy;

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
        // Litestream's state of the file goes. While it replicates the file, it must let go before the fold (it owns
        // the WAL); otherwise only its leftover local state is removed, alongside the rest (awaited below).
        const forgetting = replication.current(id) !== null ? (await replication.forget(id), settled(null)) : settled(replication.forget(id));
        // Also proves it a workspace file by its schema (Vfs.open), as the stored copy will be once it matches.
        foldLocalFile(id, file);
        faultPoint('storeLocal:after-fold');

        const timer = startCopy(target === 'cold' ? 'freeze' : 'archive');
        const stamp = await fileStamp(file);
        // SQLite's full integrity check of the folded file runs on a worker thread alongside the hash, the copy and
        // the read-back, instead of after them on the stored copy: the file is closed and nothing writes to it (the
        // instance is not open, its stamp is checked again below), so once the stored bytes read back with the
        // file's sha256 they are the bytes checked here.
        const checking = settled(integrityCheckOffThread(file, 'full', { readonly: false }));
        // A file store starts the copy (with its fdatasync and read-back) at once, under a temporary name, while the
        // file is hashed for its key; other stores need the sha256 before the upload (it travels with the object).
        // Its progress is reported once it is committed, after the hash (one phase at a time: hash, copy, verify).
        const stage = { phase: 'copy', bytes: 0, reporting: false };
        const onStage = (phase: 'copy' | 'verify') => (bytes: number, total: number) => {
          Object.assign(stage, { phase, bytes });
          if (stage.reporting) heartbeat(copyDetails(phase, bytes, total));
        };
        const staged = store instanceof FileStore ? store.stagePut(file, { throttleBps, signal, onProgress: onStage('copy'), onReadBack: onStage('verify') }) : null;
        let stagedUsed = false;
        try {
          const local = await hashFile(file, progress('hash'), { signal });
          const key = keyForCopy(id, local.sha256);
          const url = store.urlFor(key);
          const existing = await store.head(key);
          // Counted only when the bytes were uploaded now (not when an earlier attempt already did).
          let uploaded = false;
          if (!existing || existing.sha256 !== local.sha256 || existing.bytes !== local.bytes) {
            const meta = { sha256: local.sha256, bytes: local.bytes, workspaceId: id };
            try {
              if (staged) {
                stagedUsed = true;
                stage.reporting = true;
                heartbeat(copyDetails(stage.phase, stage.bytes, local.bytes));
                const tick = setInterval(() => heartbeat(copyDetails(stage.phase, stage.bytes, local.bytes)), 5000);
                try {
                  await staged.commit(key, meta);
                } finally {
                  clearInterval(tick);
                }
              } else {
                await store.put(file, key, meta, { throttleBps, signal, onProgress: progress('copy'), onReadBack: progress('verify') });
              }
            } catch (err) {
              // The bytes that landed (read back by the put) or were sent are not the file's: no verified copy.
              if (err instanceof ChecksumMismatchError) throw ApplicationFailure.nonRetryable(`stored copy ${url}: ${err.message}`, 'VerifyFailed');
              throw err;
            }
            uploaded = true;
          }
          faultPoint('storeLocal:after-upload');
          const head = await store.head(key);
          if (!head || head.sha256 !== local.sha256 || head.bytes !== local.bytes) {
            throw ApplicationFailure.nonRetryable(`stored copy ${url} has no matching metadata after the upload`, 'VerifyFailed');
          }
          try {
            // A put that read its bytes back (file://) proved them already; anything else is read back now.
            if (!(uploaded && store.readsBackOnPut === true)) await verifyStoredBytes(store, key, local, signal);
            faultPoint('storeLocal:after-scratch-restore');
            const problems = unwrap(await withTicker('integrity', () => local.bytes, () => checking, local.bytes));
            if (problems.length > 0) {
              throw ApplicationFailure.nonRetryable(`stored copy ${url} is a file that fails SQLite's integrity check: ${problems.slice(0, 5).join('; ')}`, 'VerifyFailed');
            }
            if (!sameStamp(stamp, await fileStamp(file))) {
              throw ApplicationFailure.nonRetryable(`the local file of '${id}' changed while it was being stored; is another process using it?`, 'VerifyFailed');
            }
          } catch (err) {
            // An unverifiable object must not be mistaken for a good copy later: remove it (it is content-addressed,
            // so nothing else refers to it). The local file stays where it is.
            if (err instanceof ApplicationFailure && err.type === 'VerifyFailed') await store.delete(key).catch(() => undefined);
            throw err;
          }
          faultPoint('storeLocal:after-verify');
          copy = { url, sha256: local.sha256, bytes: local.bytes, at: head.at };
          if (uploaded) timer.done(local.bytes);
        } finally {
          // Never leave the check, the copy or the clean-up running on a file a retry or another activity may touch next.
          if (staged && !stagedUsed) await staged.discard();
          await checking;
          await forgetting;
        }
        unwrap(await forgetting);

        // Verified: record the release first, then let the local copy go.
        const record: ReleasedRecord = { target, url: copy.url, sha256: copy.sha256, bytes: copy.bytes, at: copy.at };
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
 * Folds a stopped local file's WAL into it (checkpoint) so the file alone is the whole state. Opening it refuses a
 * file that is not a workspace file (Vfs.open checks the schema); storeLocal checks the rest.
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

/** A promise that never rejects: its outcome, to be looked at later (unwrap) without an unhandled rejection. */
function settled<T>(p: Promise<T> | T): Promise<{ value: T } | { err: unknown }> {
  return Promise.resolve(p).then(
    (value) => ({ value }),
    (err: unknown) => ({ err }),
  );
}

function unwrap<T>(r: { value: T } | { err: unknown }): T {
  if ('err' in r) throw r.err;
  return r.value;
}

/** What identifies a file's contents as of now without reading them: inode, size, mtime and ctime. */
async function fileStamp(file: string): Promise<string> {
  const st = await fs.promises.stat(file, { bigint: true });
  return `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

function sameStamp(a: string, b: string): boolean {
  return a === b;
}

/**
 * Reads a stored object back and checks that its bytes hash to the sha256 and size recorded for it (a streamed
 * re-hash in the store: no scratch file, for every store kind). Throws VerifyFailed (non-retryable) otherwise.
 */
async function verifyStoredBytes(store: BlobStore, key: string, want: { sha256: string; bytes: number }, signal?: AbortSignal): Promise<void> {
  const url = store.urlFor(key);
  let got;
  try {
    got = await store.rehash(key, { signal, onProgress: progress('verify') });
  } catch (err) {
    if (err instanceof ObjectMissingError) throw ApplicationFailure.nonRetryable(`stored copy ${url} is missing right after the upload`, 'VerifyFailed');
    throw err;
  }
  if (got.sha256 !== want.sha256 || got.bytes !== want.bytes) {
    throw ApplicationFailure.nonRetryable(`stored copy ${url} reads as sha256 ${got.sha256} (${got.bytes} bytes); expected ${want.sha256} (${want.bytes} bytes)`, 'VerifyFailed');
  }
}
