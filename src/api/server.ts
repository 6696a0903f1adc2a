/**
 * The public HTTP API (fastify): bearer tokens map to tenants, every route is validated, errors are JSON with a
 * stable code, and the OpenAPI document is served at /openapi.json. It holds no state of its own: it talks to
 * Temporal through WorkbooksClient and to the hosts' data servers, so any number of copies can run.
 */
import Fastify, { FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { WorkbooksClient } from '../client/workbooks-client';
import { ApiContext } from './context';
import { ApiError, sendError, toApiError } from './errors';
import { TokenMap } from './tokens';
import { MAX_FILE_BYTES } from '../vfs/volumes';
import { workspaceRoutes } from './routes-workspaces';
import { fileRoutes } from './routes-files';
import { sessionRoutes } from './routes-sessions';
import { storageRoutes } from './routes-storage';
import { StorageReporter, type StoreLocations } from '../client/storage-report';
import { urlHost } from '../host/data-server';
import { AuthThrottle, DEFAULT_AUTH_FAILURES, DEFAULT_AUTH_WINDOW_SECONDS } from './auth-throttle';
import { errorFor } from './tenant-view';
import { writeLog } from '../logging/json-log';
import { httpServerOptions } from '../http-bounds';
import { DEFAULT_HTTP_LIMITS, DEFAULT_LIST_PAGE, DEFAULT_LIST_PAGE_MAX, DEFAULT_POLICY_FLOOR_MS, DEFAULT_QUOTAS, DEFAULT_SESSION_PREFETCH_BYTES, HttpLimits, Quotas } from '../config';
import { MoveLimiter } from './rate-limit';
import { checkWorkspaceId } from '../contract/ids';
import { checkPath, checkPrefix, checkVolume } from '../vfs/volumes';
import { validatorCompiler } from './validators';
import { METHOD_NOT_ALLOWED, trackRoutes } from './method-not-allowed';
import { optionalBodies } from './openapi';

/** Largest JSON body (file bodies have their own limit). */
export const JSON_BODY_LIMIT = 64 * 1024;

/** Routes anyone may call. */
const PUBLIC = new Set(['/openapi.json', '/health']);

export interface ApiOptions {
  client: WorkbooksClient;
  tokens: TokenMap;
  /** How long a request waits for a wake or a move (then 503 Retry-After, or 202). */
  waitMs: number;
  /** Largest file body accepted (default and at most MAX_FILE_BYTES). */
  maxFileBytes?: number;
  /** Failed authentications from one address within the window before it gets 429 (0 = off; default 10 per 60 s). */
  authFailures?: number;
  authWindowSeconds?: number;
  /** Header/request/keep-alive timeouts and the connection cap (default DEFAULT_HTTP_LIMITS). */
  limits?: HttpLimits;
  /** Per-tenant quotas (default DEFAULT_QUOTAS; the bytes quota is the hosts'). */
  quotas?: Partial<Quotas>;
  /** Shortest policy rung accepted, ms (default 1 minute). */
  policyFloorMs?: number;
  /** List page size when none is asked for (default 100) and the largest (default 1000). */
  listPageDefault?: number;
  listPageMax?: number;
  /** Bytes one login may prefetch (default DEFAULT_SESSION_PREFETCH_BYTES; 0: none). */
  sessionPrefetchBytes?: number;
  /** The stores storage reports list (this process's cold, archive and replica URLs); absent: reports answer 503. */
  stores?: StoreLocations;
}

export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: JSON_BODY_LIMIT,
    forceCloseConnections: true,
    // A key in a URL is up to 127 characters, more once percent-encoded; file paths are longer (the router's
    // default of 100 would answer 414 to valid ids).
    maxParamLength: 8192,
    ...httpServerOptions(opts.limits ?? DEFAULT_HTTP_LIMITS),
  });
  app.server.maxConnections = (opts.limits ?? DEFAULT_HTTP_LIMITS).maxConnections;
  // Unknown fields are refused, not silently dropped; query strings are coerced from text, JSON bodies are not.
  app.setValidatorCompiler(validatorCompiler());
  // JSON bodies only (file bodies have their own parser): any other content type is 415.
  app.removeContentTypeParser('text/plain');
  const methods = trackRoutes(app);
  app.decorateRequest('caller', null);
  const quotas: Quotas = { ...DEFAULT_QUOTAS, ...opts.quotas };
  const listPageMax = opts.listPageMax ?? DEFAULT_LIST_PAGE_MAX;
  const ctx: ApiContext = {
    client: opts.client,
    waitMs: opts.waitMs,
    maxFileBytes: Math.min(opts.maxFileBytes ?? MAX_FILE_BYTES, MAX_FILE_BYTES),
    quotas,
    moves: new MoveLimiter(quotas.movesPerMinute),
    policyFloorMs: opts.policyFloorMs ?? DEFAULT_POLICY_FLOOR_MS,
    listPageDefault: Math.min(opts.listPageDefault ?? DEFAULT_LIST_PAGE, listPageMax),
    listPageMax,
    sessionPrefetchBytes: opts.sessionPrefetchBytes ?? DEFAULT_SESSION_PREFETCH_BYTES,
    storage: opts.stores ? new StorageReporter(opts.client, opts.stores) : null,
  };

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Workbooks API',
        version: '1',
        description:
          'Per-tenant SQLite workspaces. Every route but /openapi.json and /health needs `Authorization: Bearer <token>`; the token decides the tenant. ' +
          "Another tenant's workspace answers 404 on every route. Errors are `{ error: { code, message } }`; a 4xx changes nothing.",
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transformObject: (doc) => optionalBodies((doc as { openapiObject: Record<string, unknown> }).openapiObject),
  });

  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'no_route', `no route ${req.method} ${req.url.split('?')[0]}`));
  app.setErrorHandler((err, req, reply) => {
    // A tenant sees reasons, not internals (src/api/tenant-view.ts); the operator's log has the full message.
    const e = errorFor(req.caller, err, toApiError(err, JSON_BODY_LIMIT, ctx.maxFileBytes), req);
    return sendError(reply, e.statusCode, e.code, e.message, e.headers);
  });

  const throttle = new AuthThrottle({ maxFailures: opts.authFailures ?? DEFAULT_AUTH_FAILURES, windowMs: (opts.authWindowSeconds ?? DEFAULT_AUTH_WINDOW_SECONDS) * 1000 });

  app.addHook('onRequest', async (req, reply) => {
    const route = req.routeOptions.url;
    if (route && PUBLIC.has(route)) return;
    if ((req.routeOptions.config as unknown as Record<string, unknown>)[METHOD_NOT_ALLOWED]) return;
    // An address with too many failed authentications waits, whatever token it sends now (src/api/auth-throttle.ts).
    const lockedMs = throttle.lockedFor(req.ip);
    if (lockedMs > 0) {
      const seconds = Math.ceil(lockedMs / 1000);
      throw new ApiError(429, 'too_many_requests', `too many failed authentications from this address; retry in ${seconds} s`, { 'retry-after': String(seconds) });
    }
    req.caller = opts.tokens.authenticate(req.headers.authorization);
    if (!req.caller) {
      if (throttle.fail(req.ip)) writeLog('WARN', 'api: address locked out after failed authentications', { address: req.ip, failures: opts.authFailures ?? DEFAULT_AUTH_FAILURES });
      reply.header('www-authenticate', 'Bearer realm="workbooks"');
      throw new ApiError(401, 'unauthorized', req.headers.authorization ? 'unknown bearer token' : 'missing bearer token (Authorization: Bearer <token>)');
    }
  });

  // The checkers of ids, volumes and paths run before the schema (which says the same), so their codes and
  // sentences are the ones the CLI and the hosts give too.
  app.addHook('preValidation', async (req) => {
    const p = (req.params ?? {}) as Record<string, unknown>;
    if (typeof p.id === 'string') checkWorkspaceId(p.id);
    if (typeof p.volume === 'string') checkVolume(p.volume);
    if (typeof p['*'] === 'string') checkPath('/' + p['*']);
    const q = (req.query ?? {}) as Record<string, unknown>;
    if (typeof q.prefix === 'string') checkPrefix(q.prefix);
    const b = req.body;
    if (b && typeof b === 'object' && !Array.isArray(b) && !Buffer.isBuffer(b)) {
      const body = b as Record<string, unknown>;
      if (typeof body.id === 'string') checkWorkspaceId(body.id);
      if (typeof body.from === 'string') checkWorkspaceId(body.from, 'template');
      if (typeof body.as === 'string') checkWorkspaceId(body.as, 'new workspace id');
    }
  });

  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/health', { schema: { hide: true } }, async () => ({ ok: true }));
  workspaceRoutes(app, ctx);
  sessionRoutes(app, ctx);
  storageRoutes(app, ctx);
  await app.register(async (scope) => fileRoutes(scope, ctx));
  methods.answer();
  return app;
}

export interface ApiServer {
  url: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

export async function startApiServer(opts: ApiOptions & { port: number; bind: string }): Promise<ApiServer> {
  const app = await buildApi(opts);
  try {
    await app.listen({ host: opts.bind, port: opts.port });
  } catch (err) {
    await app.close().catch(() => undefined);
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') throw new Error(`the HTTP API cannot listen on ${opts.bind}:${opts.port}: the port is taken (set WORKBOOKS_HTTP_PORT, or off)`);
    throw err;
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return { url: `http://${urlHost(opts.bind)}:${port}`, app, close: () => app.close() };
}
