/**
 * JSON schemas of the HTTP API: request validation (bodies and query strings refuse unknown fields) and the
 * OpenAPI document served at /openapi.json. Ids, volumes and paths are checked by the same functions the CLI
 * and the workflow use, so their errors read the same everywhere.
 */
import { STATES } from '../lifecycle';
import { CURSOR_PATTERN } from '../client/workbooks-client';
import { VOLUMES } from '../vfs/volumes';
import { REPLICATION_STATES } from '../contract/data-plane';
import * as P from './patterns';

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

const retryAfter = { 'retry-after': { type: 'integer', minimum: 0, description: 'seconds to wait before asking again' } } as const;

/**
 * Every error answer the API gives, by status. A route lists the ones it can give (see the sets below); the
 * body is always `{ error: { code, message } }`.
 */
export const errorResponses = {
  400: { description: 'invalid input (nothing changed)', ...errorBody },
  401: { description: 'missing or unknown bearer token', ...errorBody },
  403: { description: 'the request names another tenant than the token\'s', ...errorBody },
  404: { description: 'no such workspace or file (a workspace of another tenant reads the same)', ...errorBody },
  409: { description: 'refused by the workspace\'s state (illegal move, id taken, nothing to restore): nothing changed', ...errorBody },
  413: { description: 'the body is larger than the route accepts', ...errorBody },
  415: { description: 'the body is not JSON (content-type: application/json)', ...errorBody },
  429: { description: 'too many requests: wait Retry-After seconds', headers: retryAfter, ...errorBody },
  507: { description: 'the host is out of disk space: nothing was written', ...errorBody },
  503: { description: 'not available yet (a workspace still waking, Temporal or the host unreachable): the work goes on; ask again after Retry-After seconds', headers: retryAfter, ...errorBody },
} as const;

type ErrorStatus = keyof typeof errorResponses;
const pick = (...codes: ErrorStatus[]) => Object.fromEntries(codes.map((c) => [c, errorResponses[c]])) as Partial<typeof errorResponses>;

/** Errors of the workspace list. */
export const listErrors = pick(400, 401, 403, 429, 503);
/** Errors of routes that read a workspace (no body). */
export const readErrors = pick(400, 401, 404, 429, 503);
/** Errors of routes that take a JSON body and act on a workspace. */
export const moveErrors = pick(400, 401, 404, 409, 413, 415, 429, 503);
/** Errors of the data routes that read (no body). */
export const dataErrors = pick(400, 401, 404, 409, 429, 503);
/** Errors of a file write (a raw body of any type). */
export const writeErrors = pick(400, 401, 404, 409, 413, 429, 503, 507);
/** Errors of routes that take a JSON body and act for the caller's tenant. */
export const tenantBodyErrors = pick(400, 401, 403, 413, 415, 429, 503);

const workspaceId = (description = 'workspace id: 1-63 lowercase letters, digits or dashes, starting with a letter or digit') =>
  ({ type: 'string', pattern: P.WORKSPACE_ID, description }) as const;
/** A workspace named in a URL or as a template: a tenant's name, or a key `<tenant>.<name>` (how admins name them). */
const workspaceRef = (
  description = "workspace: your name for it (e.g. notes), or its key <tenant>.<name> (admin tokens; a tenant's own key works too, another tenant's reads as missing)",
) => ({ type: 'string', pattern: P.WORKSPACE_REF, description }) as const;
const tenant = { type: 'string', pattern: P.TENANT, description: 'admin tokens only (a tenant token may name only its own tenant)' } as const;
const rung = { type: ['string', 'null'], pattern: P.POLICY_DURATION } as const;

const policy = {
  type: 'object',
  additionalProperties: false,
  description: 'Idle ladder: a whole number and a unit (s, m, h, d), like "15m", "24h", "30d", or "never" (null is never too).',
  properties: { suspendAfter: rung, freezeAfter: rung, archiveAfter: rung, deleteAfter: rung },
} as const;

