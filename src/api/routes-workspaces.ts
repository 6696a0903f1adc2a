/**
 * Lifecycle routes: create (or clone), list, show, moves, delete, history, restore into a new workspace.
 * Moves wait for the workflow up to the context's wait; a longer move answers 202 and goes on.
 */
import type { FastifyInstance } from 'fastify';
import { MovePendingError, WakePendingError, defaultRestoreId } from '../client/workbooks-client';
import { keyName } from '../contract/ids';
import { PolicyError, type PolicySpec } from '../lifecycle';
import { ApiContext, actorOf, callerOf, chargeMove, checkWorkspaceQuota, clonableWorkspace, newWorkspaceKey, ownedWorkspace, shownId, tenantFor } from './context';
import { checkPolicyFloor } from '../lifecycle/policy-floor';
import { ApiError } from './errors';
import { parseDateTime } from './patterns';
import * as S from './schemas';
import { ledgerFor, listedViewFor, seesInternals, workspaceViewFor } from './tenant-view';

type IdReq = { Params: { id: string } };
type MoveReq = IdReq & { Body: { reason?: string } | null };

const MOVES = [
  ['suspend', 'suspended'],
  ['freeze', 'frozen'],
  ['archive', 'archived'],
] as const;

export function workspaceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const tags = ['workspaces'];

  app.post<{ Body: { id: string; from?: string; policy?: PolicySpec; tenant?: string } }>(
    '/v1/workspaces',
    {
      schema: {
        tags,
        summary:
          'Create a workspace, or clone one with `from` (yours, or a template shared with you, by its key); answers once it is active (201) or still starting (202)',
        body: S.createBody,
        response: { 201: S.madeWorkspace, 202: S.madeWorkspace, ...S.tenantBodyErrors, 404: S.errorResponses[404], 409: S.errorResponses[409] },
      },
    },
    async (req, reply) => {
      const tenant = tenantFor(req, req.body.tenant);
      const id = newWorkspaceKey(tenant, req.body.id);
      try {
        checkPolicyFloor(req.body.policy, ctx.policyFloorMs);
      } catch (err) {
        throw err instanceof PolicyError ? new ApiError(400, 'bad_request', err.message) : err;
      }
      let template: string | undefined;
      if (req.body.from !== undefined) {
        // A workspace the tenant may not clone (another tenant's, unless a template shared with it) reads exactly
        // like one that does not exist (404); an admin is told why (403).
        const from = req.body.from;
        const t = await clonableWorkspace(ctx, req, from, tenant);
        // The template exists, so its id is taken.
        if (t.workspaceId === id) throw new ApiError(409, 'already_exists', `workspace '${req.body.id}' already exists`);
        if (t.state === 'deleted') throw new ApiError(409, 'deleted', `template workspace '${from}' is deleted`);
        template = t.workspaceId;
      }
      chargeMove(ctx, req, tenant);
      await checkWorkspaceQuota(ctx, req, tenant);
      let status = 201;
      try {
        await ctx.client.create({ workspaceId: id, tenant, template, policy: req.body.policy, waitMs: ctx.waitMs, actor: actorOf(req, undefined, 'create') });
      } catch (err) {
        if (!(err instanceof WakePendingError)) throw err;
        status = 202;
      }
      const d = await ctx.client.describe(id);
      const shown = shownId(req, id);
      return reply.code(status).header('location', `/v1/workspaces/${shown}`).send(workspaceViewFor(req.caller, d, (k) => shownId(req, k)));
    },
  );

  app.get<{ Querystring: { state?: string; tenant?: string; limit?: number; cursor?: string } }>(
    '/v1/workspaces',
    {
      schema: {
        tags,
        summary: `List your workspaces (running ones; state=deleted lists deleted ones), newest first, a page at a time (default ${ctx.listPageDefault}, at most ${ctx.listPageMax}); pass nextCursor as cursor for the next page`,
        querystring: S.listQuery,
        response: {
          200: {
            type: 'object',
            required: ['workspaces', 'nextCursor'],
            properties: {
              workspaces: { type: 'array', items: S.listedWorkspace },
              nextCursor: { type: ['string', 'null'], description: 'pass as cursor for the next page; null on the last page' },
            },
          },
          ...S.listErrors,
        },
      },
    },
    async (req) => {
      const c = callerOf(req);
      const tenant = c.admin ? req.query.tenant : tenantFor(req, req.query.tenant);
      const limit = req.query.limit ?? ctx.listPageDefault;
      if (limit > ctx.listPageMax) throw new ApiError(400, 'bad_request', `limit must be at most ${ctx.listPageMax}; follow nextCursor for more`);
      const page = await ctx.client.listPage({ state: req.query.state, tenant }, { pageSize: limit, cursor: req.query.cursor });
      return { workspaces: page.workspaces.map((w) => listedViewFor(c, w, shownId(req, w.workspaceId))), nextCursor: page.nextCursor };
    },
  );

  app.get<IdReq>('/v1/workspaces/:id', { schema: { tags, summary: 'Show a workspace', params: S.idParams, response: { 200: S.workspace, ...S.readErrors } } }, async (req) => {
    const d = await ownedWorkspace(ctx, req, req.params.id);
    // Replication health lives on the holding host: asked with a short timeout, `unknown` when it does not answer.
    return workspaceViewFor(req.caller, d, (k) => shownId(req, k), await ctx.client.replication(d.workspaceId, d));
  }
  );

  app.get<IdReq & { Querystring: { offset?: number; limit?: number } }>(
    '/v1/workspaces/:id/history',
    {
      schema: {
        tags,
        summary:
          'The ledger: every move attempted (done, refused or failed) and every replica warning, oldest first: the recent entries, or with `offset` a page of the complete ledger (kept in the cold store; `nextOffset` leads on)',
        params: S.idParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            // Bounded so it stays an exact integer (a larger one would come back as a float).
            offset: { type: 'integer', minimum: 0, maximum: 2_147_483_647, description: 'index of the first entry of the complete ledger (0: the first move)' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'entries per page with offset (default 100)' },
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['id', 'ledger'],
            properties: {
              id: { type: 'string' },
              ledger: { type: 'array', items: { type: 'object', additionalProperties: true } },
              total: { type: 'integer', description: 'with offset: entries in the complete ledger' },
              offset: { type: 'integer' },
              nextOffset: { type: ['integer', 'null'], description: 'with offset: the next page (null at the end)' },
              complete: { type: 'boolean', description: 'with offset: false when entries from before the complete ledger are missing' },
            },
          },
          ...S.readErrors,
        },
      },
    },
    async (req) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      if (req.query.offset === undefined) return { id: shownId(req, d.workspaceId), ledger: ledgerFor(req.caller, d) };
      const h = await ctx.client.fullHistory(d.workspaceId);
      const offset = req.query.offset;
      const limit = req.query.limit ?? 100;
      const page = h.entries.slice(offset, offset + limit);
      const next = offset + limit < h.entries.length ? offset + limit : null;
      return { id: shownId(req, d.workspaceId), ledger: ledgerFor(req.caller, { ...d, ledger: page }), total: h.entries.length, offset, nextOffset: next, complete: h.complete };
    },
  );

  app.post<MoveReq>(
    '/v1/workspaces/:id/wake',
    {
      schema: {
        tags,
        summary: 'Make the workspace active; 503 with Retry-After if the wake takes longer than the wait (it goes on)',
        params: S.idParams,
        body: S.moveBody,
        response: {
          200: {
            type: 'object',
            required: ['id', 'state', 'path'],
            properties: { id: { type: 'string' }, state: { type: 'string' }, path: { type: 'string', enum: ['warm', 'local', 'cold'] }, host: { type: 'string', description: 'admin tokens only' } },
          },
          ...S.moveErrors,
        },
      },
    },
    async (req) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      chargeMove(ctx, req, d.tenant);
      const w = await ctx.client.wake(d.workspaceId, actorOf(req, req.body?.reason, 'api wake'), { waitMs: ctx.waitMs });
      return { id: shownId(req, d.workspaceId), state: w.state, path: w.path, ...(seesInternals(req.caller) ? { host: w.host } : {}) };
    },
  );

  for (const [name, to] of MOVES) {
    app.post<MoveReq>(
      `/v1/workspaces/:id/${name}`,
      {
        schema: {
          tags,
          summary: `Move the workspace to ${to} (illegal moves answer 409 and change nothing; 202 if it is still moving)`,
          params: S.idParams,
          body: S.moveBody,
          response: { 200: S.workspace, 202: S.workspace, ...S.moveErrors },
        },
      },
      async (req, reply) => move(ctx, req, reply, to, name),
    );
  }

  app.post<IdReq & { Body: { shareWith?: '*' | string[]; reason?: string } | null }>(
    '/v1/workspaces/:id/publish',
    {
      schema: {
        tags,
        summary:
          "Publish the workspace as a template: suspended and frozen first if needed, then read-only and off the idle ladder; clonable by its own tenant and `shareWith` ('*': every tenant, admin tokens only). Again: changes `shareWith` only",
        params: S.idParams,
        body: S.publishBody,
        response: { 200: S.workspace, ...S.moveErrors, 403: S.errorResponses[403] },
      },
    },
    async (req) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      const shareWith = req.body?.shareWith ?? [];
      if (shareWith === '*' && !callerOf(req).admin) throw new ApiError(403, 'forbidden', "only an admin publishes a template to every tenant ('*'); list the tenants instead");
      chargeMove(ctx, req, d.tenant);
      await ctx.client.publish(d.workspaceId, shareWith, actorOf(req, req.body?.reason, 'api publish'));
      return workspaceViewFor(req.caller, await ctx.client.describe(d.workspaceId), (k) => shownId(req, k));
    },
  );

  app.post<MoveReq>(
    '/v1/workspaces/:id/unpublish',
    {
      schema: {
        tags,
        summary: 'Make a published template an ordinary frozen workspace again (clones already made are unchanged)',
        params: S.idParams,
        body: S.moveBody,
        response: { 200: S.workspace, ...S.moveErrors },
      },
    },
    async (req) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      chargeMove(ctx, req, d.tenant);
      await ctx.client.unpublish(d.workspaceId, actorOf(req, req.body?.reason, 'api unpublish'));
      return workspaceViewFor(req.caller, await ctx.client.describe(d.workspaceId), (k) => shownId(req, k));
    },
  );

  app.delete<MoveReq>(
    '/v1/workspaces/:id',
    {
      schema: {
        tags,
        summary: 'Delete an archived workspace and all its copies (other states answer 409: archive it first)',
        params: S.idParams,
        body: S.moveBody,
        response: { 200: S.workspace, 202: S.workspace, ...S.moveErrors },
      },
    },
    async (req, reply) => move(ctx, req, reply, 'deleted', 'delete'),
  );

  app.post<IdReq & { Body: { at?: string; as?: string } | null }>(
    '/v1/workspaces/:id/restore',
    {
      schema: {
        tags,
        summary: 'Restore the workspace as it was at a time into a NEW workspace of yours (the original is only read)',
        params: S.idParams,
        body: S.restoreBody,
        response: { 201: S.madeWorkspace, 202: S.madeWorkspace, ...S.moveErrors },
      },
    },
    async (req, reply) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      // The new workspace is the source's tenant's, named like any other of its workspaces.
      const as = newWorkspaceKey(d.tenant, req.body?.as ?? keyName(defaultRestoreId(d.workspaceId)), 'new workspace id');
      // The source exists, so its own id is taken.
      if (as === d.workspaceId) throw new ApiError(409, 'already_exists', `workspace '${shownId(req, as)}' already exists`);
      const at = restoreTime(req.body?.at);
      chargeMove(ctx, req, d.tenant);
      await checkWorkspaceQuota(ctx, req, d.tenant);
      let status = 201;
      let id: string;
      try {
        id = (await ctx.client.restore(d.workspaceId, { at, as, waitMs: ctx.waitMs, actor: actorOf(req, undefined, `restore of ${d.workspaceId}`) })).workspaceId;
      } catch (err) {
        if (!(err instanceof WakePendingError)) throw err;
        status = 202;
        id = as;
      }
      const shown = shownId(req, id);
      return reply.code(status).header('location', `/v1/workspaces/${shown}`).send(workspaceViewFor(req.caller, await ctx.client.describe(id), (k) => shownId(req, k)));
    },
  );
}

