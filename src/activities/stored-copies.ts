/**
 * Shared-queue storage activities (any host runs them; they never touch a live workspace file):
 * moving a cold copy to the archive, deleting stored copies (with the replicas and what unfinished uploads
 * left behind, when the whole workspace is deleted), deleting replica generations past their retention, and writing
 * pages of the complete ledger.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, log } from '@temporalio/activity';
import type { Config } from '../config';
import type { StoredCopy } from '../contract/types';
import type { BlobStore } from '../storage/blob-store';
import { FileStore } from '../storage/file-store';
import { tempNameFor } from '../storage/copy';
import { openStore } from '../storage/open-store';
import { LedgerArchive, LedgerArchiveError } from '../storage/ledger-archive';
import { NO_REPLICATION, ReplicationPort } from '../host/replication-port';
import { startCopy } from '../metrics/host-metrics';
import { faultPoint } from '../faults/fault-points';
import { cancellationSignal, copyDetails, heartbeat, invalidInput, mapStoreError, progress } from './activity-context';
import { checkId, checkReplicaUrl, checkStoredCopy } from './input-checks';
import type { SharedActivities } from './types';

export function createStorageActivities(cfg: Config, replication: ReplicationPort = NO_REPLICATION): Pick<SharedActivities, 'archiveColdCopy' | 'deleteStoredCopies' | 'deleteReplicaGenerations' | 'archiveLedger'> {
  const throttleBps = cfg.copyThrottleBps > 0 ? cfg.copyThrottleBps : undefined;

  return {
    async archiveColdCopy(input) {
      if (typeof input !== 'object' || input === null) throw invalidInput('input must be an object');
      const id = checkId(input.workspaceId);
      const { copy: cold, store: coldStore, key: coldKey } = checkStoredCopy(input.cold, id, 'cold');
      const signal = cancellationSignal();
      try {
        const archive = openStore(cfg.archiveUrl, { storageClass: cfg.archiveStorageClass });
        // The same (content-addressed) key in the archive location.
        const key = coldKey;
        const url = archive.urlFor(key);
        // Cold and archive on the same location: the cold object already is the archive copy.
        if (url === cold.url) {
          const head = await archive.head(key);
          if (!head || head.sha256 !== cold.sha256 || head.bytes !== cold.bytes) {
            throw ApplicationFailure.nonRetryable(`cold copy ${cold.url} is missing or differs from what the workflow recorded`, 'SourceMissing');
          }
          return { url, sha256: head.sha256, bytes: head.bytes, at: head.at };
        }

        const verify = async (): Promise<StoredCopy | null> => {
          const head = await archive.head(key);
          if (!head || head.sha256 !== cold.sha256 || head.bytes !== cold.bytes) return null;
          const re = await archive.rehash(key, { signal, onProgress: progress('verify') });
          if (re.sha256 !== cold.sha256 || re.bytes !== cold.bytes) return null;
          return { url, sha256: head.sha256, bytes: head.bytes, at: head.at };
        };

        // Re-run after the copy (and maybe after the cold delete): the verified archive copy is the answer.
        let done = await verify();
        if (!done) {
          const coldHead = await coldStore.head(coldKey);
          if (!coldHead) throw ApplicationFailure.nonRetryable(`cold copy ${cold.url} does not exist (and no verified archive copy does)`, 'SourceMissing');
          if (coldHead.sha256 !== cold.sha256 || coldHead.bytes !== cold.bytes) {
            throw ApplicationFailure.nonRetryable(
              `cold copy ${cold.url} holds sha256 ${coldHead.sha256} (${coldHead.bytes} bytes), not the recorded ${cold.sha256} (${cold.bytes} bytes)`,
              'ChecksumMismatch',
            );
          }
          heartbeat(copyDetails('copy', 0, cold.bytes));
          const timer = startCopy('archive');
          const meta = { sha256: cold.sha256, bytes: cold.bytes, workspaceId: id };
          const opts = { throttleBps, signal, onProgress: (b: number, total?: number) => heartbeat(copyDetails('copy', b, total ?? cold.bytes)) };
          if (coldStore instanceof FileStore) {
            // Both on file systems: one copy, straight from the cold object (put verifies the sha256 on the way).
            await archive.put(coldStore.pathFor(coldKey), key, meta, opts);
          } else {
            // Through a local temporary file (e.g. between two object stores).
            const tmpDir = path.join(cfg.dataDir, 'tmp');
            await fs.promises.mkdir(tmpDir, { recursive: true });
            const tmp = tempNameFor(path.join(tmpDir, `${id}.archive`), 'get');
            try {
              const got = await coldStore.get(coldKey, tmp, opts);
              if (got.sha256 !== cold.sha256 || got.bytes !== cold.bytes) {
                throw ApplicationFailure.nonRetryable(`cold copy ${cold.url} reads as sha256 ${got.sha256}; expected ${cold.sha256}`, 'ChecksumMismatch');
              }
              await archive.put(tmp, key, meta, opts);
            } finally {
              await fs.promises.rm(tmp, { force: true });
            }
          }
          faultPoint('archiveColdCopy:after-copy');
          done = await verify();
          if (!done) throw ApplicationFailure.nonRetryable(`archive copy ${url} does not verify after the copy`, 'ChecksumMismatch');
          timer.done(cold.bytes);
        }
        faultPoint('archiveColdCopy:after-verify');
        await coldStore.delete(coldKey);
        faultPoint('archiveColdCopy:after-delete-cold');
        return done;
      } catch (err) {
        if (signal?.aborted && err === signal.reason) throw err;
        throw mapStoreError(err, `archive '${id}'`);
      }
    },

    async deleteStoredCopies(input) {
      if (typeof input !== 'object' || input === null) throw invalidInput('input must be an object');
      const id = checkId(input.workspaceId);
      if (!Array.isArray(input.copies)) throw invalidInput('copies must be an array');
      const targets = input.copies.map((c, i) => checkStoredCopy(c, id, `copies[${i}]`));
      if (input.replicas !== undefined && !Array.isArray(input.replicas)) throw invalidInput('replicas must be an array of replica URLs');
      const replicas = (input.replicas ?? []).map((u, i) => checkReplicaUrl(u, id, `replicas[${i}]`));
      let deleted = 0;
      try {
        for (const { copy, store, key } of targets) {
          const head = await store.head(key);
          // Another object now lives under that URL (e.g. a newer copy): the described copy is already gone.
          if (head && (head.sha256 !== copy.sha256 || head.bytes !== copy.bytes)) continue;
          await store.delete(key);
          if (head) deleted += 1;
          faultPoint('deleteStoredCopies:after-delete-copy');
        }
      } catch (err) {
        throw mapStoreError(err, `delete stored copies of '${id}'`);
      }
      // The whole workspace goes (the workflow's delete names its replicas; a superseded copy's delete does not):
      // so do the unfinished uploads of its copies, in every store its copies are or were put in.
      let unfinished: number | undefined;
      if (input.replicas !== undefined) {
        const stores = new Map<string, BlobStore>();
        try {
          for (const s of [openStore(cfg.coldUrl), openStore(cfg.archiveUrl), ...targets.map((t) => t.store)]) if (!stores.has(s.baseUrl)) stores.set(s.baseUrl, s);
          unfinished = 0;
          for (const store of stores.values()) {
            const n = await store.discardUnfinished(id);
            if (n > 0) log.info('discarded unfinished uploads of a deleted workspace', { workspaceId: id, store: store.baseUrl, count: n });
            unfinished += n;
          }
        } catch (err) {
          throw mapStoreError(err, `discard unfinished uploads of '${id}'`);
        }
      }
      if (input.replicas !== undefined) {
        // Each generation's workspace root (`…/<id>`), so generations the workflow no longer lists go too, and
        // this host's own replica root for the workspace.
        const roots = new Set(replicas.map((u) => u.slice(0, u.lastIndexOf('/'))));
        const own = replication.urlFor(id, 'g');
        if (own) roots.add(own.slice(0, own.lastIndexOf('/')));
        for (const root of roots) {
          await replication.deleteReplica(root);
          faultPoint('deleteStoredCopies:after-delete-replica');
        }
      }
      return unfinished === undefined ? { deleted } : { deleted, unfinished };
    },

    async archiveLedger(input) {
      if (typeof input !== 'object' || input === null) throw invalidInput('input must be an object');
      const id = checkId(input.workspaceId);
      if (!Number.isInteger(input.page) || input.page < 0) throw invalidInput('page must be a whole number, at least 0');
      try {
        const archive = new LedgerArchive(openStore(cfg.coldUrl), path.join(cfg.dataDir, 'tmp'));
        await archive.write(id, input.page, input.entries);
      } catch (err) {
        if (err instanceof LedgerArchiveError) throw invalidInput(err.message);
        throw mapStoreError(err, `archive the ledger of '${id}'`);
      }
      return { page: input.page, entries: input.entries.length };
    },

    async deleteReplicaGenerations(input) {
      if (typeof input !== 'object' || input === null) throw invalidInput('input must be an object');
      const id = checkId(input.workspaceId);
      if (!Array.isArray(input.replicas) || input.replicas.length > 1000) throw invalidInput('replicas must be an array of at most 1000 replica URLs');
      // Each a generation of this very workspace (`…/<id>/<generation>`): never its root, never another's.
      const urls = input.replicas.map((u, i) => checkReplicaUrl(u, id, `replicas[${i}]`));
      let deleted = 0;
      for (const url of urls) {
        await replication.deleteReplica(url);
        deleted += 1;
        faultPoint('deleteReplicaGenerations:after-delete');
      }
      return { deleted };
    },
  };
}
