/**
 * A BlobStore on an S3 bucket (`s3://bucket/prefix`), on AWS or any S3-compatible server.
 *
 * Layout: the object `<prefix>/<key>` holds the bytes; the metadata travels with it as `x-amz-meta-*` headers
 * (sha256, bytes, at, workspace-id), fixed when the upload starts. S3 makes an object visible atomically when a
 * PutObject or CompleteMultipartUpload succeeds, bytes and metadata together, so unlike the file store there
 * is no moment in which new bytes sit next to old metadata: a reader sees the old object or the new one.
 *
 * put: a file of at most one part is read into memory, hashed, and sent as one PutObject only if its sha256 and
 * size match what the caller declared. A larger file is a multipart upload: `parallel` workers each read one part
 * straight from the file at its offset (positional reads, no stream in between) and send it as one UploadPart
 * (unsigned payload: the store hashes every byte itself); the parts are hashed in file order as they are read.
 * CompleteMultipartUpload is sent only after every part is stored and the whole file's sha256 and size match;
 * on a mismatch, a failed part or cancellation the upload is aborted after the requests in flight ended, so
 * nothing new appears under the key. A file whose size differs from the declared one is refused before
 * anything is sent. Throttling counts the bytes read; progress reports the bytes hashed (in order).
 *
 * get/rehash: HEAD for the size and ETag, then ranged GETs of one part each, `parallel` at a time, every one
 * conditional on that ETag (an overwrite in the middle of a download fails it instead of splicing two
 * versions). Parts are written at their offsets as they arrive (one positional writev per 2 MiB, a background
 * fdatasync every 32 MiB so the final one has little left) and hashed in order from memory, so the file is not
 * read back; rehash does the same reads and writes nothing. Cancellation and the first failure abort every
 * request in flight; a failed get removes its partial file. Memory: about parallel × partSize each way, up to
 * 2 × parallel × partSize on the way down when the first part in hashing order is slow.
 *
 * discardUnfinished (a workspace's delete): lists the bucket's multipart uploads under the workspace's key prefix
 * and aborts those whose key is exactly one of its copies' keys. A server that matches a listing's prefix only as a
 * whole key (MinIO answers a prefix that is not one with nothing) is asked again without a prefix, and the keys are
 * filtered here the same way.
 *
 * IAM: the store needs s3:GetObject, s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload, s3:ListBucket
 * (without ListBucket, S3 answers 403 instead of 404 for a missing key, which reads as "access denied") and
 * s3:ListBucketMultipartUploads (a workspace's delete). Failed uploads are aborted, and a deleted workspace's
 * unfinished ones too, but a process killed mid-upload leaves its parts behind until then: give the bucket a
 * lifecycle rule with AbortIncompleteMultipartUpload (e.g. after 1 day).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  S3Client,
  StorageClass,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import {
  BlobStore,
  ChecksumMismatchError,
  ObjectHead,
  ObjectMissingError,
  PutMeta,
  SHA256_PATTERN,
  StoreError,
  StoreListing,
  StoreOpOptions,
  StoreUnavailableError,
  StoredCopyMeta,
  checkKey,
  checkListPrefix,
  isCopyKeyOf,
  keyPrefixOf,
} from './blob-store';
import { HashResult, abortError, checkAborted, chunkSizeFor, hashFile, throttle } from './copy';
import { S3Settings, S3SettingsError, parseS3Url, s3Client, s3SettingsFromEnv } from './s3-client';
import { s3ListPages } from './s3-list';

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
        `s3:GetObject, s3:PutObject, s3:DeleteObject, s3:AbortMultipartUpload, s3:ListBucket and s3:ListBucketMultipartUploads`,
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

/** What every new object is created with: where it goes and the metadata that travels with it. */
interface ObjectParams {
  Bucket: string;
  Key: string;
  Metadata: Record<string, string>;
  ContentType: string;
  StorageClass?: StorageClass;
}

/**
 * Makes a request go with `x-amz-content-sha256: UNSIGNED-PAYLOAD`: SigV4 then signs the headers but does not
 * hash the body (the signer takes a header that is already set).
 */
