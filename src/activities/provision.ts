/**
 * Creating a workspace's local file (provision): empty, or a copy of a template (its open or closed file on this
 * host, a stored copy, or a replica restore point), made under a temporary name and renamed into place.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { liveFile, placementPath, releasedPath, verifiedPath } from '../host/data-dir';
import { copyWithSha256, fsyncDir, tempNameFor } from '../storage/copy';
import { Vfs, VfsError } from '../vfs/vfs';
import { VOLUMES, Volume } from '../vfs/volumes';
import { startCopy } from '../metrics/host-metrics';
import { faultPoint } from '../faults/fault-points';
import { cancellationSignal, copyDetails, heartbeat, invalidInput, isAbort, mapStoreError, progress, sizeForHeartbeat, withTicker } from './activity-context';
import { checkId, checkObject, checkStoredCopy, checkTemplate } from './input-checks';
import { HostFiles, exists, localResult, rmAll, withJournals } from './local-files';
import type { HostActivities } from './types';

export function provisionActivities(f: HostFiles): Pick<HostActivities, 'provision'> {
  const { cfg, instances, replication, live, throttleBps } = f;
  return {
    async provision(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const template = inp.template === undefined || inp.template === null ? undefined : checkTemplate(inp.template, id);
      const dst = liveFile(cfg, id);
      // Already provisioned (a retry after the rename, or the instance is even running): nothing to do.
      if (instances.isOpen(id) || exists(dst)) return localResult(f, id);
      await fs.promises.mkdir(live, { recursive: true });
      const tmp = tempNameFor(dst, 'provision');
      const signal = cancellationSignal();
      // A new file from a template or restore point is a copy; an empty new file is not.
      const timer = template ? startCopy('clone') : null;
      try {
        if (!template) {
          Vfs.open(tmp, { create: true }).close();
        } else if (template.kind === 'local') {
          if (template.host.host !== cfg.hostId) {
            throw ApplicationFailure.nonRetryable(
              `template '${template.templateId}' is held by host '${template.host.host}', not '${cfg.hostId}'; clone it there`,
              'TemplateUnavailable',
            );
          }
          const src = liveFile(cfg, template.templateId);
          if (path.resolve(template.filePath) !== src) {
            throw invalidInput(`template.filePath ${template.filePath} is not template '${template.templateId}''s file on this host (${src})`);
          }
          if (instances.isOpen(template.templateId)) {
            // Open (or marked active): a consistent copy through its handle; the template never stops.
            const total = exists(src) ? fs.statSync(src).size : 0;
            let done = 0;
            await withTicker(
              'backup',
              () => done,
              () =>
                instances.backupTo(template.templateId, tmp, (pages, totalPages) => {
                  done = totalPages > 0 ? Math.round((pages / totalPages) * total) : 0;
                  heartbeat(copyDetails('backup', done, total));
                }),
              total,
            );
          } else {
            if (!exists(src)) throw ApplicationFailure.nonRetryable(`template '${template.templateId}' has no file on this host (${src})`, 'SourceMissing');
            await cloneClosedFile(f, template.templateId, src, tmp);
          }
        } else if (template.kind === 'replica') {
          await withTicker('restore', () => 0, () => replication.restore(template.replicaUrl, tmp, { at: template.at, signal }));
        } else {
          const { store, key } = checkStoredCopy(template.copy, template.templateId, 'template.copy');
          const got = await store.get(key, tmp, { throttleBps, signal, onProgress: progress('copy') });
          if (got.sha256 !== template.copy.sha256 || got.bytes !== template.copy.bytes) {
            throw ApplicationFailure.nonRetryable(
              `template copy ${template.copy.url} read as ${got.bytes} bytes sha256 ${got.sha256}, expected ${template.copy.bytes} bytes sha256 ${template.copy.sha256}`,
              'ChecksumMismatch',
            );
          }
        }
        if (template) faultPoint('provision:after-copy');
        await placeNewFile(f, id, tmp, template?.keep ?? ['workspace', 'memory']);
        faultPoint('provision:after-rename');
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        throw mapStoreError(err, `provision '${id}'`);
      } finally {
        await rmAll(withJournals(tmp));
      }
      const r = await localResult(f, id);
      timer?.done(r.bytes);
      return r;
    },
  };
}

/** Copies a closed template file (and a leftover WAL, if any) to `tmp`, reflinking where the filesystem can. */
async function cloneClosedFile(f: HostFiles, templateId: string, src: string, tmp: string): Promise<void> {
  const { throttleBps } = f;
  const stamp = (file: string) => (exists(file) ? `${fs.statSync(file).size}:${fs.statSync(file).mtimeMs}` : '-');
  const before = `${stamp(src)}|${stamp(`${src}-wal`)}`;
  const copyOne = async (from: string, to: string) => {
    if (throttleBps) await copyWithSha256(from, to, { throttleBps, signal: cancellationSignal(), onProgress: progress('clone') });
    else await withTicker('clone', () => 0, () => fs.promises.copyFile(from, to, fs.constants.COPYFILE_FICLONE), sizeForHeartbeat(from));
  };
  await copyOne(src, tmp);
  const wal = `${src}-wal`;
  if (exists(wal) && fs.statSync(wal).size > 0) await copyOne(wal, `${tmp}-wal`);
  const after = `${stamp(src)}|${stamp(`${src}-wal`)}`;
  if (before !== after || f.instances.isOpen(templateId)) {
    throw ApplicationFailure.retryable(`template '${templateId}' changed while it was being copied; will retry`, 'TemplateBusy');
  }
}

/**
 * Clears the volumes a fresh copy does not keep (tmp always; memory across tenants, see volumesKeptOnCopy), folds
 * its WAL in, closes it, and renames it to the workspace's live name.
 */
async function placeNewFile(f: HostFiles, id: string, tmp: string, keep: readonly Volume[]): Promise<void> {
  const { cfg } = f;
  let vfs: Vfs;
  try {
    vfs = Vfs.open(tmp, { create: false });
  } catch (err) {
    if (err instanceof VfsError) throw ApplicationFailure.nonRetryable(`new copy for '${id}': ${err.message}`, 'IntegrityError');
    throw err;
  }
  try {
    for (const v of VOLUMES) if (!keep.includes(v) || v === 'tmp') vfs.clear(v);
    vfs.checkpoint();
  } finally {
    vfs.close();
  }
  // The bytes may still be only in the page cache (a plain or reflinked copy, a checkpoint with nothing to do):
  // make them durable before the name says the workspace exists.
  const fh = await fs.promises.open(tmp, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  const dst = liveFile(cfg, id);
  await rmAll([`${dst}-wal`, `${dst}-shm`, `${dst}-journal`, verifiedPath(cfg, id), releasedPath(cfg, id), placementPath(cfg, id)]);
  await fs.promises.rename(tmp, dst);
  await fsyncDir(f.live);
}
