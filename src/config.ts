import fs from 'node:fs';
import os from 'node:os';
import type { LogLevel } from '@temporalio/worker';
import path from 'node:path';
import { DEFAULT_TASK_QUEUE, checkHostId } from './contract/ids';
import { S3SettingsError, parseS3Url, s3SettingsFromEnv } from './storage/s3-client';
import { TemporalAccess, TemporalSettingsError, loadTemporalAccess } from './temporal-connection';
import { DurationError, parseDuration } from './lifecycle/duration';

/** Bounds of an HTTP server (the API and every data server): slow or many clients cannot hold it forever. */
export interface HttpLimits {
  /** Time a client has to send a request's headers (WORKBOOKS_HEADERS_TIMEOUT_MS, default 10 s). */
  headersTimeoutMs: number;
  /** Time a client has to send a whole request, body included (WORKBOOKS_REQUEST_TIMEOUT_MS, default 300 s). */
  requestTimeoutMs: number;
  /** How long an idle keep-alive connection is kept (WORKBOOKS_KEEPALIVE_TIMEOUT_MS, default 5 s). */
  keepAliveTimeoutMs: number;
  /** Connections served at once; more are refused (closed) by the OS socket (WORKBOOKS_MAX_CONNECTIONS, default 1024). */
  maxConnections: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({ headersTimeoutMs: 10_000, requestTimeoutMs: 300_000, keepAliveTimeoutMs: 5_000, maxConnections: 1024 });

/** Per-tenant quotas of the API (0: no limit). Admin tokens are exempt from the count and rate quotas. */
export interface Quotas {
  /** Running workspaces a tenant may have (WORKBOOKS_QUOTA_WORKSPACES, default 1000). */
  workspaces: number;
  /** Bytes of files one workspace may hold, all volumes (WORKBOOKS_QUOTA_WORKSPACE_BYTES, default 4 GiB); enforced by the hosts. */
  workspaceBytes: number;
  /** Moves (create, restore, wake, suspend, freeze, archive, delete, session, storage report) per tenant per minute (WORKBOOKS_QUOTA_MOVES_PER_MINUTE, default 120). */
  movesPerMinute: number;
}

export const DEFAULT_QUOTAS: Readonly<Quotas> = Object.freeze({ workspaces: 1000, workspaceBytes: 4 * 1024 ** 3, movesPerMinute: 120 });

/** The shortest policy rung the API and the CLI accept (WORKBOOKS_POLICY_FLOOR, default 1m). */
export const DEFAULT_POLICY_FLOOR_MS = 60_000;

/** List paging of the API: the page size when none is asked for, and the largest one allowed. */
export const DEFAULT_LIST_PAGE = 100;
export const DEFAULT_LIST_PAGE_MAX = 1000;
/** Bytes of stored copies one login (`POST /v1/sessions`) may download to make its workspaces local: 1 GiB. */
export const DEFAULT_SESSION_PREFETCH_BYTES = 1024 * 1024 * 1024;

/** Generations of the embedded control plane's replica that `up` keeps (WORKBOOKS_CONTROL_PLANE_GENERATIONS, 1–20). */
export const DEFAULT_CONTROL_PLANE_GENERATIONS = 3;

/** Bytes of upload bodies a data server holds in memory at once (WORKBOOKS_UPLOAD_BUDGET_BYTES, default 512 MiB). */
export const DEFAULT_UPLOAD_BUDGET_BYTES = 512 * 1024 * 1024;

/**
 * How a host's workflow worker (the shared queue) runs workflow tasks: its cache of workflows kept in memory, the
 * sticky queue timeout, and its slots and polls. Defaults chosen by measurement (docs/BENCHMARKS.md, record
 * "worker-options").
 */
export interface WorkflowWorkerOptions {
  /** Workflows kept in the worker's cache (WORKBOOKS_WORKFLOW_CACHE); 0: none (every task replays the history). */
  cache: number;
  /**
   * How long a workflow task waits on this worker's sticky queue before the server hands it to any worker (with 2
   * more history events) (WORKBOOKS_STICKY_TIMEOUT_SECONDS).
   */
  stickyTimeoutSeconds: number;
  /** Workflow tasks run at once (WORKBOOKS_WORKFLOW_SLOTS); at most `cache` when the cache is on. */
  slots: number;
  /** Workflow task polls open at once (WORKBOOKS_WORKFLOW_POLLERS); 2 to `slots`. */
  pollers: number;
}

/**
 * Cache 500 (not the 2000 used before): evicted workflows cost a replay of their short history on their next task,
 * which for an idle workspace is hours away, while every cached one holds memory the worker never returns. At
 * 10,000 workspaces with 1,000 due in one second, 2000 measured the same as 500 (most of the burst's tasks outwaited
 * their sticky timeout and replayed either way) with 325 MiB more RSS (docs/BENCHMARKS.md, record "fleet-issue-14").
 * Sticky timeout: the SDK's 10 s. 30 s spared a burst's workflow tasks their sticky timeouts (2 more history events
 * each and a replay), but after a worker was killed, queries (describe) of its workflows failed with "no poller seen
 * for task queue recently" instead of reaching the other worker (test/integration/host-loss.test.ts fails with 30 s,
 * passes with 10 s). Slots and polls: the SDK's defaults (not measured otherwise).
 */
export const DEFAULT_WORKFLOW_WORKER: Readonly<WorkflowWorkerOptions> = Object.freeze({ cache: 500, stickyTimeoutSeconds: 10, slots: 40, pollers: 10 });

/** Everything the service reads from its environment, validated once. */
export interface Config {
  /** Root of this host's local state (live workspace files, embedded Temporal database). */
  dataDir: string;
  /**
   * host:port of a Temporal frontend (TEMPORAL_ADDRESS, or the address of the envconfig profile), or null to run
   * the embedded dev server.
   */
  temporalAddress: string | null;
  /** TEMPORAL_NAMESPACE, or the profile's namespace, or `default`. */
  namespace: string;
  /**
   * How to reach Temporal beyond the address: TLS, client certificate, API key, gRPC metadata, read the way
   * Temporal's tools read them (src/temporal-connection.ts). Its secrets never serialize.
   */
  temporal: TemporalAccess;
  taskQueue: string;
  /** Where frozen copies go: file:///abs/path or s3://bucket/prefix. */
  coldUrl: string;
  /** Where archived copies go. */
  archiveUrl: string;
  /**
   * S3 storage class of archived copies (WORKBOOKS_ARCHIVE_STORAGE_CLASS), or null for the bucket's default.
   * Only classes readable without a restore request; only with an s3:// archive.
   */
  archiveStorageClass: string | null;
  /**
   * Where Litestream replicates active workspaces (file:///abs/path or s3://bucket/prefix), one generation per
   * stretch of activity under `<replicaUrl>/<workspace>/`; null when replication is off (WORKBOOKS_REPLICA_URL=off).
   */
  replicaUrl: string | null;
  /** How far back point-in-time restore reaches within a generation (Litestream retention), e.g. 24h. */
  replicaRetention: string;
  /**
   * How many generations of the embedded control plane's replica `up` keeps under
   * `<replicaUrl>/_control-plane/_temporal/` (WORKBOOKS_CONTROL_PLANE_GENERATIONS, 1–20, default 3): older ones are
   * deleted once the current one is replicating (src/embedded/control-plane-replica.ts).
   */
  controlPlaneGenerations: number;

