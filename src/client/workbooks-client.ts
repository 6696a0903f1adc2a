/**
 * The client other code and the CLI use: starts workspace workflows, sends signals and updates,
 * reads `describe`, lists by search attribute, and moves file bytes through the holding host's data server
 * (waking the workspace first when it is not active). Workspace bytes never travel through Temporal.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import { TemporalAccess, connectClient } from '../temporal-connection';
import { executionInfoFromRaw } from '@temporalio/client/lib/helpers';
import type { LoadedDataConverter } from '@temporalio/common';
import { State, isState, parsePolicy, PolicySpec } from '../lifecycle';
import { WORKFLOW_TYPE, checkKeyTenant, checkTenant, checkWorkspaceId, keyName, keyTenant, otherFormOf, workflowIdFor, workspaceIdFromWorkflowId, workspaceKey } from '../contract/ids';
import { describeQuery, prefetchUpdate, publishUpdate, transitionUpdate, unpublishUpdate, wakeUpdate } from '../contract/definitions';
import { ShareWith, TemplateRole, checkShareWith, mayClone } from '../contract/template-role';
import { prefetchKeepMs } from '../contract/recovery';
import { POLICY_PRIORITY, USER_PRIORITY } from '../contract/priority';
import { STATE_KEY, TENANT_KEY, HOST_KEY, LAST_ACTIVE_KEY } from '../contract/search-attributes';
import type { Actor, LedgerEntry, PrefetchResult, RestoreFrom, WakeResult, WorkspaceDescription, WorkspaceInput } from '../contract/types';
import { checkPath, checkPrefix, checkVolume } from '../vfs/volumes';
import { FileInfo, ListedWorkspace, PLACEMENT_HEADER, ReplicationView, checkReplicationHealth } from '../contract/data-plane';
import type { DataKey, GrantOp } from '../grants';

export type { FileInfo, ListedWorkspace } from '../contract/data-plane';
import { WorkbooksError, explain, innermost } from './errors';
import type { LedgerArchive } from '../storage/ledger-archive';

/** Options of a data request. */
export interface DataRequestOptions {
  /** The workspace's description, when the caller has just read it (saves a query). */
  description?: WorkspaceDescription;
  /** Longest wait for a wake before giving up with a `waking` error (the wake goes on); default: no limit. */
  waitMs?: number;
  /** Who asks (ledger) when the request has to wake the workspace. */
  actor?: Actor;
}

/** A data request's response and how the workspace was reached. */
export interface DataResponse {
  res: Response;
  /** warm: it was active; local/cold: it had to be woken (see WakeResult.path). */
  wake: WakeResult['path'];
}

export const SIGNALS = ['wake', 'suspend', 'freeze', 'archive', 'delete', 'prefetch'] as const;
export type SignalName = (typeof SIGNALS)[number];

/** How long `replication` waits for the holding host's answer (whole answer) before saying `unknown`. */
export const REPLICATION_HEALTH_TIMEOUT_MS = 2000;

/** A workspace's description with its replication health from the holding host (see WorkbooksClient.replication). */
export type DescriptionWithReplication = WorkspaceDescription & { replication: ReplicationView };

/** How long a data request waits for a host to start answering before asking the workflow about that host. */
export const DEFAULT_DATA_TIMEOUT_MS = 30_000;

export class WorkbooksClient {
  /** Longest wait for a host's data server to start answering a request (then the host is checked). */
  dataTimeoutMs = DEFAULT_DATA_TIMEOUT_MS;

  constructor(
    readonly client: Client,
    readonly taskQueue: string,
    /** Signs the grant each data request carries (null: requests go without one and hosts refuse them). */
    readonly dataKey: DataKey | null = null,
    /** Where the complete ledgers are (the cold store, src/storage/ledger-archive.ts); null: only the workflows' tails. */
    readonly ledgers: LedgerArchive | null = null,
  ) {}

  /**
   * Connects to Temporal at `address` (an explicit address always wins over the profile's), secured as `access`
   * says: TLS, client certificate, API key (default: plain, as for the embedded dev server; the CLI passes
   * loadConfig().temporal, read from TEMPORAL_* variables and the envconfig profile).
   */
  static async connect(opts: { address: string; namespace: string; taskQueue: string; dataKey?: DataKey | null; access?: TemporalAccess; ledgers?: LedgerArchive | null }): Promise<WorkbooksClient> {
    const access = opts.access ?? TemporalAccess.plain();
    let connection: Connection;
    try {
      connection = await connectClient(access, opts.address, { connectTimeout: '5s' });
    } catch (err) {
      // With nothing configured, the server meant is `workbooks up`'s embedded one.
      const msg = (err as Error).message;
      const local = !access.address && !access.secured;
      throw new WorkbooksError(local ? msg.replace('is the server up?', 'is `workbooks up` running?') : msg, 'unavailable', 503);
    }
    return new WorkbooksClient(new Client({ connection, namespace: opts.namespace }), opts.taskQueue, opts.dataKey ?? null, opts.ledgers ?? null);
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }

  handle(workspaceId: string) {
    return this.client.workflow.getHandle(workflowIdFor(checkId(workspaceId)));
  }

