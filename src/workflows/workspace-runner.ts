/**
 * One workspace's workflow: its model, the command queue and the loop that runs it. The message handlers
 * registered in workspace.ts call the public methods here; they only queue commands (or answer a warm wake),
 * and the loop runs the commands one at a time. Between commands the loop waits on a durable timer for the idle
 * ladder's next rung. History stays bounded by continue-as-new, which carries the state and the ledger tail.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { State, autoNext, isState, rungFor, transition } from '../lifecycle';
import { HOST_KEY, LAST_ACTIVE_KEY, STATE_KEY, TENANT_KEY } from '../contract/search-attributes';
import type { Actor, PrefetchResult, PublishRequest, ShareWith, TemplateRole, TransitionRequest, TransitionResultPayload, WakeRequest, WakeResult, WorkspaceDescription, WorkspaceInput } from '../contract/types';
import { WorkspaceModel, sanitizeActor } from './workspace-model';
import { MoveOutcome, checkActive, expirePrefetched, performMove, prefetch, suspendIfIdle } from './moves';
import { POLICY_PRIORITY, USER_PRIORITY, lastAccessActivity, ledgerActivities } from './activities';
import { messageOf } from './failure-text';
import { checkActor, validateInput } from './checks';
import { countTransition, recordWake } from '../metrics/workflow-metrics';
import { checkShareWith, publishable, publishedRefusal } from '../contract/template-role';
import { prefetchKeepMs } from '../contract/recovery';
import { checkReplicationReport } from '../contract/data-plane';

/**
 * Runs that record this patch remove a frozen or archived workspace's prefetched copy once it has waited
 * `prefetchKeep` (default 24 h) for a wake: a timer for the earlier of that and the idle ladder's next rung.
 * Checked once at the start of each run.
 */
export const PREFETCH_EXPIRY_PATCH = 'prefetch-expiry';
/** Wait after a failed removal of an expired prefetched copy before the next try. */
const PREFETCH_RETRY_MS = 10 * 60_000;

/** Default history length at which a run continues as new (the server also suggests it at 4,096 events). */
export const DEFAULT_HISTORY_LIMIT = 2000;

/**
 * Runs that record this patch make moves cheaper: the idle ladder's check and stop are one host task
 * (stopIfIdle), user-facing moves' activities go ahead of the ladder's (task priority), a host is picked by a
 * local activity, search attributes are upserted only when they change, and only updates keep a result for their
 * caller. Checked once at the start of
 * each run, so a run started by an older build keeps its commands on replay.
 */
export const CHEAP_MOVES_PATCH = 'cheap-moves';

/**
 * Runs that record this patch (and cheap-moves) try the idle ladder's stop as a local activity first: when the
 * worker running the workflow task is the host holding the file, it stops it inside that task (a marker, no task on
 * the host's queue, no second workflow task); otherwise the stopIfIdle task goes to the holder's queue as before.
 * Checked once at the start of each run.
 */
export const LOCAL_STOP_PATCH = 'local-stop';

/**
 * Runs that record this patch write their ledger to the cold store (src/storage/ledger-archive.ts) a page at a time:
 * after a move once LEDGER_PAGE_AT entries wait (fewer travel across continue-as-new in the carried tail of 100), and
 * when the workspace is deleted. Checked once at the start of each run.
 */
export const LEDGER_ARCHIVE_PATCH = 'ledger-archive';
/** Entries waiting that make the idle loop write a page (the ledger tail holds 100, so none is lost). */
const LEDGER_PAGE_AT = 50;
/** Wait after a failed ledger page write (the store unreachable) before the next try. */
const LEDGER_RETRY_MS = 10 * 60_000;

/** The workflow's signature (workspace.ts), for a type-checked continue-as-new without importing it back. */
type WorkspaceWorkflow = (input: WorkspaceInput) => Promise<WorkspaceDescription>;

type Source = 'signal' | 'update' | 'policy' | 'start';

