/**
 * Data routes: files of a workspace's volumes and its export. The request goes to the data server of the host
 * holding the workspace; a workspace that is not active is woken first, and the request waits for that up to
 * the context's wait (then 503 with Retry-After; the wake goes on). `x-workbooks-wake` says how it was reached.
 */
import { Readable, Transform } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { type DataResponse, encodePath } from '../client/workbooks-client';
import { MAX_FILE_BYTES, checkPath, checkPrefix, checkVolume } from '../vfs/volumes';
import { ApiContext, actorOf, ownedWorkspace } from './context';
import * as S from './schemas';
import { ApiError } from './errors';
import { declaredLength } from '../http-bounds';

/** Passes a chunked body on, failing with 413 once it grows past `max` bytes (the rest is not read). */
function limitBytes(max: number): Transform {
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      n += chunk.length;
      if (n > max) done(new ApiError(413, 'too_large', `request body is larger than ${max} bytes`));
      else done(null, chunk);
    },
  });
}

type FileReq = { Params: { id: string; volume: string; '*': string } };

/** Streams the host's answer on, with the headers that matter. */
function relay(reply: FastifyReply, r: DataResponse, keep: string[]): FastifyReply {
  reply.header('x-workbooks-wake', r.wake).header('cache-control', 'no-store');
  for (const h of keep) {
    const v = r.res.headers.get(h);
    if (v !== null) reply.header(h, v);
  }
  if (!r.res.body) return reply.send(Buffer.alloc(0));
  return reply.send(Readable.fromWeb(r.res.body as import('node:stream/web').ReadableStream));
}

export function fileRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const tags = ['files'];
  // File bodies are bytes whatever their content type: never parse them, never hold them (this plugin's routes
  // only). The raw stream is handed on; the PUT handler checks size and ownership before anything reads it.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload));

  /** Checks volume and path (400). */
  function place(params: FileReq['Params']) {
    const volume = checkVolume(params.volume);
    const filePath = checkPath('/' + (params['*'] ?? ''));
    return { volume, filePath, suffix: `/files/${volume}${encodePath(filePath)}` };
  }

  /** Checks id, volume and path (400) before anything else, then ownership (404). */
  async function target(req: { params: FileReq['Params'] } & Parameters<typeof ownedWorkspace>[1]) {
    const p = place(req.params);
    return { ...p, d: await ownedWorkspace(ctx, req, req.params.id) };
  }

  const data = (d: Awaited<ReturnType<typeof target>>['d'], req: Parameters<typeof actorOf>[0], method: string, suffix: string) =>
    ctx.client.dataResponse(d.workspaceId, method, suffix, undefined, { description: d, waitMs: ctx.waitMs, actor: actorOf(req, `${method} request`, 'api request') });

  app.put<FileReq>(
    '/v1/workspaces/:id/files/:volume/*',
    {
      schema: {
        tags,
        summary: `Write a file (the raw body, up to ${MAX_FILE_BYTES} bytes, any content type); wakes the workspace if needed`,
        params: S.fileParams,
        response: { 200: { ...S.fileEntry, headers: S.wakeHeader }, ...S.writeErrors },
      },
    },
    async (req, reply) => {
      // Streamed through, never held: a declared size over the limit is 413 before the body is read (a chunked
      // one is counted and cut at the limit); ownership (404) and the wake come before the body is read too.
      place(req.params);
      const length = declaredLength(req.raw);
      if (length !== null && length > ctx.maxFileBytes) throw new ApiError(413, 'too_large', `request body of ${length} bytes is larger than the ${ctx.maxFileBytes}-byte file limit`);
      const t = await target(req);
      const body = length === null ? req.raw.pipe(limitBytes(ctx.maxFileBytes)) : req.raw;
      const r = await ctx.client.dataStream(t.d.workspaceId, 'PUT', t.suffix, body, length, {
        description: t.d,
        waitMs: ctx.waitMs,
        actor: actorOf(req, 'PUT request', 'api request'),
      });
      return reply.header('x-workbooks-wake', r.wake).send(await r.res.json());
    },
  );

  app.get<FileReq>(
    '/v1/workspaces/:id/files/:volume/*',
    { schema: { tags, summary: 'Read a file (bytes); wakes the workspace if needed', params: S.fileParams, response: { 200: S.bytes('application/octet-stream', 'the file\'s bytes', S.wakeHeader), ...S.dataErrors } } },
    async (req, reply) => {
      const t = await target(req);
      const r = await data(t.d, req, 'GET', t.suffix);
      return relay(reply.type('application/octet-stream'), r, ['content-length']);
    },
  );

  app.delete<FileReq>(
    '/v1/workspaces/:id/files/:volume/*',
    {
      schema: {
        tags,
        summary: 'Delete a file; wakes the workspace if needed',
        params: S.fileParams,
        response: { 200: { type: 'object', required: ['deleted'], properties: { deleted: { type: 'boolean', enum: [true] } }, headers: S.wakeHeader }, ...S.dataErrors },
      },
    },
    async (req, reply) => {
      const t = await target(req);
      const r = await data(t.d, req, 'DELETE', t.suffix);
      return reply.header('x-workbooks-wake', r.wake).send(await r.res.json());
    },
  );

  app.get<{ Params: { id: string; volume: string }; Querystring: { prefix?: string } }>(
    '/v1/workspaces/:id/files/:volume',
    {
      schema: {
        tags,
        summary: 'List the files of a volume (at or below `prefix`); wakes the workspace if needed',
        params: S.volumeParams,
        querystring: S.prefixQuery,
        response: {
          200: {
            type: 'object',
            required: ['volume', 'prefix', 'files'],
            properties: { volume: { type: 'string' }, prefix: { type: 'string' }, files: { type: 'array', items: S.fileEntry } },
            headers: S.wakeHeader,
          },
          ...S.dataErrors,
        },
      },
    },
    async (req, reply) => {
      const volume = checkVolume(req.params.volume);
      const prefix = checkPrefix(req.query.prefix);
      const d = await ownedWorkspace(ctx, req, req.params.id);
      const r = await data(d, req, 'GET', `/files/${volume}?prefix=${encodeURIComponent(prefix)}`);
      return reply.header('x-workbooks-wake', r.wake).send(await r.res.json());
    },
  );

  app.get<{ Params: { id: string } }>(
    '/v1/workspaces/:id/export',
    {
      schema: {
        tags,
        summary: 'Download a SQLite file holding only the workspace volume (memory stripped, tmp never leaves)',
        params: S.idParams,
        response: {
          200: S.bytes('application/vnd.sqlite3', 'a SQLite file holding the workspace volume', {
            ...S.wakeHeader,
            'content-disposition': { type: 'string', description: 'attachment; filename="<id>.sqlite"' },
            'x-workbooks-files': { type: 'integer', description: 'files in the export' },
            'x-workbooks-bytes': { type: 'integer', description: 'bytes of those files' },
          }),
          ...S.dataErrors,
        },
      },
    },
    async (req, reply) => {
      const d = await ownedWorkspace(ctx, req, req.params.id);
      const r = await data(d, req, 'GET', '/export');
      return relay(reply.type('application/vnd.sqlite3'), r, ['content-length', 'content-disposition', 'x-workbooks-files', 'x-workbooks-bytes']);
    },
  );
}
