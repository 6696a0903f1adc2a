/**
 * `POST /v1/sessions`: a tenant logs in. Its most recently used workspaces that are suspended or frozen (used
 * within `within`, newest first, at most `limit`) are made local without being started: a frozen one's newest
 * cold copy is downloaded to a live host and verified (the workflow's `prefetch`), a suspended one is local
 * already. Nothing is woken and nothing counts as use (lastActiveAt and the idle ladder do not move), so the next
 * login picks by real use again and finds the copies it fetched before (it downloads nothing twice). The first
 * request then resumes from the local copy instead of paying the download. A login downloads at most
 * `sessionPrefetchBytes` (WORKBOOKS_SESSION_PREFETCH_BYTES, default 1 GiB): a workspace whose copy would pass it
 * is skipped. Archived workspaces are left where they are: they were put away on purpose. "Recently used" comes
 * from the WorkbookLastActive search attribute.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PrefetchPendingError } from '../client/workbooks-client';
import type { ListedWorkspace } from '../contract/data-plane';
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

/**
 * What the session did for one workspace. local: suspended, its file is on its host already; ready: a verified
 * local copy is there (fetched now, or before: `bytes` says what this login downloaded); started: the download
 * goes on in the background; pending: still downloading after the wait; skipped: its copy would pass the login's
 * byte budget; failed: see `error`.
 */
type Prefetch = 'local' | 'ready' | 'started' | 'pending' | 'skipped' | 'failed';

interface Row {
  id: string;
  state: string;
  lastActiveAt: string | null;
  prefetch: Prefetch;
  /** Bytes this login downloads (or started to) for the workspace. */
  bytes: number;
  error?: string;
}

export function sessionRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.post<{ Body: SessionBody | null }>(
    '/v1/sessions',
    {
      schema: {
        tags: ['sessions'],
        summary:
          'A tenant logs in: make its recently used suspended or frozen workspaces local (not started, not counted as use) so their first request is warm',
        body: S.sessionBody,
        response: {
          200: {
            type: 'object',
            required: ['tenant', 'budgetBytes', 'bytes', 'workspaces'],
            properties: {
              tenant: { type: 'string' },
              budgetBytes: { type: 'integer', description: 'bytes one login may download (WORKBOOKS_SESSION_PREFETCH_BYTES)' },
              bytes: { type: 'integer', description: 'bytes this login downloads' },
              workspaces: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'state', 'lastActiveAt', 'prefetch', 'bytes'],
                  properties: {
                    id: { type: 'string' },
                    state: { type: 'string', description: 'its state (a session never changes it)' },
                    lastActiveAt: { type: ['string', 'null'] },
                    prefetch: { type: 'string', enum: ['local', 'ready', 'started', 'pending', 'skipped', 'failed'] },
                    bytes: { type: 'integer' },
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
      // The byte budget is spent newest first, before anything starts.
      let budget = ctx.sessionPrefetchBytes;
      const planned = await Promise.all(recent.map((w) => plan(ctx, req, w)));
      for (const p of planned) {
        if (p.row.prefetch !== 'started') continue;
        if (p.row.bytes > budget) p.row = { ...p.row, prefetch: 'skipped', bytes: 0 };
        else budget -= p.row.bytes;
      }
      const actor = actorOf(req, 'session prefetch', 'session prefetch');
      const workspaces = await Promise.all(
        planned.map(async ({ row, key }): Promise<Row> => {
          if (row.prefetch !== 'started') return row;
          try {
            if (!body.wait) {
              await ctx.client.signal(key, 'prefetch', actor);
              return row;
            }
            const r = await ctx.client.prefetch(key, actor, { waitMs: ctx.waitMs });
            if (r.outcome === 'local') return { ...row, state: r.state, prefetch: 'local', bytes: 0 };
            return { ...row, state: r.state, prefetch: 'ready', bytes: r.outcome === 'prefetched' ? row.bytes : 0 };
          } catch (err) {
            if (err instanceof PrefetchPendingError) return { ...row, prefetch: 'pending' };
            return { ...row, prefetch: 'failed', bytes: 0, error: errorTextFor(req.caller, err) };
          }
        }),
      );
      return { tenant, budgetBytes: ctx.sessionPrefetchBytes, bytes: workspaces.reduce((n, w) => n + w.bytes, 0), workspaces };
    },
  );
}

/** What a login would do for one workspace, from its description: nothing (local, ready) or a download of its cold copy. */
async function plan(ctx: ApiContext, req: FastifyRequest, w: ListedWorkspace): Promise<{ key: string; row: Row }> {
  const row: Row = { id: shownId(req, w.workspaceId), state: w.state, lastActiveAt: w.lastActiveAt, prefetch: 'local', bytes: 0 };
  if (w.state !== 'frozen') return { key: w.workspaceId, row };
  try {
    const d = await ctx.client.describe(w.workspaceId);
    if (d.state !== 'frozen' || !d.cold) return { key: w.workspaceId, row: { ...row, state: d.state } };
    if (d.prefetched?.sha256 === d.cold.sha256) return { key: w.workspaceId, row: { ...row, prefetch: 'ready' } };
    return { key: w.workspaceId, row: { ...row, prefetch: 'started', bytes: d.cold.bytes } };
  } catch (err) {
    return { key: w.workspaceId, row: { ...row, prefetch: 'failed', error: errorTextFor(req.caller, err) } };
  }
}
