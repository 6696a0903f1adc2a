/** What every route of the HTTP API shares: the client, the caller's identity and the tenant check. */
import { mayClone } from '../contract/template-role';
import type { FastifyRequest } from 'fastify';
import { WorkbooksClient } from '../client/workbooks-client';
import type { StorageReporter } from '../client/storage-report';
import { WorkbooksError } from '../client/errors';
import { checkTenant, checkWorkspaceId, checkWorkspaceName, keyName, keyTenant, workspaceKey } from '../contract/ids';
import type { Actor, WorkspaceDescription } from '../contract/types';
import { ApiError, notFound } from './errors';
import type { Caller } from './tokens';
import type { MoveLimiter } from './rate-limit';
import type { Quotas } from '../config';

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller | null;
  }
}

export interface ApiContext {
  client: WorkbooksClient;
  /** How long a request waits for a wake or a move before answering (503 Retry-After / 202). */
  waitMs: number;
  /** Largest file body accepted (default MAX_FILE_BYTES). */
  maxFileBytes: number;
  /** Per-tenant quotas (0: none); admin tokens are exempt from the workspace count and the move rate. */
  quotas: Quotas;
  /** Moves per tenant per minute, counted in this process. */
  moves: MoveLimiter;
  /** Shortest policy rung accepted, in ms. */
  policyFloorMs: number;
  /** List page size when none is asked for, and the largest one. */
  listPageDefault: number;
  listPageMax: number;
  /** Bytes of stored copies one login may download to make its workspaces local (0: none). */
  sessionPrefetchBytes: number;
  /** Lists the stores for storage reports (this process's configuration); null: reports answer 503. */
  storage: StorageReporter | null;
}

/** Retry-After of a refused create: the count only drops when one of the tenant's workspaces is deleted. */
const COUNT_RETRY_AFTER_SECONDS = 60;

/** Takes one move from the tenant's budget (admin tokens are exempt): 429 quota_exceeded with Retry-After when spent. */
export function chargeMove(ctx: ApiContext, req: FastifyRequest, tenant: string): void {
  if (callerOf(req).admin) return;
  const wait = ctx.moves.take(tenant);
  if (wait > 0) {
    throw new ApiError(429, 'quota_exceeded', `tenant '${tenant}' has used its ${ctx.quotas.movesPerMinute} moves per minute (WORKBOOKS_QUOTA_MOVES_PER_MINUTE); retry in ${wait} s`, {
      'retry-after': String(wait),
    });
  }
}

/** Refuses a new workspace of a tenant that has its quota of running ones (admin tokens are exempt). */
export async function checkWorkspaceQuota(ctx: ApiContext, req: FastifyRequest, tenant: string): Promise<void> {
  if (callerOf(req).admin || ctx.quotas.workspaces <= 0) return;
  const n = await ctx.client.countWorkspaces(tenant);
  if (n >= ctx.quotas.workspaces) {
    throw new ApiError(429, 'quota_exceeded', `tenant '${tenant}' has ${n} workspaces, its quota is ${ctx.quotas.workspaces} (WORKBOOKS_QUOTA_WORKSPACES); delete one first`, {
      'retry-after': String(COUNT_RETRY_AFTER_SECONDS),
    });
  }
}

export function callerOf(req: FastifyRequest): Caller {
  if (!req.caller) throw new ApiError(401, 'unauthorized', 'missing or unknown bearer token');
  return req.caller;
}

/** Who a move was asked by, for the ledger. */
export function actorOf(req: FastifyRequest, reason: string | undefined, fallback: string): Actor {
  const c = callerOf(req);
  return { reason: reason ?? fallback, by: c.admin ? 'api:admin' : `api:${c.tenant}` };
}

/**
 * The tenant a request acts for: a tenant token's own; an admin must name one (`tenant` in the body or query).
 * A tenant token that names another tenant is refused (403): the tenant comes from the token.
 */
