/**
 * The activity interfaces the workflow calls. Two groups:
 * - SharedActivities run on the shared task queue (any host): they never touch a local workspace file.
 * - HostActivities run on one host's own queue (`<taskQueue>@<host>`): they touch files on that host.
 * Every input carries the workspace id; none carries workspace bytes or secrets.
 */
import type { HostInfo, LedgerEntry, Placement, StoredCopy } from '../contract/types';
import type { State } from '../lifecycle';
import type { Volume } from '../vfs/volumes';

/** Where a template's bytes can be read from, as resolved from the template workflow. */
export type TemplateSource = (
  | { kind: 'local'; templateId: string; host: HostInfo; filePath: string; open: boolean }
  | { kind: 'stored'; templateId: string; copy: StoredCopy }
  /** A replica generation of the source, restored at `at` (ISO) or at its newest point. */
  | { kind: 'replica'; templateId: string; replicaUrl: string; at?: string }
) & {
  /**
   * The volumes the new file keeps (volumesKeptOnCopy of the source's and the new workspace's tenants). Absent
   * from sources resolved by older builds: provision then decides from the two keys' tenant parts.
   */
  keep?: Volume[];
};

/** Heartbeat details of long copies: a wire shape (the client reads them), defined in the contract. */
export type { CopyHeartbeat } from '../contract/data-plane';

/** A source a lost or unreadable file can be restored from, newest data first. */
export type RecoverySource = { kind: 'replica'; replicaUrl: string } | { kind: 'stored'; copy: StoredCopy };

/** What a recovery used: one of the sources, or the newer local file of the last placement (kept, not replaced). */
export type UsedSource = RecoverySource | { kind: 'local'; placement: number };

/**
 * Activities a host registers on its workflow worker, to run as local activities inside a workflow task: they act
 * only when this worker's host holds the workspace, and otherwise answer `here: false` (the workflow then schedules
 * the host activity on the holder's queue).
 */
export interface LocalHostActivities {
  /**
   * The idle ladder's stopIfIdle, run by the holder itself when it is the worker running the workflow task: only if
   * `host` is this host and it serves the workspace under `placement`, confirmed since its lease last lapsed.
   */
  stopIfIdleHere(input: { workspaceId: string; idleForMs: number; host: string; placement: number }): Promise<
    | { here: false; why: string }
    | ({ here: true } & Awaited<ReturnType<HostActivities['stopIfIdle']>>)
  >;
}

export interface SharedActivities {
  /** Returns the host of whichever worker picked this task up: a live host for a new or restored file. */
  pickHost(): Promise<HostInfo>;
  /** Finds where a template workspace's file is; refuses missing, deleted or mid-move templates. */
  resolveTemplate(input: { templateId: string; forWorkspace: string; forTenant?: string }): Promise<TemplateSource>;
  /** Moves the cold copy to the archive location (copy, verify, then delete the cold object). */
  archiveColdCopy(input: { workspaceId: string; cold: StoredCopy }): Promise<StoredCopy>;
  /**
   * Deletes stored copies (cold and archive) and, with `replicas` (the workspace's delete), the workspace's replica
   * generations and everything else under its replica root, and what unfinished uploads of its copies left in the
   * configured cold and archive stores and in the copies' stores (S3 multipart uploads aborted, file:// temporaries
   * removed: `unfinished` counts them); missing objects are fine.
   */
  deleteStoredCopies(input: { workspaceId: string; copies: StoredCopy[]; replicas?: string[] }): Promise<{ deleted: number; unfinished?: number }>;
  /** Writes page `page` of the workspace's complete ledger to the cold store (src/storage/ledger-archive.ts). Idempotent. */
  archiveLedger(input: { workspaceId: string; page: number; entries: LedgerEntry[] }): Promise<{ page: number; entries: number }>;
  /** Deletes these replica generations of the workspace (exact generation URLs; missing ones are fine). */
  deleteReplicaGenerations(input: { workspaceId: string; replicas: string[] }): Promise<{ deleted: number }>;
  /**
   * Whether a host's queue has been polled in the last `withinSeconds` (Temporal's task queue description):
   * tells a dead host from a busy one after a task waited too long.
   */
  hostAlive(input: { taskQueue: string; withinSeconds: number }): Promise<{ alive: boolean; lastPollAt: string | null }>;
  /**
   * Where to restore another workspace's state at `at` from (point-in-time restore into a new workspace): the
   * replica generation covering `at`, or its newest data when `at` is absent.
   */
  resolveRestorePoint(input: { sourceId: string; at?: string; forWorkspace: string; forTenant?: string }): Promise<TemplateSource>;
}