/** The Location of a workspace made or being made. */
const location = { location: { type: 'string', description: 'the workspace\'s URL' } } as const;
/** How a data request reached its workspace. */
export const wakeHeader = { 'x-workbooks-wake': { type: 'string', enum: ['warm', 'local', 'cold'], description: 'warm: it was active; local/cold: it was woken' } } as const;

const copy = {
  type: ['object', 'null'],
  properties: { bytes: { type: 'integer' }, sha256: { type: 'string' }, at: { type: 'string' } },
} as const;

export const workspace = {
  type: 'object',
  required: ['id', 'tenant', 'state', 'createdAt', 'stateSince', 'lastActiveAt', 'template', 'restoredFrom', 'policy', 'next', 'busy', 'cold', 'archive', 'replicaGenerations'],
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    state: { type: 'string', enum: [...STATES] },
    createdAt: { type: 'string' },
    stateSince: { type: 'string' },
    lastActiveAt: { type: 'string' },
    host: { type: ['string', 'null'], description: 'admin tokens only: the host holding the file' },
    template: { type: ['string', 'null'] },
    published: {
      type: ['object', 'null'],
      description: 'published as a template: frozen and read-only; `version` is the sha256 of the cold copy every clone is made from',
      properties: {
        version: { type: 'string' },
        shareWith: { anyOf: [{ type: 'string', enum: ['*'] }, { type: 'array', items: { type: 'string' } }] },
        publishedAt: { type: 'string' },
      },
    },
    restoredFrom: { type: ['object', 'null'], properties: { workspaceId: { type: 'string' }, at: { type: 'string' } } },
    policy: {
      type: 'object',
      properties: { suspendAfter: { type: ['string', 'null'] }, freezeAfter: { type: ['string', 'null'] }, archiveAfter: { type: ['string', 'null'] }, deleteAfter: { type: ['string', 'null'] } },
    },
    next: { type: ['object', 'null'], properties: { to: { type: 'string' }, at: { type: 'string' } } },
    busy: { type: ['object', 'null'], properties: { to: { type: 'string' }, since: { type: 'string' } } },
    cold: copy,
    archive: copy,
    replicaGenerations: { type: 'integer' },
    replication: {
      type: 'object',
      description:
        'GET of one workspace only: replication health from the holding host (off: not active; unknown: the host did not answer within 2 s). Tenant tokens see only the state',
      required: ['state'],
      properties: {
        state: { type: 'string', enum: [...REPLICATION_STATES, 'unknown'] },
        lagSeconds: { type: ['number', 'null'], description: 'admin tokens only: seconds since the replica last held every committed write' },
        lastError: { type: 'string', description: 'admin tokens only: the newest replication failure since the last successful sync' },
        checkedAt: { type: 'string', description: 'admin tokens only' },
      },
    },
  },
} as const;

/** A row of the workspace list. */
export const listedWorkspace = {
  type: 'object',
  required: ['id', 'tenant', 'state', 'startedAt', 'lastActiveAt'],
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    state: { type: 'string', enum: [...STATES] },
    host: { type: ['string', 'null'], description: 'admin tokens only' },
    startedAt: { type: 'string' },
    lastActiveAt: { type: ['string', 'null'] },
  },
} as const;

/** A workspace made (201) or still being made (202), with its Location. */
export const madeWorkspace = { ...workspace, headers: location } as const;

export const idParams = {
  type: 'object',
  properties: { id: workspaceRef() },
  required: ['id'],
} as const;

const volume = { type: 'string', enum: [...VOLUMES], description: 'workspace (public), memory (kept, never exported) or tmp (cleared on resume)' } as const;

export const fileParams = {
  type: 'object',
  properties: {
    id: workspaceRef(),
    volume,
    '*': P.filePathSchema(
      'file path inside the volume, e.g. notes/today.md: segments joined by "/", none empty, "." or "..", no control characters or backslashes, at most 1023 characters if all are ASCII, else at most 255 (so it always fits the 1024 UTF-8 bytes a path may take)',
    ),
  },
  required: ['id', 'volume', '*'],
} as const;

export const volumeParams = {
  type: 'object',
  properties: { id: workspaceRef(), volume },
  required: ['id', 'volume'],
} as const;

