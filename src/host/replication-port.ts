/**
 * What the host activities need from replication (implemented over the host's one Litestream daemon in
 * ./host-replication.ts). Kept as an interface so activities can run on a host that does not replicate.
 */
export interface ReplicationPort {
  /** The replica URL of one generation of a workspace on this host's replica location, or null if it does not replicate. */
  urlFor(workspaceId: string, generation: string): string | null;
  /** Starts (or keeps) replicating the workspace's live file to `url`; remembered across restarts of the host. */
  start(workspaceId: string, url: string): Promise<void>;
  /** Flushes every committed write to the replica, then stops replicating. False if it was not replicated. */
  stop(workspaceId: string): Promise<boolean>;
  /** The URL the workspace is replicated to from this host, or null. */
  current(workspaceId: string): string | null;
  /** Restores a replica's newest state (or its state at `at`, ISO) into `outFile`, which must not exist; integrity-checked. */
  restore(url: string, outFile: string, opts?: { at?: string; signal?: AbortSignal }): Promise<{ bytes: number }>;
  /** Forgets local replication state of a file that is about to be replaced or removed (stops replicating it first). */
  forget(workspaceId: string): Promise<void>;
  /** Removes a replica and everything under it; missing is fine. */
  deleteReplica(url: string): Promise<void>;
}

/** A replica operation on a host that has no replication. */
export class ReplicationOffError extends Error {
  override name = 'ReplicationOffError';
}

/** Replication that is switched off (WORKBOOKS_REPLICA_URL=off): nothing is replicated, restores are refused. */
export const NO_REPLICATION: ReplicationPort = {
  urlFor: () => null,
  start: async () => undefined,
  stop: async () => false,
  current: () => null,
  restore: async (url) => {
    throw new ReplicationOffError(`cannot restore ${url}: replication is switched off on this host (WORKBOOKS_REPLICA_URL=off)`);
  },
  forget: async () => undefined,
  deleteReplica: async () => undefined,
};
