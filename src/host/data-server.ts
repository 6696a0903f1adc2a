/**
 * A host's data server: the files of the workspaces this host holds open, over HTTP.
 *
 *   PUT    /workspaces/:id/files/:volume/*path   raw body (any content type) → 200 FileEntry
 *   GET    /workspaces/:id/files/:volume/*path   → 200 bytes (application/octet-stream) | 404
 *   DELETE /workspaces/:id/files/:volume/*path   → 200 { deleted: true } | 404
 *   GET    /workspaces/:id/files/:volume?prefix=/x → 200 { volume, prefix, files: FileEntry[] }
 *   GET    /workspaces/:id/export                → 200 a SQLite file holding only the workspace volume
 *   GET    /workspaces/:id/usage                 → 200 { workspaceId, host, usage, lastAccessAt }
 *   GET    /workspaces/:id/replication           → 200 { workspaceId, host, replication: ReplicationHealth }
 *   GET    /health                               → 200 { host }
 *
 * Every workspace route carries a grant (`Authorization: Bearer v1.…`, src/grants.ts) for that workspace, its
 * placement and the operation (read, write, export), signed with the data key, and the placement the workspace is
 * served under (`x-workbooks-placement`, from `wake` or `describe`; the grant's own when absent); the host's
 * Fence (./fence.ts) then admits it. 401 `grant_required`/`bad_grant`/`grant_expired`, 403 `grant_mismatch`.
 *
 * Errors are JSON `{ error: { code, message } }`: 400 bad id/volume/path/prefix or bad/missing placement,
 * 409 `not_here` when this host does not serve the workspace under that placement (ask the workflow again: wake
 * with check), 503 `fenced` while the host cannot confirm it still holds it (its lease lapsed), 404 unknown route
 * or missing file, 413 `too_large` body larger than a file may be (by Content-Length before the body is read, or
 * counted on a chunked body), 413 `quota_exceeded` when the write would take the workspace past its bytes quota
 * (WORKBOOKS_QUOTA_WORKSPACE_BYTES, all volumes), 503 `busy` (Retry-After) when the upload budget
 * (WORKBOOKS_UPLOAD_BUDGET_BYTES: bytes of bodies held in memory at once) has no room within 30 s, 507
 * `disk_full` when the host's disk has no room for a write (nothing of it is applied). A PUT body is read only
 * after its grant, placement and size are admitted; a refused one is not read (the connection is closed).
 *
 * `/replication` (a read grant) reports this host's replication of the workspace (src/host/replication-health.ts)
 * without touching its file: it is answered while the host holds the workspace under the request's placement and
 * its lease is valid, without waiting for a confirmation by the workflow; otherwise the same 409/503 as above.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { IncomingMessage } from 'node:http';
import { closeAfterAnswer, declaredLength, httpServerOptions } from '../http-bounds';
import Fastify, { FastifyReply, FastifyRequest } from 'fastify';
import type { Config } from '../config';
import { BudgetTimeoutError, UploadBudget } from './upload-budget';
import { exportsDir, liveDir } from './data-dir';
import { InputError, checkWorkspaceId } from '../contract/ids';
import { MAX_FILE_BYTES, VfsInputError, checkPath, checkPrefix, checkVolume } from '../vfs/volumes';
import { HostInstances, NotActiveError } from './instances';
import { Fence, FencedError, NotHereError, PlacementRequiredError } from './fence';
import type { Vfs } from '../vfs/vfs';
import { PLACEMENT_HEADER, ReplicationHealth } from '../contract/data-plane';
import { DataKey, GrantError, GrantOp } from '../grants';
import { faultPoint } from '../faults/fault-points';

export interface DataServer {
  url: string;
  close(): Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function sendError(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  // A refused request whose body was not read: close the connection rather than read the rest of it.
  closeAfterAnswer(reply.request.raw, (k, v) => reply.header(k, v));
  return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
}


/** How to reach a server bound to `bind` from this machine, as a URL host (wildcards become loopback). */
export function urlHost(bind: string): string {
  if (bind === '0.0.0.0' || bind === '') return '127.0.0.1';
  if (bind === '::' || bind === '[::]') return '[::1]';
  return bind.includes(':') && !bind.startsWith('[') ? `[${bind}]` : bind;
}

type FileParams = { id: string; volume: string; '*': string };

/**
 * Whether a request's Host names this server: an IP literal (v4 or bracketed v6), localhost, or the host name of
 * its advertised URL; with or without a port.
 */
