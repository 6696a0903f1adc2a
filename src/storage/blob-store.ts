/**
 * Where verified copies of workspace files live (cold storage, archive). The interface is shaped after S3:
 * flat keys, whole-object puts that are atomic, object metadata (sha256, size, creation time, workspace id)
 * stored with the object and known before the upload starts (S3 sets `x-amz-meta-*` at creation), HEAD, GET,
 * idempotent DELETE. `file://` is implemented in file-store.ts, `s3://` in s3-store.ts.
 */
import type { StoredCopy } from '../contract/types';
import type { DurableCopyOptions, HashResult } from './copy';

/** Options of the byte-moving calls: progress (and of a read-back, where a store does one), throttling, cancellation. */
export type StoreOpOptions = DurableCopyOptions;

/** What the caller declares about the bytes it puts; the store verifies them while copying. */
export interface PutMeta {
  sha256: string;
  bytes: number;
  /** Recorded with the object (diagnostics, orphan sweeps). */
  workspaceId?: string;
}

/** Object metadata as the store holds it. */
export interface ObjectHead {
  sha256: string;
  bytes: number;
  /** When the object was written (ISO time). */
  at: string;
  workspaceId: string | null;
}

/** What a successful put returns: exactly the StoredCopy record a workflow keeps. */
export type StoredCopyMeta = StoredCopy;

export interface BlobStore {
  /** The store's URL (`file:///abs/dir`, `s3://bucket/prefix`), without a trailing slash. */
  readonly baseUrl: string;
  /**
   * True when a successful `put` has read the stored bytes back and matched them to `meta` (file://: the bytes
   * are hashed from the destination before they appear under the key). A caller that must prove the stored copy
   * then needs no `rehash` right after its own put; otherwise (S3: the bytes are hashed as they are sent) it does.
   */
  readonly readsBackOnPut?: boolean;
  /** Full URL of the object under `key`. */
  urlFor(key: string): string;
  /** The key of an object URL of this store, or null when the URL belongs elsewhere. */
  keyFromUrl(url: string): string | null;
  /**
   * Uploads `localFile` under `key`. The sha256 and size of the bytes are checked against `meta` (as they are
   * sent, or read back from where they were written: `readsBackOnPut`); a mismatch throws ChecksumMismatchError and leaves nothing under `key` that was not there before. The
   * object appears under `key` atomically (never half-written); its metadata travels with it.
   */
  put(localFile: string, key: string, meta: PutMeta, opts?: StoreOpOptions): Promise<StoredCopyMeta>;
  /** Metadata of a complete object, or null if there is none (missing, or a put that never finished). */
  head(key: string): Promise<ObjectHead | null>;
  /**
   * Copies the object into `localFile` (created/truncated, fsynced) and returns the sha256 and size of the bytes
   * written (hashed on the way, or read back from `localFile`). Throws ObjectMissingError.
   */
  get(key: string, localFile: string, opts?: StoreOpOptions): Promise<HashResult>;
  /** Re-reads the stored bytes and hashes them (verification without a local copy). Throws ObjectMissingError. */
  rehash(key: string, opts?: { signal?: AbortSignal; onProgress?(bytesDone: number, total: number): void }): Promise<HashResult>;
  /** Deletes the object and its metadata; a missing object is fine. */
  delete(key: string): Promise<void>;
  /**
   * Removes what unfinished puts of a workspace's copies (keys `keyForCopy(workspaceId, …)`) left in the store, and
   * nothing else: no complete object, nothing of another workspace (`acme.notes` never matches `acme.notes-2`).
   * S3: its multipart uploads that were never completed are aborted; file://: its temporaries (`.….partial`) and
   * bytes left without metadata are removed. For a workspace that is being deleted (an upload still running then
   * fails). Idempotent; returns how many were removed.
   */
  discardUnfinished(workspaceId: string): Promise<number>;
  /**
   * What the store holds under names starting with `prefix` (a workspace's `acme.notes.`, a tenant's `acme.`), as it
   * holds them: every object (S3) or file (file://: objects, their `.meta.json` sidecars, bytes left without metadata)
   * with its name relative to the store and its size, at most `maxEntries` of them (`truncated` says when more were
   * there). For reports of what is stored and what it costs; whether an object is complete is `head`'s to say.
   */
  list(prefix: string, opts?: { maxEntries?: number; signal?: AbortSignal }): Promise<StoreListing>;
}

