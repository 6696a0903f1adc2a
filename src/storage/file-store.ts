/**
 * A BlobStore on a directory (`file:///abs/dir`), e.g. a local disk or a shared mount every host sees.
 *
 * Layout: `<dir>/<key>` holds the bytes, `<dir>/<key>.meta.json` the metadata. A put writes the bytes under a
 * temporary name (`.<key>.put-….partial`), fsyncs, removes the old metadata, renames the bytes into place and
 * only then writes the new metadata (itself temp + rename). So under every crash point:
 * - nothing but a `.partial` file exists (ignored), or
 * - the bytes are in place without metadata: `head` says null (an unfinished put), or
 * - bytes and matching metadata are both in place (complete).
 * `head` also cross-checks the size on disk against the metadata.
 *
 * Temporaries are named after the file being put (tempNameFor: `.<name>.<tag>-<pid>-<hex>.partial`, nested when
 * the file put is itself a temporary): a workspace's are those of its live file `<id>.sqlite`, of its copies'
 * keys and their metadata, and of an archive download `<id>.archive` (discardUnfinished).
 *
 * Bytes move by the kernel (copyDurably: a reflink or copy_file_range, then fdatasync), and every put and get
 * reads back what it wrote, hashing it, before the bytes are renamed into place (put) or returned (get). So a
 * completed put has already read back the stored bytes and matched them to the declared sha256: `readsBackOnPut`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BlobStore, ChecksumMismatchError, ObjectHead, ObjectMissingError, PutMeta, SHA256_PATTERN, StoreListing, StoreOpOptions, StoredCopyMeta, checkKey, checkListPrefix, isCopyKeyOf, keyForWorkspace } from './blob-store';
import { HashResult, copyDurably, fsyncDir, hashFile, tempNameFor, writeFileAtomic } from './copy';
import { faultPoint } from '../faults/fault-points';

/** A put in progress whose key is not known yet (FileStore.stagePut). */
export interface StagedPut {
  commit(key: string, meta: PutMeta): Promise<StoredCopyMeta>;
  discard(): Promise<void>;
}

interface MetaFile {
  key: string;
  sha256: string;
  bytes: number;
  at: string;
  workspaceId: string | null;
}

/** One layer of a temporary name (tempNameFor): `.<inner>.<tag>-<pid>-<12 hex>.partial` → `<inner>`. */
const TEMP_LAYER = /^\.(.+)\.[a-z]+-\d{1,7}-[0-9a-f]{12}\.partial$/;

/**
 * Whether `name` is a temporary of a put of `workspaceId`'s file: what remains after every tempNameFor layer is
 * its live file's name, one of its copies' keys (or their metadata), or its archive download (see the header).
 */
export function isTemporaryOf(name: string, workspaceId: string): boolean {
  let base = name;
  let layers = 0;
  for (let m = TEMP_LAYER.exec(base); m; m = TEMP_LAYER.exec(base)) {
    base = m[1]!;
    layers += 1;
  }
  if (layers === 0) return false;
  const key = base.endsWith('.meta.json') ? base.slice(0, -'.meta.json'.length) : base;
  return key === keyForWorkspace(workspaceId) || isCopyKeyOf(key, workspaceId) || base === `${workspaceId}.archive`;
}

function isEnoent(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === 'ENOENT';
}

export class FileStore implements BlobStore {
  /** A put reads the stored bytes back and checks their sha256 before they appear under the key (see above). */
  get readsBackOnPut(): boolean {
    return true;
  }

  readonly baseUrl: string;
  readonly dir: string;

  /** `dirOrUrl`: an absolute directory or a `file:///abs/dir` URL. */
  constructor(dirOrUrl: string) {
    const dir = dirOrUrl.startsWith('file://') ? dirOrUrl.slice('file://'.length) : dirOrUrl;
    if (!path.isAbsolute(dir)) throw new Error(`file store directory '${dirOrUrl}' must be absolute (file:///abs/dir)`);
    this.dir = path.resolve(dir);
    this.baseUrl = `file://${this.dir}`;
  }

  /** Local path of the object's bytes (a file store only; other stores have none). */
  pathFor(key: string): string {
    return path.join(this.dir, checkKey(key));
  }

