/**
 * A workspace's instance on this host: opening it (startInstance: VFS, fence, replication), closing it
 * (stopInstance), closing it only if it has been idle long enough (stopIfIdle: the idle ladder's check and stop in one
 * task), its last access (lastAccess), and removing its local file and everything next to it (removeLocal).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { activeMarkerPath, liveFile, placementPath, releasedPath, verifiedPath } from '../host/data-dir';
import { fsyncDir } from '../storage/copy';
import { VfsError } from '../vfs/vfs';
import { faultPoint } from '../faults/fault-points';
import { invalidInput } from './activity-context';
import { foldLocalFile } from './freeze';
import { checkId, checkObject, checkPlacement } from './input-checks';
import { HostFiles, exists, localResult, rmAll, withJournals } from './local-files';
import type { HostActivities } from './types';

export function instanceActivities(f: HostFiles): Pick<HostActivities, 'startInstance' | 'stopInstance' | 'stopIfIdle' | 'lastAccess' | 'removeLocal'> {
  const { cfg, instances, replication, live } = f;
  const acts: Pick<HostActivities, 'startInstance' | 'stopInstance' | 'stopIfIdle' | 'lastAccess' | 'removeLocal'> = {
    async startInstance(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      if (typeof inp.clearTmp !== 'boolean') throw invalidInput('clearTmp must be a boolean');
      if (inp.generation !== undefined && (typeof inp.generation !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(inp.generation))) {
        throw invalidInput('generation must be a short name of letters, digits, dots, dashes or underscores');
      }
      const placement = checkPlacement(inp.placement);
      const file = liveFile(cfg, id);
      if (!instances.isLoaded(id) && !exists(file)) {
        // A marker without its file (the disk was lost or wiped) is dropped: the workflow recovers the file.
        if (instances.isOpen(id)) instances.close(id, { checkpoint: false });
        throw ApplicationFailure.nonRetryable(`workspace '${id}' has no local file on host '${cfg.hostId}' (${file})`, 'SourceMissing');
      }
      try {
        instances.open(id, { clearTmp: inp.clearTmp, ...(placement !== undefined ? { placement } : {}) });
        // The workflow itself placed it here: served under this placement until the lease next lapses.
        f.fence?.confirm(id);
      } catch (err) {
        if (err instanceof VfsError) throw ApplicationFailure.nonRetryable(`workspace '${id}': ${err.message}`, 'IntegrityError');
        throw err;
      }
      faultPoint('startInstance:after-open');
      let replicaUrl: string | null = null;
      if (typeof inp.generation === 'string') {
        replicaUrl = replication.urlFor(id, inp.generation);
        if (replicaUrl) {
          // Same generation again (a retry, or a resume on this host): replication simply continues.
          if (replication.current(id) !== replicaUrl) await replication.forget(id);
          await replication.start(id, replicaUrl);
        }
      } else {
        replicaUrl = replication.current(id);
      }
      return { ...(await localResult(f, id)), replicaUrl };
    },

    async stopIfIdle(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const idleForMs = inp.idleForMs;
      if (typeof idleForMs !== 'number' || !Number.isFinite(idleForMs) || idleForMs < 0) {
        throw invalidInput('idleForMs must be a non-negative number of milliseconds');
      }
      // Only an open instance can have been used lately; a closed one (a retry after the stop) is stopped again.
      if (instances.isOpen(id)) {
        const idleMs = await instances.idleMs(id);
        if (idleMs !== null && idleMs < idleForMs) return { stopped: false, idleMs };
      }
      return { stopped: true, ...(await acts.stopInstance({ workspaceId: id })) };
    },

    async stopInstance(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const file = liveFile(cfg, id);
      const replicated = replication.current(id) !== null;
      const idleMs = await instances.idleMs(id);
      // While replicated, Litestream owns checkpoints: close without one, flush the replica, then fold the WAL.
      instances.close(id, { checkpoint: !replicated });
      faultPoint('stopInstance:after-close');
      const replicaSynced = replicated ? await replication.stop(id) : false;
      if (!exists(file)) {
        throw ApplicationFailure.nonRetryable(`workspace '${id}' has no local file on host '${cfg.hostId}' (${file})`, 'SourceMissing');
      }
      if (replicated) foldLocalFile(id, file);
      return { ...(await localResult(f, id)), replicaSynced, idleMs };
    },

    async lastAccess(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      // Reported as an age too: the workflow applies it to its own clock, so host clock skew does not matter.
      return { lastAccessAt: instances.lastAccess(id), idleMs: await instances.idleMs(id), open: instances.isOpen(id) };
    },

    async removeLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const file = liveFile(cfg, id);
      try {
        instances.close(id, { checkpoint: replication.current(id) === null });
      } catch {
        // a broken file is still removed
      }
      await replication.forget(id);
      const removed = await rmAll(withJournals(file));
      faultPoint('removeLocal:after-remove-file');
      await rmAll([activeMarkerPath(cfg, id), verifiedPath(cfg, id), releasedPath(cfg, id), placementPath(cfg, id)]);
      f.fence?.forget(id);
      // Temporaries of copies of this workspace that never finished.
      const prefix = `.${path.basename(file)}.`;
      const temps = (await fs.promises.readdir(live).catch(() => [] as string[])).filter((n) => n.startsWith(prefix) && n.includes('.partial'));
      await rmAll(temps.map((n) => path.join(live, n)));
      if (exists(live)) await fsyncDir(live);
      return { removed };
    },
  };
  return acts;
}
