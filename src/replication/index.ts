/** Continuous replication of live workspace files with one Litestream 0.5 daemon per host; replica restore and cleanup. */
export { Replicator, ReplicatorOptions, Registration } from './replicator';
export { restoreReplica, replicaInfo, deleteReplica, ReplicaInfo, ReplicaToolOptions, RestorePointError } from './restore';
export { ReplicationError, ReplicaMissingError } from './errors';
export { parseReplicaUrl, localStateDir } from './urls';