  /** This worker host's id; its file activities run on `<taskQueue>@<hostId>`. */
  hostId: string;
  /** Port of this host's data server (0 picks a free one). */
  hostPort: number;
  /** Address the data server binds to. */
  hostBind: string;
  /** URL other processes use to reach this host's data server (default http://<bind>:<port>). */
  advertiseUrl: string | null;
  /** Embedded dev server ports. */
  temporalPort: number;
  uiPort: number;
  /** Limits copy speed (bytes/second) for freeze/restore/clone; 0 = unlimited. */
  copyThrottleBps: number;
  /**
   * The host's lease (WORKBOOKS_HOST_LEASE_SECONDS, default 10): how long it keeps serving workspace data after its
   * last confirmed contact with the cluster. Workflows declare a host gone only after a longer liveness window.
   */
  hostLeaseSeconds: number;
  /** File activities a host runs at once (WORKBOOKS_HOST_SLOTS, default 100, the SDK's): long copies beyond it wait for a slot. */
  hostSlots: number;
  /** The workflow worker's cache, sticky timeout, slots and polls (WORKBOOKS_WORKFLOW_CACHE, …). */
  workflowWorker: WorkflowWorkerOptions;
  /** Whether hostPort was chosen explicitly (a busy default port falls back to a free one; an explicit one fails). */
  hostPortExplicit: boolean;