/** One name a store holds and its size in bytes (BlobStore.list). */
export interface StoreEntry {
  name: string;
  bytes: number;
}

export interface StoreListing {
  entries: StoreEntry[];
  truncated: boolean;
}

/** A name prefix a store can be listed by: the start of a key (letters, digits, '.', '-', '_'; no leading dot). */
export function checkListPrefix(prefix: unknown): string {
  if (typeof prefix !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(prefix)) {
    throw new BadKeyError(`list prefix '${String(prefix)}' is invalid: use the start of a key (letters, digits, '.', '-', '_'; no leading dot)`);
  }
  return prefix;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

/**
 * The store cannot be used as configured: an unsupported scheme, bad settings, a bucket that does not exist,
 * credentials that are refused. Retrying the same call will not help; an operator has to act.
 */
export class StoreUnavailableError extends StoreError {
  override name = 'StoreUnavailableError';
}

/** The object (or its metadata) is not there. */
export class ObjectMissingError extends StoreError {
  override name = 'ObjectMissingError';
  constructor(readonly url: string) {
    super(`stored object ${url} does not exist`);
  }
}

/** Bytes did not hash to what was expected. */
export class ChecksumMismatchError extends StoreError {
  override name = 'ChecksumMismatchError';
  constructor(
    message: string,
    readonly expected: { sha256: string; bytes: number },
    readonly actual: { sha256: string; bytes: number },
  ) {
    super(message);
  }
}

/** A key or URL the store cannot use. */
export class BadKeyError extends StoreError {
  override name = 'BadKeyError';
}

/** Keys are flat names: letters, digits, dot, dash, underscore; no leading dot; not a metadata name. */
export const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export function checkKey(key: unknown): string {
  if (typeof key !== 'string' || !KEY_PATTERN.test(key) || key.endsWith('.meta.json') || key.endsWith('.partial')) {
    throw new BadKeyError(`object key '${String(key)}' is invalid: use letters, digits, '.', '-', '_' (no leading dot)`);
  }
  return key;
}

/** The key a workspace's copy is stored under, in every store. */
export function keyForWorkspace(workspaceId: string): string {
  return `${workspaceId}.sqlite`;
}

export const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** What every key of a workspace's copies starts with: the workspace key and a dot (`acme.notes.`, not `acme.notes-2.`). */
export function keyPrefixOf(workspaceId: string): string {
  return `${workspaceId}.`;
}

/**
 * Whether `key` is exactly a key keyForCopy gives `workspaceId` (`<id>.<16 hex>.sqlite`). A prefix alone is not
 * enough: a bare key `notes` (workspaces from before tenants) is also the start of tenant `notes`'s keys
 * (`notes.x.<16 hex>.sqlite`).
 */
export function isCopyKeyOf(key: string, workspaceId: string): boolean {
  const prefix = keyPrefixOf(workspaceId);
  return key.startsWith(prefix) && /^[0-9a-f]{16}\.sqlite$/.test(key.slice(prefix.length));
}

/**
 * The key of one verified copy of a workspace: content-addressed, so a new freeze never overwrites the copy
 * the workflow still relies on until the new one is verified and recorded.
 */
export function keyForCopy(workspaceId: string, sha256: string): string {
  if (!SHA256_PATTERN.test(sha256)) throw new BadKeyError(`sha256 '${sha256}' must be 64 lowercase hex digits`);
  return `${workspaceId}.${sha256.slice(0, 16)}.sqlite`;
}