  private metaPathFor(key: string): string {
    return path.join(this.dir, `${checkKey(key)}.meta.json`);
  }

  urlFor(key: string): string {
    return `${this.baseUrl}/${checkKey(key)}`;
  }

  keyFromUrl(url: string): string | null {
    const prefix = `${this.baseUrl}/`;
    if (typeof url !== 'string' || !url.startsWith(prefix)) return null;
    const key = url.slice(prefix.length);
    try {
      return checkKey(key);
    } catch {
      return null;
    }
  }

  /**
   * Copies `localFile` under a temporary name, fsyncs it while reading it back, and only if the bytes read back
   * hash to `meta` renames them into place and writes the metadata. `opts.onReadBack` reports the read-back.
   */
  async put(localFile: string, key: string, meta: PutMeta, opts: StoreOpOptions = {}): Promise<StoredCopyMeta> {
    checkKey(key);
    if (!SHA256_PATTERN.test(meta.sha256)) throw new Error(`put ${key}: sha256 must be 64 lowercase hex digits`);
    return this.stagePut(localFile, opts).commit(key, meta);
  }

  /**
   * A put started before the key and the sha256 are known (freeze hashes the file for its key meanwhile): the
   * copy, its fdatasync and its read-back run at once under a temporary name; `commit(key, meta)` then does what the
   * rest of `put` does (compare with `meta`, rename, metadata); `discard()` drops the copy. Call exactly one of them.
   */
  stagePut(localFile: string, opts: StoreOpOptions = {}): StagedPut {
    const tmp = tempNameFor(path.join(this.dir, path.basename(localFile)), 'put');
    const copying = fs.promises.mkdir(this.dir, { recursive: true }).then(() => copyDurably(localFile, tmp, opts));
    // Looked at by commit or discard; never an unhandled rejection in between.
    copying.catch(() => undefined);
    return {
      commit: async (key, meta) => {
        checkKey(key);
        let got: HashResult;
        try {
          got = await copying;
        } catch (err) {
          await fs.promises.rm(tmp, { force: true });
          throw err;
        }
        return this.placeCopy(localFile, tmp, got, key, meta);
      },
      discard: async () => {
        await copying.catch(() => undefined);
        await fs.promises.rm(tmp, { force: true });
      },
    };
  }

  /** Puts a complete temporary copy (`got`: what it read back as) in place under `key` if it matches `meta`. */
  private async placeCopy(localFile: string, tmp: string, got: HashResult, key: string, meta: PutMeta): Promise<StoredCopyMeta> {
    const dataPath = this.pathFor(key);
    const metaPath = this.metaPathFor(key);
    if (got.sha256 !== meta.sha256 || got.bytes !== meta.bytes) {
      await fs.promises.rm(tmp, { force: true });
      throw new ChecksumMismatchError(
        `put ${key}: the copy of ${localFile} reads back as ${got.bytes} bytes sha256 ${got.sha256}, expected ${meta.bytes} bytes sha256 ${meta.sha256}`,
        { sha256: meta.sha256, bytes: meta.bytes },
        got,
      );
    }
    const at = new Date().toISOString();
    try {
      // Old metadata goes first: bytes without metadata read as "no object", never as the old object's sha256.
      await fs.promises.rm(metaPath, { force: true });
      await fs.promises.rename(tmp, dataPath);
    } catch (err) {
      await fs.promises.rm(tmp, { force: true });
      throw err;
    }
    await fsyncDir(this.dir);
    // Bytes in place, metadata not yet written: `head` must read this as no object.
    faultPoint('fileStore.put:after-bytes');
    const record: MetaFile = { key, sha256: got.sha256, bytes: got.bytes, at, workspaceId: meta.workspaceId ?? null };
    await writeFileAtomic(metaPath, JSON.stringify(record) + '\n');
    return { url: this.urlFor(key), sha256: got.sha256, bytes: got.bytes, at };
  }