  /** Port of the public HTTP API (WORKBOOKS_HTTP_PORT, default 8787; null = off). */
  httpPort: number | null;
  /** Address the HTTP API binds to (WORKBOOKS_HTTP_BIND, default 127.0.0.1). */
  httpBind: string;
  /** Bearer tokens of the API, `token=tenant,token=*` (WORKBOOKS_TOKENS), or null. */
  apiTokens: string | null;
  /**
   * The data key (WORKBOOKS_DATA_KEY, or the contents of the file WORKBOOKS_DATA_KEY_FILE names): signs the grants
   * every data request carries (src/grants.ts). Null: `<data dir>/data-key` is used (made by `workbooks up`).
   */
  dataKey: string | null;
  /** A file of `token=tenant` lines (WORKBOOKS_TOKENS_FILE), or null. */
  apiTokensFile: string | null;
  /** How long a data request waits for a wake before answering 503 with Retry-After (WORKBOOKS_WAKE_WAIT_MS, default 10000). */
  wakeWaitMs: number;
  /** Failed authentications from one address within WORKBOOKS_AUTH_WINDOW_SECONDS before it gets 429 (WORKBOOKS_AUTH_FAILURES, default 10; 0 = off). */
  authFailures: number;
  /** The window of authFailures (WORKBOOKS_AUTH_WINDOW_SECONDS, default 60). */
  authWindowSeconds: number;

  /** Port of the Prometheus metrics endpoint (WORKBOOKS_METRICS_PORT, default 9464; null = off). */
  metricsPort: number | null;
  /** Whether metricsPort was chosen explicitly. */
  metricsPortExplicit: boolean;
  /** Address the metrics endpoint binds to (WORKBOOKS_METRICS_BIND, default 127.0.0.1). */
  metricsBind: string;

  /** Timeouts and connection cap of the API and of the data server. */
  httpLimits: HttpLimits;
  /** Per-tenant quotas (the API's, and the hosts' bytes per workspace). */
  quotas: Quotas;
  /** Shortest policy rung the API and the CLI accept, in ms (WORKBOOKS_POLICY_FLOOR). */
  policyFloorMs: number;
  /** List page size when none is asked for (WORKBOOKS_LIST_PAGE_DEFAULT, default 100) and the largest (WORKBOOKS_LIST_PAGE_MAX, default 1000). */
  listPageDefault: number;
  listPageMax: number;
  /** Bytes one login may prefetch (WORKBOOKS_SESSION_PREFETCH_BYTES, default 1 GiB; 0: a login prefetches nothing). */
  sessionPrefetchBytes: number;
  /** Bytes of upload bodies a data server holds at once (WORKBOOKS_UPLOAD_BUDGET_BYTES). */
  uploadBudgetBytes: number;
  /**
   * How long files set aside in `<data dir>/orphans/` are kept before the host removes them (WORKBOOKS_ORPHANS_GRACE,
   * default 7d), in ms; null (`never`) keeps them for good. See src/host/orphans-sweep.ts.
   */
  orphansGraceMs: number | null;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function intFrom(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0, max = 65535): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`${name} must be an integer between ${min} and ${max}, got '${raw}'`);
  return n;
}

/** Accepts file:// and s3:// URLs; a bare path becomes a file:// URL. s3://bucket/prefix/ loses its trailing slash. */
export function normalizeStoreUrl(raw: string, name: string): string {
  if (raw.startsWith('file://')) {
    const p = raw.slice('file://'.length);
    if (!path.isAbsolute(p)) throw new ConfigError(`${name} '${raw}' must be an absolute file:// URL (file:///abs/path)`);
    return `file://${path.resolve(p)}`;
  }
  if (raw.startsWith('s3://')) {
    let parsed: { bucket: string; prefix: string };
    try {
      parsed = parseS3Url(raw);
    } catch (err) {
      if (err instanceof S3SettingsError) throw new ConfigError(`${name}: ${err.message}`);
      throw err;
    }
    return parsed.prefix ? `s3://${parsed.bucket}/${parsed.prefix}` : `s3://${parsed.bucket}`;
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) throw new ConfigError(`${name} '${raw}' uses an unsupported scheme; use file:// or s3://`);
  return `file://${path.resolve(raw)}`;
}