  /**
   * Starts the workspace's workflow and returns once it is active (its file created, cloned from `template`, or
   * restored from another workspace's replicas with `restoreFrom`).
   */
  async create(input: {
    workspaceId: string;
    tenant: string;
    template?: string;
    restoreFrom?: RestoreFrom;
    policy?: PolicySpec;
    /** Tuning: seconds before an unresponsive host is checked and its workspace recovered (default 30). */
    hostTimeoutSeconds?: number;
    /** Replica generations kept (1–20, default 3): older stopped ones are deleted at each freeze and archive. */
    replicaGenerations?: number;
    /** How long a prefetched copy waits for a wake before it is removed (a duration, at least 1 s; default 24h). */
    prefetchKeep?: string | number;
    /** Longest wait for the new workspace to become active (a `waking` error after it; creation goes on). */
    waitMs?: number;
    /** Who asks (ledger of the first wake). */
    actor?: Actor;
  }): Promise<WakeResult> {
    const workspaceId = checkId(input.workspaceId);
    try {
      checkTenant(input.tenant);
      checkKeyTenant(workspaceId, input.tenant);
      if (input.template !== undefined) checkWorkspaceId(input.template, 'template');
      if (input.restoreFrom !== undefined) {
        checkWorkspaceId(input.restoreFrom.workspaceId, 'restore source');
        if (input.template !== undefined) throw new Error('give either a template or a restore source, not both');
        if (input.restoreFrom.workspaceId === workspaceId) throw new Error('restore into a new workspace id, not into the source');
        const at = input.restoreFrom.at;
        if (at !== undefined && Number.isNaN(Date.parse(at))) throw new Error(`'${at}' is not a time (use ISO 8601, e.g. 2026-11-24T21:30:00Z)`);
        if (at !== undefined && Date.parse(at) > Date.now() + 1000) throw new Error(`restore time ${at} is in the future`);
      }
      parsePolicy(input.policy);
      if (input.replicaGenerations !== undefined && !(Number.isInteger(input.replicaGenerations) && input.replicaGenerations >= 1 && input.replicaGenerations <= 20)) {
        throw new Error('replicaGenerations must be a whole number from 1 to 20');
      }
      if (input.prefetchKeep !== undefined) prefetchKeepMs(input.prefetchKeep);
      if (input.hostTimeoutSeconds !== undefined && !(Number.isFinite(input.hostTimeoutSeconds) && input.hostTimeoutSeconds >= 1)) {
        throw new Error('hostTimeoutSeconds must be a number of seconds, at least 1');
      }
    } catch (err) {
      throw new WorkbooksError((err as Error).message, 'bad_request', 400);
    }
    if (input.restoreFrom) {
      await this.describe(input.restoreFrom.workspaceId).catch((err) => {
        throw err instanceof WorkbooksError && err.code === 'not_found' ? new WorkbooksError(`workspace '${input.restoreFrom!.workspaceId}' does not exist`, 'bad_request', 400) : err;
      });
    }
    if (input.template === workspaceId) throw new WorkbooksError('a workspace cannot be its own template', 'bad_request', 400);
    if (input.template) {
      const t = await this.describe(input.template).catch((err) => {
        throw err instanceof WorkbooksError && err.code === 'not_found' ? new WorkbooksError(`template workspace '${input.template}' does not exist`, 'bad_request', 400) : err;
      });
      if (t.state === 'deleted') throw new WorkbooksError(`template workspace '${input.template}' is deleted`, 'bad_request', 400);
      if (!mayClone({ tenant: t.tenant, published: t.published ?? null }, input.tenant)) {
        throw new WorkbooksError(`workspace '${input.template}' is not a template shared with tenant '${input.tenant}'`, 'forbidden', 403);
      }
    }
    await this.refuseOtherForm(workspaceId, input.tenant);
    const wfInput: WorkspaceInput = {
      workspaceId,
      tenant: input.tenant,
      ...(input.template ? { template: input.template } : {}),
      ...(input.restoreFrom ? { restoreFrom: { workspaceId: input.restoreFrom.workspaceId, ...(input.restoreFrom.at ? { at: new Date(input.restoreFrom.at).toISOString() } : {}) } } : {}),
      ...(input.policy ? { policy: input.policy } : {}),
      ...(input.hostTimeoutSeconds !== undefined ? { hostTimeoutSeconds: input.hostTimeoutSeconds } : {}),
      ...(input.replicaGenerations !== undefined ? { replicaGenerations: input.replicaGenerations } : {}),
      ...(input.prefetchKeep !== undefined ? { prefetchKeep: input.prefetchKeep } : {}),
    };
    try {
      await this.client.workflow.start(WORKFLOW_TYPE, {
        workflowId: workflowIdFor(workspaceId),
        taskQueue: this.taskQueue,
        args: [wfInput],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
        // The create is a user's move; the wake that follows sets the workflow to the idle ladder's priority after.
        priority: { priorityKey: USER_PRIORITY },
        typedSearchAttributes: [
          { key: STATE_KEY, value: 'created' },
          { key: TENANT_KEY, value: input.tenant },
        ],
        staticSummary: `workspace ${workspaceId} of tenant ${input.tenant}${input.template ? ` (clone of ${input.template})` : ''}${
          input.restoreFrom ? ` (restore of ${input.restoreFrom.workspaceId}${input.restoreFrom.at ? ` as of ${input.restoreFrom.at}` : ''})` : ''
        }`,
      });
    } catch (err) {
      throw explain(err, workspaceId);
    }
    try {
      return await this.wake(workspaceId, { reason: 'create', by: 'client', ...input.actor }, { waitMs: input.waitMs });
    } catch (err) {
      if (err instanceof WakePendingError) throw err;
      // The workflow ended instead of becoming active: creating (cloning, restoring) failed, e.g. a restore time
      // with no copy of the source. Say why (409: refused by what exists; nothing usable was made).
      const failure = await this.handle(workspaceId)
        .result()
        .then(() => null, (e: unknown) => innermost(e));
      if (failure) throw new WorkbooksError(failure, 'create_failed', 409);
      throw err;
    }
  }