interface Command {
  seq: number;
  kind: 'move' | 'prefetch' | 'publish' | 'unpublish' | 'expire-prefetch';
  /** publish: whom the template is shared with. */
  shareWith?: ShareWith;
  to: State;
  actor: Actor;
  source: Source;
  /** A wake that must confirm an active workspace's host still serves it (see WakeRequest.check). */
  check?: boolean;
  /** From the wake signal or update (not a `transition` to active): on an active workspace it is a warm wake. */
  wake?: boolean;
  /** Workflow time the command was accepted (wake latency). */
  at: number;
  /** The idle ladder's suspend: only if the host saw no data request for this long (ms); see suspendIfIdle. */
  idleForMs?: number;
}

type CommandResult =
  | { ok: true; from: State; state: State; path?: WakeResult['path']; prefetch?: Omit<PrefetchResult, 'state'>; role?: TemplateRole }
  | { ok: false; message: string; type: string };

/** The search attributes last upserted, as one string (an upsert that changes nothing is skipped). */
type Published = string;

export class Workspace {
  private readonly m: WorkspaceModel;
  private readonly historyLimit: number;
  private readonly queue: Command[] = [];
  private readonly results = new Map<number, CommandResult>();
  private seq = 0;
  /** Whether this run makes cheap moves (CHEAP_MOVES_PATCH). */
  private readonly cheap: boolean;
  /** Whether this run writes its ledger to the cold store (LEDGER_ARCHIVE_PATCH). */
  private readonly ledgerArchive: boolean;
  /** After a failed ledger page write: not before this workflow time again. */
  private ledgerRetryAt: number | null = null;
  private published: Published | null = null;

  constructor(private readonly input: WorkspaceInput) {
    const policy = validateInput(input);
    this.cheap = patched(CHEAP_MOVES_PATCH);
    // The random tail of the first run id (its head is a timestamp): keeps replica paths of a re-created id apart.
    this.m = new WorkspaceModel(input, policy, Date.now(), workflowInfo().firstExecutionRunId.replace(/-/g, '').slice(-10));
    this.m.cheapMoves = this.cheap;
    this.m.localStop = this.cheap && patched(LOCAL_STOP_PATCH);
    this.ledgerArchive = patched(LEDGER_ARCHIVE_PATCH);
    if (patched(PREFETCH_EXPIRY_PATCH)) this.m.prefetchKeep = { ms: prefetchKeepMs(input.prefetchKeep), runStart: Date.now() };
    this.historyLimit = input.historyLimit && input.historyLimit >= 50 ? input.historyLimit : DEFAULT_HISTORY_LIMIT;
  }

  // ---- message handlers ----

  /** A move signal (wake, suspend, freeze, archive, delete): queued, unless it is a warm wake. */
  signal(to: State, raw?: unknown): void {
    if (to === 'active' && this.warmWake({ fromHandler: true })) return;
    this.enqueue({ kind: 'move', to, actor: sanitizeActor(raw), source: 'signal', wake: to === 'active' });
  }

  prefetchSignal(raw?: unknown): void {
    this.enqueue({ kind: 'prefetch', to: this.m.state, actor: sanitizeActor(raw), source: 'signal' });
  }

  /** The prefetch signal as an update: answers once the file is local, or why it could not be made local. */
  async prefetch(raw?: unknown): Promise<PrefetchResult> {
    const s = this.enqueue({ kind: 'prefetch', to: this.m.state, actor: sanitizeActor(raw), source: 'update' });
    const r = await this.resultOf(s);
    if (!r.ok) throw ApplicationFailure.create({ message: r.message, type: r.type, nonRetryable: true });
    return { state: r.state, ...(r.prefetch ?? { outcome: 'none', host: null, bytes: null }) };
  }

