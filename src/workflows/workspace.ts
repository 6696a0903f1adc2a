/**
 * The `workspace` workflow: one per workspace, alive for the workspace's whole life.
 * Signals and updates queue commands; one loop runs them one at a time, and between commands
 * waits on a durable timer for the idle ladder's next rung. History stays bounded by
 * continue-as-new, which carries the state and the ledger tail.
 */
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { PolicyError, State, autoNext, isState, parsePolicy, transition } from '../lifecycle';
import { InputError, checkTenant, checkWorkspaceId } from '../contract/ids';
import {
  archiveSignal,
  deleteSignal,
  describeQuery,
  freezeSignal,
  prefetchSignal,
  suspendSignal,
  transitionUpdate,
  wakeSignal,
  wakeUpdate,
} from '../contract/definitions';
import { HOST_KEY, LAST_ACTIVE_KEY, STATE_KEY, TENANT_KEY } from '../contract/search-attributes';
import type { Actor, TransitionRequest, TransitionResultPayload, WakeRequest, WakeResult, WorkspaceDescription, WorkspaceInput } from '../contract/types';
import { WorkspaceModel, sanitizeActor } from './workspace-model';
import { checkActive, performMove, prefetch } from './moves';
import { lastAccessActivity } from './activities';
import { messageOf } from './failure-text';
import { countTransition, recordWake } from '../metrics/workflow-metrics';

/** Default history length at which a run continues as new (the server also suggests it at 4,096 events). */
export const DEFAULT_HISTORY_LIMIT = 2000;

type Source = 'signal' | 'update' | 'policy' | 'start';

interface Command {
  seq: number;
  kind: 'move' | 'prefetch';
  to: State;
  actor: Actor;
  source: Source;
  /** A wake that must confirm an active workspace's host still serves it (see WakeRequest.check). */
  check?: boolean;
  /** From the wake signal or update (not a `transition` to active): on an active workspace it is a warm wake. */
  wake?: boolean;
  /** Workflow time the command was accepted (wake latency). */
  at: number;
}

type CommandResult = { ok: true; from: State; state: State; path?: WakeResult['path'] } | { ok: false; message: string; type: string };