  /**
   * One tenant holds one workspace per name: `acme.notes` is refused while a bare `notes` of acme runs (a
   * workspace made before keys carried the tenant), and the other way round. Another tenant's bare `notes` does
   * not count: it is not acme's.
   */
  private async refuseOtherForm(workspaceId: string, tenant: string): Promise<void> {
    const other = otherFormOf(workspaceId, tenant);
    const d = await this.describe(other).catch((err) => {
      if (err instanceof WorkbooksError && err.code === 'not_found') return null;
      throw err;
    });
    if (d && d.tenant === tenant && d.state !== 'deleted') {
      throw new WorkbooksError(`workspace '${keyName(workspaceId)}' already exists (as '${other}')`, 'already_exists', 409);
    }
  }

  /**
   * Restores workspace `sourceId` as it was at `at` (default: its newest data) into a new workspace `as`
   * (default `<source>-restored-<time>`), of the same tenant and policy. The source is only read.
   */
  async restore(sourceId: string, opts: { at?: string; as?: string; waitMs?: number; actor?: Actor } = {}): Promise<WakeResult & { workspaceId: string }> {
    const src = await this.describe(sourceId);
    const workspaceId = opts.as ?? defaultRestoreId(sourceId);
    const r = await this.create({ workspaceId, tenant: src.tenant, restoreFrom: { workspaceId: sourceId, ...(opts.at ? { at: opts.at } : {}) }, policy: src.policy, waitMs: opts.waitMs, actor: opts.actor });
    return { ...r, workspaceId };
  }

  async describe(workspaceId: string): Promise<WorkspaceDescription> {
    try {
      return await this.handle(workspaceId).query(describeQuery);
    } catch (err) {
      throw explain(err, workspaceId);
    }
  }