  /** Publishes the frozen workspace as a template (or changes whom it is shared with): see template-role.ts. */
  async publishTemplate(req: PublishRequest): Promise<TemplateRole> {
    const s = this.enqueue({ kind: 'publish', to: this.m.state, actor: sanitizeActor(req), source: 'update', shareWith: checkShareWith(req.shareWith) });
    const r = await this.resultOf(s);
    if (!r.ok) throw ApplicationFailure.create({ message: r.message, type: r.type, nonRetryable: true });
    return r.role!;
  }

  validatePublish(req: PublishRequest): void {
    if (!req || typeof req !== 'object') throw new Error('publish needs { shareWith, reason?, by? }');
    checkActor(req);
    checkShareWith(req.shareWith);
    if (this.queue.length === 0 && !this.m.busy) {
      const p = publishable(this.m.state, this.m.cold);
      if (!p.ok) throw new Error(p.message);
    }
  }

  async unpublishTemplate(raw?: unknown): Promise<{ state: State }> {
    const s = this.enqueue({ kind: 'unpublish', to: this.m.state, actor: sanitizeActor(raw), source: 'update' });
    const r = await this.resultOf(s);
    if (!r.ok) throw ApplicationFailure.create({ message: r.message, type: r.type, nonRetryable: true });
    return { state: r.state };
  }

  validateUnpublish(raw?: unknown): void {
    if (raw !== undefined && raw !== null) checkActor(raw as Actor);
    if (this.queue.length === 0 && !this.m.busy && !this.m.published) throw new Error('workspace is not a published template');
  }

  validatePrefetch(raw?: unknown): void {
    if (raw !== undefined && raw !== null) checkActor(raw as Actor);
    if (this.queue.length === 0 && !this.m.busy && this.m.state === 'deleted') throw new Error('workspace is deleted; nothing to prefetch');
  }

  /** The replicationHealth signal: a ledger line when the replica falls behind or catches up (replicationReported). */
  replicationReport(raw: unknown): void {
    let r;
    try {
      r = checkReplicationReport(raw);
    } catch (err) {
      log.warn('replication report ignored', { workspaceId: this.input.workspaceId, error: messageOf(err) });
      return;
    }
    if (this.m.replicationReported(r, Date.now())) setCurrentDetails(this.m.details());
  }

  describe(): WorkspaceDescription {
    return this.m.describe(this.queue.length);
  }

  async transition(req: TransitionRequest): Promise<TransitionResultPayload> {
    const s = this.enqueue({ kind: 'move', to: req.to, actor: sanitizeActor(req), source: 'update' });
    const r = await this.resultOf(s);
    if (!r.ok) throw ApplicationFailure.create({ message: r.message, type: r.type, nonRetryable: true });
    return { from: r.from, state: r.state };
  }

  validateTransition(req: TransitionRequest): void {
    if (!req || typeof req !== 'object') throw new Error('transition needs { to, reason?, by? }');
    if (!isState(req.to)) throw new Error(`'${String(req.to)}' is not a state; states are created, active, suspended, frozen, archived, deleted`);
    checkActor(req);
    // With nothing queued, the state the move starts from is known now: refuse illegal edges up front.
    if (this.queue.length === 0) {
      // A new workspace becomes active before any queued command runs.
      const from = this.m.busy?.to ?? (this.m.state === 'created' ? 'active' : this.m.state);
      if (this.m.published) throw new Error(publishedRefusal(this.input.workspaceId, req.to));
      const t = transition(from, req.to);
      if (!t.ok) throw new Error(t.message);
    }
  }

  async wake(req?: WakeRequest): Promise<WakeResult> {
    const check = !!req?.check;
    if (this.warmWake({ check, needFile: true, fromHandler: true })) return { ...this.served(), path: 'warm' };
    const s = this.enqueue({ kind: 'move', to: 'active', actor: sanitizeActor(req), source: 'update', check, wake: true });
    const r = await this.resultOf(s);
    if (!r.ok) throw ApplicationFailure.create({ message: r.message, type: r.type, nonRetryable: true });
    const m = this.m;
    if (m.state !== 'active' || !m.host || !m.filePath) {
      throw ApplicationFailure.create({ message: `workspace is ${m.state} after the wake`, type: 'WakeFailed', nonRetryable: true });
    }
    return { ...this.served(), path: r.path ?? 'local' };
  }

