/** What every route of the HTTP API shares: the client, the caller's identity and the tenant check. */
import type { FastifyRequest } from 'fastify';
import { WorkbooksClient } from '../client/workbooks-client';
import { WorkbooksError } from '../client/errors';
import { checkTenant, checkWorkspaceId } from '../contract/ids';
import type { Actor, WorkspaceDescription } from '../contract/types';
import { ApiError, notFound } from './errors';
import type { Caller } from './tokens';

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
 * The workspace, if the caller may see it. Another tenant's workspace answers exactly like one that does not
 * exist (404), so ids of other tenants cannot be probed.
 */
export async function ownedWorkspace(ctx: ApiContext, req: FastifyRequest, rawId: string): Promise<WorkspaceDescription> {
  const c = callerOf(req);
  const id = checkWorkspaceId(rawId);
  let d: WorkspaceDescription;
  try {
    d = await ctx.client.describe(id);
  } catch (err) {
    if (err instanceof WorkbooksError && err.code === 'not_found') throw notFound(id);
    throw err;
  }
  if (!c.admin && d.tenant !== c.tenant) throw notFound(id);
  return d;
}