  /**
   * The workspace's replication health, from the host holding it (the workflow cannot know it: lag lives on the
   * host). A workspace that is not active is not replicated (`off`); a host that does not answer within
   * `timeoutMs`, or answers with anything but a health report, gives `unknown`. Never throws for the host's sake.
   */
  async replication(workspaceId: string, d?: WorkspaceDescription, timeoutMs = REPLICATION_HEALTH_TIMEOUT_MS): Promise<ReplicationView> {
    const desc = d ?? (await this.describe(workspaceId));
    const unknown = (): ReplicationView => ({ state: 'unknown', lagSeconds: null, checkedAt: new Date().toISOString() });
    if (desc.state !== 'active') return { state: 'off', lagSeconds: null, checkedAt: new Date().toISOString() };
    if (desc.busy || !desc.endpoint) return unknown();
    const placement = desc.placement ?? null;
    try {
      const res = await fetch(`${desc.endpoint}/workspaces/${desc.workspaceId}/replication`, {
        signal: AbortSignal.timeout(timeoutMs),
        headers: {
          ...(placement !== null ? { [PLACEMENT_HEADER]: String(placement) } : {}),
          ...(this.dataKey ? { authorization: `Bearer ${this.dataKey.grantFor(desc.workspaceId, placement, ['read'])}` } : {}),
        },
      });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return unknown();
      }
      const body = (await res.json()) as { workspaceId?: unknown; replication?: unknown };
      if (body.workspaceId !== desc.workspaceId) return unknown();
      return checkReplicationHealth(body.replication);
    } catch {
      return unknown();
    }
  }

  /** describe, with the replication health of the holding host merged in (see replication). */
  async describeWithReplication(workspaceId: string, timeoutMs = REPLICATION_HEALTH_TIMEOUT_MS): Promise<DescriptionWithReplication> {
    const d = await this.describe(workspaceId);
    return { ...d, replication: await this.replication(workspaceId, d, timeoutMs) };
  }

  async history(workspaceId: string): Promise<LedgerEntry[]> {
    return (await this.describe(workspaceId)).ledger;
  }

  /**
   * Every ledger entry of the workspace, oldest first: the pages its workflow wrote to the cold store, then the
   * entries its workflow holds that are not written yet. Works after the workflow's runs are gone (a deleted
   * workspace's last page is written at its delete). Needs the cold store (`ledgers`); without one, the tail only.
   * `complete` says whether nothing is missing (entries of runs from builds before the complete ledger are).
   */
  async fullHistory(workspaceId: string): Promise<{ entries: LedgerEntry[]; pages: number; complete: boolean; live: boolean }> {
    const id = checkId(workspaceId);
    const d = await this.describe(id).catch((err) => {
      if (err instanceof WorkbooksError && err.code === 'not_found') return null;
      throw err;
    });
    if (!this.ledgers) {
      if (!d) throw new WorkbooksError(`workspace '${id}' does not exist (and no cold store is configured to read its ledger from)`, 'not_found', 404);
      return { entries: d.ledger, pages: 0, complete: false, live: true };
    }
    const archived: LedgerEntry[] = [];
    let pages = 0;
    try {
      // While the workflow runs, only the pages it recorded as written (a page written just before a crash is
      // written again, with the same entries, from its tail); of a deleted workspace, every page there is.
      const known = d?.ledgerArchive?.pages ?? Number.POSITIVE_INFINITY;
      while (pages < known) {
        const page = await this.ledgers.read(id, pages);
        if (!page) break;
        archived.push(...page);
        pages++;
      }
    } catch (err) {
      throw new WorkbooksError(`the ledger of '${id}' cannot be read: ${(err as Error).message}`, 'unavailable', 503);
    }
    if (!d) {
      if (pages === 0) throw new WorkbooksError(`workspace '${id}' does not exist, and no ledger of it is kept`, 'not_found', 404);
      return { entries: archived, pages, complete: true, live: false };
    }
    const a = d.ledgerArchive;
    if (!a) return { entries: [...archived, ...d.ledger], pages, complete: false, live: true };
    const waiting = Math.max(0, a.recorded - a.archived);
    const tail = waiting === 0 ? [] : d.ledger.slice(-Math.min(waiting, d.ledger.length));
    return { entries: [...archived, ...tail], pages, complete: waiting <= d.ledger.length && a.recorded === archived.length + tail.length, live: true };
  }

  /** Lists workspaces through the visibility store (search attributes), newest first, following pages up to `limit`. */
  async list(filter: ListFilter & { limit?: number } = {}): Promise<ListedWorkspace[]> {
    const out: ListedWorkspace[] = [];
    let cursor: string | undefined;
    for (;;) {
      const pageSize = filter.limit ? Math.min(1000, filter.limit - out.length) : 1000;
      const page = await this.listPage(filter, { pageSize, cursor });
      out.push(...page.workspaces);
      if (!page.nextCursor || (filter.limit && out.length >= filter.limit)) break;
      cursor = page.nextCursor;
    }
    return filter.limit ? out.slice(0, filter.limit) : out;
  }

  /**
   * One page of the list: at most `pageSize` workspaces, newest first, and the cursor of the next page (null at the
   * end). A cursor is opaque (Temporal's page token with a check sum bound to the filter): one altered, or given
   * with other filters, is refused (400 bad_cursor).
   */
  async listPage(filter: ListFilter, page: { pageSize: number; cursor?: string }): Promise<{ workspaces: ListedWorkspace[]; nextCursor: string | null }> {
    const query = listQuery(filter);
    const token = page.cursor === undefined ? Buffer.alloc(0) : decodeCursor(page.cursor, query);
    const out: ListedWorkspace[] = [];
    const seen = new Set<string>();
    let next: Uint8Array | null | undefined;
    try {
      const res = await this.client.workflowService.listWorkflowExecutions({ namespace: this.client.options.namespace, query, pageSize: page.pageSize, nextPageToken: token });
      for (const raw of res.executions ?? []) {
        const wf = await executionInfoFromRaw(raw, this.dataConverter, raw, this.client.options.namespace);
        const id = workspaceIdFromWorkflowId(wf.workflowId);
        if (!id || seen.has(id)) continue;
        seen.add(id);
        const sa = wf.typedSearchAttributes;
        out.push({
          workspaceId: id,
          tenant: String(sa.get(TENANT_KEY) ?? ''),
          state: (sa.get(STATE_KEY) as State) ?? 'created',
          host: (sa.get(HOST_KEY) as string) || null,
          startedAt: wf.startTime.toISOString(),
          lastActiveAt: (sa.get(LAST_ACTIVE_KEY) as string) || null,
        });
      }
      next = res.nextPageToken;
    } catch (err) {
      if (page.cursor !== undefined && (err as { code?: number }).code === 3) throw new WorkbooksError('the cursor is not valid (take nextCursor from a page as it is)', 'bad_cursor', 400);
      throw explain(err);
    }
    return { workspaces: out, nextCursor: next && next.length ? encodeCursor(Buffer.from(next), query) : null };
  }

  /** How many running workspaces a tenant has (the visibility store's count; it may lag a new one by a moment). */
  async countWorkspaces(tenant: string): Promise<number> {
    try {
      return (await this.client.workflow.count(listQuery({ tenant }))).count;
    } catch (err) {
      throw explain(err);
    }
  }

  private get dataConverter(): LoadedDataConverter {
    return (this.client.workflow as unknown as { dataConverter: LoadedDataConverter }).dataConverter;
  }

  /** Fire-and-forget signal; an illegal one is recorded as refused by the workflow. */
  async signal(workspaceId: string, name: SignalName, actor: Actor = {}): Promise<void> {
    if (!(SIGNALS as readonly string[]).includes(name)) throw new WorkbooksError(`unknown signal '${name}'`, 'bad_request', 400);
    try {
      await this.handle(workspaceId).signal(name, actor);
    } catch (err) {
      throw explain(err, workspaceId);
    }
  }

  /** Moves the workspace and waits for the move; illegal edges are refused before anything changes. */
  async transition(workspaceId: string, to: string, actor: Actor = {}, opts: { waitMs?: number } = {}): Promise<{ from: State; state: State }> {
    if (!isState(to)) throw new WorkbooksError(`unknown state '${to}'`, 'bad_request', 400);
    // The update's validator refuses an illegal edge before anything is recorded; no need to query first.
    const moved = this.update(workspaceId, () => this.handle(workspaceId).executeUpdate(transitionUpdate, { args: [{ to, ...actor }] }));
    return within(moved, opts.waitMs, () => new MovePendingError(workspaceId, to));
  }

  /**
   * Returns once the workspace is active, with where it lives. `check` also confirms that the host of an
   * active workspace still serves it, recovering the workspace elsewhere if not.
   */
  async wake(workspaceId: string, actor: Actor = {}, opts: { check?: boolean; waitMs?: number } = {}): Promise<WakeResult> {
    const woken = this.update(workspaceId, () => this.handle(workspaceId).executeUpdate(wakeUpdate, { args: [{ ...actor, ...(opts.check ? { check: true } : {}) }] }));
    return within(woken, opts.waitMs, () => new WakePendingError(workspaceId));
  }

  /**
   * Makes the workspace's file local on a live host without starting it and without counting as use (frozen or
   * archived: its newest stored copy, downloaded and verified; active or suspended: it is local already). Returns
   * what was done; a `PrefetchPendingError` after `waitMs` while the download goes on.
   */
  async prefetch(workspaceId: string, actor: Actor = {}, opts: { waitMs?: number } = {}): Promise<PrefetchResult> {
    const fetched = this.update(workspaceId, () => this.handle(workspaceId).executeUpdate(prefetchUpdate, { args: [actor] }));
    return within(fetched, opts.waitMs, () => new PrefetchPendingError(workspaceId));
  }

  /**
   * Publishes the workspace as a template, shared with `shareWith` besides its own tenant ('*': every tenant):
   * an active or suspended workspace is suspended and frozen first (its verified cold copy becomes the template's
   * version). Published again, only whom it is shared with changes. See src/contract/template-role.ts.
   */
  async publish(workspaceId: string, shareWith: ShareWith, actor: Actor = {}): Promise<TemplateRole> {
    let share: ShareWith;
    try {
      share = checkShareWith(shareWith);
    } catch (err) {
      throw new WorkbooksError((err as Error).message, 'bad_request', 400);
    }
    const d = await this.describe(workspaceId);
    if (!d.published) {
      if (d.state === 'active') await this.transition(workspaceId, 'suspended', { ...actor, reason: actor.reason ?? 'publish as a template' });
      if (d.state === 'active' || d.state === 'suspended') await this.transition(workspaceId, 'frozen', { ...actor, reason: actor.reason ?? 'publish as a template' });
    }
    return this.update(workspaceId, () => this.handle(workspaceId).executeUpdate(publishUpdate, { args: [{ ...actor, shareWith: share }] }));
  }

  /** Makes a published template an ordinary frozen workspace again. */
  async unpublish(workspaceId: string, actor: Actor = {}): Promise<{ state: State }> {
    return this.update(workspaceId, () => this.handle(workspaceId).executeUpdate(unpublishUpdate, { args: [actor] }));
  }

  /**
   * A user's move: the workflow's tasks run at user priority while it is under way, at the idle ladder's after
   * (src/contract/priority.ts), so it is not queued behind a burst of other workspaces' idle deadlines.
   */
  private async update<T>(workspaceId: string, send: () => Promise<T>): Promise<T> {
    await this.setWorkflowPriority(workspaceId, USER_PRIORITY);
    try {
      return await this.sendUpdate(workspaceId, send);
    } finally {
      await this.setWorkflowPriority(workspaceId, POLICY_PRIORITY);
    }
  }

  /**
   * The priority of the workspace's workflow tasks from now on (see src/contract/priority.ts). Best effort: it
   * only orders a backlog, the move does not depend on it (a server without the API, or a workflow that is gone,
   * is answered by the update itself).
   */
  private async setWorkflowPriority(workspaceId: string, priorityKey: number): Promise<void> {
    try {
      await this.client.workflowService.updateWorkflowExecutionOptions({
        namespace: this.client.options.namespace,
        workflowExecution: { workflowId: workflowIdFor(workspaceId) },
        workflowExecutionOptions: { priority: { priorityKey } },
        updateMask: { paths: ['priority'] },
      });
    } catch {
      // see above
    }
  }

  /**
   * Sends an update, again when the server answers that no worker processed it (the workflow task that carried
   * it was lost, e.g. to a worker that had just restarted), or that the workflow task carrying it failed
   * ("unexpected workflow task failure": a worker killed and restarted mid-task): such an update was never
   * accepted, so sending it again cannot apply it twice. Other failures are explained (WorkbooksError).
   */
  private async sendUpdate<T>(workspaceId: string, send: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        if (attempt < UPDATE_ATTEMPTS && UPDATE_NOT_ACCEPTED.test(innermost(err))) {
          await new Promise((r) => setTimeout(r, 500 * attempt));
          continue;
        }
        throw explain(err, workspaceId);
      }
    }
  }

  // ---- data: bytes go straight to the host holding the file ----

  async putFile(workspaceId: string, volume: string, path: string, data: Buffer): Promise<FileInfo> {
    const v = checkVolume(volume);
    checkPath(path);
    return (await this.dataRequest(workspaceId, 'PUT', `/files/${v}${encodePath(path)}`, data)).json() as Promise<FileInfo>;
  }

  /**
   * Writes a file from a stream, sent once (never held whole here): see `dataStream`. `length` is the body's size
   * when known (sent as Content-Length, so the host can refuse a body too large before reading it).
   */
  async putFileStream(workspaceId: string, volume: string, path: string, body: Readable, length: number | null, opts: DataRequestOptions = {}): Promise<FileInfo> {
    const v = checkVolume(volume);
    checkPath(path);
    return (await this.dataStream(workspaceId, 'PUT', `/files/${v}${encodePath(path)}`, body, length, opts)).res.json() as Promise<FileInfo>;
  }

  async getFile(workspaceId: string, volume: string, path: string): Promise<Buffer> {
    const v = checkVolume(volume);
    checkPath(path);
    return Buffer.from(await (await this.dataRequest(workspaceId, 'GET', `/files/${v}${encodePath(path)}`)).arrayBuffer());
  }

  async deleteFile(workspaceId: string, volume: string, path: string): Promise<void> {
    const v = checkVolume(volume);
    checkPath(path);
    await this.dataRequest(workspaceId, 'DELETE', `/files/${v}${encodePath(path)}`);
  }

  async listFiles(workspaceId: string, volume: string, prefix = '/'): Promise<FileInfo[]> {
    const v = checkVolume(volume);
    const p = checkPrefix(prefix);
    const body = (await (await this.dataRequest(workspaceId, 'GET', `/files/${v}?prefix=${encodeURIComponent(p)}`)).json()) as { files: FileInfo[] } | FileInfo[];
    return Array.isArray(body) ? body : body.files;
  }

  /**
   * Writes an export (workspace volume only) to `outFile`, atomically. `onProgress` gets the bytes received so far
   * and the export's size (its content-length), or null when the host did not say.
   */
  async exportTo(workspaceId: string, outFile: string, onProgress?: (bytes: number, total: number | null) => void): Promise<{ bytes: number }> {
    const res = await this.dataRequest(workspaceId, 'GET', '/export');
    const tmp = `${outFile}.${process.pid}.partial`;
    const length = Number(res.headers.get('content-length') ?? NaN);
    const total = Number.isSafeInteger(length) && length >= 0 ? length : null;
    let bytes = 0;
    try {
      const body = Readable.fromWeb(res.body as import('node:stream/web').ReadableStream);
      body.on('data', (chunk: Buffer) => {
        bytes += chunk.length;
        onProgress?.(bytes, total);
      });
      await pipeline(body, fs.createWriteStream(tmp));
      fs.renameSync(tmp, outFile);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw err;
    }
    return { bytes };
  }

  /**
   * Sends a data request to the host that holds the workspace. A workspace that is not active is woken first
   * (and a request that races a suspend is retried once after waking again).
   */
  private async dataRequest(workspaceId: string, method: string, suffix: string, body?: Buffer): Promise<Response> {
    return (await this.dataResponse(workspaceId, method, suffix, body)).res;
  }

  /**
   * A request to the data server of the host holding the workspace (`suffix` after `/workspaces/<id>`), waking
   * the workspace first when it is not active. Errors of the host become WorkbooksErrors with its code.
   */
  async dataResponse(workspaceId: string, method: string, suffix: string, body?: Buffer, opts: DataRequestOptions = {}): Promise<DataResponse> {
    let d = opts.description ?? (await this.describe(workspaceId));
    let checked = false;
    let wake: WakeResult['path'] = 'warm';
    const actor = opts.actor ?? { reason: `${method} request`, by: 'client' };
    let lastAnswer = '';
    let at: { endpoint: string; placement: number | null } | null = d.state === 'active' && !d.busy && d.endpoint ? { endpoint: d.endpoint, placement: d.placement ?? null } : null;
    /** Asks the workflow to confirm (or recover) where the workspace is served: once per request. */
    const check = async (why: string) => {
      checked = true;
      const w = await this.wake(workspaceId, { reason: `${actor.reason ?? method + ' request'}: ${why}`, by: actor.by ?? 'client' }, { check: true, waitMs: opts.waitMs });
      if (w.path !== 'warm') wake = w.path;
      at = { endpoint: w.endpoint, placement: w.placement ?? null };
    };
    let fencedWaits = 0;
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!at) {
        const w = await this.wake(workspaceId, actor, { waitMs: opts.waitMs });
        at = { endpoint: w.endpoint, placement: w.placement ?? null };
        if (w.path !== 'warm') wake = w.path;
      }
      const target: { endpoint: string; placement: number | null } = at;
      const op: GrantOp = method === 'PUT' || method === 'DELETE' ? 'write' : suffix === '/export' ? 'export' : 'read';
      let res: Response;
      try {
        res = await fetchWithin(`${target.endpoint}/workspaces/${workspaceId}${suffix}`, this.dataTimeoutMs, {
          method,
          body,
          headers: {
            ...(body ? { 'content-type': 'application/octet-stream' } : {}),
            ...(target.placement !== null ? { [PLACEMENT_HEADER]: String(target.placement) } : {}),
            ...(this.dataKey ? { authorization: `Bearer ${this.dataKey.grantFor(workspaceId, target.placement, [op])}` } : {}),
          },
        });
      } catch (err) {
        if (checked) throw new WorkbooksError(`cannot reach host ${d.host ?? ''} at ${target.endpoint}: ${(err as Error).message}`, 'host_unavailable', 503);
        // The host may be gone: have the workflow confirm it, recovering the workspace on a live host if so.
        await check(`host ${d.host ?? '?'} unreachable`);
        continue;
      }
      if (res.ok) return { res, wake };
      const payload = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
      const code = payload.error?.code;
      // The host does not serve it (any more, or under this placement), or cannot confirm it does: ask the
      // workflow where it is now (a check recovers it if its host is gone), then try there.
      if ((res.status === 409 && (code === 'not_here' || code === 'not_active')) || (res.status === 503 && code === 'fenced')) {
        lastAnswer = `${res.status} ${code}: ${payload.error?.message ?? ''}`;
        // A host that cannot confirm it still holds the workspace (its lease lapsed: a restart of the cluster, a
        // pause) usually can again within seconds: once checked, wait as it asks instead of giving up.
        if (code === 'fenced' && checked && fencedWaits < FENCED_WAITS) {
          fencedWaits += 1;
          attempt -= 1;
          await new Promise((r) => setTimeout(r, retryAfterMs(res)));
          continue;
        }
        if (checked) {
          d = await this.describe(workspaceId);
          at = d.state === 'active' && !d.busy && d.endpoint ? { endpoint: d.endpoint, placement: d.placement ?? null } : null;
          continue;
        }
        await check(`host answered ${code}`);
        continue;
      }
      if (res.status === 401 && !this.dataKey) {
        throw new WorkbooksError('this client has no data key: set WORKBOOKS_DATA_KEY (or WORKBOOKS_DATA_KEY_FILE) to the key the hosts use', 'no_data_key', 401);
      }
      throw new WorkbooksError(payload.error?.message ?? `host answered ${res.status}`, code ?? 'error', res.status);
    }
    throw new WorkbooksError(`workspace '${workspaceId}' kept moving while the request was retried; try again (last answer: ${lastAnswer || 'none'})`, 'unavailable', 503);
  }

  /**
   * A request whose body is a stream, sent to the host holding the workspace exactly once. Where the workspace is
   * served is settled first (woken if needed) and only then is the body read; a stream cannot be sent twice, so
   * when the host answers that it does not serve the workspace (moved, fenced) or cannot be reached, nothing was
   * stored and the answer is 503 `moved` (retry shortly); the workflow is asked to check where the workspace is
   * in the background, so the next attempt finds it.
   */
  async dataStream(workspaceId: string, method: 'PUT', suffix: string, body: Readable, length: number | null, opts: DataRequestOptions = {}): Promise<DataResponse> {
    const d = opts.description ?? (await this.describe(workspaceId));
    const actor = opts.actor ?? { reason: `${method} request`, by: 'client' };
    let wake: WakeResult['path'] = 'warm';
    let at: { endpoint: string; placement: number | null };
    if (d.state === 'active' && !d.busy && d.endpoint) at = { endpoint: d.endpoint, placement: d.placement ?? null };
    else {
      const w = await this.wake(workspaceId, actor, { waitMs: opts.waitMs });
      at = { endpoint: w.endpoint, placement: w.placement ?? null };
      wake = w.path;
    }
    const recheck = (why: string) => {
      this.wake(workspaceId, { reason: `${actor.reason ?? method + ' request'}: ${why}`, by: actor.by ?? 'client' }, { check: true, waitMs: 60_000 }).catch(() => undefined);
    };
    let res: Response;
    try {
      res = await sendStream(`${at.endpoint}/workspaces/${workspaceId}${suffix}`, method, body, length, this.dataTimeoutMs, {
        'content-type': 'application/octet-stream',
        ...(at.placement !== null ? { [PLACEMENT_HEADER]: String(at.placement) } : {}),
        ...(this.dataKey ? { authorization: `Bearer ${this.dataKey.grantFor(workspaceId, at.placement, ['write'])}` } : {}),
      });
    } catch (err) {
      if (err instanceof SourceError) throw err.cause;
      recheck(`host ${d.host ?? '?'} unreachable`);
      throw new WorkbooksError(`cannot reach the host of workspace '${workspaceId}' (${(err as Error).message}); nothing was stored, send it again shortly`, 'moved', 503);
    }
    if (res.ok) return { res, wake };
    const payload = (await res.json().catch(() => ({}))) as { error?: { code?: string; message?: string } };
    const code = payload.error?.code;
    if ((res.status === 409 && (code === 'not_here' || code === 'not_active')) || (res.status === 503 && code === 'fenced')) {
      recheck(`host answered ${code}`);
      throw new WorkbooksError(`workspace '${workspaceId}' is moving (its host answered ${code}); nothing was stored, send it again shortly`, 'moved', 503);
    }
    if (res.status === 401 && !this.dataKey) {
      throw new WorkbooksError('this client has no data key: set WORKBOOKS_DATA_KEY (or WORKBOOKS_DATA_KEY_FILE) to the key the hosts use', 'no_data_key', 401);
    }
    throw new WorkbooksError(payload.error?.message ?? `host answered ${res.status}`, code ?? 'error', res.status);
  }
}