  validateWake(req?: WakeRequest): void {
    if (req !== undefined && req !== null) {
      checkActor(req);
      if (req.check !== undefined && typeof req.check !== 'boolean') throw new Error('check must be a boolean');
    }
    if (this.queue.length === 0 && !this.m.busy && this.m.state === 'deleted') throw new Error('workspace is deleted; it cannot be woken');
    if (this.queue.length === 0 && !this.m.busy && this.m.published) throw new Error(publishedRefusal(this.input.workspaceId, 'active'));
  }

  // ---- the loop ----

  /** Runs the workspace until it is deleted (its final description) or continues as new. */
  async main(): Promise<WorkspaceDescription> {
    const { m, input, queue } = this;
    // A new workspace becomes active at once: create (or clone) its file and open it.
    if (m.state === 'created') {
      const reason = input.template ? `clone of ${input.template}` : input.restoreFrom ? `restore of ${input.restoreFrom.workspaceId}` : 'created';
      const r = await this.run({ seq: 0, kind: 'move', to: 'active', actor: { reason, by: 'workbooks' }, source: 'start', at: Date.now() });
      if (!r.ok) {
        // Nothing was created: fail the execution so the caller sees why.
        throw ApplicationFailure.create({ message: `cannot create workspace ${input.workspaceId}: ${r.message}`, type: 'CreateFailed', nonRetryable: true });
      }
    } else {
      this.publish();
    }

    for (;;) {
      if (m.state === 'deleted') {
        // Answer any update still waiting, then end: the workflow's result is the final description.
        while (queue.length) {
          const c = queue.shift()!;
          this.record(m.state, c.to, c.actor, 'refused', Date.now(), 'workspace is deleted');
          this.results.set(c.seq, { ok: false, message: 'workspace is deleted', type: 'IllegalTransition' });
        }
        await condition(allHandlersFinished);
        // Writing the last page takes time: what arrived meanwhile is refused (and written) on the next pass.
        if (await this.archiveLedger(1)) continue;
        return m.describe(0);
      }

      if (queue.length > 0) {
        const c = queue.shift()!;
        const r = await this.run(c);
        if (c.kind === 'move' && c.to === 'active' && r.ok) recordWake(r.path ?? 'local', Date.now() - c.at);
        // Only an update's caller reads its result (older runs kept every result until continue-as-new).
        if (c.source === 'update' || !this.cheap) this.results.set(c.seq, r);
        // Once LEDGER_PAGE_AT entries wait, they go to the cold store (well before the tail of 100 drops any).
        await this.archiveLedger(LEDGER_PAGE_AT);
        continue;
      }

      const info = workflowInfo();
      if (info.continueAsNewSuggested || info.historyLength >= this.historyLimit) {
        // Entries not written yet (fewer than LEDGER_PAGE_AT) travel in the carried tail; an update that arrives
        // while handlers finish queues a command its handler waits for: run it first.
        await condition(() => allHandlersFinished() || queue.length > 0);
        if (queue.length === 0) {
          await continueAsNew<WorkspaceWorkflow>({ ...input, carried: m.carry() });
        }
        continue;
      }

      const deadline = m.deadline();
      // A prefetched copy's expiry (runs with the prefetch-expiry patch) may come before the ladder's next rung.
      const expiresAt = m.prefetchExpiresAt();
      const wakeAt = expiresAt !== null && (!deadline || expiresAt < deadline.at) ? expiresAt : (deadline?.at ?? null);
      const timeout = wakeAt !== null ? Math.max(0, wakeAt - Date.now()) : undefined;
      const woke = timeout === undefined ? (await condition(() => queue.length > 0), true) : await condition(() => queue.length > 0, timeout);
      if (woke || wakeAt === null) continue;
      if (expiresAt !== null && Date.now() >= expiresAt) {
        if (queue.length === 0) this.enqueue({ kind: 'expire-prefetch', to: m.state, actor: { by: 'policy' }, source: 'policy' });
        continue;
      }
      if (!deadline) continue;

      if (this.cheap && m.state === 'active' && m.host && deadline.to === 'suspended') {
        // One task on the host checks its last data request and stops the instance if it is idle enough.
        const idleForMs = rungFor('active', m.policy)?.after ?? 0;
        if (queue.length === 0) this.enqueue({ kind: 'move', to: 'suspended', actor: { by: 'policy' }, source: 'policy', idleForMs });
        continue;
      }

      // The idle deadline passed. For an active workspace, ask its host when it was last used: being busy
      // costs one check per idle window, never a signal per request.
      if (m.state === 'active' && m.host) {
        try {
          const la = await lastAccessActivity(m.host)({ workspaceId: input.workspaceId });
          if (la.idleMs !== null) m.usedAt(Date.now() - Math.max(0, la.idleMs));
        } catch (err) {
          log.warn('last-access check failed; using the workflow view', { workspaceId: input.workspaceId, error: messageOf(err) });
        }
      }
      const idleSeconds = (Date.now() - m.idleSince()) / 1000;
      const next = autoNext(m.state, idleSeconds, m.policy);
      if (next && queue.length === 0) {
        this.enqueue({ kind: 'move', to: next, actor: { reason: `idle ${Math.floor(idleSeconds)}s`, by: 'policy' }, source: 'policy' });
      }
    }
  }

