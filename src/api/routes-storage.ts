/**
 * Storage reports: `GET /v1/workspaces/{id}/storage` and `GET /v1/tenants/{tenant}/storage` (src/client/storage-report.ts).
 * The listing runs here, in the API process, with its own store configuration. A tenant sees its own figures only
 * (another tenant's workspace is 404, another tenant's totals 403) and no store URLs, keys of leftovers or hosts. Each
 * report is charged to the tenant's moves per minute (WORKBOOKS_QUOTA_MOVES_PER_MINUTE), as a session is.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { TenantStorage, WorkspaceStorage } from '../client/storage-report';
import { ApiContext, callerOf, chargeMove, ownedWorkspace, shownId, tenantFor } from './context';
import { ApiError } from './errors';
import * as S from './schemas';
import { seesInternals } from './tenant-view';

function reporter(ctx: ApiContext) {
  if (!ctx.storage) throw new ApiError(503, 'unavailable', 'this API process has no store configuration to list (storage reports are off)');
  return ctx.storage;
}

export function storageRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const tags = ['storage'];

  app.get<{ Params: { id: string } }>(
    '/v1/workspaces/:id/storage',
    {
      schema: {
        tags,
        summary: "Bytes and objects the workspace holds in the cold store, the archive and the replica store: what its workflow records and what the stores hold besides (leftovers); ledger pages on their own",
        params: S.idParams,
        response: { 200: S.workspaceStorage, ...S.storageErrors },
      },
    },
    async (req) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      // A report lists stores: it is charged like a move (a tenant cannot make the API list its stores in a loop).
      chargeMove(ctx, req, d.tenant);
      return workspaceStorageView(req, await reporter(ctx).workspace(d));
    },
  );

  app.get<{ Params: { tenant: string } }>(
    '/v1/tenants/:tenant/storage',
    {
      schema: {
        tags,
        summary: "Storage of a tenant: each running workspace's bytes in cold, archive and replicas, what the stores hold for its workspaces that are not running, and the totals (a tenant token may ask for its own tenant only)",
        params: S.tenantParams,
        response: { 200: S.tenantStorage, ...S.storageErrors },
      },
    },
    async (req) => {
      const tenant = tenantFor(req, req.params.tenant);
      chargeMove(ctx, req, tenant);
      return tenantStorageView(req, await reporter(ctx).tenant(tenant));
    },
  );
}

function workspaceStorageView(req: FastifyRequest, r: WorkspaceStorage) {
  const admin = seesInternals(req.caller);
  const { workspaceId, leftovers, stores, local, ...rest } = r;
  return {
    id: shownId(req, workspaceId),
    ...rest,
    local: admin ? local : { kind: local.kind, bytes: local.bytes },
    ...(admin ? { leftovers, stores } : {}),
  };
}

function tenantStorageView(req: FastifyRequest, r: TenantStorage) {
  const admin = callerOf(req).admin;
  const { stores, workspaces, others, notes, ...rest } = r;
  return {
    ...rest,
    workspaces: workspaces.map(({ workspaceId, ...w }) => ({ id: shownId(req, workspaceId), ...w })),
    others: others && { ...others, ids: others.ids.map((k) => shownId(req, k)) },
    notes,
    ...(admin ? { stores } : {}),
  };
}