/** Filters of the workspace list. */
export interface ListFilter {
  state?: string;
  tenant?: string;
}

/** The visibility query of a list (filters validated: they are put into the query). */
function listQuery(filter: ListFilter): string {
  const clauses = [`WorkflowType = '${WORKFLOW_TYPE}'`];
  if (filter.state !== undefined) {
    if (!isState(filter.state)) throw new WorkbooksError(`unknown state '${filter.state}'`, 'bad_request', 400);
    clauses.push(`WorkbookState = '${filter.state}'`);
  }
  if (filter.tenant !== undefined) {
    try {
      checkTenant(filter.tenant);
    } catch (err) {
      throw new WorkbooksError((err as Error).message, 'bad_request', 400);
    }
    clauses.push(`WorkbookTenant = '${filter.tenant}'`);
  }
  // Deleted workspaces end their workflow; only list them when asked for.
  if (filter.state !== 'deleted') clauses.push(`ExecutionStatus = 'Running'`);
  return clauses.join(' AND ');
}

/** The form of a cursor (the API's schema says the same): base64url, 17 to 4096 characters. */
export const CURSOR_PATTERN = /^[A-Za-z0-9_-]{17,4096}$/;

/** A cursor: base64url of `<check sum: 12 bytes of sha256(query, token)><token>`. */
function encodeCursor(token: Buffer, query: string): string {
  return Buffer.concat([cursorSum(token, query), token]).toString('base64url');
}