  /** Runs one command and publishes the state it leaves. */
  private async run(c: Command): Promise<CommandResult> {
    const m = this.m;
    const from = m.state;
    m.priorityKey = this.cheap ? (c.source === 'policy' ? POLICY_PRIORITY : USER_PRIORITY) : undefined;
    if (c.kind === 'prefetch') {
      try {
        const what = await prefetch(m);
        log.info('prefetch', { workspaceId: this.input.workspaceId, what: what.detail });
        return { ok: true, from, state: m.state, prefetch: what.result };
      } catch (err) {
        return { ok: false, message: `prefetch failed: ${messageOf(err)}`, type: 'PrefetchFailed' };
      }
    }
    if (c.kind === 'publish' || c.kind === 'unpublish') return this.setRole(c);
    if (c.kind === 'expire-prefetch') return this.expirePrefetch(from);
    if (m.published) {
      // A published template stays frozen: every move is refused (the validators refuse updates up front).
      const message = publishedRefusal(this.input.workspaceId, c.to);
      this.record(from, c.to, c.actor, 'refused', Date.now(), message);
      return { ok: false, message, type: 'IllegalTransition' };
    }
    // A queued `transition` to active on an active workspace is refused below like any illegal edge, as the
    // validator refuses it when nothing is queued (older histories took the warm-wake path: kept for replay).
    if (c.to === 'active' && from === 'active' && (c.wake || !patched('queued-transition-to-active-refused'))) {
      if (this.warmWake({ check: c.check })) return { ok: true, from, state: from, path: 'warm' };
      // A wake that checks or recovers the host counts as use too.
      m.wokenAt(Date.now());
      m.markBusy('active', Date.now());
      try {
        const recovered = await checkActive(m);
        if (!recovered) return { ok: true, from, state: from, path: 'warm' };
        this.record(from, from, actorFor(c), 'done', Date.now(), recovered.detail);
        return { ok: true, from, state: from, path: recovered.path };
      } catch (err) {
        const message = `recovering active workspace failed: ${messageOf(err)}`;
        this.record(from, from, actorFor(c), 'failed', Date.now(), message);
        return { ok: false, message, type: 'MoveFailed' };
      } finally {
        m.clearBusy();
        this.publish();
      }
    }
    const t = transition(from, c.to);
    if (!t.ok) {
      this.record(from, c.to, c.actor, 'refused', Date.now(), t.message);
      this.publish();
      return { ok: false, message: t.message, type: 'IllegalTransition' };
    }
    m.markBusy(c.to, Date.now());
    let changed = true;
    try {
      let outcome: MoveOutcome;
      if (c.idleForMs !== undefined) {
        const o = await suspendIfIdle(m, c.idleForMs);
        // Used lately: nothing moved, nothing to record or publish; the loop waits for the new deadline.
        if (o === null) {
          changed = false;
          return { ok: true, from, state: from };
        }
        c.actor = { ...c.actor, reason: `idle ${Math.floor((Date.now() - m.idleSince()) / 1000)}s` };
        outcome = o;
      } else {
        outcome = await performMove(m, from, c.to);
      }
      m.moveTo(c.to, Date.now());
      m.moveSucceeded();
      this.record(from, c.to, actorFor(c), 'done', Date.now(), outcome.detail);
      return { ok: true, from, state: c.to, path: outcome.path };
    } catch (err) {
      const message = `${from} -> ${c.to} failed: ${messageOf(err)}`;
      if (c.source === 'policy') m.policyFailed(Date.now());
      this.record(from, c.to, actorFor(c), 'failed', Date.now(), message);
      log.warn('move failed', { workspaceId: this.input.workspaceId, from, to: c.to, error: messageOf(err) });
      return { ok: false, message, type: 'MoveFailed' };
    } finally {
      m.clearBusy();
      if (changed) this.publish();
    }
  }