/**
 * Storage classes an archive may use: those whose objects can be read at once. GLACIER (Flexible Retrieval)
 * and DEEP_ARCHIVE objects must be restored (hours) before a GET succeeds, so resuming an archived workspace
 * would fail; REDUCED_REDUNDANCY is deprecated; EXPRESS_ONEZONE needs directory buckets.
 */
export const ARCHIVE_STORAGE_CLASSES = ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR'] as const;

function archiveStorageClassFrom(raw: string | null | undefined, archiveUrl: string): string | null {
  if (raw === undefined || raw === null || raw === '') return null;
  const sc = raw.trim().toUpperCase();
  if (!(ARCHIVE_STORAGE_CLASSES as readonly string[]).includes(sc)) {
    const why =
      sc === 'GLACIER' || sc === 'DEEP_ARCHIVE'
        ? `objects in ${sc} must be restored (hours) before they can be read, so an archived workspace could not be resumed on demand`
        : `it is not a storage class whose objects can be read at once`;
    throw new ConfigError(`WORKBOOKS_ARCHIVE_STORAGE_CLASS '${raw}' is not allowed: ${why}; use one of ${ARCHIVE_STORAGE_CLASSES.join(', ')}`);
  }
  if (!archiveUrl.startsWith('s3://')) {
    throw new ConfigError(`WORKBOOKS_ARCHIVE_STORAGE_CLASS '${raw}' only applies to an s3:// archive, but WORKBOOKS_ARCHIVE_URL is ${archiveUrl}`);
  }
  return sc;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const dataDir = path.resolve(overrides.dataDir ?? env.WORKBOOKS_DATA_DIR ?? '.data');
  const temporal = overrides.temporal ?? temporalAccessFrom(env);
  const hostId = checkHostId(overrides.hostId ?? env.WORKBOOKS_HOST_ID ?? (os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63) || 'host'));
  const cfg: Config = {
    dataDir,
    temporalAddress: overrides.temporalAddress !== undefined ? overrides.temporalAddress : temporal.address,
    namespace: overrides.namespace ?? temporal.namespace ?? 'default',
    temporal,
    taskQueue: overrides.taskQueue ?? env.WORKBOOKS_TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
    coldUrl: normalizeStoreUrl(overrides.coldUrl ?? env.WORKBOOKS_COLD_URL ?? `file://${path.join(dataDir, 'cold')}`, 'WORKBOOKS_COLD_URL'),
    archiveUrl: normalizeStoreUrl(overrides.archiveUrl ?? env.WORKBOOKS_ARCHIVE_URL ?? `file://${path.join(dataDir, 'archive')}`, 'WORKBOOKS_ARCHIVE_URL'),
    archiveStorageClass: null,
    replicaUrl: replicaUrlFrom(overrides.replicaUrl !== undefined ? overrides.replicaUrl : env.WORKBOOKS_REPLICA_URL, dataDir),
    replicaRetention: durationFrom(overrides.replicaRetention ?? env.WORKBOOKS_REPLICA_RETENTION, 'WORKBOOKS_REPLICA_RETENTION', '24h'),
    controlPlaneGenerations: overrides.controlPlaneGenerations ?? intFrom(env, 'WORKBOOKS_CONTROL_PLANE_GENERATIONS', DEFAULT_CONTROL_PLANE_GENERATIONS, 1, 20),
    hostId,
    hostPort: overrides.hostPort ?? intFrom(env, 'WORKBOOKS_HOST_PORT', 8788),
    hostBind: overrides.hostBind ?? env.WORKBOOKS_HOST_BIND ?? '127.0.0.1',
    advertiseUrl: overrides.advertiseUrl ?? env.WORKBOOKS_ADVERTISE_URL ?? null,
    temporalPort: overrides.temporalPort ?? intFrom(env, 'WORKBOOKS_TEMPORAL_PORT', 7233, 1),
    uiPort: overrides.uiPort ?? intFrom(env, 'WORKBOOKS_UI_PORT', 8233, 1),
    copyThrottleBps: overrides.copyThrottleBps ?? intFrom(env, 'WORKBOOKS_COPY_THROTTLE_BPS', 0, 0, Number.MAX_SAFE_INTEGER),
    hostLeaseSeconds: overrides.hostLeaseSeconds ?? intFrom(env, 'WORKBOOKS_HOST_LEASE_SECONDS', 10, 1, 3600),
    hostSlots: overrides.hostSlots ?? intFrom(env, 'WORKBOOKS_HOST_SLOTS', 100, 1, 1000),
    workflowWorker: overrides.workflowWorker ?? workflowWorkerFrom(env),
    hostPortExplicit: overrides.hostPortExplicit ?? (overrides.hostPort !== undefined || !!env.WORKBOOKS_HOST_PORT),
    httpPort: overrides.httpPort !== undefined ? overrides.httpPort : portOrOff(env, 'WORKBOOKS_HTTP_PORT', 8787),
    httpBind: overrides.httpBind ?? env.WORKBOOKS_HTTP_BIND ?? '127.0.0.1',
    dataKey: overrides.dataKey !== undefined ? overrides.dataKey : dataKeyFrom(env),
    apiTokens: overrides.apiTokens !== undefined ? overrides.apiTokens : env.WORKBOOKS_TOKENS || null,
    apiTokensFile: overrides.apiTokensFile !== undefined ? overrides.apiTokensFile : env.WORKBOOKS_TOKENS_FILE ? path.resolve(env.WORKBOOKS_TOKENS_FILE) : null,
    wakeWaitMs: overrides.wakeWaitMs ?? intFrom(env, 'WORKBOOKS_WAKE_WAIT_MS', 10_000, 0, 600_000),
    authFailures: overrides.authFailures ?? intFrom(env, 'WORKBOOKS_AUTH_FAILURES', 10, 0, 1_000_000),
    authWindowSeconds: overrides.authWindowSeconds ?? intFrom(env, 'WORKBOOKS_AUTH_WINDOW_SECONDS', 60, 1, 86_400),
    metricsPort: overrides.metricsPort !== undefined ? overrides.metricsPort : portOrOff(env, 'WORKBOOKS_METRICS_PORT', 9464),
    metricsPortExplicit: overrides.metricsPortExplicit ?? (overrides.metricsPort !== undefined || !!env.WORKBOOKS_METRICS_PORT),
    metricsBind: overrides.metricsBind ?? env.WORKBOOKS_METRICS_BIND ?? '127.0.0.1',
    httpLimits: overrides.httpLimits ?? httpLimitsFrom(env),
    quotas: overrides.quotas ?? {
      workspaces: intFrom(env, 'WORKBOOKS_QUOTA_WORKSPACES', DEFAULT_QUOTAS.workspaces, 0, 1_000_000_000),
      workspaceBytes: intFrom(env, 'WORKBOOKS_QUOTA_WORKSPACE_BYTES', DEFAULT_QUOTAS.workspaceBytes, 0, Number.MAX_SAFE_INTEGER),
      movesPerMinute: intFrom(env, 'WORKBOOKS_QUOTA_MOVES_PER_MINUTE', DEFAULT_QUOTAS.movesPerMinute, 0, 1_000_000),
    },
    policyFloorMs: overrides.policyFloorMs ?? policyFloorFrom(env.WORKBOOKS_POLICY_FLOOR),
    listPageDefault: overrides.listPageDefault ?? intFrom(env, 'WORKBOOKS_LIST_PAGE_DEFAULT', DEFAULT_LIST_PAGE, 1, 1000),
    listPageMax: overrides.listPageMax ?? intFrom(env, 'WORKBOOKS_LIST_PAGE_MAX', DEFAULT_LIST_PAGE_MAX, 1, 1000),
    sessionPrefetchBytes: overrides.sessionPrefetchBytes ?? intFrom(env, 'WORKBOOKS_SESSION_PREFETCH_BYTES', DEFAULT_SESSION_PREFETCH_BYTES, 0, Number.MAX_SAFE_INTEGER),
    uploadBudgetBytes: overrides.uploadBudgetBytes ?? intFrom(env, 'WORKBOOKS_UPLOAD_BUDGET_BYTES', DEFAULT_UPLOAD_BUDGET_BYTES, 1024 * 1024, Number.MAX_SAFE_INTEGER),
    orphansGraceMs: overrides.orphansGraceMs !== undefined ? overrides.orphansGraceMs : orphansGraceFrom(env.WORKBOOKS_ORPHANS_GRACE),
  };
  if (cfg.listPageDefault > cfg.listPageMax) throw new ConfigError(`WORKBOOKS_LIST_PAGE_DEFAULT (${cfg.listPageDefault}) must not exceed WORKBOOKS_LIST_PAGE_MAX (${cfg.listPageMax})`);
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(cfg.taskQueue)) throw new ConfigError(`WORKBOOKS_TASK_QUEUE '${cfg.taskQueue}' is invalid`);
  cfg.archiveStorageClass = archiveStorageClassFrom(
    overrides.archiveStorageClass !== undefined ? overrides.archiveStorageClass : env.WORKBOOKS_ARCHIVE_STORAGE_CLASS,
    cfg.archiveUrl,
  );
  if (cfg.coldUrl.startsWith('s3://') || cfg.archiveUrl.startsWith('s3://') || cfg.replicaUrl?.startsWith('s3://')) {
    // Bad S3 settings are refused at start, not at the first freeze. (Credentials are the SDK's business and
    // are only tried on first use.)
    try {
      s3SettingsFromEnv(env);
    } catch (err) {
      if (err instanceof S3SettingsError) throw new ConfigError(err.message);
      throw err;
    }
  }
  return cfg;
}