export const createBody = {
  type: 'object',
  additionalProperties: false,
  required: ['id'],
  properties: {
    id: workspaceId('the new workspace id: 1-63 lowercase letters, digits or dashes, starting with a letter or digit'),
    from: workspaceRef("clone this workspace (it is only read): one of yours by name, or a template another tenant shares with you by its key (e.g. 'acme.base')"),
    policy,
    tenant,
  },
} as const;

export const publishBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    shareWith: {
      description: "tenants that may clone it besides its own: a list of tenant names, or '*' for every tenant (admin tokens only)",
      anyOf: [{ type: 'string', enum: ['*'] }, { type: 'array', maxItems: 1000, uniqueItems: true, items: { type: 'string', pattern: P.TENANT } }],
    },
    reason: { type: 'string', maxLength: 500, description: 'why (recorded in the ledger)' },
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
    at: { type: 'string', format: 'date-time', description: 'restore the newest data at or before this time (default: the newest data); a time in the future or before the first copy answers 409' },
    as: workspaceId('id of the new workspace (default <id>-restored-<time>)'),
  },
} as const;

export const listQuery = {
  type: 'object',
  additionalProperties: false,
  properties: {
    state: { type: 'string', enum: [...STATES] },
    tenant,
    limit: { type: 'integer', minimum: 1, maximum: 1000, description: 'page size (default 100; the server may allow less: more is 400)' },
    cursor: { type: 'string', pattern: CURSOR_PATTERN.source, description: 'nextCursor of the previous page, as it was given (opaque; any other is 400 bad_cursor)' },
  },
} as const;

export const prefixQuery = {
  type: 'object',
  additionalProperties: false,
  properties: { prefix: P.prefixSchema('list files at or below this path (default /)') },
} as const;

export const sessionBody = {
  type: ['object', 'null'],
  additionalProperties: false,
  properties: {
    limit: { type: 'integer', minimum: 1, maximum: 50, description: 'how many recently used workspaces to bring back (default 5)' },
    within: { type: 'string', pattern: P.WINDOW_DURATION, description: 'how recently used: a whole number and a unit (s, m, h, d), e.g. "7d" (default 7d)' },
    wait: { type: 'boolean', description: 'answer once they are active (bounded by the wake wait), not at once' },
    tenant,
  },
} as const;

export const fileEntry = {
  type: 'object',
  required: ['volume', 'path', 'bytes'],
  properties: { volume: { type: 'string' }, path: { type: 'string' }, bytes: { type: 'integer' }, updatedAt: { type: 'number' } },
} as const;

/** A body of raw bytes. */
export const bytes = (mediaType: string, description: string, headers: Record<string, unknown> = {}) =>
  ({ description, headers, content: { [mediaType]: { schema: { type: 'string', format: 'binary' } } } }) as const;

// ---------------------------------------------------------------------------------------------------------------
// Storage reports (src/client/storage-report.ts)

const amount = {
  type: 'object',
  required: ['objects', 'bytes'],
  properties: { objects: { type: 'integer', minimum: 0 }, bytes: { type: 'integer', minimum: 0 } },
} as const;

const storeUsage = {
  type: 'object',
  description: 'one store: objects and bytes (a file store counts its metadata sidecars in bytes), split into copies, ledger pages, copies the workflow records (referenced) and the rest (leftover)',
  required: ['objects', 'bytes', 'copies', 'ledgerPages', 'referenced', 'leftover', 'missing'],
  properties: {
    objects: { type: 'integer', minimum: 0 },
    bytes: { type: 'integer', minimum: 0 },
    copies: amount,
    ledgerPages: amount,
    referenced: amount,
    leftover: amount,
    missing: { type: 'integer', minimum: 0, description: 'copies the workflow records in this store that it does not hold' },
  },
} as const;

const generations = { ...amount, required: [...amount.required, 'generations'], properties: { ...amount.properties, generations: { type: 'integer', minimum: 0 } } } as const;