export async function workspace(input: WorkspaceInput): Promise<WorkspaceDescription> {
  const policy = validateInput(input);
  // The random tail of the first run id (its head is a timestamp): keeps replica paths of a re-created id apart.
  const m = new WorkspaceModel(input, policy, Date.now(), workflowInfo().firstExecutionRunId.replace(/-/g, '').slice(-10));
  const historyLimit = input.historyLimit && input.historyLimit >= 50 ? input.historyLimit : DEFAULT_HISTORY_LIMIT;

  const queue: Command[] = [];
  const results = new Map<number, CommandResult>();
  let seq = 0;
  const enqueue = (c: Omit<Command, 'seq' | 'at'>): number => {
    const s = ++seq;
    queue.push({ ...c, seq: s, at: Date.now() });
    return s;
  };
  // Every ledger line is also counted (metrics are skipped on replay).
  const record = (...a: Parameters<WorkspaceModel['record']>) => countTransition(m.record(...a));

  const onSignal = (to: State) => (raw?: unknown) => {
    const actor = sanitizeActor(raw);
    // Active without a host (its host was lost and recovery has not succeeded yet): a wake recovers it. (This rule
    // landed without a patch; histories from before it cannot replay this path: see docs/architecture.md.)
    if (to === 'active' && m.state === 'active' && m.host && !m.busy && queue.length === 0) {
      // A warm wake does no work; it only counts as use.
      m.lastActiveAt = new Date(Date.now()).toISOString();
      recordWake('warm', 0);
      return;
    }
    enqueue({ kind: 'move', to, actor, source: 'signal', wake: to === 'active' });
  };
  setHandler(wakeSignal, onSignal('active'));
  setHandler(suspendSignal, onSignal('suspended'));
  setHandler(freezeSignal, onSignal('frozen'));
  setHandler(archiveSignal, onSignal('archived'));
  setHandler(deleteSignal, onSignal('deleted'));
  setHandler(prefetchSignal, (raw?: unknown) => {
    enqueue({ kind: 'prefetch', to: m.state, actor: sanitizeActor(raw), source: 'signal' });
  });
  setHandler(describeQuery, () => m.describe(queue.length));

  setHandler(
    transitionUpdate,
    async (req: TransitionRequest): Promise<TransitionResultPayload> => {
      const s = enqueue({ kind: 'move', to: req.to, actor: sanitizeActor(req), source: 'update' });
      const r = await resultOf(s);
      if (!r.ok) throw ApplicationFailure.create({ message: r.message, type: r.type, nonRetryable: true });
      return { from: r.from, state: r.state };
    },
    {
      validator: (req: TransitionRequest) => {
        if (!req || typeof req !== 'object') throw new Error('transition needs { to, reason?, by? }');
        if (!isState(req.to)) throw new Error(`'${String(req.to)}' is not a state; states are created, active, suspended, frozen, archived, deleted`);
        checkActor(req);
        // With nothing queued, the state the move starts from is known now: refuse illegal edges up front.
        if (queue.length === 0) {
          // A new workspace becomes active before any queued command runs.
          const from = m.busy?.to ?? (m.state === 'created' ? 'active' : m.state);
          const t = transition(from, req.to);
          if (!t.ok) throw new Error(t.message);
        }
      },
    },
  );

  setHandler(
    wakeUpdate,
    async (req?: WakeRequest): Promise<WakeResult> => {
      const check = !!req?.check;
      if (!check && m.state === 'active' && !m.busy && queue.length === 0 && m.host && m.filePath) {
        m.lastActiveAt = new Date(Date.now()).toISOString();
        recordWake('warm', 0);
        return { ...served(), path: 'warm' };
      }
      const s = enqueue({ kind: 'move', to: 'active', actor: sanitizeActor(req), source: 'update', check, wake: true });
      const r = await resultOf(s);
      if (!r.ok) throw ApplicationFailure.create({ message: r.message, type: r.type, nonRetryable: true });
      if (m.state !== 'active' || !m.host || !m.filePath) {
        throw ApplicationFailure.create({ message: `workspace is ${m.state} after the wake`, type: 'WakeFailed', nonRetryable: true });
      }
      return { ...served(), path: r.path ?? 'local' };
    },
    {
      validator: (req?: WakeRequest) => {
        if (req !== undefined && req !== null) {
          checkActor(req);
          if (req.check !== undefined && typeof req.check !== 'boolean') throw new Error('check must be a boolean');
        }
        if (queue.length === 0 && !m.busy && m.state === 'deleted') throw new Error('workspace is deleted; it cannot be woken');
      },
    },
  );

  /** Where the active workspace is served, for a wake's answer. */
  function served(): Omit<WakeResult, 'path'> {
    const placement = m.servingPlacement();
    return { state: 'active', host: m.host!.host, endpoint: m.host!.endpoint, filePath: m.filePath!, ...(placement !== null ? { placement } : {}) };
  }

  async function resultOf(s: number): Promise<CommandResult> {
    await condition(() => results.has(s));
    const r = results.get(s)!;
    results.delete(s);
    return r;
  }

  const publish = () => {
    setCurrentDetails(m.details());
    upsertSearchAttributes([
      { key: STATE_KEY, value: m.state },
      { key: TENANT_KEY, value: input.tenant },
      { key: HOST_KEY, value: m.host?.host ?? '' },
      { key: LAST_ACTIVE_KEY, value: m.lastActiveAt },
    ]);
  };

  async function run(c: Command): Promise<CommandResult> {
    const from = m.state;
    if (c.kind === 'prefetch') {
      try {
        const what = await prefetch(m);
        log.info('prefetch', { workspaceId: input.workspaceId, what });
        return { ok: true, from, state: from };
      } catch (err) {
        return { ok: false, message: `prefetch failed: ${messageOf(err)}`, type: 'PrefetchFailed' };
      }
    }
    // A queued `transition` to active on an active workspace is refused below like any illegal edge, as the
    // validator refuses it when nothing is queued (older histories took the warm-wake path: kept for replay).
    if (c.to === 'active' && from === 'active' && (c.wake || !patched('queued-transition-to-active-refused'))) {
      m.lastActiveAt = new Date(Date.now()).toISOString();
      // Active without a host (its host was lost and recovery has not succeeded yet): every wake recovers.
      if (!c.check && m.host) return { ok: true, from, state: from, path: 'warm' };
      m.busy = { to: 'active', since: new Date(Date.now()).toISOString() };
      try {
        const recovered = await checkActive(m);
        if (!recovered) return { ok: true, from, state: from, path: 'warm' };
        record(from, from, actorFor(c), 'done', Date.now(), recovered.detail);
        return { ok: true, from, state: from, path: recovered.path };
      } catch (err) {
        const message = `recovering active workspace failed: ${messageOf(err)}`;
        record(from, from, actorFor(c), 'failed', Date.now(), message);
        return { ok: false, message, type: 'MoveFailed' };
      } finally {
        m.busy = null;
        publish();
      }
    }
    const t = transition(from, c.to);
    if (!t.ok) {
      record(from, c.to, c.actor, 'refused', Date.now(), t.message);
      publish();
      return { ok: false, message: t.message, type: 'IllegalTransition' };
    }
    m.busy = { to: c.to, since: new Date(Date.now()).toISOString() };
    try {
      const outcome = await performMove(m, from, c.to);
      m.moveTo(c.to, Date.now());
      m.moveSucceeded();
      record(from, c.to, actorFor(c), 'done', Date.now(), outcome.detail);
      return { ok: true, from, state: c.to, path: outcome.path };
    } catch (err) {
      const message = `${from} -> ${c.to} failed: ${messageOf(err)}`;
      if (c.source === 'policy') m.policyFailed(Date.now());
      record(from, c.to, actorFor(c), 'failed', Date.now(), message);
      log.warn('move failed', { workspaceId: input.workspaceId, from, to: c.to, error: messageOf(err) });
      return { ok: false, message, type: 'MoveFailed' };
    } finally {
      m.busy = null;
      publish();
    }
  }

  // A new workspace becomes active at once: create (or clone) its file and open it.
  if (m.state === 'created') {
    const reason = input.template ? `clone of ${input.template}` : input.restoreFrom ? `restore of ${input.restoreFrom.workspaceId}` : 'created';
    const r = await run({ seq: 0, kind: 'move', to: 'active', actor: { reason, by: 'workbooks' }, source: 'start', at: Date.now() });
    if (!r.ok) {
      // Nothing was created: fail the execution so the caller sees why.
      throw ApplicationFailure.create({ message: `cannot create workspace ${input.workspaceId}: ${r.message}`, type: 'CreateFailed', nonRetryable: true });
    }
  } else {
    publish();
  }

  for (;;) {
    if (m.state === 'deleted') {
      // Answer any update still waiting, then end: the workflow's result is the final description.
      while (queue.length) {
        const c = queue.shift()!;
        record(m.state, c.to, c.actor, 'refused', Date.now(), 'workspace is deleted');
        results.set(c.seq, { ok: false, message: 'workspace is deleted', type: 'IllegalTransition' });
      }
      await condition(allHandlersFinished);
      return m.describe(0);
    }

    if (queue.length > 0) {
      const c = queue.shift()!;
      const r = await run(c);
      if (c.kind === 'move' && c.to === 'active' && r.ok) recordWake(r.path ?? 'local', Date.now() - c.at);
      results.set(c.seq, r);
      continue;
    }

    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= historyLimit) {
      await condition(allHandlersFinished);
      if (queue.length === 0) {
        await continueAsNew<typeof workspace>({ ...input, carried: m.carry() });
      }
      continue;
    }

    const deadline = m.deadline();
    const timeout = deadline ? Math.max(0, deadline.at - Date.now()) : undefined;
    const woke = timeout === undefined ? (await condition(() => queue.length > 0), true) : await condition(() => queue.length > 0, timeout);
    if (woke || !deadline) continue;

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
    const next = autoNext(m.state, idleSeconds, policy);
    if (next && queue.length === 0) {
      enqueue({ kind: 'move', to: next, actor: { reason: `idle ${Math.floor(idleSeconds)}s`, by: 'policy' }, source: 'policy' });
    }
  }
}