function temporalAccessFrom(env: NodeJS.ProcessEnv): TemporalAccess {
  try {
    return loadTemporalAccess(env);
  } catch (err) {
    if (err instanceof TemporalSettingsError) throw new ConfigError(err.message);
    throw err;
  }
}

function httpLimitsFrom(env: NodeJS.ProcessEnv): HttpLimits {
  const d = DEFAULT_HTTP_LIMITS;
  const limits: HttpLimits = {
    headersTimeoutMs: intFrom(env, 'WORKBOOKS_HEADERS_TIMEOUT_MS', d.headersTimeoutMs, 100, 3_600_000),
    requestTimeoutMs: intFrom(env, 'WORKBOOKS_REQUEST_TIMEOUT_MS', d.requestTimeoutMs, 100, 86_400_000),
    keepAliveTimeoutMs: intFrom(env, 'WORKBOOKS_KEEPALIVE_TIMEOUT_MS', d.keepAliveTimeoutMs, 100, 3_600_000),
    maxConnections: intFrom(env, 'WORKBOOKS_MAX_CONNECTIONS', d.maxConnections, 1, 1_000_000),
  };
  if (limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new ConfigError(`WORKBOOKS_HEADERS_TIMEOUT_MS (${limits.headersTimeoutMs}) must not exceed WORKBOOKS_REQUEST_TIMEOUT_MS (${limits.requestTimeoutMs})`);
  }
  return limits;
}

