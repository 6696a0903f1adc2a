import type { PolicySpec, State } from '../lifecycle';
import type { ShareWith, TemplateRole } from './template-role';

export type { ShareWith, TemplateRole } from './template-role';

/** The JSON input that starts a `workspace` workflow. */
export interface WorkspaceInput {
  workspaceId: string;
  tenant: string;
  /** Id of a workspace whose file this one starts as a copy of (the template is never written). */
  template?: string;
  policy?: PolicySpec;
  /** Internal: state carried across continue-as-new. Other services never set it. */
  carried?: CarriedState;
  /**
   * Start as a copy of another workspace's replicated state at a point in time (`at`, ISO; default: its newest
   * data). The source workspace is only read. Mutually exclusive with `template`.
   */
  restoreFrom?: RestoreFrom;
  /** Internal tuning: continue-as-new once history reaches this many events (default 2,000). */
  historyLimit?: number;
  /**
   * Internal tuning: seconds a host may leave a file task unclaimed before it is checked for liveness (default
   * 30). A host that has not polled its queue in that time is treated as gone and its workspace is recovered.
   */
  hostTimeoutSeconds?: number;
  /**
   * Replica generations kept (1–20, default 3): at each freeze and archive, stopped generations beyond the newest
   * this many are deleted from the replica store (runs started by older builds keep them until the delete).
   */
  replicaGenerations?: number;
  /**
   * How long a prefetched copy of a frozen or archived workspace waits for a wake before its host removes it (a
   * duration such as `24h`, `30m`, or seconds; 1 s to 10 years; default 24h). Runs started by older builds keep it
   * until the next wake, archive or delete.
   */
  prefetchKeep?: string | number;
}

export interface RestoreFrom {
  workspaceId: string;
  at?: string;
}

/**
 * One replica generation: the continuous Litestream replica of the workspace's file during one stretch of
 * activity on one host (a new generation starts whenever the file came from somewhere else).
 */
export interface ReplicaGeneration {
  url: string;
  host: string;
  /** When replication of this generation started (workflow time). */
  from: string;
  /** When it was stopped after a final sync, or null while it runs (or if its host was lost). */
  to: string | null;
}

/** Who asked for a move and why; optional on every signal and update. */
export interface Actor {
  reason?: string;
  by?: string;
}

/** The `wake` update's argument: an Actor, plus `check` to confirm an active workspace's host still serves it. */
export interface WakeRequest extends Actor {
  /**
   * Confirm that the host holding an active workspace answers and still has its file (one short activity); if
   * not, the workspace is recovered on a live host from its newest replica or cold copy. Clients set it after a
   * data request to the returned endpoint failed.
   */
  check?: boolean;
}

/** A replica the ledger warned of: how it was, and since when (ISO). */
export interface ReplicaWarning {
  state: 'lagging' | 'failing';
  since: string;
}

/** `warning`: not a move; something the operator should know (a replica fell behind its bound). */
export type LedgerOutcome = 'done' | 'refused' | 'failed' | 'warning';

/** One line of the ledger: every move attempted, whether it happened, refused or failed. */
export interface LedgerEntry {
  from: State;
  to: State;
  at: string;
  reason: string;
  by: string;
  outcome: LedgerOutcome;
  /** Why a move was refused or failed; what a done move used (e.g. `restored from cold`). */
  detail?: string;
}

/** A verified copy of the workspace file in a blob store (cold or archive). */
export interface StoredCopy {
  url: string;
  sha256: string;
  bytes: number;
  at: string;
}

/** Where a host can be reached. */
export interface HostInfo {
  host: string;
  taskQueue: string;
  /** Base URL of the host's data server (files of the workspaces it holds). */
  endpoint: string;
  /**
   * How long (ms) the host keeps serving after its last confirmed contact with the Temporal cluster (its lease);
   * the workflow declares the host gone only after a liveness window longer than this. Absent from hosts of
   * older builds, which have no liveness queue.
   */
  leaseMs?: number;
}

/** Which host a workspace's file was last placed on, and under which placement number. */
export interface Placement {
  host: string;
  placement: number;
}