  /**
   * Writes the ledger entries not yet in the cold store as one page, when at least `min` wait (runs with the
   * ledger-archive patch). A store that cannot be reached costs a few attempts, then the entries wait for the next
   * page (they stay in the ledger tail; the loop never blocks on it).
   */
  private async archiveLedger(min: number): Promise<boolean> {
    const m = this.m;
    if (!this.ledgerArchive) return false;
    const entries = m.unarchivedLedger();
    if (entries.length === 0 || entries.length < min) return false;
    // After a failed write, the next try waits (the entries stay in the ledger tail meanwhile).
    if (this.ledgerRetryAt !== null && Date.now() < this.ledgerRetryAt) return false;
    const upTo = m.ledgerArchive.recorded;
    try {
      await ledgerActivities(`write ledger page ${m.ledgerArchive.pages} of ${this.input.workspaceId}`).archiveLedger({
        workspaceId: this.input.workspaceId,
        page: m.ledgerArchive.pages,
        entries,
      });
      m.ledgerPageWritten(upTo);
      this.ledgerRetryAt = null;
    } catch (err) {
      this.ledgerRetryAt = Date.now() + LEDGER_RETRY_MS;
      log.warn('ledger page not written; it waits for the next one', { workspaceId: this.input.workspaceId, error: messageOf(err) });
    }
    return true;
  }

  /**
   * Removes a prefetched copy that waited its keep without a wake (like the prefetch, no ledger line: it is not a
   * move and never counts as use). A failed removal keeps the copy recorded and tries again in 10 minutes.
   */
  private async expirePrefetch(from: State): Promise<CommandResult> {
    const m = this.m;
    const expiresAt = m.prefetchExpiresAt();
    if (expiresAt === null || Date.now() < expiresAt) return { ok: true, from, state: from };
    try {
      const done = await expirePrefetched(m);
      log.info('prefetched copy expired', { workspaceId: this.input.workspaceId, what: done });
    } catch (err) {
      m.prefetchRemovalFailed(Date.now() + PREFETCH_RETRY_MS);
      log.warn('expired prefetched copy not removed; trying again later', { workspaceId: this.input.workspaceId, error: messageOf(err) });
    }
    return { ok: true, from, state: from };
  }