function workflowWorkerFrom(env: NodeJS.ProcessEnv): WorkflowWorkerOptions {
  const d = DEFAULT_WORKFLOW_WORKER;
  const cache = intFrom(env, 'WORKBOOKS_WORKFLOW_CACHE', d.cache, 0, 1_000_000);
  if (cache === 1) throw new ConfigError(`WORKBOOKS_WORKFLOW_CACHE must be 0 (no cache) or at least 2, got '1'`);
  const stickyTimeoutSeconds = intFrom(env, 'WORKBOOKS_STICKY_TIMEOUT_SECONDS', d.stickyTimeoutSeconds, 1, 3600);
  const slotsSet = env.WORKBOOKS_WORKFLOW_SLOTS !== undefined && env.WORKBOOKS_WORKFLOW_SLOTS !== '';
  const slots = intFrom(env, 'WORKBOOKS_WORKFLOW_SLOTS', cache > 0 ? Math.min(d.slots, cache) : d.slots, 2, 10_000);
  if (cache > 0 && slots > cache) throw new ConfigError(`WORKBOOKS_WORKFLOW_SLOTS (${slots}) must not exceed WORKBOOKS_WORKFLOW_CACHE (${cache}): a task in a slot holds its workflow in the cache`);
  const pollers = intFrom(env, 'WORKBOOKS_WORKFLOW_POLLERS', Math.min(d.pollers, slots), 2, 10_000);
  if (pollers > slots) throw new ConfigError(`WORKBOOKS_WORKFLOW_POLLERS (${pollers}) must not exceed WORKBOOKS_WORKFLOW_SLOTS (${slots}${slotsSet ? '' : ', the default'})`);
  return { cache, stickyTimeoutSeconds, slots, pollers };
}