export interface CarriedState {
  state: State;
  createdAt: string;
  stateSince: string;
  lastActiveAt: string;
  host: HostInfo | null;
  filePath: string | null;
  /**
   * A local copy prefetched while frozen or archived: which host holds it, which copy it matches, and when it was
   * made (`at`, absent in state carried by older builds).
   */
  prefetched: { host: HostInfo; filePath: string; sha256: string; at?: string } | null;
  /** The replica's health the ledger last warned of while active (absent: none, or an older build). */
  replicaWarning?: ReplicaWarning | null;
  cold: StoredCopy | null;
  archive: StoredCopy | null;
  ledger: LedgerEntry[];
  runs: number;
  /** Replica generations, newest last (absent in state carried by older builds). */
  replicas?: ReplicaGeneration[];
  /** Counter of replica generations started. */
  generation?: number;
  /** Stable token of this workspace's life (replica paths); from the first run id. */
  epoch?: string;
  /** Idle-ladder backoff after failed moves. */
  policyRetryAt?: number | null;
  policyFailures?: number;
  /** Placement counter: bumped each time the file is opened on a host (absent in state carried by older builds). */
  placement?: number;
  /** The last placement made, kept when the host is lost (recovery keeps a newer local file it finds there). */
  lastPlacement?: Placement | null;
  /** Published as a template (absent in state carried by older builds: not published). */
  published?: TemplateRole | null;
  /**
   * The complete ledger's bookkeeping (src/storage/ledger-archive.ts): entries recorded, entries written to the
   * cold store, pages written (absent in state carried by older builds).
   */
  ledgerArchive?: { recorded: number; archived: number; pages: number };
}

/** What the `describe` query returns. */
export interface WorkspaceDescription {
  workspaceId: string;
  tenant: string;
  template: string | null;
  /** Published as a template (src/contract/template-role.ts): frozen, read-only, clonable by `shareWith` (absent from older workers). */
  published?: TemplateRole | null;
  state: State;
  createdAt: string;
  stateSince: string;
  lastActiveAt: string;
  host: string | null;
  endpoint: string | null;
  /**
   * The placement the active workspace's host serves it under: data requests carry it
   * (`x-workbooks-placement`) and a host refuses any other. Null when no host holds it open.
   */
  placement: number | null;
  filePath: string | null;
  cold: StoredCopy | null;
  archive: StoredCopy | null;
  /** A verified local copy of a frozen or archived workspace (`sha256`: the stored copy it matches; absent from older workers). */
  prefetched: { host: string; filePath: string; sha256?: string; expiresAt?: string | null } | null;
  /** Replica generations, newest last: what point-in-time restore can reach. */
  replicas: ReplicaGeneration[];
  restoredFrom: RestoreFrom | null;
  policy: Required<PolicySpec>;
  /** The idle deadline of the current rung (ISO time), if any. */
  nextAutoAt: string | null;
  nextAutoTo: State | null;
  /** A move in progress, if any. */
  busy: { to: State; since: string } | null;
  pendingCommands: number;
  ledger: LedgerEntry[];
  runs: number;
  /** The complete ledger's bookkeeping (entries recorded, written to the cold store, pages); absent from older workers. */
  ledgerArchive?: { recorded: number; archived: number; pages: number };
}

/** What the `wake` update returns: the workspace is active and here is where it lives. */
export interface WakeResult {
  state: 'active';
  host: string;
  endpoint: string;
  filePath: string;
  /** The placement to send with data requests (see WorkspaceDescription.placement); absent from older workers. */
  placement?: number;
  /** warm: it was already active; local: opened its file on disk; cold: copied from cold storage or archive first. */
  path: 'warm' | 'local' | 'cold';
}

/**
 * What a `prefetch` did. prefetched: the newest stored copy was downloaded (or copied) to a live host and verified,
 * without starting the workspace; already: that copy was local already (nothing moved); local: the workspace is
 * active or suspended, its file is on its host already; none: nothing to fetch (a new or deleted workspace).
 */
export interface PrefetchResult {
  state: State;
  outcome: 'prefetched' | 'already' | 'local' | 'none';
  /** The host holding the local file, when there is one. */
  host: string | null;
  /** Bytes of the stored copy that is (now) local, when one is. */
  bytes: number | null;
}

/** The `publish` update's argument: who may clone it besides its own tenant ('*': every tenant). */
export interface PublishRequest extends Actor {
  shareWith: ShareWith;
}

export interface TransitionRequest extends Actor {
  to: State;
}

export interface TransitionResultPayload {
  from: State;
  state: State;
}
