/**
 * JSON schemas of the HTTP API: request validation (bodies and query strings refuse unknown fields) and the
 * OpenAPI document served at /openapi.json. Ids, volumes and paths are checked by the same functions the CLI
 * and the workflow use, so their errors read the same everywhere.
 */
import { STATES } from '../lifecycle';
import { VOLUMES } from '../vfs/volumes';

const errorBody = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: { code: { type: 'string' }, message: { type: 'string' } },
      required: ['code', 'message'],
    },
  },
  required: ['error'],
} as const;

/** The error responses every route may give. */
export const errors = {
  400: { description: 'invalid input (nothing changed)', ...errorBody },
  401: { description: 'missing or unknown bearer token', ...errorBody },
  404: { description: 'no such workspace (or one of another tenant)', ...errorBody },
} as const;

/** Routes that take a file body. */
export const tooLarge = {
  413: { description: 'body too large (`too_large`), or over the workspace bytes quota (`quota_exceeded`); the body is not read', ...errorBody },
} as const;

/** Routes that count against a per-tenant quota (moves per minute, workspaces). */
export const quotaErrors = {
  429: { description: 'a per-tenant quota is spent (`quota_exceeded`); see Retry-After', ...errorBody },
} as const;

const policy = {
  type: 'object',
  additionalProperties: false,
  description: 'Idle ladder: durations like "15m", "24h", "30d", or "never".',
  properties: {
    suspendAfter: { type: ['string', 'null'], maxLength: 32 },
    freezeAfter: { type: ['string', 'null'], maxLength: 32 },
    archiveAfter: { type: ['string', 'null'], maxLength: 32 },
    deleteAfter: { type: ['string', 'null'], maxLength: 32 },
  },
} as const;

const copy = {
  type: ['object', 'null'],
  properties: { bytes: { type: 'integer' }, sha256: { type: 'string' }, at: { type: 'string' } },
} as const;

export const workspace = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    state: { type: 'string', enum: [...STATES] },
    createdAt: { type: 'string' },
    stateSince: { type: 'string' },
    lastActiveAt: { type: 'string' },
    host: { type: ['string', 'null'] },
    template: { type: ['string', 'null'] },
    restoredFrom: { type: ['object', 'null'], properties: { workspaceId: { type: 'string' }, at: { type: 'string' } } },
    policy: { type: 'object', properties: policy.properties },
    next: { type: ['object', 'null'], properties: { to: { type: 'string' }, at: { type: 'string' } } },
    busy: { type: ['object', 'null'], properties: { to: { type: 'string' }, since: { type: 'string' } } },
    cold: copy,
    archive: copy,
    replicaGenerations: { type: 'integer' },
  },
} as const;

export const idParams = {
  type: 'object',
  properties: { id: { type: 'string', description: 'workspace id: 1-63 lowercase letters, digits or dashes' } },
  required: ['id'],
} as const;

export const fileParams = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    volume: { type: 'string', description: `one of ${VOLUMES.join(', ')}` },
    '*': { type: 'string', description: 'file path inside the volume, e.g. notes/today.md' },
  },
  required: ['id', 'volume'],
} as const;

export const volumeParams = {
  type: 'object',
  properties: { id: { type: 'string' }, volume: { type: 'string', description: `one of ${VOLUMES.join(', ')}` } },
  required: ['id', 'volume'],
} as const;

export const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: { type: 'string', description: 'the new workspace id' },
    from: { type: 'string', description: 'clone this workspace of yours (it is only read)' },
    policy,
    tenant: { type: 'string', description: 'admin tokens only: the tenant of the new workspace' },
  },
} as const;

export const moveBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: { reason: { type: 'string', maxLength: 500, description: 'why (recorded in the ledger)' } },
} as const;

export const restoreBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    at: { type: 'string', description: 'ISO 8601 time to restore to (default: the newest data)' },
    as: { type: 'string', description: 'id of the new workspace (default <id>-restored-<time>)' },
  },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: [...STATES] },
    tenant: { type: 'string', description: 'admin tokens only' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'page size (default 100; the server may allow less)' },
    cursor: { type: 'string', maxLength: 8192, description: 'nextCursor of the previous page, as it was given' },
  },
} as const;

export const listPage = {
  type: 'object',
  properties: {
    workspaces: { type: 'array', items: { type: 'object', additionalProperties: true } },
    nextCursor: { type: ['string', 'null'], description: 'pass as cursor for the next page; null on the last page' },
  },
} as const;

export const prefixQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { prefix: { type: 'string', description: 'list files at or below this path (default /)' } },
} as const;

export const sessionBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 50, description: 'how many recently used workspaces to bring back (default 5)' },
    within: { type: 'string', maxLength: 32, description: 'how recently used, e.g. "7d" (default 7d)' },
    wait: { type: 'boolean', description: 'answer once they are active (bounded by the wake wait), not at once' },
    tenant: { type: 'string', description: 'admin tokens only' },
  },
} as const;

export const fileEntry = {
  type: 'object',
  properties: { volume: { type: 'string' }, path: { type: 'string' }, bytes: { type: 'integer' }, updatedAt: { type: 'number' } },
} as const;