  /** Publishes or unpublishes (a ledger line either way; nothing is copied: the cold copy is the version). */
  private setRole(c: Command): CommandResult {
    const m = this.m;
    const from = m.state;
    if (c.kind === 'unpublish') {
      if (!m.published) return { ok: false, message: 'workspace is not a published template', type: 'IllegalTransition' };
      m.published = null;
      this.record(from, from, actorFor(c), 'done', Date.now(), 'unpublished: an ordinary frozen workspace again');
      return { ok: true, from, state: from };
    }
    const p = publishable(m.state, m.cold);
    if (!p.ok) {
      this.record(from, from, c.actor, 'refused', Date.now(), `publish: ${p.message}`);
      return { ok: false, message: p.message, type: 'IllegalTransition' };
    }
    const shareWith = c.shareWith ?? [];
    m.published = { version: p.version, shareWith, publishedAt: new Date(Date.now()).toISOString(), by: c.actor.by ?? 'unknown' };
    const whom = shareWith === '*' ? 'every tenant' : shareWith.length ? `tenants ${shareWith.join(', ')}` : 'its own tenant only';
    this.record(from, from, actorFor(c), 'done', Date.now(), `published as a template, version sha256 ${p.version}, clonable by ${whom}`);
    return { ok: true, from, state: from, role: { ...m.published } };
  }

  /**
   * The warm-wake shortcut, for the wake signal, the wake update and a queued wake: a wake of a workspace that is
   * active on a host does no work and only counts as use. Active without a host (its host was lost and recovery
   * has not succeeded yet), or asked to `check` the host, a wake is not warm: it checks or recovers. A handler
   * (`fromHandler`) takes the shortcut only while no command runs or waits (it would overtake them) and counts
   * the wake itself; `needFile`: the caller answers with the file path.
   */
  private warmWake(o: { check?: boolean; needFile?: boolean; fromHandler?: boolean }): boolean {
    const m = this.m;
    if (o.fromHandler && (m.busy || this.queue.length > 0)) return false;
    if (o.check || m.state !== 'active' || !m.host || (o.needFile && !m.filePath)) return false;
    m.wokenAt(Date.now());
    if (o.fromHandler) recordWake('warm', 0);
    return true;
  }

  private enqueue(c: Omit<Command, 'seq' | 'at'>): number {
    const s = ++this.seq;
    this.queue.push({ ...c, seq: s, at: Date.now() });
    return s;
  }

  private async resultOf(s: number): Promise<CommandResult> {
    await condition(() => this.results.has(s));
    const r = this.results.get(s)!;
    this.results.delete(s);
    return r;
  }

  /** Appends a ledger line; every ledger line is also counted (metrics are skipped on replay). */
  private record(...a: Parameters<WorkspaceModel['record']>): void {
    countTransition(this.m.record(...a));
  }

  /** Shows the state in the Web UI and the search attributes. */
  private publish(): void {
    const m = this.m;
    setCurrentDetails(m.details());
    const host = m.host?.host ?? '';
    const now: Published = JSON.stringify([m.state, this.input.tenant, host, m.lastActiveAt]);
    if (this.cheap && now === this.published) return;
    this.published = now;
    upsertSearchAttributes([
      { key: STATE_KEY, value: m.state },
      { key: TENANT_KEY, value: this.input.tenant },
      { key: HOST_KEY, value: host },
      { key: LAST_ACTIVE_KEY, value: m.lastActiveAt },
    ]);
  }

  /** Where the active workspace is served, for a wake's answer. */
  private served(): Omit<WakeResult, 'path'> {
    const m = this.m;
    const placement = m.servingPlacement();
    return { state: 'active', host: m.host!.host, endpoint: m.host!.endpoint, filePath: m.filePath!, ...(placement !== null ? { placement } : {}) };
  }
}

function actorFor(c: Command): Actor {
  return { reason: c.actor.reason ?? (c.source === 'policy' ? 'idle' : ''), by: c.actor.by ?? (c.source === 'policy' ? 'policy' : '') };
}
