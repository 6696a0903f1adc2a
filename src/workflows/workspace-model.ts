/**
 * The workflow's in-memory model of one workspace: state, where its bytes are, and the ledger tail.
 * Pure data and pure helpers (deterministic; no I/O, no clock of its own: callers pass `now`).
 */
import { Policy, State, formatPolicy, idleDeadline, rungFor } from '../lifecycle';
import type { Actor, CarriedState, HostInfo, LedgerEntry, LedgerOutcome, StoredCopy, WorkspaceDescription, WorkspaceInput } from '../contract/types';

/** How many ledger entries travel across continue-as-new and show in `describe`. */
export const LEDGER_KEEP = 100;
export const MAX_REASON = 500;
export const MAX_BY = 100;

export class WorkspaceModel {
  state: State;
  createdAt: string;
  stateSince: string;
  lastActiveAt: string;
  host: HostInfo | null;
  filePath: string | null;
  prefetched: CarriedState['prefetched'];
  cold: StoredCopy | null;
  archive: StoredCopy | null;
  ledger: LedgerEntry[];
  runs: number;
  busy: { to: State; since: string } | null = null;

  constructor(
    readonly input: WorkspaceInput,
    readonly policy: Policy,
    now: number,
  ) {
    const c = input.carried;
    const t = new Date(now).toISOString();
    this.state = c?.state ?? 'created';
    this.createdAt = c?.createdAt ?? t;
    this.stateSince = c?.stateSince ?? t;
    this.lastActiveAt = c?.lastActiveAt ?? t;
    this.host = c?.host ?? null;
    this.filePath = c?.filePath ?? null;
    this.prefetched = c?.prefetched ?? null;
    this.cold = c?.cold ?? null;
    this.archive = c?.archive ?? null;
    this.ledger = c?.ledger ? c.ledger.slice(-LEDGER_KEEP) : [];
    this.runs = (c?.runs ?? 0) + (c ? 1 : 0);
  }

  record(from: State, to: State, actor: Actor, outcome: LedgerOutcome, now: number, detail?: string): LedgerEntry {
    const entry: LedgerEntry = {
      from,
      to,
      at: new Date(now).toISOString(),
      reason: clip(actor.reason, MAX_REASON) ?? '',
      by: clip(actor.by, MAX_BY) ?? '',
      outcome,
      ...(detail ? { detail: clip(detail, MAX_REASON) } : {}),
    };
    this.ledger.push(entry);
    if (this.ledger.length > LEDGER_KEEP) this.ledger.splice(0, this.ledger.length - LEDGER_KEEP);
    return entry;
  }

  moveTo(to: State, now: number): void {
    this.state = to;
    this.stateSince = new Date(now).toISOString();
    if (to === 'active') this.lastActiveAt = this.stateSince;
  }

  /** Idle since the later of the last known access and the moment the current state began. */
  idleSince(): number {
    return Math.max(Date.parse(this.lastActiveAt), Date.parse(this.stateSince));
  }

  deadline(): { at: number; to: State } | null {
    const at = idleDeadline(this.state, this.idleSince(), this.policy);
    const rung = rungFor(this.state, this.policy);
    return at === null || rung === null ? null : { at, to: rung.to };
  }

  carry(): CarriedState {
    return {
      state: this.state,
      createdAt: this.createdAt,
      stateSince: this.stateSince,
      lastActiveAt: this.lastActiveAt,
      host: this.host,
      filePath: this.filePath,
      prefetched: this.prefetched,
      cold: this.cold,
      archive: this.archive,
      ledger: this.ledger.slice(-LEDGER_KEEP),
      runs: this.runs,
    };
  }

  describe(pendingCommands: number): WorkspaceDescription {
    const d = this.deadline();
    return {
      workspaceId: this.input.workspaceId,
      tenant: this.input.tenant,
      template: this.input.template ?? null,
      state: this.state,
      createdAt: this.createdAt,
      stateSince: this.stateSince,
      lastActiveAt: this.lastActiveAt,
      host: this.host?.host ?? null,
      endpoint: this.host?.endpoint ?? null,
      filePath: this.filePath,
      cold: this.cold,
      archive: this.archive,
      prefetched: this.prefetched ? { host: this.prefetched.host.host, filePath: this.prefetched.filePath } : null,
      policy: formatPolicy(this.policy),
      nextAutoAt: d ? new Date(d.at).toISOString() : null,
      nextAutoTo: d ? d.to : null,
      busy: this.busy,
      pendingCommands,
      ledger: this.ledger.slice(),
      runs: this.runs,
    };
  }

  /** One readable block for the Temporal Web UI. */
  details(): string {
    const lines = [
      `**${this.input.workspaceId}** (tenant \`${this.input.tenant}\`) is **${this.state}** since ${this.stateSince}`,
      this.host ? `host: \`${this.host.host}\`, file: \`${this.filePath ?? '-'}\`` : 'host: none (no local file)',
      this.cold ? `cold copy: ${this.cold.url} (${this.cold.bytes} bytes, sha256 ${this.cold.sha256.slice(0, 12)}…)` : 'cold copy: none',
      this.archive ? `archive: ${this.archive.url} (${this.archive.bytes} bytes)` : '',
    ];
    const d = this.deadline();
    if (d) lines.push(`next: ${d.to} at ${new Date(d.at).toISOString()} if idle`);
    const last = this.ledger[this.ledger.length - 1];
    if (last) lines.push(`last move: ${last.from} → ${last.to} ${last.outcome} at ${last.at}${last.reason ? ` (${last.reason})` : ''}`);
    return lines.filter(Boolean).join('\n\n');
  }
}

/** Signals accept anything; keep only well-formed actor fields, clipped. */
export function sanitizeActor(raw: unknown): Actor {
  if (!raw || typeof raw !== 'object') return {};
  const r = raw as Record<string, unknown>;
  return {
    reason: typeof r.reason === 'string' ? clip(r.reason, MAX_REASON) : undefined,
    by: typeof r.by === 'string' ? clip(r.by, MAX_BY) : undefined,
  };
}

function clip(s: string | undefined, n: number): string | undefined {
  if (s === undefined) return undefined;
  return s.length > n ? s.slice(0, n - 1) + '…' : s;
}
