/**
 * `POST /v1/sessions`: a tenant logs in. Its most recently used workspaces that are suspended or frozen (used
 * within `within`, newest first, at most `limit`) are woken in the background, so the first request to each
 * finds it active instead of paying the resume or the restore. Archived workspaces are left where they are:
 * they were put away on purpose. "Recently used" comes from the WorkbookLastActive search attribute.
 */
import type { FastifyInstance } from 'fastify';
import { WakePendingError } from '../client/workbooks-client';
import { DurationError, parseDuration } from '../lifecycle';
import { ApiContext, actorOf, chargeMove, shownId, tenantFor } from './context';
import { ApiError } from './errors';
import * as S from './schemas';
import { errorTextFor } from './tenant-view';

export const SESSION_DEFAULT_LIMIT = 5;
export const SESSION_DEFAULT_WITHIN = '7d';
/** How many of the tenant's suspended/frozen workspaces are looked at (newest first) to pick from. */
const SCAN_LIMIT = 1000;

interface SessionBody {
  limit?: number;
  within?: string;
  wait?: boolean;
  tenant?: string;
}

export function sessionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: SessionBody | null }>(
    '/v1/sessions',
    {
      schema: {
        tags: ['sessions'],
        summary: "A tenant logs in: wake its recently used suspended or frozen workspaces so their first request is warm",
        body: S.sessionBody,
        response: {
          200: {
            type: 'object',
            required: ['tenant', 'workspaces'],
            properties: {
              tenant: { type: 'string' },
              workspaces: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'state', 'lastActiveAt', 'wake'],
                  properties: {
                    id: { type: 'string' },
                    state: { type: 'string', description: 'its state when the session started' },
                    lastActiveAt: { type: ['string', 'null'] },
                    wake: { type: 'string', enum: ['started', 'active', 'pending', 'failed'] },
                    error: { type: 'string' },
                  },
                },
              },
            },
          },
          ...S.tenantBodyErrors,
        },
      },
    },
    async (req) => {
      const body = req.body ?? {};
      const tenant = tenantFor(req, body.tenant);
      chargeMove(ctx, req, tenant);
      const limit = body.limit ?? SESSION_DEFAULT_LIMIT;
      let withinMs: number;
      try {
        withinMs = parseDuration(body.within ?? SESSION_DEFAULT_WITHIN, 'within');
      } catch (err) {
        if (err instanceof DurationError) throw new ApiError(400, 'bad_request', err.message);
        throw err;
      }
      const since = new Date(Date.now() - withinMs).toISOString();
      const [suspended, frozen] = await Promise.all(
        (['suspended', 'frozen'] as const).map((state) => ctx.client.list({ state, tenant, limit: SCAN_LIMIT })),
      );
      const recent = [...suspended!, ...frozen!]
        .filter((w) => w.lastActiveAt !== null && w.lastActiveAt >= since)
        .sort((a, b) => (a.lastActiveAt! < b.lastActiveAt! ? 1 : -1))
        .slice(0, limit);
      const actor = actorOf(req, 'session prefetch', 'session prefetch');
      const workspaces = await Promise.all(
        recent.map(async (w) => {
          const row = { id: shownId(req, w.workspaceId), state: w.state, lastActiveAt: w.lastActiveAt };
          try {
            if (body.wait) {
              await ctx.client.wake(w.workspaceId, actor, { waitMs: ctx.waitMs });
              return { ...row, wake: 'active' };
            }
            await ctx.client.signal(w.workspaceId, 'wake', actor);
            return { ...row, wake: 'started' };
          } catch (err) {
            if (err instanceof WakePendingError) return { ...row, wake: 'pending' };
            return { ...row, wake: 'failed', error: errorTextFor(req.caller, err) };
          }
        }),
      );
      return { tenant, workspaces };
    },
  );
}
