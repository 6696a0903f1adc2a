/** Opens the BlobStore behind a store URL (cfg.coldUrl / cfg.archiveUrl) or behind a StoredCopy's URL. */
import path from 'node:path';
import type { Config } from '../config';
import { BadKeyError, BlobStore, checkKey } from './blob-store';
import { FileStore } from './file-store';

export const S3_NOT_AVAILABLE = 's3:// cold storage is not available in this build yet';

/** The error thrown for a store scheme this build cannot open. */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
}

/**
 * The store for a base URL: `file:///abs/dir` → FileStore. `s3://bucket/prefix` throws (not in this build).
 * `cfg` is where an S3 store will read its endpoint and credentials; the file store needs none of it.
 */
export function openStore(url: string, cfg?: Partial<Config>): BlobStore {
  if (typeof url !== 'string') throw new StoreUnavailableError(`store URL must be a string, got ${typeof url}`);
  if (url.startsWith('file://')) {
    const dir = url.slice('file://'.length);
    if (!path.isAbsolute(dir)) throw new StoreUnavailableError(`store URL '${url}' must be an absolute file:// URL (file:///abs/dir)`);
    return new FileStore(path.resolve(dir));
  }
  if (url.startsWith('s3://')) throw new StoreUnavailableError(S3_NOT_AVAILABLE);
  throw new StoreUnavailableError(`store URL '${url}' uses an unsupported scheme; use file:// (s3:// later)`);
}

/**
 * The store that holds a stored copy, addressed by the copy's full URL (so any host can read a file:// copy on
 * a path it shares), and the object's key in it.
 */
export function storeForCopyUrl(url: string, cfg?: Partial<Config>): { store: BlobStore; key: string } {
  if (typeof url !== 'string') throw new BadKeyError(`stored copy URL must be a string, got ${typeof url}`);
  if (url.startsWith('s3://')) throw new StoreUnavailableError(S3_NOT_AVAILABLE);
  if (!url.startsWith('file://')) throw new StoreUnavailableError(`stored copy URL '${url}' uses an unsupported scheme; use file:// (s3:// later)`);
  const p = url.slice('file://'.length);
  if (!path.isAbsolute(p) || path.normalize(p) !== p || p.endsWith('/')) throw new BadKeyError(`stored copy URL '${url}' is not a normalized absolute file:// URL`);
  const key = checkKey(path.basename(p));
  const store = openStore(`file://${path.dirname(p)}`, cfg);
  if (store.keyFromUrl(url) !== key) throw new BadKeyError(`stored copy URL '${url}' does not name an object of ${store.baseUrl}`);
  return { store, key };
}
