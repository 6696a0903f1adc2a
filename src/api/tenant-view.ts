/**
 * What a tenant sees: reasons, not internals. Host ids, file paths on hosts, store and endpoint URLs (s3://,
 * file://, http(s)://), disk figures and stack traces stay with the operator (the JSON log line written here, the
 * workflow's ledger and the Temporal history); an admin token sees everything as it is.
 *
 * The rules, in order of trust:
 *   1. Errors from below (the workflow, the activities, the data servers, Temporal) are answered with a fixed
 *      sentence chosen by their stable code (TENANT_MESSAGES), or by the kind of failure (failureKind) for codes
 *      whose message is the failure of a move: no text from below reaches the tenant.
 *   2. Ledger entries are rebuilt from their edge and outcome (tenantDetail): fixed phrases plus ids the tenant
 *      already sees in the view (template, restore source).
 *   3. Text that must pass (errors the API writes about the caller's own request, a refused move's reason, the
 *      actor's `reason`/`by`) goes through `scrub` as a second line.
 */
import { WorkbooksError } from '../client/errors';
import type { ListedWorkspace, ReplicationView } from '../contract/data-plane';
import type { LedgerEntry, WorkspaceDescription } from '../contract/types';
import { writeLog } from '../logging/json-log';
import { ApiError } from './errors';
import type { Caller } from './tokens';
import { WorkspaceView, listedView, workspaceView } from './views';

/** Whether the caller sees full detail: only an admin token does (no token, or a tenant's, is a tenant). */
export function seesInternals(caller: Caller | null | undefined): boolean {
  return caller?.admin === true;
}

// ---------------------------------------------------------------------------------------------------------------
// Second line: scrubbing free text

