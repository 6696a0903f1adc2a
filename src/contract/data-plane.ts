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