function decodeCursor(cursor: string, query: string): Buffer {
  const bad = () => new WorkbooksError('the cursor is not valid for this list (take nextCursor from a page as it is, with the same filters)', 'bad_cursor', 400);
  if (!CURSOR_PATTERN.test(cursor)) throw bad();
  const raw = Buffer.from(cursor, 'base64url');
  if (raw.toString('base64url') !== cursor || raw.length <= 12) throw bad();
  const token = raw.subarray(12);
  if (!crypto.timingSafeEqual(raw.subarray(0, 12), cursorSum(token, query))) throw bad();
  return token;
}

function cursorSum(token: Buffer, query: string): Buffer {
  return crypto.createHash('sha256').update('workbooks-list-cursor\0').update(query).update('\0').update(token).digest().subarray(0, 12);
}

/** An error of the request body's source (the caller's upload), not of the host. */
class SourceError extends Error {
  constructor(override readonly cause: Error) {
    super(cause.message);
  }
}

/**
 * Sends `body` once with node:http (fetch cannot show an answer the host gives before it has read the body, e.g. a
 * 413). Gives up when no answer has started `ms` after the body was sent. Resolves as soon as the answer starts;
 * a host that answers early stops the upload (the rest of the body is not read).
 */
function sendStream(url: string, method: string, body: Readable, length: number | null, ms: number, headers: Record<string, string>): Promise<Response> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const lib = u.protocol === 'https:' ? https : http;
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reject(err);
    };
    const req = lib.request(u, { method, headers: { ...headers, ...(length !== null ? { 'content-length': String(length) } : {}) } }, (res) => {
      settled = true;
      clearTimeout(timer);
      body.unpipe(req);
      const h = new Headers();
      for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(', ') : v);
      resolve(new Response(Readable.toWeb(res) as ReadableStream, { status: res.statusCode ?? 500, headers: h }));
    });
    req.on('error', (err) => fail(err));
    req.on('finish', () => {
      // The answer may have come before the body was flushed (then there is nothing to wait for).
      if (!settled) timer = setTimeout(() => fail(new Error(`no answer within ${ms} ms`)), ms);
    });
    body.on('error', (err) => fail(new SourceError(err)));
    body.pipe(req);
  });
}

