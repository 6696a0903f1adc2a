/**
 * The data plane's wire shapes, shared by every host's data server and every client: the placement header, a file
 * entry, and the progress a long copy reports in its heartbeats.
 */
import type { State } from '../lifecycle';

/** The header data requests carry the workspace's placement in (a host refuses any other; `wake` returns it). */
export const PLACEMENT_HEADER = 'x-workbooks-placement';

/** One file of a volume, as the data server lists and returns it after a write. */
export interface FileInfo {
  volume: 'workspace' | 'memory' | 'tmp';
  path: string;
  bytes: number;
  updatedAt: number;
}

/** One workspace as `list` returns it (from visibility: search attributes, no query). */
export interface ListedWorkspace {
  workspaceId: string;
  tenant: string;
  state: State;
  host: string | null;
  startedAt: string;
  /** When it was last used, as of its last state change (null for workspaces started by older builds). */
  lastActiveAt: string | null;
}

/**
 * Heartbeat details of long copies (host and storage activities). Only the latest one is kept, in the pending
 * activity's description (never in workflow history); the CLI's progress bar reads it from there.
 */
export interface CopyHeartbeat {
  /** Bytes of the current phase done so far. */
  bytesCopied: number;
  /**
   * What the activity is doing: fold, hash, copy (upload or download), verify (re-read of the stored copy),
   * integrity (SQLite check of the restored copy), clone, backup, restore (from a replica).
   */
  phase: string;
  /** Bytes the current phase will handle in all, when known (file or object size). */
  bytesTotal?: number;
}

/**
 * Replication health of an active workspace, as its holding host sees it (`GET /workspaces/:id/replication` on
 * the host's data server): ok, lagging (the replica is further behind than the host's bound), failing (the
 * replica store refused or could not be reached since the last successful sync, or the host's replication daemon
 * does not answer), off (not replicated here: replication switched off, or the workspace is not replicated yet).
 */
export const REPLICATION_STATES = ['ok', 'lagging', 'failing', 'off'] as const;
export type ReplicationState = (typeof REPLICATION_STATES)[number];

export interface ReplicationHealth {
  state: ReplicationState;
  /**
   * Seconds since the replica last held every committed write (the daemon's last successful sync; before the
   * first one, since the workspace was registered); null when not replicated.
   */
  lagSeconds: number | null;
  /** The newest replication failure, when it came after the last successful sync (internals: paths, URLs). */
  lastError?: string;
  /** When the host last asked its replication daemon (ISO). */
  checkedAt: string;
}

/** What clients show: the host's answer, or `unknown` when the holding host did not answer in time. */
export type ReplicationView = Omit<ReplicationHealth, 'state'> & { state: ReplicationState | 'unknown' };

/** A host's answer checked (a client trusts nothing it reads off the network); throws when it is not one. */
export function checkReplicationHealth(raw: unknown): ReplicationHealth {
  const r = raw as Partial<Record<keyof ReplicationHealth, unknown>> | null;
  if (!r || typeof r !== 'object') throw new Error('replication health: not an object');
  if (!REPLICATION_STATES.includes(r.state as ReplicationState)) throw new Error('replication health: unknown state');
  if (!(r.lagSeconds === null || (typeof r.lagSeconds === 'number' && Number.isFinite(r.lagSeconds) && r.lagSeconds >= 0))) {
    throw new Error('replication health: bad lagSeconds');
  }
  if (typeof r.checkedAt !== 'string' || !Number.isFinite(Date.parse(r.checkedAt))) throw new Error('replication health: bad checkedAt');
  if (r.lastError !== undefined && typeof r.lastError !== 'string') throw new Error('replication health: bad lastError');
  return {
    state: r.state as ReplicationState,
    lagSeconds: r.lagSeconds as number | null,
    ...(typeof r.lastError === 'string' ? { lastError: r.lastError.slice(0, 1000) } : {}),
    checkedAt: r.checkedAt,
  };
}

/**
 * What a host tells a workspace's workflow about its replica (the `replicationHealth` signal): the health of the
 * replica it ships, from the host that holds the file. Sent when the state changes (see host/replication-warnings.ts).
 */
export interface ReplicationReport extends ReplicationHealth {
  host: string;
  /** The lag bound (seconds) the host judges `lagging` by. */
  boundSeconds: number;
}

/** A report checked (a signal's payload is trusted no more than a network answer); throws when it is not one. */
export function checkReplicationReport(raw: unknown): ReplicationReport {
  const health = checkReplicationHealth(raw);
  const r = raw as { host?: unknown; boundSeconds?: unknown };
  if (typeof r.host !== 'string' || r.host.length === 0 || r.host.length > 200) throw new Error('replication report: bad host');
  if (typeof r.boundSeconds !== 'number' || !Number.isFinite(r.boundSeconds) || r.boundSeconds <= 0) throw new Error('replication report: bad boundSeconds');
  return { ...health, host: r.host, boundSeconds: r.boundSeconds };
}
