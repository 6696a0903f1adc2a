/**
 * Lifecycle routes: create (or clone), list, show, moves, delete, history, restore into a new workspace.
 * Moves wait for the workflow up to the context's wait; a longer move answers 202 and goes on.
 */
import type { FastifyInstance } from 'fastify';
import { MovePendingError, WakePendingError, defaultRestoreId } from '../client/workbooks-client';
import { checkWorkspaceId } from '../contract/ids';
import type { PolicySpec } from '../lifecycle';
import { ApiContext, actorOf, callerOf, ownedWorkspace, tenantFor } from './context';
import { ApiError } from './errors';
import { parseDateTime } from './patterns';
import * as S from './schemas';
import { listedView, workspaceView } from './views';

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
        summary: 'Create a workspace, or clone one of yours with `from`; answers once it is active (201) or still starting (202)',
        body: S.createBody,
        response: { 201: S.madeWorkspace, 202: S.madeWorkspace, ...S.tenantBodyErrors, 404: S.errorResponses[404], 409: S.errorResponses[409] },
      },
    },
    async (req, reply) => {
      const tenant = tenantFor(req, req.body.tenant);
      const id = checkWorkspaceId(req.body.id);
      if (req.body.from !== undefined) {
        // A template of another tenant reads exactly like one that does not exist (404).
        const from = checkWorkspaceId(req.body.from, 'template');
        const t = await ownedWorkspace(ctx, req, from).catch((err) => {
          throw err instanceof ApiError && err.statusCode === 404 ? new ApiError(404, 'not_found', `template workspace '${from}' does not exist`) : err;
        });
        if (t.tenant !== tenant) throw new ApiError(404, 'not_found', `template workspace '${from}' does not exist`);
        // The template exists, so its id is taken.
        if (from === id) throw new ApiError(409, 'already_exists', `workspace '${id}' already exists`);
        if (t.state === 'deleted') throw new ApiError(409, 'deleted', `template workspace '${from}' is deleted`);
      }
      let status = 201;
      try {
        await ctx.client.create({ workspaceId: id, tenant, template: req.body.from, policy: req.body.policy, waitMs: ctx.waitMs, actor: actorOf(req, undefined, 'create') });
      } catch (err) {
        if (!(err instanceof WakePendingError)) throw err;
        status = 202;
      }
      const d = await ctx.client.describe(id);
      return reply.code(status).header('location', `/v1/workspaces/${id}`).send(workspaceView(d));
    },
  );

  app.get<{ Querystring: { state?: string; tenant?: string; limit?: number } }>(
    '/v1/workspaces',
    {
      schema: {
        tags,
        summary: 'List your workspaces (running ones; state=deleted lists deleted ones)',
        querystring: S.listQuery,
        response: {
          200: { type: 'object', required: ['workspaces'], properties: { workspaces: { type: 'array', items: S.listedWorkspace } } },
          ...S.listErrors,
        },
      },
    },
    async (req) => {
      const c = callerOf(req);
      const tenant = c.admin ? req.query.tenant : tenantFor(req, req.query.tenant);
      const rows = await ctx.client.list({ state: req.query.state, tenant, limit: req.query.limit });
      return { workspaces: rows.map(listedView) };
    },
  );

  app.get<IdReq>('/v1/workspaces/:id', { schema: { tags, summary: 'Show a workspace', params: S.idParams, response: { 200: S.workspace, ...S.readErrors } } }, async (req) =>
    workspaceView(await ownedWorkspace(ctx, req, req.params.id)),
  );

  app.get<IdReq>(
    '/v1/workspaces/:id/history',
    {
      schema: {
        tags,
        summary: 'The ledger: every move attempted (done, refused or failed), oldest first',
        params: S.idParams,
        response: { 200: { type: 'object', required: ['id', 'ledger'], properties: { id: { type: 'string' }, ledger: { type: 'array', items: { type: 'object', additionalProperties: true } } } }, ...S.readErrors },
      },
    },
    async (req) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      return { id: d.workspaceId, ledger: d.ledger };
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
            required: ['id', 'state', 'path', 'host'],
            properties: { id: { type: 'string' }, state: { type: 'string' }, path: { type: 'string', enum: ['warm', 'local', 'cold'] }, host: { type: 'string' } },
          },
          ...S.moveErrors,
        },
      },
    },
    async (req) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      const w = await ctx.client.wake(d.workspaceId, actorOf(req, req.body?.reason, 'api wake'), { waitMs: ctx.waitMs });
      return { id: d.workspaceId, state: w.state, path: w.path, host: w.host };
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
      const as = req.body?.as === undefined ? defaultRestoreId(d.workspaceId) : checkWorkspaceId(req.body.as, 'new workspace id');
      // The source exists, so its own id is taken.
      if (as === d.workspaceId) throw new ApiError(409, 'already_exists', `workspace '${as}' already exists`);
      const at = restoreTime(req.body?.at);
      let status = 201;
      let id: string;
      try {
        id = (await ctx.client.restore(d.workspaceId, { at, as, waitMs: ctx.waitMs, actor: actorOf(req, undefined, `restore of ${d.workspaceId}`) })).workspaceId;
      } catch (err) {
        if (!(err instanceof WakePendingError)) throw err;
        status = 202;
        id = as;
      }
      return reply.code(status).header('location', `/v1/workspaces/${id}`).send(workspaceView(await ctx.client.describe(id)));
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
  let status = 200;
  try {
    await ctx.client.transition(d.workspaceId, to, actorOf(req, req.body?.reason, `api ${name}`), { waitMs: ctx.waitMs });
  } catch (err) {
    if (!(err instanceof MovePendingError)) throw err;
    status = 202;
  }
  return reply.code(status).send(workspaceView(await ctx.client.describe(d.workspaceId)));
}