function unsignedPayload<C extends { middlewareStack: { add(mw: unknown, opts: { step: 'build'; name: string }): void } }>(cmd: C): C {
  cmd.middlewareStack.add(
    (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => {
      const req = args.request as { headers?: Record<string, string> };
      if (req.headers) req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
      return next(args);
    },
    { step: 'build', name: 'workbooksUnsignedPayload' },
  );
  return cmd;
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
    checkAborted(opts.signal);
    const expected = { sha256: meta.sha256, bytes: meta.bytes };
    const mismatch = (actual: HashResult) =>
      new ChecksumMismatchError(
        `put ${key}: ${localFile} read as ${actual.bytes} bytes sha256 ${actual.sha256}, expected ${meta.bytes} bytes sha256 ${meta.sha256}`,
        expected,
        actual,
      );

    // Open first: a missing file fails here with ENOENT, before anything is sent.
    const fh = await fs.promises.open(localFile, 'r');
    try {
      const total = (await fh.stat()).size;
      checkAborted(opts.signal); // aborted while the file was being opened
      // A file of another size cannot match: nothing is sent; it is hashed only to say what it holds.
      if (total !== meta.bytes) throw mismatch(await hashFile(localFile, undefined, { signal: opts.signal }));
      const at = new Date().toISOString();
      const metadata: Record<string, string> = { sha256: meta.sha256, bytes: String(meta.bytes), at };
      if (meta.workspaceId) metadata['workspace-id'] = meta.workspaceId;
      const params = {
        Bucket: this.bucket,
        Key: objectKey,
        Metadata: metadata,
        ContentType: 'application/octet-stream',
        ...(this.storageClass ? { StorageClass: this.storageClass as StorageClass } : {}),
      };
      const partSize = partSizeFor(total, this.settings.partSize);
      const got = total <= partSize ? await this.putWhole(fh, total, params, key, opts) : await this.putInParts(fh, total, partSize, params, key, opts, localFile, mismatch);
      if (got.sha256 !== meta.sha256 || got.bytes !== meta.bytes) throw mismatch(got); // putWhole: nothing was sent
      return { url: this.urlFor(key), sha256: got.sha256, bytes: got.bytes, at };
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  /**
   * A file of at most one part: read into memory (hashed, throttled, with progress), and sent as one PutObject
   * only when its sha256 and size match what the caller declared. Returns what was read; the caller compares.
   */
  private async putWhole(fh: fs.promises.FileHandle, total: number, params: ObjectParams, key: string, opts: StoreOpOptions): Promise<HashResult> {
    const { signal } = opts;
    const buf = Buffer.allocUnsafe(total);
    const hash = crypto.createHash('sha256');
    const chunk = chunkSizeFor(opts.throttleBps);
    const startedAt = performance.now();
    let done = 0;
    while (done < total) {
      const { bytesRead } = await fh.read(buf, done, Math.min(chunk, total - done), done);
      if (bytesRead === 0) break; // the file shrank: the size check below fails
      hash.update(buf.subarray(done, done + bytesRead));
      done += bytesRead;
      opts.onProgress?.(done, total);
      checkAborted(signal);
      await throttle(done, opts.throttleBps, startedAt, signal);
    }
    const got = { sha256: hash.digest('hex'), bytes: done };
    if (done !== total || got.sha256 !== (params.Metadata.sha256 ?? '')) return got;
    try {
      await this.client.send(new PutObjectCommand({ ...params, Body: buf, ContentLength: total }), { abortSignal: signal });
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      throw this.mapError(err, key);
    }
    return got;
  }

  /**
   * A multipart upload: `parallel` workers each read one part straight from the file at its offset (no
   * stream in between) and send it as one UploadPart; the parts are hashed in file order as they are read.
   * CompleteMultipartUpload is sent only after every part is stored and the whole file hashed to what the
   * caller declared; on a mismatch, a failed part, or cancellation the upload is aborted (after the requests
   * in flight ended) and nothing appears under the key.
   *
   * Parts go with an unsigned payload (`x-amz-content-sha256: UNSIGNED-PAYLOAD`): SigV4 would hash every
   * part once more on this host, and the server again, for protection the whole-file sha256 above and the
   * caller's read-back verification already give (over HTTPS, TLS protects the bytes on the wire as well).
   */
  private async putInParts(
    fh: fs.promises.FileHandle,
    total: number,
    partSize: number,
    params: ObjectParams,
    key: string,
    opts: StoreOpOptions,
    localFile: string,
    mismatch: (actual: HashResult) => ChecksumMismatchError,
  ): Promise<HashResult> {
    const { signal } = opts;
    let uploadId: string | undefined;
    try {
      uploadId = (await this.client.send(new CreateMultipartUploadCommand(params), { abortSignal: signal })).UploadId;
    } catch (err) {
      if (signal?.aborted) throw abortError(signal);
      throw this.mapError(err, key);
    }
    if (!uploadId) throw new StoreError(`put ${key}: the server started a multipart upload without an upload id`);
    const parts = Math.ceil(total / partSize);
    const parallel = Math.min(this.settings.parallel, parts);
    const windowParts = Math.max(2, parallel * 2);
    const chunk = chunkSizeFor(opts.throttleBps);

    // Hash-ordering state: read[i] is part i's buffer, filled[i] how much of it is read, hashed[i] how much hashed.
    const hash = crypto.createHash('sha256');
    const read: (Buffer | null)[] = new Array<Buffer | null>(parts).fill(null);
    const filled: number[] = new Array<number>(parts).fill(0);
    const etags: string[] = new Array<string>(parts);
    let head = 0;
    let headHashed = 0;
    let hashedBytes = 0;
    let readBytes = 0;
    let nextPart = 0;
    let waiters: (() => void)[] = [];
    const wakeWaiters = () => {
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    };
    const partLength = (i: number) => Math.min(partSize, total - i * partSize);
    const drain = () => {
      let moved = false;
      while (head < parts) {
        const buf = read[head];
        if (!buf) break;
        if (filled[head]! > headHashed) {
          hash.update(buf.subarray(headHashed, filled[head]));
          hashedBytes += filled[head]! - headHashed;
          headHashed = filled[head]!;
          moved = true;
        }
        if (headHashed < buf.length) break;
        read[head] = null; // the upload holds its own reference until the part is sent
        head++;
        headHashed = 0;
        wakeWaiters();
      }
      if (moved) opts.onProgress?.(hashedBytes, total);
    };

    // One controller for every request: the caller's abort or the first failure cancels the others.
    const ac = new AbortController();
    let failure: unknown = null;
    const fail = (err: unknown) => {
      failure ??= err;
      if (!ac.signal.aborted) ac.abort(err);
      wakeWaiters();
    };
    const onCallerAbort = () => fail(abortError(signal!));
    signal?.addEventListener('abort', onCallerAbort, { once: true });
    if (signal?.aborted) onCallerAbort();

    const startedAt = performance.now();
    const sendPart = async (i: number): Promise<void> => {
      const len = partLength(i);
      const start = i * partSize;
      const buf = Buffer.allocUnsafe(len);
      read[i] = buf;
      while (filled[i]! < len) {
        const { bytesRead } = await fh.read(buf, filled[i]!, Math.min(chunk, len - filled[i]!), start + filled[i]!);
        if (bytesRead === 0) {
          // The file shrank while it was read: say what it holds now.
          throw mismatch(await hashFile(localFile).catch(() => ({ sha256: 'unreadable', bytes: start + filled[i]! })));
        }
        filled[i]! += bytesRead;
        readBytes += bytesRead;
        if (i === head) drain();
        if (ac.signal.aborted) throw abortError(ac.signal);
        await throttle(readBytes, opts.throttleBps, startedAt, ac.signal);
      }
      drain();
      let r;
      try {
        r = await this.client.send(
          unsignedPayload(new UploadPartCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId, PartNumber: i + 1, Body: buf, ContentLength: len })),
          { abortSignal: ac.signal },
        );
      } catch (err) {
        if (ac.signal.aborted) throw abortError(ac.signal);
        throw this.mapError(err, key);
      }
      if (!r.ETag) throw new StoreError(`put ${key}: the server stored part ${i + 1} without an ETag`);
      etags[i] = r.ETag;
    };

    const worker = async (): Promise<void> => {
      while (!ac.signal.aborted && nextPart < parts) {
        if (nextPart >= head + windowParts) {
          await new Promise<void>((resolve) => waiters.push(resolve));
          continue;
        }
        const i = nextPart++;
        try {
          await sendPart(i);
        } catch (err) {
          fail(err);
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: parallel }, worker));
      if (failure === null) {
        drain();
        const got = { sha256: hash.digest('hex'), bytes: hashedBytes };
        if (head !== parts || got.sha256 !== params.Metadata.sha256 || got.bytes !== total) throw mismatch(got);
        // Not cancellable: once every part is stored and verified, completing is what is left to do.
        await this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: params.Bucket,
            Key: params.Key,
            UploadId: uploadId,
            MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
          }),
        );
        return got;
      }
    } catch (err) {
      failure ??= err;
    } finally {
      signal?.removeEventListener('abort', onCallerAbort);
    }
    // Every request of this upload has ended; abort it so its parts are removed. A failed abort leaves parts
    // for the bucket's AbortIncompleteMultipartUpload lifecycle rule; the caller hears about the first failure.
    await this.client
      .send(new AbortMultipartUploadCommand({ Bucket: params.Bucket, Key: params.Key, UploadId: uploadId }))
      .catch(() => undefined);
    if (signal?.aborted) throw abortError(signal);
    throw this.mapError(failure, key);
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
    const out = new OffsetWriter(fh);
    let ok = false;
    try {
      const got = await this.download(key, object, opts, out);
      await out.finish();
      ok = true;
      return got;
    } finally {
      await out.settle();
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

  async discardUnfinished(workspaceId: string): Promise<number> {
    const base = this.prefix ? `${this.prefix}/` : '';
    const mine = (objectKey: string | undefined): objectKey is string =>
      typeof objectKey === 'string' && objectKey.startsWith(base) && isCopyKeyOf(objectKey.slice(base.length), workspaceId);
    let aborted = 0;
    let listed = 0;
    const pass = async (prefix: string | undefined): Promise<void> => {
      let keyMarker: string | undefined;
      let uploadIdMarker: string | undefined;
      for (;;) {
        let page;
        try {
          page = await this.client.send(new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }));
        } catch (err) {
          throw this.mapError(err);
        }
        for (const u of page.Uploads ?? []) {
          listed += 1;
          if (!mine(u.Key) || !u.UploadId) continue;
          try {
            await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: u.Key, UploadId: u.UploadId }));
            aborted += 1;
          } catch (err) {
            // Completed or aborted meanwhile: gone either way.
            if (errorCode(err).name === 'NoSuchUpload' || errorCode(err).status === 404) continue;
            throw this.mapError(err);
          }
        }
        if (!page.IsTruncated) return;
        // A truncated page without markers to go on from would list the same page forever.
        if (!page.NextKeyMarker && !page.NextUploadIdMarker) throw new StoreError(`s3://${this.bucket}: a truncated list of multipart uploads gave no marker to continue from`);
        keyMarker = page.NextKeyMarker;
        uploadIdMarker = page.NextUploadIdMarker;
      }
    };
    await pass(base + keyPrefixOf(workspaceId));
    if (listed === 0) await pass(undefined);
    return aborted;
  }

  /** The objects whose keys start with `prefix` under the store's prefix (ListObjectsV2, checked: s3ListPages). */
  async list(prefix: string, opts: { maxEntries?: number; signal?: AbortSignal } = {}): Promise<StoreListing> {
    checkListPrefix(prefix);
    const base = this.prefix ? `${this.prefix}/` : '';
    const max = opts.maxEntries ?? Number.POSITIVE_INFINITY;
    const entries: StoreListing['entries'] = [];
    try {
      for await (const page of s3ListPages(this.client, { bucket: this.bucket, prefix: base + prefix, signal: opts.signal })) {
        for (const o of page.objects) {
          if (entries.length >= max) return { entries, truncated: true };
          entries.push({ name: o.key.slice(base.length), bytes: o.bytes });
        }
      }
    } catch (err) {
      throw this.mapError(err);
    }
    return { entries, truncated: false };
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
   * Reads the object in ranged parts, `parallel` at a time, each conditional on `etag`. Each part's chunks are
   * handed to `out` (if any) at their offsets in batches of WRITE_BATCH_BYTES (one writev each, the next batch
   * arriving while the last is written); the hash is computed in object order: chunks of the earliest
   * unfinished part are hashed on arrival, later parts' chunks wait in memory until their turn. A part may
   * only start while it is within 2 × parallel parts of the hashing position, which bounds memory.
   */
  private async download(key: string, object: { size: number; etag: string | undefined }, opts: StoreOpOptions, out: OffsetWriter | null): Promise<HashResult> {
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
      // The batch being filled, and the write of the previous one (at most one in flight per part).
      let batch: Buffer[] = [];
      let batchAt = start;
      let batchBytes = 0;
      let writing: Promise<void> = Promise.resolve();
      const flush = () => {
        if (!out || batchBytes === 0) return;
        const bufs = batch;
        const at = batchAt;
        batch = [];
        batchAt += batchBytes;
        batchBytes = 0;
        writing = writing.then(() => out.write(bufs, at));
        writing.catch(() => undefined); // observed below; never an unhandled rejection meanwhile
      };
      try {
        for await (const chunk of body) {
          const buf = chunk as Buffer;
          if (pos + buf.length > end + 1) throw new StoreError(`${url}: the server sent more than bytes ${start}-${end}`);
          pos += buf.length;
          if (out) {
            batch.push(buf);
            batchBytes += buf.length;
            if (batchBytes >= WRITE_BATCH_BYTES) {
              await writing;
              flush();
            }
          }
          pending[i]!.push(buf);
          if (i === head) drain();
          received += buf.length;
          opts.onProgress?.(received, size);
          if (ac.signal.aborted) throw abortError(ac.signal);
          await throttle(received, opts.throttleBps, startedAt, ac.signal);
        }
        flush();
        await writing;
      } catch (err) {
        await writing.catch(() => undefined); // no write is left running on the file when this part gives up
        // A connection cut in the middle of the body surfaces as a bare 'aborted' / 'socket hang up': say where.
        if (err instanceof StoreError || ac.signal.aborted || !(err instanceof Error) || (err as NodeJS.ErrnoException).syscall) throw err;
        throw new StoreError(`${url}: the connection broke after ${pos - start} of bytes ${start}-${end} (${err.message}); read it again`);
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

/** Bytes of a part gathered before they are written (one writev). */
const WRITE_BATCH_BYTES = 2 * 1024 * 1024;
/** How much newly written data starts a background fdatasync, so the final one has only the tail left. */
const SYNC_EVERY_BYTES = 32 * 1024 * 1024;

/**
 * Writes batches of a download at their offsets (positional writev, looping over short writes) and keeps the
 * disk busy meanwhile: every SYNC_EVERY_BYTES written start a background fdatasync (one at a time), so the
 * final fdatasync in finish() has only the tail left to flush. An fdatasync error is reported once per file
 * description: it is kept and thrown by finish().
 */
class OffsetWriter {
  private written = 0;
  private syncedAt = 0;
  private syncing: Promise<void> | null = null;
  private syncError: unknown = null;

  constructor(private readonly fh: fs.promises.FileHandle) {}

  async write(bufs: Buffer[], position: number): Promise<void> {
    let at = position;
    let rest = bufs;
    while (rest.length > 0) {
      const { bytesWritten } = await this.fh.writev(rest, at);
      at += bytesWritten;
      this.written += bytesWritten;
      let skip = bytesWritten;
      const left: Buffer[] = [];
      for (const b of rest) {
        if (skip >= b.length) skip -= b.length;
        else {
          left.push(skip > 0 ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      rest = left;
    }
    if (!this.syncing && this.written - this.syncedAt >= SYNC_EVERY_BYTES) {
      this.syncedAt = this.written;
      this.syncing = this.fh
        .datasync()
        .catch((err: unknown) => {
          this.syncError ??= err;
        })
        .finally(() => {
          this.syncing = null;
        });
    }
  }

  /** Makes every byte written durable; throws an fdatasync error seen on the way. */
  async finish(): Promise<void> {
    await this.settle();
    await this.fh.datasync();
    if (this.syncError) throw this.syncError;
  }

  /** Waits for a background fdatasync still running (before the file is closed). */
  async settle(): Promise<void> {
    while (this.syncing) await this.syncing;
  }
}