/**
 * The restore time as the client takes it (ISO 8601 UTC). A time in the future has no data yet: 409, like a time
 * before the first copy (which the restore itself refuses).
 */
function restoreTime(at: string | undefined): string | undefined {
  if (at === undefined) return undefined;
  const t = parseDateTime(at);
  if (Number.isNaN(t)) throw new ApiError(400, 'bad_request', `'${at}' is not a time (use ISO 8601, e.g. 2026-11-24T21:30:00Z)`);
  if (t > Date.now()) throw new ApiError(409, 'no_data', `restore time ${at} is in the future: there is no data at that time yet`);
  return new Date(t).toISOString();
}

async function move(ctx: ApiContext, req: Parameters<typeof actorOf>[0] & { params: { id: string }; body: { reason?: string } | null }, reply: import('fastify').FastifyReply, to: string, name: string) {
  const d = await ownedWorkspace(ctx, req, req.params.id);
  chargeMove(ctx, req, d.tenant);
  let status = 200;
  try {
    await ctx.client.transition(d.workspaceId, to, actorOf(req, req.body?.reason, `api ${name}`), { waitMs: ctx.waitMs });
  } catch (err) {
    if (!(err instanceof MovePendingError)) throw err;
    status = 202;
  }
  return reply.code(status).send(workspaceViewFor(req.caller, await ctx.client.describe(d.workspaceId), (k) => shownId(req, k)));
}
