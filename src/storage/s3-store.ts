/**
 * A BlobStore on an S3 bucket (`s3://bucket/prefix`), on AWS or any S3-compatible server.
 *
 * Layout: the object `<prefix>/<key>` holds the bytes; the metadata travels with it as `x-amz-meta-*` headers
 * (sha256, bytes, at, workspace-id), fixed when the upload starts. S3 makes an object visible atomically when a
 * PutObject or CompleteMultipartUpload succeeds, bytes and metadata together, so unlike the file store there
 * is no moment in which new bytes sit next to old metadata: a reader sees the old object or the new one.
 *
 * put: the file is read through a hashing Transform into a lib-storage `Upload` (one PutObject for a file of up
 * to one part, a multipart upload otherwise). The transform checks sha256 and size in its flush, i.e. before
 * the stream ends, and lib-storage hands out the last part only after the stream ended; so a mismatch fails
 * the upload before CompleteMultipartUpload, the upload is aborted and nothing new appears under the key.
 *
 * get/rehash: HEAD for the size and ETag, then ranged GETs of one part each, `parallel` at a time, every one
 * conditional on that ETag (an overwrite in the middle of a download fails it instead of splicing two
 * versions). Parts are written at their offsets as they arrive and hashed in order from memory, so the file is
 * not read back. Memory: about 2 × parallel × partSize on the way down, queueSize × partSize on the way up.
 *
 * IAM: the store needs s3:GetObject, s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload and s3:ListBucket
 * (without ListBucket, S3 answers 403 instead of 404 for a missing key, which reads as "access denied").
 * Failed uploads are aborted, but a process killed mid-upload leaves its parts behind: give the bucket a
 * lifecycle rule with AbortIncompleteMultipartUpload (e.g. after 1 day).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Readable, Transform, TransformCallback, pipeline } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, S3Client, StorageClass } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  BlobStore,
  ChecksumMismatchError,
  ObjectHead,
  ObjectMissingError,
  PutMeta,
  SHA256_PATTERN,
  StoreError,
  StoreOpOptions,
  StoreUnavailableError,
  StoredCopyMeta,
  checkKey,
} from './blob-store';
import { HashResult, abortError, checkAborted, chunkSizeFor, throttle, writeAll } from './copy';
import { S3Settings, S3SettingsError, parseS3Url, s3Client, s3SettingsFromEnv } from './s3-client';

export interface S3StoreOptions {
  /** Storage class of new objects (e.g. STANDARD_IA); null/absent = the bucket's default (STANDARD). */
  storageClass?: string | null;
}

/** The bucket named by the store URL does not exist on the server. */
export class S3BucketMissingError extends StoreUnavailableError {
  override name = 'S3BucketMissingError';
  constructor(
    readonly bucket: string,
    where: string,
  ) {
    super(`S3 bucket '${bucket}' does not exist at ${where}; create it or fix the store URL`);
  }
}

/** The server refused the credentials or the request (403), or no credentials could be found. */
export class S3AccessError extends StoreUnavailableError {
  override name = 'S3AccessError';
  constructor(
    readonly bucket: string,
    where: string,
    readonly code: string,
    detail: string,
  ) {
    super(
      `S3 access to bucket '${bucket}' at ${where} was refused (${code}${detail ? `: ${detail}` : ''}); check the credentials ` +
        `(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the instance role) and that they may ` +
        `s3:GetObject, s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload and s3:ListBucket`,
    );
  }
}

/** Error codes that mean "these credentials may not do this" rather than a transient failure. */
const ACCESS_CODES = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'InvalidSecurity',
  'AccountProblem',
  'CredentialsProviderError',
]);

/** Socket-level failures (the SDK retried them already): the server is unreachable or dropped the connection. */
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND']);

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: unknown;
  $metadata?: { httpStatusCode?: number; attempts?: number };
}

function errorCode(err: unknown): { name: string; status: number | undefined; message: string; code: string; attempts: number | undefined } {
  const e = (err ?? {}) as SdkErrorShape;
  return { name: String(e.name ?? ''), status: e.$metadata?.httpStatusCode, message: String(e.message ?? ''), code: String(e.code ?? ''), attempts: e.$metadata?.attempts };
}

