import os from 'node:os';
import path from 'node:path';
import { DEFAULT_TASK_QUEUE, checkHostId } from './contract/ids';

/** Everything the service reads from its environment, validated once. */
export interface Config {
  /** Root of this host's local state (live workspace files, embedded Temporal database). */
  dataDir: string;
  /** host:port of a Temporal frontend, or null to run the embedded dev server. */
  temporalAddress: string | null;
  namespace: string;
  taskQueue: string;
  /** Where frozen copies go: file:///abs/path or (later) s3://bucket/prefix. */
  coldUrl: string;
  /** Where archived copies go. */
  archiveUrl: string;
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

/** Accepts file:// and s3:// URLs; a bare path becomes a file:// URL. */
export function normalizeStoreUrl(raw: string, name: string): string {
  if (raw.startsWith('file://')) {
    const p = raw.slice('file://'.length);
    if (!path.isAbsolute(p)) throw new ConfigError(`${name} '${raw}' must be an absolute file:// URL (file:///abs/path)`);
    return `file://${path.resolve(p)}`;
  }
  if (raw.startsWith('s3://')) {
    // Refused at start rather than at the first freeze: this build has no S3 store yet.
    throw new ConfigError(`${name} '${raw}': s3:// storage is not available in this build yet; use a file:// URL`);
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(raw)) throw new ConfigError(`${name} '${raw}' uses an unsupported scheme; use file:// or s3://`);
  return `file://${path.resolve(raw)}`;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env, overrides: Partial<Config> = {}): Config {
  const dataDir = path.resolve(overrides.dataDir ?? env.WORKBOOKS_DATA_DIR ?? '.data');
  const hostId = checkHostId(overrides.hostId ?? env.WORKBOOKS_HOST_ID ?? (os.hostname().replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 63) || 'host'));
  const cfg: Config = {
    dataDir,
    temporalAddress: overrides.temporalAddress !== undefined ? overrides.temporalAddress : env.TEMPORAL_ADDRESS || null,
    namespace: overrides.namespace ?? env.TEMPORAL_NAMESPACE ?? 'default',
    taskQueue: overrides.taskQueue ?? env.WORKBOOKS_TASK_QUEUE ?? DEFAULT_TASK_QUEUE,
    coldUrl: normalizeStoreUrl(overrides.coldUrl ?? env.WORKBOOKS_COLD_URL ?? `file://${path.join(dataDir, 'cold')}`, 'WORKBOOKS_COLD_URL'),
    archiveUrl: normalizeStoreUrl(overrides.archiveUrl ?? env.WORKBOOKS_ARCHIVE_URL ?? `file://${path.join(dataDir, 'archive')}`, 'WORKBOOKS_ARCHIVE_URL'),
    hostId,
    hostPort: overrides.hostPort ?? intFrom(env, 'WORKBOOKS_HOST_PORT', 8788),
    hostBind: overrides.hostBind ?? env.WORKBOOKS_HOST_BIND ?? '127.0.0.1',
    advertiseUrl: overrides.advertiseUrl ?? env.WORKBOOKS_ADVERTISE_URL ?? null,
    temporalPort: overrides.temporalPort ?? intFrom(env, 'WORKBOOKS_TEMPORAL_PORT', 7233, 1),
    uiPort: overrides.uiPort ?? intFrom(env, 'WORKBOOKS_UI_PORT', 8233, 1),
    copyThrottleBps: overrides.copyThrottleBps ?? intFrom(env, 'WORKBOOKS_COPY_THROTTLE_BPS', 0, 0, Number.MAX_SAFE_INTEGER),
  };
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(cfg.taskQueue)) throw new ConfigError(`WORKBOOKS_TASK_QUEUE '${cfg.taskQueue}' is invalid`);
  return cfg;
}

/** Local layout of a host's data dir. */
export function liveDir(cfg: Pick<Config, 'dataDir'>): string {
  return path.join(cfg.dataDir, 'live');
}
export function liveFile(cfg: Pick<Config, 'dataDir'>, workspaceId: string): string {
  return path.join(liveDir(cfg), `${workspaceId}.sqlite`);
}
