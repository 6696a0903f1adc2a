/**
 * File copies and hashes: kernel copies verified by reading the copy back (copyDurably: stores), and streaming
 * copies with sha256 computed on the way (copyWithSha256: throttled copies).
 *
 * Speed of the streaming copy: two large reusable buffers (no per-chunk allocation). While chunk N is hashed on the main thread and
 * written by a libuv thread, chunk N+1 is already being read by another, so the copy costs roughly
 * max(hash, read + write) rather than their sum.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** Default chunk size of copies and hashes. */
export const COPY_CHUNK_BYTES = 4 * 1024 * 1024;

/** How much newly written data triggers a background fdatasync during a copy. */
const SYNC_EVERY_BYTES = 16 * 1024 * 1024;

export interface CopyOptions {
  /** Called after every chunk with the bytes done so far and the size of the source when the copy started. */
  onProgress?(bytesCopied: number, total: number): void;
  /** Bytes per second; > 0 rate-limits the copy (fault tests, IO limiting). 0 or absent = unlimited. */
  throttleBps?: number;
  /** Aborting stops the copy between chunks; the partial destination is removed and `signal.reason` thrown. */
  signal?: AbortSignal;
}

export interface HashResult {
  sha256: string;
  bytes: number;
}

export interface HashOptions {
  signal?: AbortSignal;
}

/** The chunk size to use: large when unlimited, about 1/8 s of data when throttled (smooth progress). */
export function chunkSizeFor(throttleBps: number | undefined): number {
  if (!throttleBps || throttleBps <= 0) return COPY_CHUNK_BYTES;
  return Math.max(16 * 1024, Math.min(COPY_CHUNK_BYTES, Math.floor(throttleBps / 8)));
}

/** What an aborted operation throws: the signal's reason, or an AbortError when it has none. */
export function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? Object.assign(new Error('the operation was aborted'), { name: 'AbortError' });
}

export function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw abortError(signal);
}

/** Sleeps `ms`, waking early (with the abort reason) when `signal` aborts. */
function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(t);
      reject(abortError(signal!));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Keeps a copy at or below `bps` bytes per second on average since `startedAt`. */
export async function throttle(bytesDone: number, bps: number | undefined, startedAt: number, signal: AbortSignal | undefined): Promise<void> {
  if (!bps || bps <= 0) return;
  const due = startedAt + (bytesDone / bps) * 1000;
  await abortableSleep(due - performance.now(), signal);
}

/** Writes `length` bytes of `buf` at `position`, looping over short writes. */
export async function writeAll(fh: fs.promises.FileHandle, buf: Buffer, length: number, position: number): Promise<void> {
  let off = 0;
  while (off < length) {
    const { bytesWritten } = await fh.write(buf, off, length - off, position + off);
    off += bytesWritten;
  }
}