const URL_RE = /\b[a-z][a-z0-9+.-]*:\/\/(?:[^\s'"<>`]*[^\s'"<>`:;,.)])?/gi;
/** `host 'x'`, `host "x"`, `host x` (x a name, not one of the words that follow "host" in our sentences). */
const HOST_QUOTED_RE = /\bhost\s+(?:'[^']*'|"[^"]*")/gi;
const HOST_NAMED_RE =
  /\bhost\s+(?!(?:answered|is|was|did|does|cannot|can|that|of|holding|not|has|had|and|or|to|the|a|its|it|which|where|unreachable|gone|lost|running|serving)\b)[A-Za-z0-9][\w.-]*/gi;
/** Absolute POSIX paths (two or more segments, so `a/b` in prose and single `/x` stay) and Windows paths. */
const POSIX_PATH_RE = /(^|[\s'"(=:,[])\/(?:[^\s/'"(),;\]]+\/)+[^\s/'"(),;\]]*/g;
const WINDOWS_PATH_RE = /\b[A-Za-z]:\\[^\s'"(),;]*/g;
/** Byte figures (`20480 bytes`, `16 MiB`, `7 are free`) and IPv4 addresses (with a port). */
const BYTES_RE = /\b\d[\d,._]*\s*(?:bytes?|[KMGTP]i?B)\b/gi;
const FREE_RE = /\b\d[\d,._]*\s+(?:are\s+|bytes\s+)?(?:free|available|left)\b/gi;
const IPV4_RE = /\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b/g;
/** `name:port`, e.g. `minio:9000`, `worker-2:8788` (a letter first, so times like 21:30 stay). */
const HOST_PORT_RE = /(^|[^\w.:-])([A-Za-z][\w.-]*:\d{2,5})\b/g;
const MAX_TEXT = 300;

/**
 * Free text without internals: the first line only (no stack trace), URLs, absolute paths, host names (the
 * `hosts` given, and any `host <name>`), `name:port`, IP addresses and byte figures replaced.
 */
export function scrub(text: string, hosts: readonly string[] = []): string {
  let s = String(text).split('\n')[0]!.trim();
  s = s.replace(URL_RE, '[internal address]');
  s = s.replace(WINDOWS_PATH_RE, '[path]');
  s = s.replace(POSIX_PATH_RE, (_m, lead: string) => `${lead}[path]`);
  s = s.replace(IPV4_RE, '[internal address]');
  s = s.replace(HOST_PORT_RE, (_m, lead: string) => `${lead}[internal address]`);
  s = s.replace(HOST_QUOTED_RE, 'its host');
  s = s.replace(HOST_NAMED_RE, 'its host');
  for (const h of hosts) {
    if (h.length < 2) continue;
    s = s.replace(new RegExp(`(^|[^\\w.-])${escapeRe(h)}(?![\\w-])`, 'g'), (_m, lead: string) => `${lead}its host`);
  }
  s = s.replace(BYTES_RE, '[size]');
  s = s.replace(FREE_RE, '[size] free');
  return s.length > MAX_TEXT ? `${s.slice(0, MAX_TEXT - 1)}…` : s;
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Host ids a description names (current, prefetched, replicas): scrubbed wherever they appear in its text. */
export function hostsOf(d: WorkspaceDescription): string[] {
  const hosts = new Set<string>();
  if (d.host) hosts.add(d.host);
  if (d.prefetched?.host) hosts.add(d.prefetched.host);
  for (const r of d.replicas ?? []) if (r.host) hosts.add(r.host);
  return [...hosts];
}

// ---------------------------------------------------------------------------------------------------------------
// First line: fixed sentences

/** Kinds of failure, recognised in a failure's text (most specific first); each has one fixed sentence. */
const FAILURE_KINDS: readonly [RegExp, string][] = [
  [/ENOSPC|no space left|disk is full|out of disk space|SQLITE_FULL|EDQUOT|disk_full/i, 'a host ran out of disk space'],
  [/restore time \S+ is in the future/, 'the restore time is in the future'],
  [/restore time \S+ is before workspace/, 'the restore time is before the source workspace was created'],
  [/restore time '.*' is not an ISO time/, 'the restore time is not an ISO time'],
  [/RestorePointUnavailable|earlier than anything the replica retains|reaches back to|no longer retain|retention/i, 'that point in time is no longer kept'],
  [/checksum|ChecksumMismatch|reads as sha256|does not verify|does not match/i, 'a stored copy did not match its checksum'],
  [/integrity|IntegrityError|VerifyFailed|not a (?:valid )?(?:workspace|database|SQLite)|malformed|corrupt/i, 'a copy failed its integrity check'],
  [/no replica or stored copy|NoStoredCopy|no source could restore|NoUsableSource|nothing is left to restore|stored object \S+ does not exist/i, 'no usable copy of the data was found'],
  [/did not take work|HostLost|host that is gone|host was lost|host is gone|had no host|not usable \(/i, 'its host was lost'],
  [/TemplateUnavailable|does not exist|is deleted|cannot be cloned|without (?:a cold|an archive) copy/i, 'the template or restore source is not available'],
  [
    /ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|unreachable|cannot reach|socket hang up|fetch failed|StoreUnavailable|NoSuchBucket|AccessDenied|credentials|timed? ?out|throttl|SlowDown|ServiceUnavailable/i,
    'storage or a host could not be reached',
  ],
];
const UNKNOWN_FAILURE = 'an internal error (the operator has the details)';

/** The fixed sentence for a failure's text. */
export function failureKind(text: string): string {
  for (const [re, kind] of FAILURE_KINDS) if (re.test(text)) return kind;
  return UNKNOWN_FAILURE;
}

/** Codes whose message the API writes about the caller's own request: shown (scrubbed) as they are. */
const OWN_REQUEST_CODES = new Set([
  'bad_request',
  'bad_json',
  'bad_workspace_id',
  'bad_volume',
  'bad_path',
  'bad_prefix',
  'bad_policy',
  'unauthorized',
  'no_route',
  'already_exists',
  'illegal_transition',
  'unsupported_media_type',
  'too_many_requests',
  'bad_cursor',
]);

/** Codes of errors from below, each answered with one fixed sentence. */
const TENANT_MESSAGES: Record<string, string> = {
  disk_full: "the workspace's host is out of disk space; nothing was changed",
  host_unavailable: "the workspace's host cannot be reached right now; retry shortly",
  unavailable: 'the service cannot serve this right now; retry shortly',
  fenced: 'the workspace is being checked or moved between hosts; retry shortly',
  not_here: 'the workspace is being checked or moved between hosts; retry shortly',
  not_active: 'the workspace is being checked or moved between hosts; retry shortly',
  too_large: 'the request body is too large',
  quota_exceeded: 'the workspace is over its quota of stored bytes; delete files or write less',
  busy: 'the host is busy with other uploads; retry shortly',
  moved: 'the workspace moved while the body was being sent; nothing was stored: send it again',
  internal: 'internal error (the operator has the details)',
  error: 'internal error (the operator has the details)',
};

/** Codes whose message is the failure of a move or a create: answered with the kind of failure. */
const FAILURE_CODES: Record<string, (kind: string) => string> = {
  move_failed: (k) => `the move failed: ${k} (see the workspace's history)`,
  workflow_failed: (k) => `the workspace's workflow failed: ${k}`,
  create_failed: (k) => `the workspace could not be created: ${k}`,
  refused: (k) => `the request was refused: ${k}`,
};

/** Messages from below that are about the caller's own request and hold nothing else: shown as they are. */
const SAFE_SHAPES: readonly RegExp[] = [
  /^workspace '[a-z0-9.-]+' (?:does not exist(?: \(or is deleted\))?|already exists|is still waking; retry shortly|is still moving to [a-z]+; it goes on \(see its state\))$/,
  /^template workspace '[a-z0-9.-]+' (?:does not exist|is deleted)$/,
  /^no file [a-z]+:\/[^\n]*$/,
  /^(?:unknown state|unknown signal) '[^']*'$/,
  /^cannot move from [a-z]+ to [a-z]+: [a-z ,]+$/,
];

/**
 * The error a tenant is shown for `err` (answered as `e` to an admin). Status, code and headers stay. What the
 * API itself says about the caller's request (a 4xx it raised) is shown as it is; anything from below gets a
 * fixed sentence for its code, the kind of failure for a failed move or create, or, for the caller's own
 * request relayed from below, its message if it has a known safe shape, else scrubbed.
 */
export function tenantError(err: unknown, e: ApiError): ApiError {
  const fromBelow = !(err instanceof ApiError) && (err instanceof WorkbooksError || e.statusCode >= 500);
  if (!fromBelow) return e;
  let message: string;
  if (e.code in FAILURE_CODES) message = FAILURE_CODES[e.code]!(failureKind(e.message));
  else if (e.code in TENANT_MESSAGES) message = TENANT_MESSAGES[e.code]!;
  else if (SAFE_SHAPES.some((re) => re.test(e.message))) message = e.message;
  else if (OWN_REQUEST_CODES.has(e.code) || e.code === 'not_found' || e.code === 'waking' || e.code === 'in_progress') message = scrub(e.message);
  else message = e.statusCode >= 500 ? TENANT_MESSAGES.internal! : 'the request could not be served';
  return message === e.message ? e : new ApiError(e.statusCode, e.code, message, e.headers);
}

/** What a caller is shown of an error; the operator's log gets the full message of every 5xx and every change. */
export function errorFor(caller: Caller | null | undefined, err: unknown, e: ApiError, request: { method: string; url: string }): ApiError {
  const shown = seesInternals(caller) ? e : tenantError(err, e);
  if (e.statusCode >= 500 || shown.message !== e.message) {
    writeLog(e.statusCode >= 500 ? 'ERROR' : 'WARN', 'api error', {
      status: e.statusCode,
      code: e.code,
      error: e.message,
      ...(shown.message !== e.message ? { shown: shown.message } : {}),
      method: request.method,
      url: request.url.split('?')[0],
      caller: caller ? (caller.admin ? 'admin' : caller.tenant) : null,
    });
  }
  return shown;
}

/** The text of an error raised below, as a caller may see it (e.g. a session's failed wake). */
export function errorTextFor(caller: Caller | null | undefined, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (seesInternals(caller)) return message;
  const e =
    err instanceof ApiError ? err : err instanceof WorkbooksError ? new ApiError(err.status >= 400 && err.status < 600 ? err.status : 500, err.code, message) : new ApiError(500, 'internal', message);
  return tenantError(err, e).message;
}

// ---------------------------------------------------------------------------------------------------------------
// The ledger and the views

/** A copy from another tenant's workspace started without its memory (volumesKeptOnCopy): the ledger says so. */
function strippedNote(raw: string): string {
  return /memory not carried/.test(raw) ? '; memory not carried: another tenant' : '';
}

/** What a done move did, in fixed words (the workflow's own detail names hosts, URLs and sizes). */
function doneDetail(e: LedgerEntry, d: WorkspaceDescription): string {
  const raw = e.detail ?? '';
  const lost = /did not take work|is not usable|was lost|had no host|treated as lost|host that is gone/i.test(raw);
  const recovered = lost ? 'its host was lost; ' : '';
  switch (`${e.from}->${e.to}`) {
    case 'created->active':
      if (/^cloned from /.test(raw) && d.template) {
        const version = /version sha256 ([0-9a-f]{64})/.exec(raw)?.[1];
        return `cloned from ${d.template}${version ? ` version sha256 ${version}` : ''}${strippedNote(raw)}`;
      }
      if (/^restored from /.test(raw) && d.restoredFrom) {
        return `restored from ${d.restoredFrom.workspaceId} ${d.restoredFrom.at ? `as of ${d.restoredFrom.at}` : 'at its newest data'}${strippedNote(raw)}`;
      }
      return 'created';
    case 'active->suspended':
      return lost ? 'stopped; its host was lost, the next wake restores the newest data' : 'stopped; its file is kept';
    case 'suspended->frozen':
      return `${recovered}stored in cold storage (verified); local copy released`;
    case 'frozen->archived':
    case 'active->archived':
      return `${recovered}archived (verified)`;
    case 'archived->deleted':
      return 'deleted with every copy';
    case 'frozen->frozen':
      // A template's publish (its version and who may clone it: the tenant's own words) or unpublish.
      if (/^published as a template/.test(raw)) return raw;
      if (/^unpublished/.test(raw)) return 'unpublished: an ordinary frozen workspace again';
      return `moved from ${e.from} to ${e.to}`;
    default:
      if (e.to === 'active') {
        if (/^replica caught up/.test(raw)) return 'the continuous backup caught up';
        if (/resumed from prefetched/.test(raw)) return 'resumed from a prefetched copy';
        if (/^resumed from local/.test(raw)) return 'resumed';
        if (/restored from replica/.test(raw)) return `${recovered}restored from the continuous backup`;
        if (/restored from (?:stored copy|cold copy|archive)/.test(raw)) return `${recovered}restored from a verified stored copy`;
        if (/newer local file/.test(raw)) return `${recovered}recovered from its newest local file`;
        if (raw) return `${recovered}restored`;
      }
      return `moved from ${e.from} to ${e.to}`;
  }
}

/** A ledger entry as a tenant sees it: the same entry with `detail` in fixed words and the actor's text scrubbed. */
export function tenantLedgerEntry(e: LedgerEntry, d: WorkspaceDescription, hosts: readonly string[] = hostsOf(d)): LedgerEntry {
  let detail: string | undefined;
  if (e.outcome === 'done') detail = doneDetail(e, d);
  else if (e.outcome === 'failed') detail = failureKind(e.detail ?? '');
  // The host's words name hosts, paths and store errors: a tenant reads fixed ones.
  else if (e.outcome === 'warning') detail = /is failing/.test(e.detail ?? '') ? 'the continuous backup is failing' : 'the continuous backup is behind';
  else detail = e.detail === undefined ? undefined : scrub(e.detail, hosts);
  return {
    from: e.from,
    to: e.to,
    at: e.at,
    reason: scrub(e.reason, hosts),
    by: scrub(e.by, hosts),
    outcome: e.outcome,
    ...(detail !== undefined ? { detail } : {}),
  };
}

/** The ledger a caller is shown. */
export function ledgerFor(caller: Caller | null | undefined, d: WorkspaceDescription): LedgerEntry[] {
  if (seesInternals(caller)) return d.ledger;
  const hosts = hostsOf(d);
  return d.ledger.map((e) => tenantLedgerEntry(e, d, hosts));
}

/**
 * The workspace view a caller is shown: a tenant's has no `host`, and of the replication health (when given) only
 * its state word (the last error names replica paths and URLs; lag and check time are the operator's business).
 */
export function workspaceViewFor(
  caller: Caller | null | undefined,
  d: WorkspaceDescription,
  show: (key: string) => string,
  replication?: ReplicationView,
): Omit<WorkspaceView, 'host'> & { host?: string | null } {
  const v = workspaceView(d, show);
  if (seesInternals(caller)) return replication ? { ...v, replication } : v;
  const { host: _host, ...rest } = v;
  return replication ? { ...rest, replication: { state: replication.state } } : rest;
}

/** A listed workspace as a caller is shown it: a tenant's has no `host`. */
export function listedViewFor(caller: Caller | null | undefined, w: ListedWorkspace, id: string): Omit<ReturnType<typeof listedView>, 'host'> & { host?: string | null } {
  const v = listedView(w, id);
  if (seesInternals(caller)) return v;
  const { host: _host, ...rest } = v;
  return rest;
}