export function hostAllowed(host: string | undefined, advertisedHost: string | null): boolean {
  if (!host) return false;
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:]+)(?::\d{1,5})?$/.exec(host.trim());
  if (!m) return false;
  const name = m[1]!.toLowerCase();
  if (name.startsWith('[')) return true;
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(name)) return true;
  return name === 'localhost' || (advertisedHost !== null && name === advertisedHost.replace(/^\[|\]$/g, ''));
}

/** A write that failed for lack of space: SQLite's SQLITE_FULL ("database or disk is full") or a file system's ENOSPC. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * Reads a request body into one buffer: allocated once when its length is declared, else collected and counted.
 * More than `max` bytes → TooLargeError (the rest is not read). A client that goes away → an error.
 */
export async function readBody(req: IncomingMessage, length: number | null, max: number): Promise<Buffer> {
  const buf = length !== null ? Buffer.allocUnsafe(length) : null;
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (n + chunk.length > max) throw new TooLargeError(`request body is larger than ${max} bytes`);
    if (buf) chunk.copy(buf, n);
    else chunks.push(chunk);
    n += chunk.length;
  }
  if (!req.complete) throw Object.assign(new Error('the client went away before sending the whole body'), { statusCode: 400 });
  return buf ? buf.subarray(0, n) : Buffer.concat(chunks, n);
}

export class TooLargeError extends Error {
  override name = 'TooLargeError';
}

/** How long an upload waits for room in the upload budget before 503 busy. */
const BUDGET_WAIT_MS = 30_000;

function firstLine(s: string): string {
  return s.split('\n')[0]!.trim();
}