function validateInput(input: WorkspaceInput) {
  try {
    if (!input || typeof input !== 'object') throw new InputError('workflow input must be { workspaceId, tenant, template?, policy? }');
    checkWorkspaceId(input.workspaceId);
    checkTenant(input.tenant);
    if (input.template !== undefined && input.template !== null) {
      checkWorkspaceId(input.template, 'template');
      if (input.template === input.workspaceId) throw new InputError('a workspace cannot be its own template');
    }
    if (input.restoreFrom !== undefined && input.restoreFrom !== null) {
      const r = input.restoreFrom;
      if (typeof r !== 'object') throw new InputError('restoreFrom must be { workspaceId, at? }');
      checkWorkspaceId(r.workspaceId, 'restoreFrom.workspaceId');
      if (r.workspaceId === input.workspaceId) throw new InputError('a workspace cannot be restored into itself; restore into a new id');
      if (input.template) throw new InputError('give either template or restoreFrom, not both');
      if (r.at !== undefined && (typeof r.at !== 'string' || Number.isNaN(Date.parse(r.at)))) {
        throw new InputError(`restoreFrom.at '${String(r.at)}' is not an ISO time`);
      }
    }
    if (input.hostTimeoutSeconds !== undefined && (typeof input.hostTimeoutSeconds !== 'number' || !(input.hostTimeoutSeconds >= 1))) {
      throw new InputError('hostTimeoutSeconds must be a number of seconds, at least 1');
    }
    if (input.carried && !isState(input.carried.state)) throw new InputError('carried state is malformed');
    return parsePolicy(input.policy);
  } catch (err) {
    if (err instanceof InputError || err instanceof PolicyError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInput');
    throw err;
  }
}

function checkActor(a: Actor): void {
  if (typeof a !== 'object') throw new Error('reason/by must be given as an object { reason?, by? }');
  if (a.reason !== undefined && typeof a.reason !== 'string') throw new Error('reason must be a string');
  if (a.by !== undefined && typeof a.by !== 'string') throw new Error('by must be a string');
  if (typeof a.reason === 'string' && a.reason.length > 500) throw new Error('reason is longer than 500 characters');
  if (typeof a.by === 'string' && a.by.length > 100) throw new Error('by is longer than 100 characters');
}

function actorFor(c: Command): Actor {
  return { reason: c.actor.reason ?? (c.source === 'policy' ? 'idle' : ''), by: c.actor.by ?? (c.source === 'policy' ? 'policy' : '') };
}
