/**
 * Input checks shared by the replicator and the replica tools, and the translation of our canonical replica URLs
 * (`file:///abs/dir`, `s3://bucket/prefix`) into the URLs Litestream 0.5.17 is given.
 *
 * S3 settings: Litestream takes a runtime-registered replica's endpoint, region and addressing from query
 * parameters of its URL (`s3://bucket/prefix?endpoint=…&region=…&forcePathStyle=true`; see s3/replica_client.go
 * NewReplicaClientFromURL). Callers never write those: they pass the canonical URL and the parameters are built
 * here from s3SettingsFromEnv(env), the same settings the S3 blob store uses. Credentials are not part of any URL:
 * the daemon and the CLI read AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (or the SDK's default chain) from the
 * environment they are started with.
 */
import path from 'node:path';
import { S3SettingsError, parseS3Url, s3SettingsFromEnv } from '../storage/s3-client';
import { ReplicationError } from './errors';
import { childEnv } from '../child-env';

export type ParsedReplica = { kind: 'file'; url: string; dir: string } | { kind: 's3'; url: string; bucket: string; prefix: string };

const SAFE_PATH = /^[A-Za-z0-9._\-/+@=,~]+$/;

/** An absolute, normalized path to a database file (what Litestream identifies a database by). */
export function checkDbPath(p: unknown, what = 'dbPath'): string {
  if (typeof p !== 'string' || p === '') throw new ReplicationError(`${what} must be a non-empty string`);
  if (p.includes('\0')) throw new ReplicationError(`${what} must not contain NUL characters`);
  if (!path.isAbsolute(p)) throw new ReplicationError(`${what} must be an absolute path, got '${p}'`);
  if (path.normalize(p) !== p || p.endsWith('/')) throw new ReplicationError(`${what} must be a normalized file path (no '.', '..', '//' or trailing '/'), got '${p}'`);
  return p;
}

/** Validates a replica URL and returns its canonical form: `file:///abs/dir` (no trailing slash) or `s3://bucket/prefix`. */
export function parseReplicaUrl(url: unknown, what = 'replicaUrl'): ParsedReplica {
  if (typeof url !== 'string' || url === '') throw new ReplicationError(`${what} must be a non-empty string`);
  if (url.startsWith('file:')) {
    if (!url.startsWith('file:///')) throw new ReplicationError(`${what} '${url}': a file replica URL is file:///absolute/directory (no host)`);
    let dir = url.slice('file://'.length);
    if (/[?#]/.test(dir)) throw new ReplicationError(`${what} '${url}': a file replica URL takes no query or fragment`);
    if (!SAFE_PATH.test(dir)) throw new ReplicationError(`${what} '${url}': the directory may use letters, digits and . _ - / + @ = , ~ only`);
    if (dir.length > 1) dir = dir.replace(/\/+$/, '');
    if (path.normalize(dir) !== dir) throw new ReplicationError(`${what} '${url}': the directory must be a normalized absolute path (no '.', '..' or '//')`);
    if (dir === '/' || dir.split('/').filter(Boolean).length < 2) {
      throw new ReplicationError(`${what} '${url}': refusing a replica directory this close to the filesystem root`);
    }
    return { kind: 'file', url: `file://${dir}`, dir };
  }
  if (url.startsWith('s3:')) {
    let parsed: { bucket: string; prefix: string };
    try {
      parsed = parseS3Url(url.replace(/\/+$/, ''));
    } catch (err) {
      if (err instanceof S3SettingsError) throw new ReplicationError(`${what}: ${err.message} (endpoint, region and path style come from the environment, not the URL)`);
      throw err;
    }
    if (parsed.prefix === '') throw new ReplicationError(`${what} '${url}': an s3 replica needs a prefix (s3://bucket/prefix), not the bucket root`);
    return { kind: 's3', url: `s3://${parsed.bucket}/${parsed.prefix}`, bucket: parsed.bucket, prefix: parsed.prefix };
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1];
  throw new ReplicationError(`${what} '${url}': unsupported scheme${scheme ? ` '${scheme}:'` : ''}; use file:///absolute/dir or s3://bucket/prefix`);
}

/** The URL handed to Litestream for a canonical replica URL: S3 settings from `env` become query parameters. */
export function litestreamUrl(replica: ParsedReplica, env: NodeJS.ProcessEnv): string {
  if (replica.kind === 'file') return replica.url;
  let settings;
  try {
    settings = s3SettingsFromEnv(env);
  } catch (err) {
    if (err instanceof S3SettingsError) throw new ReplicationError(err.message);
    throw err;
  }
  const q = new URLSearchParams();
  // Always a region: without one (and without an endpoint) Litestream looks the bucket's region up first.
  q.set('region', settings.region);
  if (settings.endpoint) q.set('endpoint', settings.endpoint);
  if (settings.endpoint || settings.forcePathStyle) q.set('forcePathStyle', String(settings.forcePathStyle));
  return `${replica.url}?${q.toString()}`;
}

/**
 * The environment for a Litestream process. Litestream 0.5.17 gives the AWS SDK its own http.Client, and the SDK
 * then refuses AWS_CA_BUNDLE ("unable to add custom RootCAs HTTPClient, has no WithTransportOptions") for every
 * S3 operation. Go reads extra roots from SSL_CERT_FILE, so the bundle is passed that way instead.
 */
export function litestreamEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  // Litestream reads S3 credentials and settings the AWS way, TLS roots and proxies: nothing else of ours.
  const out = childEnv(env, {
    prefixes: ['AWS_'],
    names: ['SSL_CERT_FILE', 'SSL_CERT_DIR', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'],
  });
  if (out.AWS_CA_BUNDLE) {
    if (!out.SSL_CERT_FILE) out.SSL_CERT_FILE = out.AWS_CA_BUNDLE;
    delete out.AWS_CA_BUNDLE;
  }
  return out;
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** An ISO 8601 time with a zone (`2026-01-02T03:04:05.678Z`, `…+02:00`) as epoch milliseconds. */
export function checkIsoTime(at: unknown, what = 'at'): number {
  if (typeof at !== 'string' || !ISO_TIME.test(at)) {
    throw new ReplicationError(`${what} must be an ISO 8601 time with a zone, like 2026-01-02T03:04:05.678Z; got ${JSON.stringify(at)}`);
  }
  const ms = Date.parse(at);
  if (!Number.isFinite(ms)) throw new ReplicationError(`${what} '${at}' is not a valid time`);
  return ms;
}

/** A Go duration as Litestream's config takes it (`90s`, `30m`, `24h`, `1h30m`), at least one second. */
export function checkDuration(d: unknown, what: string): string {
  if (typeof d !== 'string' || !/^(\d+(ms|s|m|h))+$/.test(d)) throw new ReplicationError(`${what} must be a duration like 90s, 30m, 24h or 1h30m; got ${JSON.stringify(d)}`);
  let ms = 0;
  for (const [, n, unit] of d.matchAll(/(\d+)(ms|s|m|h)/g)) ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  if (ms < 1000) throw new ReplicationError(`${what} must be at least 1s; got '${d}'`);
  return d;
}

/** Where Litestream keeps its local state for a database (its default meta path): `<dir>/.<name>-litestream`. */
export function localStateDir(dbPath: string): string {
  return path.join(path.dirname(dbPath), `.${path.basename(dbPath)}-litestream`);
}