/** WORKBOOKS_POLICY_FLOOR: a duration (`1m`, `30s`), at least 1s. */
function policyFloorFrom(raw: string | undefined): number {
  if (raw === undefined || raw === '') return DEFAULT_POLICY_FLOOR_MS;
  let ms: number;
  try {
    ms = parseDuration(raw, 'WORKBOOKS_POLICY_FLOOR');
  } catch (err) {
    throw new ConfigError((err as DurationError).message);
  }
  if (ms < 1000) throw new ConfigError(`WORKBOOKS_POLICY_FLOOR '${raw}' must be at least 1s`);
  return ms;
}

/** The default of WORKBOOKS_ORPHANS_GRACE. */
export const DEFAULT_ORPHANS_GRACE = '7d';

/** WORKBOOKS_ORPHANS_GRACE: a duration (`7d`, `36h`), at least 1s, or `never` (null: set-aside files are kept). */
export function orphansGraceFrom(raw: string | undefined): number | null {
  const text = raw === undefined || raw.trim() === '' ? DEFAULT_ORPHANS_GRACE : raw.trim();
  if (/^never$/i.test(text)) return null;
  let ms: number;
  try {
    ms = parseDuration(text, 'WORKBOOKS_ORPHANS_GRACE');
  } catch (err) {
    throw new ConfigError(`${(err as DurationError).message}, or 'never'`);
  }
  if (ms < 1000) throw new ConfigError(`WORKBOOKS_ORPHANS_GRACE '${raw}' must be at least 1s, or 'never'`);
  return ms;
}

/** WORKBOOKS_DATA_KEY, or what the file WORKBOOKS_DATA_KEY_FILE names holds; null when neither is set. */
function dataKeyFrom(env: NodeJS.ProcessEnv): string | null {
  if (env.WORKBOOKS_DATA_KEY) return env.WORKBOOKS_DATA_KEY;
  if (!env.WORKBOOKS_DATA_KEY_FILE) return null;
  try {
    return fs.readFileSync(env.WORKBOOKS_DATA_KEY_FILE, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`WORKBOOKS_DATA_KEY_FILE ${env.WORKBOOKS_DATA_KEY_FILE}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** A port number, 0 for any free port, or `off` (null). */
function portOrOff(env: NodeJS.ProcessEnv, name: string, fallback: number): number | null {
  const raw = env[name];
  if (raw !== undefined && /^(off|none|false)$/i.test(raw.trim())) return null;
  return intFrom(env, name, fallback);
}

function replicaUrlFrom(raw: string | null | undefined, dataDir: string): string | null {
  if (raw === null || (typeof raw === 'string' && /^(off|none|false)$/i.test(raw))) return null;
  return normalizeStoreUrl(raw || `file://${path.join(dataDir, 'replicas')}`, 'WORKBOOKS_REPLICA_URL');
}

/** Litestream (Go) durations of whole hours, minutes and seconds, at least 1s: e.g. 30s, 10m, 24h, 1h30m. */
function durationFrom(raw: string | undefined, name: string, fallback: string): string {
  if (raw === undefined || raw === '') return fallback;
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(raw);
  const seconds = m ? Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0) : 0;
  if (!m || raw === '' || seconds < 1) throw new ConfigError(`${name} '${raw}' must be a duration of at least 1s, like 30s, 10m, 24h or 1h30m`);
  return raw;
}

export const LOG_LEVELS: readonly LogLevel[] = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR'];

/** WORKBOOKS_LOG_LEVEL (default WARN), validated. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const raw = (env.WORKBOOKS_LOG_LEVEL ?? 'WARN').trim().toUpperCase();
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
    throw new ConfigError(`WORKBOOKS_LOG_LEVEL '${env.WORKBOOKS_LOG_LEVEL}' must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return raw as LogLevel;
}
