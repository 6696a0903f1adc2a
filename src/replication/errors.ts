/** Errors of the replication module. Messages never carry credentials (they only ever come from the environment). */

/** Bad input, a daemon that cannot be reached, a Litestream command that failed: the message says which. */
export class ReplicationError extends Error {
  override name = 'ReplicationError';
}

/** The replica URL holds no replicated database at all (nothing to restore, nothing to describe). */
export class ReplicaMissingError extends ReplicationError {
  override name = 'ReplicaMissingError';
  constructor(readonly replicaUrl: string) {
    super(`no replica at ${replicaUrl}: it holds no Litestream backup`);
  }
}

/** A replica restored to a file that fails SQLite's integrity check: restoring it again will not help. */
export class ReplicaCorruptError extends ReplicationError {
  override name = 'ReplicaCorruptError';
}
