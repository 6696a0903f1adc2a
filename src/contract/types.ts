import type { PolicySpec, State } from '../lifecycle';

/** The JSON input that starts a `workspace` workflow. */
export interface WorkspaceInput {
  workspaceId: string;
  tenant: string;
  /** Id of a workspace whose file this one starts as a copy of (the template is never written). */
  template?: string;
  policy?: PolicySpec;
  /** Internal: state carried across continue-as-new. Other services never set it. */
  carried?: CarriedState;
  /** Internal tuning: continue-as-new once history reaches this many events (default 2,000). */
  historyLimit?: number;

}

/** Who asked for a move and why; optional on every signal and update. */
export interface Actor {
  reason?: string;
  by?: string;
}

export type LedgerOutcome = 'done' | 'refused' | 'failed';

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
}

export interface CarriedState {
  state: State;
  createdAt: string;
  stateSince: string;
  lastActiveAt: string;
  host: HostInfo | null;
  filePath: string | null;
  /** A local copy prefetched while frozen or archived: which host holds it and which copy it matches. */
  prefetched: { host: HostInfo; filePath: string; sha256: string } | null;
  cold: StoredCopy | null;
  archive: StoredCopy | null;
  ledger: LedgerEntry[];
  runs: number;
}

/** What the `describe` query returns. */
export interface WorkspaceDescription {
  workspaceId: string;
  tenant: string;
  template: string | null;
  state: State;
  createdAt: string;
  stateSince: string;
  lastActiveAt: string;
  host: string | null;
  endpoint: string | null;
  filePath: string | null;
  cold: StoredCopy | null;
  archive: StoredCopy | null;
  prefetched: { host: string; filePath: string } | null;
  policy: Required<PolicySpec>;
  /** The idle deadline of the current rung (ISO time), if any. */
  nextAutoAt: string | null;
  nextAutoTo: State | null;
  /** A move in progress, if any. */
  busy: { to: State; since: string } | null;
  pendingCommands: number;
  ledger: LedgerEntry[];
  runs: number;
}

/** What the `wake` update returns: the workspace is active and here is where it lives. */
export interface WakeResult {
  state: 'active';
  host: string;
  endpoint: string;
  filePath: string;
  /** warm: it was already active; local: opened its file on disk; cold: copied from cold storage or archive first. */
  path: 'warm' | 'local' | 'cold';
}

export interface TransitionRequest extends Actor {
  to: State;
}

export interface TransitionResultPayload {
  from: State;
  state: State;
}