export async function startDataServer(
  cfg: Config,
  instances: HostInstances,
  fence: Fence,
  dataKey: DataKey,
  /** This host's replication health of a workspace (default: not replicated, `off`). */
  replicationHealth: (workspaceId: string) => Promise<ReplicationHealth> = async () => ({ state: 'off', lagSeconds: null, checkedAt: new Date().toISOString() }),
): Promise<DataServer> {
  // Exports are ephemeral: anything left here is from a crashed process.
  fs.rmSync(exportsDir(cfg), { recursive: true, force: true });
  fs.mkdirSync(exportsDir(cfg), { recursive: true });

  const app = Fastify({ logger: false, forceCloseConnections: true, ...httpServerOptions(cfg.httpLimits) });
  app.server.maxConnections = cfg.httpLimits.maxConnections;
  const budget = new UploadBudget(cfg.uploadBudgetBytes);
  const quotaBytes = cfg.quotas.workspaceBytes;

  // Bodies are file contents whatever their content type: never parse them, and read them only once the request
  // is admitted (the PUT route reads the raw stream itself).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  app.setNotFoundHandler((req, reply) => sendError(reply, 404, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`));

  // DNS rebinding: a page on some other site whose name resolves to this host's address reaches the data server
  // with its own name in Host. Only IP literals, localhost and the advertised host name are served.
  const advertisedHost = cfg.advertiseUrl ? new URL(cfg.advertiseUrl).hostname.toLowerCase() : null;
  app.addHook('onRequest', async (req, reply) => {
    if (!hostAllowed(req.headers.host, advertisedHost)) {
      return sendError(reply, 421, 'bad_host', `this data server does not answer for host '${String(req.headers.host ?? '')}'`);
    }
  });

  app.setErrorHandler((err: unknown, _req, reply) => {
    if (err instanceof HttpError) return sendError(reply, err.statusCode, err.code, err.message);
    if (err instanceof NotHereError) return sendError(reply, 409, 'not_here', err.message);
    if (err instanceof NotActiveError) return sendError(reply, 409, 'not_here', `${err.message}; ask for it again (wake with check)`);
    if (err instanceof FencedError) return sendError(reply.header('retry-after', '1'), 503, 'fenced', err.message);
    if (err instanceof PlacementRequiredError) return sendError(reply, 400, 'placement_required', err.message);
    if (err instanceof GrantError) return sendError(reply, err.code === 'grant_mismatch' ? 403 : 401, err.code, err.message);
    if (err instanceof InputError) return sendError(reply, 400, 'bad_workspace_id', err.message);
    if (err instanceof VfsInputError) return sendError(reply, err.code === 'too_large' ? 413 : 400, err.code, err.message);
    if (err instanceof TooLargeError) return sendError(reply, 413, 'too_large', err.message);
    if (err instanceof BudgetTimeoutError) return sendError(reply.header('retry-after', '5'), 503, 'busy', `host '${cfg.hostId}' is receiving too many uploads: ${err.message}; retry shortly`);
    const e = err as { statusCode?: number; code?: string; message?: string };
    if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return sendError(reply, 413, 'too_large', `request body is larger than ${MAX_FILE_BYTES} bytes`);
    }
    if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
      return sendError(reply, e.statusCode, 'bad_request', e.message ?? 'bad request');
    }
    if (isDiskFull(err)) {
      // SQLite rolled the write back: the workspace is as it was before this request.
      return sendError(reply, 507, 'disk_full', `host '${cfg.hostId}' is out of disk space; nothing was changed (${firstLine(e.message ?? String(err))})`);
    }
    return sendError(reply, 500, 'internal', firstLine(e.message ?? String(err)));
  });

  /**
   * Refuses a write that cannot fit before SQLite starts it. SQLite would fail it with SQLITE_FULL and roll it
   * back, but only after growing the WAL into all the free space, and the WAL keeps that size until a checkpoint
   * succeeds, which needs room to grow the main file: one oversized upload would leave the host's disk full. The
   * WAL needs the data plus page and frame overhead (about 1%) and the wal-index; 2% and 64 KiB cover both.
   */
  function checkRoomFor(bytes: number): void {
    let free: number;
    try {
      const st = fs.statfsSync(liveDir(cfg));
      free = st.bavail * st.bsize;
    } catch {
      return; // no statfs here: SQLite's own error is the answer
    }
    const needed = Math.ceil(bytes * 1.02) + 64 * 1024;
    if (needed > free) {
      throw Object.assign(new Error(`a file of ${bytes} bytes needs about ${needed} bytes on the data dir; ${free} are free`), { code: 'ENOSPC' });
    }
  }

  /** Validates id, volume and path (400s) before looking at whether the workspace is here (409). */
  function fileTarget(req: FastifyRequest<{ Params: FileParams }>) {
    const id = checkWorkspaceId(req.params.id);
    const volume = checkVolume(req.params.volume);
    const filePath = checkPath('/' + (req.params['*'] ?? ''));
    return { id, volume, filePath };
  }

  /** The placement a request carries (null when absent). */
  function placementOf(req: FastifyRequest): number | null {
    const raw = req.headers[PLACEMENT_HEADER];
    if (raw === undefined) return null;
    const n = typeof raw === 'string' && /^[1-9][0-9]{0,15}$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n)) throw new HttpError(400, 'bad_placement', `${PLACEMENT_HEADER} must be a positive integer, given once`);
    return n;
  }

  /**
   * Runs `fn` on the workspace's open file if the request carries a grant for this workspace, its placement and
   * this operation, and the fence admits it (before and after).
   */
  async function served<T>(req: FastifyRequest, id: string, op: GrantOp, fn: (vfs: Vfs) => T): Promise<T> {
    return run(id, await admit(req, id, op), fn);
  }

  /** Checks the grant and the placement, and has the fence admit the request; returns its placement. */
  async function admit(req: FastifyRequest, id: string, op: GrantOp): Promise<number | null> {
    const header = placementOf(req);
    const grant = dataKey.verify(req.headers.authorization, { workspaceId: id, placement: header ?? undefined, op });
    const placement = header ?? grant.placement;
    await fence.admit(id, placement);
    return placement;
  }

  /** Runs `fn` on the open file of an admitted request (the fence checked again right before and after). */
  function run<T>(id: string, placement: number | null, fn: (vfs: Vfs) => T): T {
    const out = instances.withVfs(id, (vfs) => {
      fence.check(id, placement);
      return fn(vfs);
    });
    fence.after();
    return out;
  }

  /** Refuses a write of `bytes` to volume:path that would take the workspace past its bytes quota (all volumes). */
  function checkQuota(vfs: Vfs, volume: Parameters<Vfs['stat']>[0], filePath: string, bytes: number): void {
    if (quotaBytes <= 0) return;
    const after = vfs.totalBytes() - (vfs.sizeOf(volume, filePath) ?? 0) + bytes;
    if (after > quotaBytes) {
      throw new HttpError(413, 'quota_exceeded', `writing ${bytes} bytes would make the workspace ${after} bytes, over its quota of ${quotaBytes} (delete files first)`);
    }
  }

  app.get('/health', async () => ({ host: cfg.hostId }));

  // The body is read only after the request is admitted (grant, placement, fence), its declared size fits the file
  // limit and the workspace's quota, and the upload budget has room for it (a chunked body reserves the file limit).
  app.put<{ Params: FileParams }>('/workspaces/:id/files/:volume/*', async (req) => {
    const { id, volume, filePath } = fileTarget(req);
    const length = declaredLength(req.raw);
    if (length !== null && length > MAX_FILE_BYTES) throw new TooLargeError(`request body of ${length} bytes is larger than ${MAX_FILE_BYTES} bytes`);
    const placement = await admit(req, id, 'write');
    if (length !== null) run(id, placement, (vfs) => checkQuota(vfs, volume, filePath, length));
    const gone = new AbortController();
    const onClose = () => gone.abort();
    req.raw.once('close', onClose);
    const release = await budget.acquire(length ?? MAX_FILE_BYTES, BUDGET_WAIT_MS, gone.signal);
    try {
      const data = await readBody(req.raw, length, MAX_FILE_BYTES);
      await fence.admit(id, placement);
      return run(id, placement, (vfs) => {
        faultPoint('dataServer.put');
        checkQuota(vfs, volume, filePath, data.length);
        checkRoomFor(data.length);
        return vfs.put(volume, filePath, data);
      });
    } finally {
      req.raw.off('close', onClose);
      release();
    }
  });

  app.get<{ Params: FileParams }>('/workspaces/:id/files/:volume/*', async (req, reply) => {
    const { id, volume, filePath } = fileTarget(req);
    const data = await served(req, id, 'read', (vfs) => vfs.get(volume, filePath));
    if (!data) throw new HttpError(404, 'not_found', `no file ${volume}:${filePath}`);
    return reply.type('application/octet-stream').header('cache-control', 'no-store').send(data);
  });

  app.delete<{ Params: FileParams }>('/workspaces/:id/files/:volume/*', async (req) => {
    const { id, volume, filePath } = fileTarget(req);
    const deleted = await served(req, id, 'write', (vfs) => vfs.delete(volume, filePath));
    if (!deleted) throw new HttpError(404, 'not_found', `no file ${volume}:${filePath}`);
    return { deleted: true };
  });

  app.get<{ Params: { id: string; volume: string }; Querystring: { prefix?: string } }>('/workspaces/:id/files/:volume', async (req) => {
    const id = checkWorkspaceId(req.params.id);
    const volume = checkVolume(req.params.volume);
    const raw = req.query.prefix;
    if (raw !== undefined && typeof raw !== 'string') throw new HttpError(400, 'bad_path', 'prefix must be given once');
    const prefix = checkPrefix(raw);
    const files = await served(req, id, 'read', (vfs) => vfs.list(volume, prefix));
    return { volume, prefix, files };
  });

  app.get<{ Params: { id: string } }>('/workspaces/:id/export', async (req, reply) => {
    const id = checkWorkspaceId(req.params.id);
    const out = path.join(exportsDir(cfg), `${id}-${crypto.randomBytes(6).toString('hex')}.sqlite`);
    let fh: fs.promises.FileHandle | null = null;
    try {
      const summary = await served(req, id, 'export', (vfs) => vfs.export(out));
      fh = await fs.promises.open(out, 'r');
      const size = (await fh.stat()).size;
      // Unlinked while open: the bytes live until the stream closes, and nothing is left behind if the client
      // goes away or the process dies.
      await fs.promises.rm(out, { force: true });
      const stream = fh.createReadStream();
      fh = null;
      return reply
        .type('application/vnd.sqlite3')
        .header('content-length', size)
        .header('content-disposition', `attachment; filename="${id}.sqlite"`)
        .header('cache-control', 'no-store')
        .header('x-workbooks-files', summary.files)
        .header('x-workbooks-bytes', summary.bytes)
        .send(stream);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await fs.promises.rm(out, { force: true }).catch(() => undefined);
      throw err;
    }
  });

  app.get<{ Params: { id: string } }>('/workspaces/:id/usage', async (req) => {
    const id = checkWorkspaceId(req.params.id);
    const usage = await served(req, id, 'read', (vfs) => vfs.usage());
    return { workspaceId: id, host: cfg.hostId, usage, lastAccessAt: instances.lastAccess(id) };
  });

  app.get<{ Params: { id: string } }>('/workspaces/:id/replication', async (req, reply) => {
    const id = checkWorkspaceId(req.params.id);
    const header = placementOf(req);
    const grant = dataKey.verify(req.headers.authorization, { workspaceId: id, placement: header ?? undefined, op: 'read' });
    fence.check(id, header ?? grant.placement, false);
    const replication = await replicationHealth(id);
    return reply.header('cache-control', 'no-store').send({ workspaceId: id, host: cfg.hostId, replication });
  });

  try {
    await app.listen({ host: cfg.hostBind, port: cfg.hostPort });
  } catch (err) {
    // A second host on one machine with the default port: take a free one (the endpoint is advertised through
    // the workflow, so clients find it). An explicitly chosen port that is busy is an error.
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || cfg.hostPortExplicit || cfg.hostPort === 0) throw err;
    await app.listen({ host: cfg.hostBind, port: 0 });
  }
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.hostPort;
  const url = cfg.advertiseUrl ?? `http://${urlHost(cfg.hostBind)}:${port}`;
  return {
    url: url.replace(/\/+$/, ''),
    async close() {
      await app.close();
    },
  };
}
