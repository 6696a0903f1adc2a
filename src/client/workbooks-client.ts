/**
 * The client other code and the CLI use: starts workspace workflows, sends signals and updates,
 * reads `describe`, lists by search attribute, and moves file bytes through the holding host's data server
 * (waking the workspace first when it is not active). Workspace bytes never travel through Temporal.
 */
import fs from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Client, Connection, WorkflowIdConflictPolicy } from '@temporalio/client';
import { State, isState, parsePolicy, PolicySpec } from '../lifecycle';
import { WORKFLOW_TYPE, checkTenant, checkWorkspaceId, workflowIdFor, workspaceIdFromWorkflowId } from '../contract/ids';
import { describeQuery, transitionUpdate, wakeUpdate } from '../contract/definitions';
import { STATE_KEY, TENANT_KEY, HOST_KEY, LAST_ACTIVE_KEY } from '../contract/search-attributes';
import type { Actor, LedgerEntry, RestoreFrom, WakeResult, WorkspaceDescription, WorkspaceInput } from '../contract/types';
import { checkPath, checkPrefix, checkVolume } from '../vfs/volumes';
import { FileInfo, ListedWorkspace, PLACEMENT_HEADER } from '../contract/data-plane';
import type { DataKey, GrantOp } from '../grants';

export type { FileInfo, ListedWorkspace } from '../contract/data-plane';
import { WorkbooksError, explain, innermost } from './errors';

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
  ) {}

  static async connect(opts: { address: string; namespace: string; taskQueue: string; dataKey?: DataKey | null }): Promise<WorkbooksClient> {
    let connection: Connection;
    try {
      connection = await Connection.connect({ address: opts.address, connectTimeout: '5s' });
    } catch (err) {
      throw new WorkbooksError(`cannot reach Temporal at ${opts.address}: ${(err as Error).message.split('\n')[0]} (is \`workbooks up\` running?)`, 'unavailable', 503);
    }
    return new WorkbooksClient(new Client({ connection, namespace: opts.namespace }), opts.taskQueue, opts.dataKey ?? null);
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
    /** Longest wait for the new workspace to become active (a `waking` error after it; creation goes on). */
    waitMs?: number;
    /** Who asks (ledger of the first wake). */
    actor?: Actor;
  }): Promise<WakeResult> {
    const workspaceId = checkId(input.workspaceId);
    try {
      checkTenant(input.tenant);
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
    }
    const wfInput: WorkspaceInput = {
      workspaceId,
      tenant: input.tenant,
      ...(input.template ? { template: input.template } : {}),
      ...(input.restoreFrom ? { restoreFrom: { workspaceId: input.restoreFrom.workspaceId, ...(input.restoreFrom.at ? { at: new Date(input.restoreFrom.at).toISOString() } : {}) } } : {}),
      ...(input.policy ? { policy: input.policy } : {}),
      ...(input.hostTimeoutSeconds !== undefined ? { hostTimeoutSeconds: input.hostTimeoutSeconds } : {}),
    };
    try {
      await this.client.workflow.start(WORKFLOW_TYPE, {
        workflowId: workflowIdFor(workspaceId),
        taskQueue: this.taskQueue,
        args: [wfInput],
        workflowIdConflictPolicy: WorkflowIdConflictPolicy.FAIL,
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

  async history(workspaceId: string): Promise<LedgerEntry[]> {
    return (await this.describe(workspaceId)).ledger;
  }

  /** Lists workspaces through the visibility store (search attributes), newest first. */
  async list(filter: { state?: string; tenant?: string; limit?: number } = {}): Promise<ListedWorkspace[]> {
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
    const out: ListedWorkspace[] = [];
    const seen = new Set<string>();
    try {
      for await (const wf of this.client.workflow.list({ query: clauses.join(' AND ') })) {
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
        if (filter.limit && out.length >= filter.limit) break;
      }
    } catch (err) {
      throw explain(err);
    }
    return out;
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
   * Sends an update, again when the server answers that no worker processed it (the workflow task that carried
   * it was lost, e.g. to a worker that had just restarted): such an update was never accepted, so sending it again
   * cannot apply it twice. Other failures are explained (WorkbooksError).
   */
  private async update<T>(workspaceId: string, send: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await send();
      } catch (err) {
        if (attempt < UPDATE_ATTEMPTS && /wasn't processed by worker/i.test(innermost(err))) {
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
}

/** How often an update is sent when no worker processed it (see WorkbooksClient.update). */
const UPDATE_ATTEMPTS = 4;

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
 * The id `restore` gives a restored workspace when none is asked for: `<source>-restored-<utc time>`, the source
 * shortened so the whole stays a valid id (at most 63 characters).
 */
export function defaultRestoreId(sourceId: string, now = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '').toLowerCase();
  const suffix = `-restored-${stamp}`;
  return `${sourceId.slice(0, 63 - suffix.length)}${suffix}`;
}

/** A wake still running after the caller's wait: it goes on; ask again shortly. */
export class WakePendingError extends WorkbooksError {
  constructor(workspaceId: string) {
    super(`workspace '${workspaceId}' is still waking; retry shortly`, 'waking', 503);
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