/** A missing object. HEAD responses have no body, so the SDK can only name them `NotFound` (or by status). */
function isNoSuchKey(err: unknown): boolean {
  const { name, status } = errorCode(err);
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

function isPreconditionFailed(err: unknown): boolean {
  const { name, status } = errorCode(err);
  return name === 'PreconditionFailed' || status === 412;
}

/** Keeps the parts of a multipart upload under the 10,000-part limit for very large files. */
function partSizeFor(total: number, configured: number): number {
  const MiB = 1024 * 1024;
  return Math.max(configured, Math.ceil(total / 9_000 / MiB) * MiB);
}

/**
 * Passes bytes through, hashing and counting them; at the end of the stream compares them with what the
 * caller declared and fails the stream on a mismatch. Also the place where a put is throttled and reports
 * progress, since it sees every byte read from the file.
 */
class VerifyingHasher extends Transform {
  private readonly hash = crypto.createHash('sha256');
  bytes = 0;
  /** Set in flush when the bytes matched. */
  result: HashResult | null = null;
  /** Set in flush when they did not. */
  mismatch: ChecksumMismatchError | null = null;

  constructor(
    private readonly expected: { sha256: string; bytes: number },
    private readonly describe: (actual: HashResult) => string,
    private readonly afterChunk: (bytesSoFar: number) => Promise<void>,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.push(chunk);
    this.afterChunk(this.bytes).then(() => cb(), cb);
  }

  override _flush(cb: TransformCallback): void {
    const actual = { sha256: this.hash.digest('hex'), bytes: this.bytes };
    if (actual.sha256 !== this.expected.sha256 || actual.bytes !== this.expected.bytes) {
      this.mismatch = new ChecksumMismatchError(this.describe(actual), this.expected, actual);
      cb(this.mismatch);
      return;
    }
    this.result = actual;
    cb();
  }
}

export class S3Store implements BlobStore {
  readonly baseUrl: string;
  readonly bucket: string;
  /** Key prefix inside the bucket, without leading or trailing slash ('' = bucket root). */
  readonly prefix: string;
  readonly storageClass: string | null;
  readonly settings: S3Settings;
  private readonly client: S3Client;

  /**
   * `url`: `s3://bucket` or `s3://bucket/prefix` (a trailing slash is dropped). `settings` default to the
   * process environment (see s3SettingsFromEnv). Throws StoreUnavailableError for a malformed URL or an
   * unknown storage class. Nothing is sent to the server until the first operation.
   */
  constructor(url: string, settings?: S3Settings, opts: S3StoreOptions = {}) {
    let parsed: { bucket: string; prefix: string };
    try {
      parsed = parseS3Url(url);
      this.settings = settings ?? s3SettingsFromEnv(process.env);
    } catch (err) {
      if (err instanceof S3SettingsError) throw new StoreUnavailableError(err.message);
      throw err;
    }
    this.bucket = parsed.bucket;
    this.prefix = parsed.prefix;
    this.baseUrl = parsed.prefix ? `s3://${parsed.bucket}/${parsed.prefix}` : `s3://${parsed.bucket}`;
    const sc = opts.storageClass ?? null;
    if (sc !== null && !(Object.values(StorageClass) as string[]).includes(sc)) {
      throw new StoreUnavailableError(`S3 storage class '${sc}' is unknown; use one of ${Object.values(StorageClass).join(', ')}`);
    }
    this.storageClass = sc;
    this.client = s3Client(this.settings);
  }

  /** Where the server is, for messages. Never includes credentials. */
  get where(): string {
    return this.settings.endpoint ?? `AWS region ${this.settings.region}`;
  }

  /** The object's key inside the bucket. */
  objectKey(key: string): string {
    const k = checkKey(key);
    return this.prefix ? `${this.prefix}/${k}` : k;
  }

  urlFor(key: string): string {
    return `${this.baseUrl}/${checkKey(key)}`;
  }

  keyFromUrl(url: string): string | null {
    const prefix = `${this.baseUrl}/`;
    if (typeof url !== 'string' || !url.startsWith(prefix)) return null;
    try {
      return checkKey(url.slice(prefix.length));
    } catch {
      return null;
    }
  }

  async put(localFile: string, key: string, meta: PutMeta, opts: StoreOpOptions = {}): Promise<StoredCopyMeta> {
    const objectKey = this.objectKey(key);
    if (!SHA256_PATTERN.test(meta.sha256)) throw new Error(`put ${key}: sha256 must be 64 lowercase hex digits`);
    if (!Number.isSafeInteger(meta.bytes) || meta.bytes < 0) throw new Error(`put ${key}: bytes must be a non-negative integer`);
    const { signal } = opts;
    checkAborted(signal);

    // Open first: a missing file fails here with ENOENT, before anything is sent.
    const fh = await fs.promises.open(localFile, 'r');
    let total: number;
    try {
      total = (await fh.stat()).size;
    } catch (err) {
      await fh.close();
      throw err;
    }
    const source = fh.createReadStream({ highWaterMark: chunkSizeFor(opts.throttleBps) }); // closes fh when done
    const startedAt = performance.now();
    const hasher = new VerifyingHasher(
      { sha256: meta.sha256, bytes: meta.bytes },
      (actual) =>
        `put ${key}: ${localFile} read as ${actual.bytes} bytes sha256 ${actual.sha256}, expected ${meta.bytes} bytes sha256 ${meta.sha256}`,
      async (done) => {
        opts.onProgress?.(done, total);
        await throttle(done, opts.throttleBps, startedAt, signal);
      },
    );
    // pipeline() tears both streams down when either fails; its own callback has nothing to add, because the
    // error reaches the upload through the hasher, which the upload reads.
    pipeline(source, hasher, () => undefined);

    const at = new Date().toISOString();
    const metadata: Record<string, string> = { sha256: meta.sha256, bytes: String(meta.bytes), at };
    if (meta.workspaceId) metadata['workspace-id'] = meta.workspaceId;

    // Cancellation fails the body stream rather than calling upload.abort(): abort() makes done() reject at
    // once while the upload winds down in the background, so the caller could see the rejection before the
    // multipart upload is aborted, or even while a CompleteMultipartUpload is in flight. A failed body makes
    // lib-storage wait for the parts in flight, abort the multipart upload, and only then reject.
    const onAbort = () => hasher.destroy(abortError(signal!) as Error);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort(); // aborted while the file was being opened
    try {
      const upload = new Upload({
        client: this.client,
        params: {
          Bucket: this.bucket,
          Key: objectKey,
          Body: hasher,
          Metadata: metadata,
          ContentType: 'application/octet-stream',
          ...(this.storageClass ? { StorageClass: this.storageClass as StorageClass } : {}),
        },
        partSize: partSizeFor(total, this.settings.partSize),
        queueSize: this.settings.parallel,
        leavePartsOnError: false,
      });
      await upload.done();
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      // lib-storage rethrows the body's error, unless aborting the multipart upload failed too; the mismatch
      // is what the caller must hear about either way.
      if (hasher.mismatch) throw hasher.mismatch;
      throw this.mapError(err, key);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      hasher.destroy();
    }
    if (!hasher.result) throw new StoreError(`put ${key}: the upload completed before the file was fully read`);
    return { url: this.urlFor(key), sha256: hasher.result.sha256, bytes: hasher.result.bytes, at };
  }

  async head(key: string): Promise<ObjectHead | null> {
    const objectKey = this.objectKey(key);
    let r;
    try {
      r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
    } catch (err) {
      if (isNoSuchKey(err)) {
        await this.checkBucketExists();
        return null;
      }
      throw this.mapError(err, key);
    }
    // The SDK lower-cases metadata names.
    const m = r.Metadata ?? {};
    const sha256 = m.sha256;
    const bytes = /^\d{1,16}$/.test(m.bytes ?? '') ? Number(m.bytes) : NaN;
    const at = m.at;
    // No or malformed metadata: not an object this store wrote completely (same rule as the file store).
    if (typeof sha256 !== 'string' || !SHA256_PATTERN.test(sha256) || !Number.isSafeInteger(bytes)) return null;
    if (typeof at !== 'string' || Number.isNaN(Date.parse(at))) return null;
    if (r.ContentLength !== bytes) return null;
    const workspaceId = m['workspace-id'];
    return { sha256, bytes, at, workspaceId: typeof workspaceId === 'string' && workspaceId !== '' ? workspaceId : null };
  }

  async get(key: string, localFile: string, opts: StoreOpOptions = {}): Promise<HashResult> {
    checkAborted(opts.signal);
    const object = await this.statObject(key);
    const fh = await fs.promises.open(localFile, 'w');
    let ok = false;
    try {
      const got = await this.download(key, object, opts, (buf, pos) => writeAll(fh, buf, buf.length, pos));
      await fh.datasync();
      ok = true;
      return got;
    } finally {
      await fh.close().catch(() => undefined);
      // Like the file store: a failed get leaves no partial file behind.
      if (!ok) await fs.promises.rm(localFile, { force: true }).catch(() => undefined);
    }
  }

  async rehash(key: string, opts: { signal?: AbortSignal; onProgress?(bytesDone: number, total: number): void } = {}): Promise<HashResult> {
    checkAborted(opts.signal);
    const object = await this.statObject(key);
    return this.download(key, object, opts, null);
  }

  async delete(key: string): Promise<void> {
    try {
      // S3 answers 204 for a missing key too; only a missing bucket or refused access fail.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
    } catch (err) {
      if (isNoSuchKey(err)) return;
      throw this.mapError(err, key);
    }
  }

  // -------------------------------------------------------------------------------------------------------------

  /** Size and ETag of the object; ObjectMissingError when there is none. */
  private async statObject(key: string): Promise<{ size: number; etag: string | undefined }> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }));
      return { size: r.ContentLength ?? 0, etag: r.ETag };
    } catch (err) {
      if (isNoSuchKey(err)) {
        await this.checkBucketExists();
        throw new ObjectMissingError(this.urlFor(key));
      }
      throw this.mapError(err, key);
    }
  }

  /**
   * A HEAD of a missing key and a HEAD in a missing bucket both come back as a bare 404; a HEAD of the
   * bucket tells them apart, so a missing bucket is reported as such and not as a missing object.
   */
  private async checkBucketExists(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const { name, status } = errorCode(err);
      if (status === 404 || name === 'NotFound' || name === 'NoSuchBucket') throw new S3BucketMissingError(this.bucket, this.where);
      // 403: these credentials may read objects but not list the bucket. The object HEAD already worked, so
      // the bucket exists.
      if (status === 403) return;
      throw this.mapError(err);
    }
  }

  /**
   * Turns the SDK's errors into the store's: a missing bucket or refused access (not retryable), a missing key,
   * and a failing or unreachable server (retryable, said readably); anything else passes unchanged.
   */
  private mapError(err: unknown, key?: string): unknown {
    if (err instanceof StoreError) return err;
    const { name, status, message, code: netCode, attempts } = errorCode(err);
    const where = key !== undefined ? this.urlFor(key) : `s3://${this.bucket}`;
    const tries = attempts ? ` (${attempts} attempt${attempts === 1 ? '' : 's'})` : '';
    if (name === 'NoSuchBucket') return new S3BucketMissingError(this.bucket, this.where);
    if (ACCESS_CODES.has(name) || status === 403) {
      // HEAD errors have no body: the SDK calls them 'Unknown'/'UnknownError'; say what we know instead.
      const code = name && name !== 'Unknown' ? name : `HTTP ${status ?? '?'}`;
      return new S3AccessError(this.bucket, this.where, code, message === 'UnknownError' ? '' : message);
    }
    if (key !== undefined && name === 'NoSuchKey') return new ObjectMissingError(this.urlFor(key));
    if (status !== undefined && status >= 500) {
      // Still failing after the SDK's own retries; still worth retrying later (not a StoreUnavailableError). HEAD
      // errors have no body, so the SDK can only call them 'Unknown'/'UnknownError': say what we know instead.
      const what = name && name !== 'Unknown' ? `${name}${message && message !== 'UnknownError' ? `: ${message}` : ''}` : `HTTP ${status}`;
      return new StoreError(`S3 at ${this.where} answered ${what} for ${where}${tries}; the server is failing, retry later`);
    }
    if (status === undefined && name !== 'AbortError' && (name === 'TimeoutError' || NETWORK_CODES.has(netCode))) {
      return new StoreError(`S3 at ${this.where} could not be reached for ${where}: ${message || netCode}${tries}; retry later`);
    }
    return err;
  }

  /**
   * Reads the object in ranged parts, `parallel` at a time, each conditional on `etag`. Every chunk is handed
   * to `sink` (if any) at its offset as it arrives; the hash is computed in object order: chunks of the
   * earliest unfinished part are hashed on arrival, later parts' chunks wait in memory until their turn. A
   * part may only start while it is within 2 × parallel parts of the hashing position, which bounds memory.
   */
  private async download(
    key: string,
    object: { size: number; etag: string | undefined },
    opts: StoreOpOptions,
    sink: ((buf: Buffer, position: number) => Promise<void>) | null,
  ): Promise<HashResult> {
    const { size, etag } = object;
    const hash = crypto.createHash('sha256');
    if (size === 0) return { sha256: hash.digest('hex'), bytes: 0 }; // a range GET of an empty object is a 416
    const partSize = this.settings.partSize;
    const parts = Math.ceil(size / partSize);
    const windowParts = Math.max(2, this.settings.parallel * 2);
    const url = this.urlFor(key);
    const objectKey = this.objectKey(key);

    // Hash-ordering state: pending[i] holds the chunks of part i that arrived before it became the head.
    const pending: Buffer[][] = Array.from({ length: parts }, () => []);
    const finished: boolean[] = new Array<boolean>(parts).fill(false);
    let head = 0;
    let received = 0;
    let nextPart = 0;
    let waiters: (() => void)[] = [];
    function wakeWaiters(): void {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    }
    function drain(): void {
      while (head < parts) {
        for (const c of pending[head]!) hash.update(c);
        pending[head] = [];
        if (!finished[head]) return;
        head++;
        wakeWaiters();
      }
    }

    // One controller for every request: the caller's abort or the first failed part cancels the others.
    const ac = new AbortController();
    let failure: unknown = null;
    const fail = (err: unknown) => {
      failure ??= err;
      if (!ac.signal.aborted) ac.abort(err);
      wakeWaiters();
    };
    const onCallerAbort = () => fail(abortError(opts.signal!));
    opts.signal?.addEventListener('abort', onCallerAbort, { once: true });
    if (opts.signal?.aborted) onCallerAbort();

    const startedAt = performance.now();
    const fetchPart = async (i: number): Promise<void> => {
      const start = i * partSize;
      const end = Math.min(size, start + partSize) - 1;
      let res;
      try {
        res = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, Range: `bytes=${start}-${end}`, ...(etag ? { IfMatch: etag } : {}) }),
          { abortSignal: ac.signal },
        );
      } catch (err) {
        if (isPreconditionFailed(err)) throw new StoreError(`${url} was replaced while it was being read; read it again`);
        if (isNoSuchKey(err)) throw new ObjectMissingError(url);
        throw this.mapError(err, key);
      }
      const body = res.Body as Readable | undefined;
      if (!body) throw new StoreError(`${url}: the server sent no body for bytes ${start}-${end}`);
      let pos = start;
      try {
        for await (const chunk of body) {
          const buf = chunk as Buffer;
          if (pos + buf.length > end + 1) throw new StoreError(`${url}: the server sent more than bytes ${start}-${end}`);
          if (sink) await sink(buf, pos);
          pos += buf.length;
          pending[i]!.push(buf);
          if (i === head) drain();
          received += buf.length;
          opts.onProgress?.(received, size);
          if (ac.signal.aborted) throw abortError(ac.signal);
          await throttle(received, opts.throttleBps, startedAt, ac.signal);
        }
      } catch (err) {
        // A connection cut in the middle of the body surfaces as a bare 'aborted' / 'socket hang up': say where.
        if (err instanceof StoreError || ac.signal.aborted) throw err;
        throw new StoreError(`${url}: the connection broke after ${pos - start} of bytes ${start}-${end} (${(err as Error).message}); read it again`);
      } finally {
        body.destroy();
      }
      if (pos !== end + 1) throw new StoreError(`${url}: the server sent ${pos - start} of bytes ${start}-${end}`);
      finished[i] = true;
      if (i === head) drain();
    };

    const worker = async (): Promise<void> => {
      while (!ac.signal.aborted && nextPart < parts) {
        if (nextPart >= head + windowParts) {
          await new Promise<void>((resolve) => waiters.push(resolve));
          continue;
        }
        const i = nextPart++;
        try {
          await fetchPart(i);
        } catch (err) {
          fail(err);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.settings.parallel, parts) }, worker));
    } finally {
      opts.signal?.removeEventListener('abort', onCallerAbort);
    }
    if (opts.signal?.aborted) throw abortError(opts.signal);
    if (failure !== null) throw failure;
    if (head !== parts || received !== size) throw new StoreError(`${url}: read ${received} of ${size} bytes`);
    return { sha256: hash.digest('hex'), bytes: size };
  }
}