export interface HostActivities {
  /** Creates the workspace's local file: empty, or a copy of a template (tmp cleared, memory too across tenants). Idempotent. */
  provision(input: { workspaceId: string; template?: TemplateSource }): Promise<{ host: HostInfo; filePath: string; bytes: number }>;
  /**
   * Opens the VFS on this host; `clearTmp` on every resume. With `generation`, the file is replicated while
   * open, to `<replica URL>/<workspace>/<generation>` (returned as `replicaUrl`; null when this host does not
   * replicate). Idempotent.
   */
  startInstance(input: {
    workspaceId: string;
    clearTmp: boolean;
    generation?: string;
    /**
     * The placement this host serves the workspace under from now on: data requests must carry it, and the
     * host refuses any other (absent from workflows of older builds: the instance then takes any).
     */
    placement?: number;
  }): Promise<{
    host: HostInfo;
    filePath: string;
    bytes: number;
    replicaUrl: string | null;
  }>;
  /**
   * Closes the VFS, then flushes its last writes to the replica and stops replicating it; the file stays on
   * local disk. Idempotent.
   */
  /** Closes the workspace; `idleMs` is how long ago its last data request was (null if none since it opened). */
  stopInstance(input: { workspaceId: string }): Promise<{ host: HostInfo; filePath: string; bytes: number; replicaSynced: boolean; idleMs?: number | null }>;
  /**
   * The idle ladder's check and stop in one task: when the instance saw a data request less than `idleForMs` ago,
   * it stays open and the answer says how long ago (`stopped: false`); otherwise it is stopped as by stopInstance.
   * Idempotent (a retry after the stop finds it closed and stops it again).
   */
  stopIfIdle(input: { workspaceId: string; idleForMs: number }): Promise<
    | { stopped: false; idleMs: number }
    | { stopped: true; host: HostInfo; filePath: string; bytes: number; replicaSynced: boolean; idleMs?: number | null }
  >;
  /**
   * The last read/write the host saw (epoch ms, host clock) and how long ago that was, or nulls if it saw none
   * since it started. The workflow uses `idleMs` against its own clock.
   */
  lastAccess(input: { workspaceId: string }): Promise<{ lastAccessAt: number | null; idleMs: number | null; open: boolean }>;
  /**
   * Copies the stopped local file to cold storage or the archive under a content-addressed key: fold the WAL,
   * hash, upload, then prove the object restorable: its bytes read back to the file's sha256 (file://: inside the
   * put; other stores: a streamed re-hash) and SQLite's full integrity check passes on those bytes (run on the
   * unchanged local file alongside the copy); only then is the local copy released. A copy that does not verify is deleted and fails with VerifyFailed, the local file untouched.
   * Idempotent.
   */
  storeLocal(input: { workspaceId: string; target: 'cold' | 'archive' }): Promise<StoredCopy>;
  /**
   * Makes a stored copy local on this host: copy under a temporary name, verify sha256, rename.
   * Skips the copy if a verified copy of the same object is already here (prefetched). Idempotent.
   */
  restoreLocal(input: { workspaceId: string; copy: StoredCopy }): Promise<{ host: HostInfo; filePath: string; bytes: number }>;
  /**
   * Makes the newest data of a lost or unreadable file local on this host from the first source that yields a
   * file passing SQLite's integrity check (replica restored with Litestream, or a stored copy verified by
   * sha256). Returns which source was used and why others were skipped. Idempotent.
   */
  recoverLocal(input: {
    workspaceId: string;
    sources: RecoverySource[];
    /**
     * The workspace's last placement. If this host is that placement's host and its local file is of that
     * placement, the file holds the newest data: it is kept (integrity-checked) and no source is restored. Any
     * other local file is set aside in orphans/, never overwritten.
     */
    keep?: Placement | null;
    /** The placement the recovered file is recorded under on this host. */
    placement?: number;
  }): Promise<{
    host: HostInfo;
    filePath: string;
    bytes: number;
    used: UsedSource;
    skipped: string[];
  }>;
  /** Removes this host's local copy of the workspace (file, WAL, markers). Idempotent. */
  removeLocal(input: { workspaceId: string }): Promise<{ removed: boolean }>;
}

/** The host's liveness worker: its own queue and slots (see livenessTaskQueue). */
export interface LivenessActivities {
  /** Answers at once: the host is alive and can reach the cluster. */
  ping(): Promise<{ host: string; at: number }>;
}

export type { State };