  async head(key: string): Promise<ObjectHead | null> {
    const metaPath = this.metaPathFor(key);
    let raw: string;
    try {
      raw = await fs.promises.readFile(metaPath, 'utf8');
    } catch (err) {
      if (isEnoent(err)) return null;
      throw err;
    }
    let m: Partial<MetaFile>;
    try {
      m = JSON.parse(raw) as Partial<MetaFile>;
    } catch {
      return null; // unreadable metadata: treat as an unfinished put
    }
    if (typeof m.sha256 !== 'string' || !SHA256_PATTERN.test(m.sha256) || typeof m.bytes !== 'number' || typeof m.at !== 'string') return null;
    let size: number;
    try {
      size = (await fs.promises.stat(this.pathFor(key))).size;
    } catch (err) {
      if (isEnoent(err)) return null;
      throw err;
    }
    if (size !== m.bytes) return null;
    return { sha256: m.sha256, bytes: m.bytes, at: m.at, workspaceId: typeof m.workspaceId === 'string' ? m.workspaceId : null };
  }

  /** Copies the object to `localFile`, fsynced; the sha256 returned is of the bytes read back from `localFile`. */
  async get(key: string, localFile: string, opts: StoreOpOptions = {}): Promise<HashResult> {
    const dataPath = this.pathFor(key);
    try {
      return await copyDurably(dataPath, localFile, opts);
    } catch (err) {
      if (isEnoent(err) && !fs.existsSync(dataPath)) throw new ObjectMissingError(this.urlFor(key));
      throw err;
    }
  }

  async rehash(key: string, opts: { signal?: AbortSignal; onProgress?(bytesDone: number, total: number): void } = {}): Promise<HashResult> {
    const dataPath = this.pathFor(key);
    try {
      return await hashFile(dataPath, opts.onProgress, { signal: opts.signal });
    } catch (err) {
      if (isEnoent(err)) throw new ObjectMissingError(this.urlFor(key));
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.promises.rm(this.metaPathFor(key), { force: true });
    await fs.promises.rm(this.pathFor(key), { force: true });
    if (fs.existsSync(this.dir)) await fsyncDir(this.dir);
  }

  /**
   * Removes the workspace's temporaries (isTemporaryOf) and what puts under its copies' keys left incomplete
   * (bytes without metadata, or metadata without its bytes: `head` says null). Complete objects stay.
   */
  async discardUnfinished(workspaceId: string): Promise<number> {
    let names: string[];
    try {
      names = await fs.promises.readdir(this.dir);
    } catch (err) {
      if (isEnoent(err)) return 0;
      throw err;
    }
    let removed = 0;
    const keys = new Set<string>();
    for (const name of names) {
      if (isTemporaryOf(name, workspaceId)) {
        await fs.promises.rm(path.join(this.dir, name), { force: true });
        removed += 1;
        continue;
      }
      const key = name.endsWith('.meta.json') ? name.slice(0, -'.meta.json'.length) : name;
      if (isCopyKeyOf(key, workspaceId)) keys.add(key);
    }
    for (const key of keys) {
      if ((await this.head(key)) !== null) continue;
      await this.delete(key);
      removed += 1;
    }
    if (removed > 0) await fsyncDir(this.dir);
    return removed;
  }

  /** The regular files whose names start with `prefix`, sidecars included (what the directory holds), by name. */
  async list(prefix: string, opts: { maxEntries?: number; signal?: AbortSignal } = {}): Promise<StoreListing> {
    checkListPrefix(prefix);
    let names: string[];
    try {
      names = (await fs.promises.readdir(this.dir)).filter((n) => n.startsWith(prefix)).sort();
    } catch (err) {
      if (isEnoent(err)) return { entries: [], truncated: false };
      throw err;
    }
    const max = opts.maxEntries ?? Number.POSITIVE_INFINITY;
    const entries: StoreListing['entries'] = [];
    for (const name of names) {
      opts.signal?.throwIfAborted();
      if (entries.length >= max) return { entries, truncated: true };
      let st: fs.Stats;
      try {
        st = await fs.promises.lstat(path.join(this.dir, name));
      } catch (err) {
        if (isEnoent(err)) continue; // removed while listed
        throw err;
      }
      if (st.isFile()) entries.push({ name, bytes: st.size });
    }
    return { entries, truncated: false };
  }
}