/** How often an update is sent when no worker processed it (see WorkbooksClient.update). */
const UPDATE_ATTEMPTS = 4;
/** Server answers for an update that no workflow task accepted (safe to send again). */
const UPDATE_NOT_ACCEPTED = /wasn't processed by worker|due to unexpected workflow task failure/i;

/** How often a data request waits on a `fenced` host (Retry-After, about a second each) before giving up. */
const FENCED_WAITS = 20;

/** A 503's Retry-After in ms (1 s when absent or unreadable, at most 10 s). */
function retryAfterMs(res: Response): number {
  const s = Number(res.headers.get('retry-after'));
  return Number.isFinite(s) && s > 0 ? Math.min(s, 10) * 1000 : 1000;
}

/**
 * fetch() that gives up when no response has started within `ms` (a host that is paused or cut off never
 * answers); once the response has begun, its body may take as long as it needs.
 */
async function fetchWithin(url: string, ms: number, init: RequestInit): Promise<Response> {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new Error(`no answer within ${ms} ms`)), ms);
  try {
    return await fetch(url, { ...init, signal: ac.signal });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The key `restore` gives a restored workspace when none is asked for: `<source>-restored-<utc time>`, of the
 * source's tenant (the name part cut so the whole name stays within 63 characters).
 */
export function defaultRestoreId(sourceId: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase();
  const tenant = keyTenant(sourceId);
  const name = `${keyName(sourceId).slice(0, 63 - '-restored-'.length - stamp.length)}-restored-${stamp}`;
  return tenant === null ? name : workspaceKey(tenant, name);
}

/** A wake still running after the caller's wait: it goes on; ask again shortly. */
export class WakePendingError extends WorkbooksError {
  constructor(workspaceId: string) {
    super(`workspace '${workspaceId}' is still waking; retry shortly`, 'waking', 503);
  }
}

/** A prefetch still downloading after the caller's wait: it goes on in the workflow. */
export class PrefetchPendingError extends WorkbooksError {
  constructor(workspaceId: string) {
    super(`workspace '${workspaceId}' is still being prefetched; it goes on`, 'in_progress', 202);
  }
}

/** A move still running after the caller's wait: it goes on in the workflow. */
export class MovePendingError extends WorkbooksError {
  constructor(workspaceId: string, to: string) {
    super(`workspace '${workspaceId}' is still moving to ${to}; it goes on (see its state)`, 'in_progress', 202);
  }
}

/** `work`'s result, or `late()` thrown after `waitMs` (the work goes on; its outcome is then ignored). */
async function within<T>(work: Promise<T>, waitMs: number | undefined, late: () => Error): Promise<T> {
  if (waitMs === undefined) return work;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), waitMs);
  });
  try {
    return await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined);
  }
}

function checkId(id: string): string {
  try {
    return checkWorkspaceId(id);
  } catch (err) {
    throw new WorkbooksError((err as Error).message, 'bad_request', 400);
  }
}

/** A VFS path as a URL path: each segment percent-encoded, the slashes kept. */
export function encodePath(p: string): string {
  return p.split('/').map(encodeURIComponent).join('/');
}
