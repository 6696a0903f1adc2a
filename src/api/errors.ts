/**
 * Errors of the HTTP API: JSON `{ error: { code, message } }` with a stable code and a sentence for people.
 * Everything the layers below throw is mapped here, in one place.
 */
import type { FastifyError, FastifyReply } from 'fastify';
import { WorkbooksError } from '../client/errors';
import { InputError } from '../contract/ids';
import { VfsInputError } from '../vfs/volumes';
import { PolicyError } from '../lifecycle';
import { closeAfterAnswer } from '../http-bounds';
import { validationMessage } from './validation-message';

export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** How long a caller should wait before asking again about a workspace that is still waking. */
export const RETRY_AFTER_SECONDS = 2;

export function notFound(workspaceId: string): ApiError {
  return new ApiError(404, 'not_found', `workspace '${workspaceId}' does not exist`);
}

export function sendError(reply: FastifyReply, status: number, code: string, message: string, headers: Record<string, string> = {}): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  // A refused upload whose body was not read: close the connection rather than read (up to 256 MiB of) the rest.
  closeAfterAnswer(reply.request.raw, (k, v) => reply.header(k, v));
  return reply.code(status).type('application/json; charset=utf-8').send({ error: { code, message } });
}

/** Maps any error to a status, a stable code and a message. */
export function toApiError(err: unknown, jsonBodyLimit: number, fileBodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof WorkbooksError) {
    const status = err.status >= 400 && err.status < 600 ? err.status : 500;
    return new ApiError(status, err.code, err.message, status === 503 ? { 'retry-after': String(RETRY_AFTER_SECONDS) } : {});
  }
  if (err instanceof InputError) return new ApiError(400, 'bad_workspace_id', err.message);
  if (err instanceof VfsInputError) return new ApiError(err.code === 'too_large' ? 413 : 400, err.code, err.message);
  if (err instanceof PolicyError) return new ApiError(400, 'bad_policy', err.message);
  const e = err as Partial<FastifyError> & { validation?: unknown; validationContext?: string };
  if (e.validation) return new ApiError(400, 'bad_request', validationMessage(e.validation, e.validationContext, e.message ?? 'invalid request'));
  if (e.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || e.statusCode === 413) {
    return new ApiError(413, 'too_large', `request body is too large (files up to ${fileBodyLimit} bytes, JSON up to ${jsonBodyLimit} bytes)`);
  }
  if (e.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return new ApiError(415, 'unsupported_media_type', 'send JSON (content-type: application/json)');
  if (e.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return new ApiError(400, 'bad_request', 'the JSON body is empty');
  if (e.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || e.name === 'SyntaxError') return new ApiError(400, 'bad_json', `the body is not valid JSON: ${e.message ?? ''}`.trim());
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) return new ApiError(e.statusCode, 'bad_request', e.message ?? 'bad request');
  return new ApiError(500, 'internal', (e.message ?? String(err)).split('\n')[0]!);
}
