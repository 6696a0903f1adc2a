/** Opens the BlobStore behind a store URL (cfg.coldUrl / cfg.archiveUrl) or behind a StoredCopy's URL. */
import path from 'node:path';
import { BadKeyError, BlobStore, StoreUnavailableError, checkKey } from './blob-store';
import { FileStore } from './file-store';
import { S3SettingsError, parseS3Url, s3SettingsFromEnv } from './s3-client';
import { S3Store } from './s3-store';

// Defined next to the other store errors (the S3 store's errors extend it); re-exported for existing importers.
export { StoreUnavailableError };

/**
 * Options of a store. `storageClass` applies to s3:// stores (e.g. cfg.archiveStorageClass for the archive). S3
 * settings come from the environment (s3SettingsFromEnv) when the store is opened.
 */
export interface OpenStoreOptions {
  storageClass?: string | null;
}

/**
 * The store for a base URL: `file:///abs/dir` → FileStore, `s3://bucket[/prefix]` → S3Store. Throws
 * StoreUnavailableError for other schemes, a malformed URL, or invalid S3 settings in the environment.
 * Opening sends nothing to any server.
 */
export function openStore(url: string, opts: OpenStoreOptions = {}): BlobStore {
  if (typeof url !== 'string') throw new StoreUnavailableError(`store URL must be a string, got ${typeof url}`);
  if (url.startsWith('file://')) {
    const dir = url.slice('file://'.length);
    if (!path.isAbsolute(dir)) throw new StoreUnavailableError(`store URL '${url}' must be an absolute file:// URL (file:///abs/dir)`);
    return new FileStore(path.resolve(dir));
  }
  if (url.startsWith('s3://')) {
    try {
      return new S3Store(url, s3SettingsFromEnv(process.env), { storageClass: opts.storageClass ?? null });
    } catch (err) {
      if (err instanceof S3SettingsError) throw new StoreUnavailableError(err.message);
      throw err;
    }
  }
  throw new StoreUnavailableError(`store URL '${url}' uses an unsupported scheme; use file:// or s3://`);
}

/**
 * The store that holds a stored copy, addressed by the copy's full URL (so any host can read a file:// copy on
 * a path it shares, or an s3:// copy with its credentials), and the object's key in it. A malformed URL is a
 * BadKeyError (bad input); a valid URL the process cannot use (unsupported scheme, S3 settings) is a
 * StoreUnavailableError.
 */
export function storeForCopyUrl(url: string): { store: BlobStore; key: string } {
  if (typeof url !== 'string') throw new BadKeyError(`stored copy URL must be a string, got ${typeof url}`);
  let base: string;
  let key: string;
  if (url.startsWith('s3://')) {
    const slash = url.lastIndexOf('/');
    if (slash < 's3://'.length) throw new BadKeyError(`stored copy URL '${url}' names no object (s3://bucket/prefix/key)`);
    base = url.slice(0, slash);
    key = checkKey(url.slice(slash + 1));
    try {
      parseS3Url(base);
    } catch (err) {
      if (err instanceof S3SettingsError) throw new BadKeyError(`stored copy URL '${url}' is malformed: ${err.message}`);
      throw err;
    }
  } else if (url.startsWith('file://')) {
    const p = url.slice('file://'.length);
    if (!path.isAbsolute(p) || path.normalize(p) !== p || p.endsWith('/')) throw new BadKeyError(`stored copy URL '${url}' is not a normalized absolute file:// URL`);
    key = checkKey(path.basename(p));
    base = `file://${path.dirname(p)}`;
  } else {
    throw new StoreUnavailableError(`stored copy URL '${url}' uses an unsupported scheme; use file:// or s3://`);
  }
  const store = openStore(base);
  // Catches non-canonical spellings (`s3://b//k`, `s3://b/p/`): the URL must be exactly what the store writes.
  if (store.keyFromUrl(url) !== key || store.urlFor(key) !== url) throw new BadKeyError(`stored copy URL '${url}' does not name an object of ${store.baseUrl}`);
  return { store, key };
}
