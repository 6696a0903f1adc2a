/**
 * This host's replication (ReplicationPort) over its one Litestream daemon: active workspace files are
 * replicated to `<replicaUrl>/<workspace>/<generation>` while open. The daemon keeps its registry in
 * `<dataDir>/litestream/`, so a restarted worker re-registers what was replicating before it stopped.
 */
import path from 'node:path';
import type { Config } from '../config';
import { liveFile } from './data-dir';
import { Replicator, ReplicatorStatus } from '../replication/replicator';
import { deleteReplica, restoreReplica } from '../replication/restore';
import { NO_REPLICATION, ReplicationPort } from './replication-port';

export interface HostReplication extends ReplicationPort {
  /** Stops the daemon (a final sync of every replicated file, bounded). */
  close(): Promise<void>;
  /** The daemon's pid, for metrics and tests. */
  pid(): number | null;
  /**
   * The daemon itself, for a database that is not a workspace's (`workbooks up` replicates the embedded Temporal
   * server's database with it: src/embedded/control-plane-replica.ts); null when replication is off.
   */
  replicator: Replicator | null;
  /** What the daemon says about every replicated file (never throws), or null when replication is off. */
  status(): Promise<ReplicatorStatus | null>;
}

/** Restores and deletes need no daemon: a host without replication of its own can still recover from replicas. */
const restoreOnly = {
  restore: async (url: string, outFile: string, opts: { at?: string; signal?: AbortSignal } = {}) => {
    const r = await restoreReplica({ replicaUrl: url, outFile, ...(opts.at ? { at: opts.at } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    return { bytes: r.bytes };
  },
  deleteReplica: async (url: string) => {
    await deleteReplica(url);
  },
};

export async function startHostReplication(cfg: Config, log?: (line: string) => void): Promise<HostReplication> {
  if (!cfg.replicaUrl) {
    return { ...NO_REPLICATION, ...restoreOnly, close: async () => undefined, pid: () => null, replicator: null, status: async () => null };
  }
  const base = cfg.replicaUrl;
  const replicator = await Replicator.start({ stateDir: path.join(cfg.dataDir, 'litestream'), retention: cfg.replicaRetention, log });
  const fileOf = (id: string) => liveFile(cfg, id);
  return {
    ...restoreOnly,
    urlFor: (id, generation) => `${base}/${id}/${generation}`,
    start: (id, url) => replicator.register(fileOf(id), url),
    stop: (id) => replicator.unregister(fileOf(id)),
    current: (id) => replicator.replicaUrlOf(fileOf(id)),
    forget: (id) => replicator.resetLocalState(fileOf(id)),
    close: () => replicator.stop(),
    pid: () => replicator.pid(),
    replicator,
    status: () => replicator.status(),
  };
}
