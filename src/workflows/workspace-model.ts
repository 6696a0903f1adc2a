/**
 * The workflow's in-memory model of one workspace: state, where its bytes are, and the ledger tail.
 * Pure data and pure helpers (deterministic; no I/O, no clock of its own: callers pass `now`).
 */
import { Policy, State, formatPolicy, idleDeadline, rungFor } from '../lifecycle';
import type { Actor, CarriedState, HostInfo, LedgerEntry, LedgerOutcome, Placement, ReplicaGeneration, ReplicaWarning, StoredCopy, TemplateRole, WorkspaceDescription, WorkspaceInput } from '../contract/types';
import type { ReplicationReport } from '../contract/data-plane';

/** How many ledger entries travel across continue-as-new and show in `describe`. */
export const LEDGER_KEEP = 100;
export const MAX_REASON = 500;
export const MAX_BY = 100;
/** How many replica generations are remembered (point-in-time restore reaches back through these). */
export const REPLICAS_KEEP = 20;

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
  replicas: ReplicaGeneration[];
  generation: number;
  /** Stable token of this workspace's life: keeps replica paths of a re-created workspace apart. */
  readonly epoch: string;
  busy: { to: State; since: string } | null = null;
  /** After an idle-ladder move failed: not before this time (epoch ms) again, and how many failed in a row. */
  policyRetryAt: number | null;
  policyFailures: number;
  /** Placements made so far (the next one is this + 1). */
  placementCount: number;
  /**
   * The last placement made: the host that holds (or last held) the workspace's newest file, under which number.
   * Kept when the host is lost, so a recovery on that same host keeps the file it finds there; cleared once
   * the file is released after a verified copy.
   */
  lastPlacement: Placement | null;
  /**
   * Temporal task priority (1 first … 5 last) of the activities the running move schedules: user-facing moves
   * ahead of the idle ladder's on a host's queue. Undefined: no priority (runs from before priorities, replay).
   */
  priorityKey: number | undefined = undefined;
  /** This run makes cheap moves (the `cheap-moves` patch): e.g. a host is picked by a local activity. */
  cheapMoves = false;
  /** This run lets the holder stop an idle workspace inside the workflow task (the `local-stop` patch). */
  localStop = false;
  /** Published as a template: frozen, read-only, off the idle ladder (src/contract/template-role.ts). */
  published: TemplateRole | null;
  /** The replica's health the ledger last warned of (cleared when it caught up or the workspace stopped). */
  replicaWarning: ReplicaWarning | null;
  /** Prefetch expiry (runs with the `prefetch-expiry` patch): keep (ms) and when this run started. */
  prefetchKeep: { ms: number; runStart: number } | null = null;
  /** After a failed removal of an expired prefetched copy: not before this time (epoch ms) again. */
  private prefetchRetryAt: number | null = null;
  /** Ledger entries recorded, written to the cold store, and pages written (src/storage/ledger-archive.ts). */
  ledgerArchive: { recorded: number; archived: number; pages: number };

  /** `epoch`: used when nothing is carried (a new workspace), e.g. the start of the first run id. */
  constructor(
    readonly input: WorkspaceInput,
    readonly policy: Policy,
    now: number,
    epoch = 'e0',
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
    this.published = c?.published ?? null;
    this.replicaWarning = c?.replicaWarning ?? null;
    // Runs carried from builds before the complete ledger: what is still in the ledger tail is all there is to write.
    this.ledgerArchive = c?.ledgerArchive ? { ...c.ledgerArchive } : { recorded: c?.ledger ? Math.min(c.ledger.length, LEDGER_KEEP) : 0, archived: 0, pages: 0 };
    this.cold = c?.cold ?? null;
    this.archive = c?.archive ?? null;
    this.ledger = c?.ledger ? c.ledger.slice(-LEDGER_KEEP) : [];
    this.runs = (c?.runs ?? 0) + (c ? 1 : 0);
    this.replicas = c?.replicas ? c.replicas.slice(-REPLICAS_KEEP) : [];
    this.generation = c?.generation ?? 0;
    this.epoch = c?.epoch ?? epoch;
    this.policyRetryAt = c?.policyRetryAt ?? null;
    this.policyFailures = c?.policyFailures ?? 0;
    this.placementCount = c?.placement ?? 0;
    this.lastPlacement = c?.lastPlacement ?? null;
  }

  // ---- where the file is: the only writers of host, filePath and the placement ----

  /** A number for a new placement of the file (a start on a host after anything else happened). */
  nextPlacement(): number {
    this.placementCount += 1;
    return this.placementCount;
  }

  /** The placement to confirm on `host` (a check of an active workspace), or a new one if it holds none. */
  placementFor(host: HostInfo): number {
    return this.lastPlacement && this.lastPlacement.host === host.host ? this.lastPlacement.placement : this.nextPlacement();
  }

  /** The file is open (or about to be) on `host` under `placement`. */
  placeOn(host: HostInfo, filePath: string, placement: number): void {
    this.host = host;
    this.filePath = filePath;
    this.lastPlacement = { host: host.host, placement };
  }

  /** The host holding the file reports where the file now is (after a stop). */
  fileAt(filePath: string): void {
    this.filePath = filePath;
  }


  /**
   * The host holding the file is gone (or its file is unusable): no host now. `lastPlacement` stays, so a
   * recovery that lands on that host again keeps the newer file it finds there instead of overwriting it.
   */
  loseHost(): void {
    this.host = null;
    this.filePath = null;
  }

  /** A verified stored copy now holds everything: the local file was released on purpose. */
  releaseLocal(): void {
    this.host = null;
    this.filePath = null;
    this.lastPlacement = null;
  }

  /** A stored copy was restored on `host` at `now` ahead of a wake (not opened; no placement). */
  prefetchedOn(host: HostInfo, filePath: string, sha256: string, now: number): void {
    this.prefetched = { host, filePath, sha256, at: new Date(now).toISOString() };
    this.prefetchRetryAt = null;
  }

  /** The prefetched copy was used, removed or found unusable. */
  dropPrefetch(): void {
    this.prefetched = null;
    this.prefetchRetryAt = null;
  }

  /**
   * When the prefetched copy is removed unless a wake uses it first (epoch ms; null: no copy, or a run without
   * expiry): its keep after it was made (a copy carried from an older build, with no time, counts from the run's
   * start), or after a failed removal, the retry time.
   */
  prefetchExpiresAt(): number | null {
    const pre = this.prefetched;
    const keep = this.prefetchKeep;
    if (!pre || !keep) return null;
    const at = (pre.at ? Date.parse(pre.at) : keep.runStart) + keep.ms;
    return this.prefetchRetryAt !== null ? Math.max(at, this.prefetchRetryAt) : at;
  }

  /** Removing the expired prefetched copy failed: try again at `at`. */
  prefetchRemovalFailed(at: number): void {
    this.prefetchRetryAt = at;
  }

  /** The placement data requests must carry, while the workspace is active on a host. */
  servingPlacement(): number | null {
    return this.state === 'active' && this.host && this.lastPlacement && this.lastPlacement.host === this.host.host ? this.lastPlacement.placement : null;
  }

  // ---- stored copies: the only writers of cold and archive, and the one rule of what may be deleted ----

  /** A verified cold copy now holds the file. */
  recordCold(copy: StoredCopy): void {
    this.cold = copy;
  }

  /** A verified archive copy now holds the file; it supersedes the cold copy. */
  recordArchive(copy: StoredCopy): void {
    this.archive = copy;
    this.cold = null;
  }

  /** Delete removed every copy: no stored copy, replica, prefetched or local file is left. */
  forgetEverything(): void {
    this.cold = null;
    this.archive = null;
    this.replicas = [];
    this.prefetched = null;
    this.releaseLocal();
  }

  /**
   * Of `candidates`, the copies that may be deleted: those no field of the model still references (cold,
   * archive), compared by full URL, each once. Content-addressed keys make a new copy's URL equal an old one's
   * whenever the bytes are the same (cold = archive location, nothing written since the last freeze).
   */
  unreferenced(candidates: (StoredCopy | null | undefined)[]): StoredCopy[] {
    const referenced = new Set([this.cold?.url, this.archive?.url].filter((u): u is string => !!u));
    const out: StoredCopy[] = [];
    for (const c of candidates) {
      if (!c || referenced.has(c.url) || out.some((o) => o.url === c.url)) continue;
      out.push(c);
    }
    return out;
  }

  /** An idle-ladder move failed: back off (1 min, doubling, at most 1 h) instead of retrying at once. */
  policyFailed(now: number): void {
    this.policyFailures += 1;
    this.policyRetryAt = now + Math.min(60 * 60_000, 60_000 * 2 ** Math.min(this.policyFailures - 1, 10));
  }

  /** Any move succeeded: the ladder runs on its normal schedule again. */
  moveSucceeded(): void {
    this.policyFailures = 0;
    this.policyRetryAt = null;
  }

  /** The newest replica generation, if any. */
  currentReplica(): ReplicaGeneration | null {
    return this.replicas[this.replicas.length - 1] ?? null;
  }

  /** Names the next replica generation (the host turns it into a URL). */
  nextGeneration(): string {
    this.generation += 1;
    return `${this.epoch}-g${this.generation}`;
  }

  /** Records a generation that started replicating at `now`. */
  replicaStarted(url: string, host: string, now: number): void {
    const cur = this.currentReplica();
    if (cur && cur.url === url && cur.to === null) return;
    if (cur && cur.url === url) {
      // The same generation continues (a resume on the host that holds its file).
      cur.to = null;
      return;
    }
    this.replicas.push({ url, host, from: new Date(now).toISOString(), to: null });
    if (this.replicas.length > REPLICAS_KEEP) this.replicas.splice(0, this.replicas.length - REPLICAS_KEEP);
  }

  /** Forgets generations whose stored data was deleted (past retention): restore no longer reaches them. */
  forgetGenerations(urls: string[]): void {
    this.replicas = this.replicas.filter((g) => !urls.includes(g.url));
  }

  /** Marks the current generation as flushed and stopped at `now`. */
  replicaStopped(now: number): void {
    const cur = this.currentReplica();
    if (cur && cur.to === null) cur.to = new Date(now).toISOString();
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
    this.ledgerArchive.recorded += 1;
    if (this.ledger.length > LEDGER_KEEP) this.ledger.splice(0, this.ledger.length - LEDGER_KEEP);
    return entry;
  }

  /** A move to `to` started at `now` (shown by describe until it ends). */
  markBusy(to: State, now: number): void {
    this.busy = { to, since: new Date(now).toISOString() };
  }

  /** The running move ended, however it ended. */
  clearBusy(): void {
    this.busy = null;
  }

  moveTo(to: State, now: number): void {
    // Replication stops with the instance: a warning of a stopped replica is over (the stop flushed it or failed).
    if (to !== 'active') this.replicaWarning = null;
    this.state = to;
    this.stateSince = new Date(now).toISOString();
    if (to === 'active') this.lastActiveAt = this.stateSince;
  }

  /** A wake counts as use: the workspace was last active at `now`. */
  wokenAt(now: number): void {
    this.lastActiveAt = new Date(now).toISOString();
  }

  /** Records a use of the workspace at `at` (ms), if it is newer than the last one known. */
  usedAt(at: number): void {
    if (Number.isFinite(at) && at > Date.parse(this.lastActiveAt)) this.lastActiveAt = new Date(at).toISOString();
  }

  /** Idle since the later of the last known access and the moment the current state began. */
  idleSince(): number {
    return Math.max(Date.parse(this.lastActiveAt), Date.parse(this.stateSince));
  }

  deadline(): { at: number; to: State } | null {
    // A published template is off the idle ladder: nothing moves it until it is unpublished.
    if (this.published) return null;
    const at = idleDeadline(this.state, this.idleSince(), this.policy);
    const rung = rungFor(this.state, this.policy);
    if (at === null || rung === null) return null;
    return { at: this.policyRetryAt !== null ? Math.max(at, this.policyRetryAt) : at, to: rung.to };
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
      replicas: this.replicas.map((r) => ({ ...r })),
      generation: this.generation,
      epoch: this.epoch,
      policyRetryAt: this.policyRetryAt,
      policyFailures: this.policyFailures,
      placement: this.placementCount,
      lastPlacement: this.lastPlacement ? { ...this.lastPlacement } : null,
      ...(this.published ? { published: { ...this.published } } : {}),
      ledgerArchive: { ...this.ledgerArchive },
      ...(this.replicaWarning ? { replicaWarning: { ...this.replicaWarning } } : {}),
    };
  }

  /**
   * The one rule of when a replica's health goes into the ledger, given a report from a host: only the host holding
   * the file of an active workspace is heard (not during a move). Falling behind (`lagging` or `failing`) is a
   * `warning` entry once, and again only if a lagging replica starts failing; catching up afterwards is a `done`
   * entry. Everything else (the same news again, `off`, another host) records nothing. Returns the entry recorded.
   */
  replicationReported(r: ReplicationReport, now: number): LedgerEntry | null {
    if (this.state !== 'active' || this.busy || this.host?.host !== r.host) return null;
    const prev = this.replicaWarning;
    const lag = r.lagSeconds === null ? 'an unknown time' : `${r.lagSeconds} s`;
    const actor = { by: 'replication' };
    if (r.state === 'lagging' || r.state === 'failing') {
      if (prev && !(prev.state === 'lagging' && r.state === 'failing')) return null;
      this.replicaWarning = { state: r.state, since: prev?.since ?? new Date(now).toISOString() };
      const detail =
        r.state === 'lagging'
          ? `replica on ${r.host} is ${lag} behind (bound ${r.boundSeconds} s): the newest writes are not in the continuous backup yet`
          : `replica on ${r.host} is failing, ${lag} behind: ${r.lastError ?? 'no successful sync'}`;
      return this.record('active', 'active', actor, 'warning', now, detail);
    }
    if (r.state === 'ok' && prev) {
      this.replicaWarning = null;
      return this.record('active', 'active', actor, 'done', now, `replica caught up on ${r.host}: ${lag} behind (${prev.state} since ${prev.since})`);
    }
    return null;
  }

  /** Ledger entries not written to the cold store yet, oldest first (at most the ledger tail). */
  unarchivedLedger(): LedgerEntry[] {
    const n = this.ledgerArchive.recorded - this.ledgerArchive.archived;
    return n <= 0 ? [] : this.ledger.slice(-Math.min(n, this.ledger.length));
  }

  /** The entries up to the `upTo`th recorded are in the cold store, as one more page. */
  ledgerPageWritten(upTo: number): void {
    this.ledgerArchive.archived = Math.min(this.ledgerArchive.recorded, upTo);
    this.ledgerArchive.pages += 1;
  }

  describe(pendingCommands: number): WorkspaceDescription {
    const d = this.deadline();
    return {
      workspaceId: this.input.workspaceId,
      tenant: this.input.tenant,
      template: this.input.template ?? null,
      published: this.published ? { ...this.published } : null,
      state: this.state,
      createdAt: this.createdAt,
      stateSince: this.stateSince,
      lastActiveAt: this.lastActiveAt,
      host: this.host?.host ?? null,
      endpoint: this.host?.endpoint ?? null,
      placement: this.servingPlacement(),
      filePath: this.filePath,
      cold: this.cold,
      archive: this.archive,
      prefetched: this.prefetched ? { host: this.prefetched.host.host, filePath: this.prefetched.filePath, sha256: this.prefetched.sha256, expiresAt: isoOrNull(this.prefetchExpiresAt()) } : null,
      replicas: this.replicas.map((r) => ({ ...r })),
      restoredFrom: this.input.restoreFrom ?? null,
      policy: formatPolicy(this.policy),
      nextAutoAt: d ? new Date(d.at).toISOString() : null,
      nextAutoTo: d ? d.to : null,
      busy: this.busy,
      pendingCommands,
      ledger: this.ledger.slice(),
      runs: this.runs,
      ledgerArchive: { ...this.ledgerArchive },
    };
  }

  /** One readable block for the Temporal Web UI. */
  details(): string {
    const lines = [
      `**${this.input.workspaceId}** (tenant \`${this.input.tenant}\`) is **${this.state}** since ${this.stateSince}`,
      this.host ? `host: \`${this.host.host}\`, file: \`${this.filePath ?? '-'}\`` : 'host: none (no local file)',
      this.cold ? `cold copy: ${this.cold.url} (${this.cold.bytes} bytes, sha256 ${this.cold.sha256.slice(0, 12)}…)` : 'cold copy: none',
      this.archive ? `archive: ${this.archive.url} (${this.archive.bytes} bytes)` : '',
      this.currentReplica() ? `replica: ${this.currentReplica()!.url} (${this.currentReplica()!.to ? `flushed ${this.currentReplica()!.to}` : 'live'})` : '',
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

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