async function readFull(fh: fs.promises.FileHandle, buf: Buffer, position: number): Promise<number> {
  let off = 0;
  while (off < buf.length) {
    const { bytesRead } = await fh.read(buf, off, buf.length - off, position + off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  return off;
}

/** Streaming sha256 of a file. */
export async function hashFile(file: string, onProgress?: (bytesDone: number, total: number) => void, opts: HashOptions = {}): Promise<HashResult> {
  const fh = await fs.promises.open(file, 'r');
  try {
    const total = (await fh.stat()).size;
    const hash = crypto.createHash('sha256');
    const bufs = [Buffer.allocUnsafe(COPY_CHUNK_BYTES), Buffer.allocUnsafe(COPY_CHUNK_BYTES)];
    let i = 0;
    let pos = 0;
    checkAborted(opts.signal);
    let n = await readFull(fh, bufs[0], 0);
    while (n > 0) {
      const cur = bufs[i];
      // Read ahead into the other buffer while this one is hashed.
      const next = n === cur.length ? readFull(fh, bufs[i ^ 1], pos + n) : Promise.resolve(0);
      hash.update(n === cur.length ? cur : cur.subarray(0, n));
      pos += n;
      n = await next;
      i ^= 1;
      onProgress?.(pos, total);
      checkAborted(opts.signal);
    }
    return { sha256: hash.digest('hex'), bytes: pos };
  } finally {
    await fh.close();
  }
}

/**
 * Copies `src` to `dst` (created or truncated), computing the sha256 of exactly the bytes written, then fsyncs
 * `dst`. On any failure (including abort) the partial `dst` is removed. Callers write to a temporary name and
 * rename: this function makes no atomicity promise about `dst` itself.
 */
export async function copyWithSha256(src: string, dst: string, opts: CopyOptions = {}): Promise<HashResult> {
  checkAborted(opts.signal);
  const chunk = chunkSizeFor(opts.throttleBps);
  const input = await fs.promises.open(src, 'r');
  let output: fs.promises.FileHandle | null = null;
  let syncing: Promise<void> | null = null;
  let syncError: unknown = null;
  let ok = false;
  try {
    output = await fs.promises.open(dst, 'w');
    const total = (await input.stat()).size;
    const hash = crypto.createHash('sha256');
    const bufs = [Buffer.allocUnsafe(chunk), Buffer.allocUnsafe(chunk)];
    const startedAt = performance.now();
    // Writeback is started early (a background fdatasync every SYNC_EVERY_BYTES) so the disk works while the
    // main thread hashes; the final fdatasync then only has the tail left to flush.
    let syncedUpTo = 0;
    let i = 0;
    let pos = 0;
    let n = await readFull(input, bufs[0], 0);
    while (n > 0) {
      const cur = bufs[i];
      // Write this chunk and read the next one on the thread pool while the main thread hashes this one.
      const written = writeAll(output, cur, n, pos);
      const next = n === cur.length ? readFull(input, bufs[i ^ 1], pos + n) : Promise.resolve(0);
      hash.update(n === cur.length ? cur : cur.subarray(0, n));
      // Wait for both even if one fails, so no read or write is left running on a buffer or handle.
      const [w, r] = await Promise.allSettled([written, next]);
      if (w.status === 'rejected') throw w.reason;
      if (r.status === 'rejected') throw r.reason;
      pos += n;
      n = r.value;
      i ^= 1;
      if (!syncing && pos - syncedUpTo >= SYNC_EVERY_BYTES) {
        const out = output;
        syncedUpTo = pos;
        // An fsync error is reported once per file description: keep it, never let it slip through.
        syncing = out
          .datasync()
          .catch((err: unknown) => {
            syncError ??= err;
          })
          .finally(() => {
            syncing = null;
          });
      }
      opts.onProgress?.(pos, total);
      checkAborted(opts.signal);
      await throttle(pos, opts.throttleBps, startedAt, opts.signal);
    }
    if (syncing) await syncing;
    await output.datasync();
    if (syncError) throw syncError;
    ok = true;
    return { sha256: hash.digest('hex'), bytes: pos };
  } finally {
    await input.close().catch(() => undefined);
    if (syncing) await syncing;
    if (output) await output.close().catch(() => undefined);
    if (!ok) await fs.promises.rm(dst, { force: true }).catch(() => undefined);
  }
}

/** How often a kernel copy reports progress (the size the destination has grown to). */
const KERNEL_COPY_TICK_MS = 1000;

export interface DurableCopyOptions extends CopyOptions {
  /** Progress of the read-back (the sha256 of the copy, read from the destination after the copy). */
  onReadBack?(bytesDone: number, total: number): void;
}

/**
 * Copies `src` to `dst` (created or truncated) without passing the bytes through this process: a reflink where
 * the filesystem has them (FICLONE), else the kernel's in-kernel copy (copy_file_range / sendfile, libuv's
 * fallback). Returns the bytes copied. Makes no durability promise (see copyDurably).
 *
 * - Progress: `onProgress` every second with the size `dst` has grown to (a reflink is done at once).
 * - Abort: the promise rejects with the signal's reason as soon as `signal` aborts; the kernel call itself cannot be
 *   interrupted and finishes in the background into whatever `dst` is then (callers remove it: on Linux the data
 *   then goes to an unlinked inode whose space is freed when the copy ends).
 * - Throttled (`throttleBps` > 0): a chunked copy through user space instead, which can keep to the rate.
 */
export async function kernelCopy(src: string, dst: string, opts: CopyOptions = {}): Promise<number> {
  checkAborted(opts.signal);
  if (opts.throttleBps && opts.throttleBps > 0) return (await copyWithSha256(src, dst, opts)).bytes;
  const total = (await fs.promises.stat(src)).size;
  checkAborted(opts.signal);
  opts.onProgress?.(0, total);
  const copying = fs.promises.copyFile(src, dst, fs.constants.COPYFILE_FICLONE);
  const remove = () => fs.promises.rm(dst, { force: true }).catch(() => undefined);
  let onAbort: (() => void) | null = null;
  const aborted = new Promise<never>((_, reject) => {
    if (!opts.signal) return;
    onAbort = () => reject(abortError(opts.signal!));
    opts.signal.addEventListener('abort', onAbort, { once: true });
  });
  let ended = false;
  const tick = opts.onProgress
    ? setInterval(() => {
        fs.promises.stat(dst).then(
          (st) => !ended && opts.onProgress?.(Math.min(st.size, total), total),
          () => undefined,
        );
      }, KERNEL_COPY_TICK_MS)
    : null;
  try {
    await Promise.race([copying, aborted]);
  } catch (err) {
    // An abort left the kernel copy running: once it ends, its destination goes (the caller's removal may have come
    // before the copy created the file).
    if (opts.signal?.aborted) void copying.then(remove, remove);
    throw err;
  } finally {
    ended = true; // a tick's stat still in flight reports nothing after this
    if (tick) clearInterval(tick);
    if (onAbort) opts.signal!.removeEventListener('abort', onAbort);
    copying.catch(() => undefined); // looked at above; never an unhandled rejection
  }
  const bytes = (await fs.promises.stat(dst)).size;
  opts.onProgress?.(bytes, total);
  return bytes;
}

/**
 * A verified, durable copy: `kernelCopy` of `src` to `dst`, then, at the same time, an fdatasync of `dst` and a
 * read-back of `dst` hashing what it holds. Returns the sha256 and size of the bytes read back from `dst` (the
 * caller compares them with what it expects: the copy itself is not hashed on the way). On any failure (including
 * abort) `dst` is removed. Callers write to a temporary name and rename.
 *
 * Why the read-back rather than hashing on the way: the source's sha256 is known already (freeze hashes the file
 * for its key; a restore has the recorded sha256), and reading the destination back proves the bytes that landed,
 * which a hash of the bytes sent does not. The kernel copy costs about what `cp` does, and the read-back runs while
 * the disk flushes, so the whole costs about `cp` + max(fsync, sha256) instead of a user-space copy that hashes
 * followed by a separate verification.
 */
export async function copyDurably(src: string, dst: string, opts: DurableCopyOptions = {}): Promise<HashResult> {
  let ok = false;
  try {
    const bytes = await kernelCopy(src, dst, opts);
    const fh = await fs.promises.open(dst, 'r+');
    let got: HashResult;
    try {
      const [synced, hashed] = await Promise.allSettled([fh.datasync(), hashFile(dst, opts.onReadBack, { signal: opts.signal })]);
      if (synced.status === 'rejected') throw synced.reason;
      if (hashed.status === 'rejected') throw hashed.reason;
      got = hashed.value;
    } finally {
      await fh.close().catch(() => undefined);
    }
    if (got.bytes !== bytes) throw new Error(`copy of ${src} to ${dst}: ${bytes} bytes copied but ${got.bytes} read back`);
    ok = true;
    return got;
  } finally {
    if (!ok) await fs.promises.rm(dst, { force: true }).catch(() => undefined);
  }
}

/** fsyncs a directory so a rename or unlink inside it survives a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  let fh: fs.promises.FileHandle | null = null;
  try {
    fh = await fs.promises.open(dir, 'r');
    await fh.sync();
  } catch (err) {
    // Some filesystems refuse fsync on directories (EINVAL/EISDIR/EPERM); there is nothing more to do there.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINVAL' && code !== 'EISDIR' && code !== 'EPERM' && code !== 'EBADF') throw err;
  } finally {
    await fh?.close();
  }
}

/** A unique temporary name next to `file` (same directory, so a rename is atomic). Ends in `.partial`. */
export function tempNameFor(file: string, tag = 'tmp'): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${tag}-${process.pid}-${crypto.randomBytes(6).toString('hex')}.partial`);
}

/** Writes a small file atomically (temp name, fsync, rename, fsync dir). */
export async function writeFileAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = tempNameFor(file, 'w');
  try {
    const fh = await fs.promises.open(tmp, 'w');
    try {
      await fh.writeFile(data);
      await fh.datasync();
    } finally {
      await fh.close();
    }
    await fs.promises.rename(tmp, file);
  } catch (err) {
    await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await fsyncDir(path.dirname(file));
}