export function tenantFor(req: FastifyRequest, named: string | undefined): string {
  const c = callerOf(req);
  if (!c.admin) {
    if (named !== undefined && named !== c.tenant) throw new ApiError(403, 'forbidden', 'the tenant comes from your token; do not name another one');
    return c.tenant!;
  }
  if (named === undefined) throw new ApiError(400, 'bad_request', 'an admin token must name the tenant ("tenant")');
  return checkTenant(named);
}

/**
 * The key of a workspace the caller names in a request body (`id`, `as`): a tenant's name becomes
 * `<tenant>.<name>`; an admin names the tenant separately, so the same rule applies to its `tenant`.
 */
export function newWorkspaceKey(tenant: string, rawName: string, what = 'workspace id'): string {
  return workspaceKey(tenant, checkWorkspaceName(rawName, what));
}

/**
 * The id the caller sees for a workspace key: a tenant sees its own names (`notes` for `acme.notes`, and the bare
 * key of a workspace made before keys carried the tenant); an admin sees keys, which it uses in URLs.
 */
export function shownId(req: FastifyRequest, key: string): string {
  const c = callerOf(req);
  return !c.admin && keyTenant(key) === c.tenant ? keyName(key) : key;
}

async function describeOrNull(ctx: ApiContext, key: string): Promise<WorkspaceDescription | null> {
  try {
    return await ctx.client.describe(key);
  } catch (err) {
    if (err instanceof WorkbooksError && err.code === 'not_found') return null;
    throw err;
  }
}

/**
 * The workspace, if the caller may see it. A tenant names its workspaces by name: `notes` is `<tenant>.notes`, or
 * else a bare `notes` made before keys carried the tenant if it is this tenant's (or its own key, `<tenant>.notes`). An
 * admin names a key. Another
 * tenant's workspace answers exactly like one that does not exist (404), so ids of other tenants cannot be probed.
 */
export async function ownedWorkspace(ctx: ApiContext, req: FastifyRequest, rawId: string): Promise<WorkspaceDescription> {
  const c = callerOf(req);
  if (c.admin) {
    const key = checkWorkspaceId(rawId);
    const d = await describeOrNull(ctx, key);
    if (!d) throw notFound(key);
    return d;
  }
  // A tenant may also name its own key (`acme.notes` for acme); another tenant's key reads like a missing workspace.
  let name: string;
  if (rawId.includes('.')) {
    const key = checkWorkspaceId(rawId);
    if (keyTenant(key) !== c.tenant) throw notFound(rawId);
    name = keyName(key);
  } else {
    name = checkWorkspaceName(rawId);
  }
  for (const key of [workspaceKey(c.tenant!, name), name]) {
    const d = await describeOrNull(ctx, key);
    if (d && d.tenant === c.tenant) return d;
  }
  throw notFound(name);
}

/**
 * The workspace `rawId` names as the source of a clone into `tenant`: one of the caller's own, or (by its key) a
 * template another tenant published and shares with `tenant` (src/contract/template-role.ts mayClone). Anything
 * else reads exactly like a workspace that does not exist (404) to a tenant; an admin is told why (403).
 */
export async function clonableWorkspace(ctx: ApiContext, req: FastifyRequest, rawId: string, tenant: string): Promise<WorkspaceDescription> {
  const missing = () => new ApiError(404, 'not_found', `template workspace '${rawId}' does not exist`);
  const c = callerOf(req);
  let d: WorkspaceDescription | null = await ownedWorkspace(ctx, req, rawId).catch((err) => {
    if (err instanceof ApiError && err.statusCode === 404) return null;
    throw err;
  });
  if (!d && !c.admin && rawId.includes('.')) {
    let key: string;
    try {
      key = checkWorkspaceId(rawId);
    } catch {
      throw missing();
    }
    d = await describeOrNull(ctx, key);
  }
  if (!d) throw missing();
  if (!mayClone({ tenant: d.tenant, published: d.published ?? null }, tenant)) {
    if (c.admin) throw new ApiError(403, 'forbidden', `workspace '${d.workspaceId}' is not a template shared with tenant '${tenant}'`);
    throw missing();
  }
  return d;
}