const replicaUsage = {
  type: 'object',
  description: 'the replica store: Litestream generations, those the workflow remembers (referenced) and the rest (leftover)',
  required: ['objects', 'bytes', 'generations', 'referenced', 'leftover', 'missing'],
  properties: {
    objects: { type: 'integer', minimum: 0 },
    bytes: { type: 'integer', minimum: 0 },
    generations: { type: 'integer', minimum: 0 },
    referenced: generations,
    leftover: generations,
    missing: { type: 'integer', minimum: 0, description: 'remembered generations that hold nothing' },
  },
} as const;

const storeUrls = {
  type: 'object',
  description: 'admin tokens only: the stores listed',
  properties: { cold: { type: 'string' }, archive: { type: 'string' }, replicas: { type: ['string', 'null'] } },
} as const;

export const workspaceStorage = {
  type: 'object',
  required: ['id', 'tenant', 'state', 'cold', 'archive', 'replicas', 'local', 'total', 'truncated'],
  properties: {
    id: { type: 'string' },
    tenant: { type: 'string' },
    state: { type: 'string', enum: [...STATES] },
    cold: storeUsage,
    archive: { ...storeUsage, description: 'the archive store (empty when it is the cold store\'s location: counted once, in cold)' },
    replicas: replicaUsage,
    local: {
      type: 'object',
      required: ['kind', 'bytes'],
      description: 'a copy on a host (not in the totals): live (active or suspended; its size is not reported) or prefetched',
      properties: { kind: { type: ['string', 'null'], enum: ['live', 'prefetched', null] }, bytes: { type: ['integer', 'null'] }, host: { type: ['string', 'null'], description: 'admin tokens only' } },
    },
    total: { ...amount, description: 'cold + archive + replicas' },
    truncated: { type: 'boolean', description: 'a listing stopped at its limit: the figures are at least these' },
    leftovers: { type: 'array', items: { type: 'string' }, description: 'admin tokens only: URLs of leftover copies and generations (at most 50)' },
    stores: storeUrls,
  },
} as const;

export const tenantStorage = {
  type: 'object',
  required: ['tenant', 'workspaces', 'others', 'totals', 'truncated', 'notes'],
  properties: {
    tenant: { type: 'string' },
    workspaces: {
      type: 'array',
      description: 'running workspaces, largest first',
      items: {
        type: 'object',
        required: ['id', 'state', 'cold', 'archive', 'replicas', 'leftover', 'ledgerPages', 'total', 'described'],
        properties: {
          id: { type: 'string' },
          state: { type: ['string', 'null'] },
          cold: amount,
          archive: amount,
          replicas: amount,
          leftover: amount,
          ledgerPages: amount,
          total: amount,
          described: { type: 'boolean', description: 'false: its workflow could not be asked, so none of its copies count as referenced' },
        },
      },
    },
    others: {
      type: ['object', 'null'],
      description: "what the stores hold under the tenant's keys for workspaces that are not running (deleted ones' ledger pages and leftovers); null when the list was truncated",
      properties: { workspaces: { type: 'integer', minimum: 0 }, ids: { type: 'array', items: { type: 'string' } }, cold: storeUsage, archive: storeUsage, replicas: replicaUsage, total: amount },
    },
    totals: {
      type: 'object',
      required: ['cold', 'archive', 'replicas', 'local', 'total'],
      properties: {
        cold: storeUsage,
        archive: storeUsage,
        replicas: replicaUsage,
        local: { type: 'object', properties: { live: { type: 'integer' }, prefetched: { type: 'integer' }, prefetchedBytes: { type: 'integer' } } },
        total: amount,
      },
    },
    truncated: { type: 'boolean' },
    notes: { type: 'array', items: { type: 'string' }, description: 'why it is truncated, or what could not be seen' },
    stores: storeUrls,
  },
} as const;

export const tenantParams = {
  type: 'object',
  properties: { tenant: { type: 'string', pattern: P.TENANT, description: 'a tenant name (a tenant token may name only its own)' } },
  required: ['tenant'],
} as const;

/** Errors of the storage reports. */
export const storageErrors = pick(400, 401, 403, 404, 429, 503);
