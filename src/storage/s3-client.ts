/**
 * S3 connection settings and client construction, shared by the S3 blob store and the replica tools.
 *
 * Credentials never pass through here: the AWS SDK's default provider chain reads them from the environment
 * (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, instance roles). Only the
 * non-secret settings below are read and validated here, so they may appear in logs and errors.
 */
import crypto from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';

// We pin the SDK version; its notice about future releases needing Node 22 is noise for our users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface S3Settings {
  /** Custom endpoint of an S3-compatible server (http(s)://host:port), or null for AWS. */
  endpoint: string | null;
  region: string;
  /** Path-style addressing (bucket in the path): needed by most S3-compatible servers; default on with an endpoint. */
  forcePathStyle: boolean;
  /** Multipart part size in bytes (≥ 5 MiB). */
  partSize: number;
  /** Parts moved in parallel, up and down. */
  parallel: number;
  /**
   * Static credentials when the given environment names them (AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY);
   * otherwise null and the SDK's default provider chain finds them. Not enumerable: never logged or serialized.
   */
  readonly credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string } | null;
}

export class S3SettingsError extends Error {
  override name = 'S3SettingsError';
}

export const MIN_PART_SIZE = 5 * 1024 * 1024;
/**
 * Chosen on MinIO on loopback (bench/s3-throughput.ts, 100 MiB and 1 GiB, docs/BENCHMARKS.md): 32 MiB parts, 4 at a
 * time, put 1 GiB about as fast as one plain PutObject where 8 MiB parts took 1.6× as long (more parts, more
 * per-part fsyncs and requests on the server); 8 in parallel was no faster at 100 MiB on 2 cores. Memory per transfer:
 * about parallel × part size (128 MiB), up to twice that on a download whose first part is slow.
 */
export const DEFAULT_PART_SIZE = 32 * 1024 * 1024;
export const DEFAULT_PARALLEL = 4;

function bool(raw: string | undefined, name: string, fallback: boolean): boolean {
  if (raw === undefined || raw === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new S3SettingsError(`${name} must be true or false, got '${raw}'`);
}

function int(raw: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new S3SettingsError(`${name} must be an integer between ${min} and ${max}, got '${raw}'`);
  return n;
}

/**
 * Settings from the environment:
 * - WORKBOOKS_S3_ENDPOINT, else AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL: custom endpoint (none = AWS);
 * - AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1;
 * - WORKBOOKS_S3_FORCE_PATH_STYLE (default: true when an endpoint is set);
 * - WORKBOOKS_S3_PART_SIZE (bytes, default 32 MiB, at least 5 MiB), WORKBOOKS_S3_PARALLEL (default 4).
 */
export function s3SettingsFromEnv(env: NodeJS.ProcessEnv = process.env): S3Settings {
  const endpoint = env.WORKBOOKS_S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || null;
  if (endpoint !== null) {
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw new S3SettingsError(`S3 endpoint '${endpoint}' is not a URL (expected http(s)://host:port)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new S3SettingsError(`S3 endpoint '${endpoint}' must be http:// or https://`);
    if (u.username || u.password) throw new S3SettingsError('S3 endpoint must not carry credentials; use AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY');
  }
  const settings = {
    endpoint,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    forcePathStyle: bool(env.WORKBOOKS_S3_FORCE_PATH_STYLE, 'WORKBOOKS_S3_FORCE_PATH_STYLE', endpoint !== null),
    partSize: int(env.WORKBOOKS_S3_PART_SIZE, 'WORKBOOKS_S3_PART_SIZE', DEFAULT_PART_SIZE, MIN_PART_SIZE, 5 * 1024 * 1024 * 1024),
    parallel: int(env.WORKBOOKS_S3_PARALLEL, 'WORKBOOKS_S3_PARALLEL', DEFAULT_PARALLEL, 1, 64),
  } as S3Settings;
  const credentials =
    env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
      ? { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) }
      : null;
  Object.defineProperty(settings, 'credentials', { value: credentials, enumerable: false });
  return settings;
}

const clients = new Map<string, S3Client>();

/**
 * One S3Client per distinct setting set, reused (connection pooling). Checksums are only computed when an
 * operation requires them: S3-compatible servers often reject or mangle the SDK's default CRC32 trailers, and
 * we verify whole-file sha256 ourselves.
 */
export function s3Client(settings: S3Settings): S3Client {
  // The credentials count whole (a rotated secret for the same key id is another client), as a digest.
  const c0 = settings.credentials;
  const creds = c0 ? crypto.createHash('sha256').update(`${c0.accessKeyId}\0${c0.secretAccessKey}\0${c0.sessionToken ?? ''}`).digest('hex') : '';
  const k = `${settings.endpoint ?? ''}|${settings.region}|${settings.forcePathStyle}|${settings.parallel}|${creds}`;
  let c = clients.get(k);
  if (!c) {
    c = new S3Client({
      region: settings.region,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      forcePathStyle: settings.forcePathStyle,
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 5,
    });
    clients.set(k, c);
  }
  return c;
}

/** `s3://bucket/prefix/…` split into bucket and prefix (no leading or trailing slash; '' for the bucket root). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/?#]+)(\/[^?#]*)?$/.exec(url);
  if (!m) throw new S3SettingsError(`'${url}' is not an s3://bucket/prefix URL`);
  const bucket = m[1]!;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw new S3SettingsError(`'${url}': bucket name '${bucket}' is invalid (3-63 lowercase letters, digits, '.', '-')`);
  }
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((seg) => seg === '' || seg === '.' || seg === '..') && prefix !== '') {
    throw new S3SettingsError(`'${url}': prefix '${prefix}' has empty, '.' or '..' segments`);
  }
  if (!/^[A-Za-z0-9._\-/]*$/.test(prefix)) throw new S3SettingsError(`'${url}': prefix may use letters, digits, '.', '-', '_' and '/'`);
  return { bucket, prefix };
}
