/**
 * Replica tools that need no daemon: restore (newest state or a point in time), describe, delete.
 *
 * Point in time: Litestream stamps each LTX file with the time it shipped the transactions in it (not their commit
 * time), so `at` restores what had reached the replica by then: every commit older than `at` minus the
 * replication lag (≤ ~1 s). Litestream 0.5.17's own `restore -timestamp` refuses times after the newest LTX file and
 * the exact time of the oldest one ("timestamp does not exist" / "no matching backup files available"); both are
 * resolved here against the replica's file list, so any `at` from the earliest restorable point on works.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { DeleteObjectsCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { s3Client, s3SettingsFromEnv } from '../storage/s3-client';
import { s3ListPages } from '../storage/s3-list';
import { cliError, litestreamBinary, runLitestream } from './cli';
import { ReplicaCorruptError, ReplicaMissingError, ReplicationError } from './errors';
import { integrityCheckOffThread } from '../storage/sqlite-check';
import { ParsedReplica, checkDbPath, checkIsoTime, litestreamUrl, parseReplicaUrl } from './urls';

/** `at` lies before the earliest point the replica still retains. */
export class RestorePointError extends ReplicationError {
  override name = 'RestorePointError';
  constructor(
    message: string,
    readonly earliestAt: string,
    readonly latestAt: string,
  ) {
    super(message);
  }
}

export interface ReplicaToolOptions {
  env?: NodeJS.ProcessEnv;
  binary?: string;
  signal?: AbortSignal;
}

export interface ReplicaInfo {
  /** The earliest point in time a restore can reach (the oldest retained full state). */
  earliestAt: string;
  /** When the newest transaction reached the replica. */
  latestAt: string;
  /** The newest transaction id on the replica (16 hex digits, as Litestream prints it). */
  maxTxid: string;
}

interface LtxEntry {
  level: number;
  minTxid: string;
  maxTxid: string;
  size: number;
  /** Second precision as `litestream ltx` prints it; refined from the file's header where needed. */
  timestamp: string;
}

const TXID = /^[0-9a-f]{16}$/;
const FIRST_TXID = '0000000000000001';

async function listLtx(replica: ParsedReplica, env: NodeJS.ProcessEnv, binary: string, signal?: AbortSignal): Promise<LtxEntry[]> {
  const r = await runLitestream(binary, ['ltx', '-level', 'all', '-json', litestreamUrl(replica, env)], { env, signal, timeoutMs: 120_000 });
  if (r.code !== 0) throw new ReplicationError(`cannot list ${replica.url}: ${cliError(r)}`);
  let rows: unknown;
  try {
    rows = JSON.parse(r.stdout);
  } catch {
    throw new ReplicationError(`cannot list ${replica.url}: litestream ltx printed no JSON (${r.stdout.slice(0, 200)})`);
  }
  if (!Array.isArray(rows)) throw new ReplicationError(`cannot list ${replica.url}: unexpected litestream ltx output`);
  const out: LtxEntry[] = [];
  for (const row of rows as Record<string, unknown>[]) {
    const level = row.level;
    const minTxid = row.min_txid;
    const maxTxid = row.max_txid;
    if (typeof level !== 'number' || typeof minTxid !== 'string' || typeof maxTxid !== 'string' || !TXID.test(minTxid) || !TXID.test(maxTxid)) continue;
    out.push({ level, minTxid, maxTxid, size: Number(row.size) || 0, timestamp: String(row.timestamp ?? '') });
  }
  return out;
}

/**
 * The millisecond timestamp in an LTX file's header (`LTX1`, flags, page size, commit, min txid @16, max txid @24,
 * timestamp @32 as int64 ms). Falls back to the listing's second-precision time if the header cannot be read.
 */
async function ltxTimestamp(replica: ParsedReplica, e: LtxEntry, env: NodeJS.ProcessEnv): Promise<number> {
  const fallback = Date.parse(e.timestamp);
  const name = `${e.minTxid}-${e.maxTxid}.ltx`;
  let head: Buffer | null = null;
  try {
    if (replica.kind === 'file') {
      const fh = await fs.promises.open(path.join(replica.dir, 'ltx', String(e.level), name), 'r');
      try {
        const buf = Buffer.alloc(40);
        const { bytesRead } = await fh.read(buf, 0, 40, 0);
        head = buf.subarray(0, bytesRead);
      } finally {
        await fh.close();
      }
    } else {
      const key = `${replica.prefix}/${e.level.toString(16).padStart(4, '0')}/${name}`;
      const res = await s3Client(s3SettingsFromEnv(env)).send(new GetObjectCommand({ Bucket: replica.bucket, Key: key, Range: 'bytes=0-39' }));
      head = Buffer.from(await res.Body!.transformToByteArray());
    }
  } catch {
    head = null;
  }
  if (head && head.length >= 40 && head.subarray(0, 4).toString('latin1') === 'LTX1') {
    const min = head.readBigUInt64BE(16).toString(16).padStart(16, '0');
    const max = head.readBigUInt64BE(24).toString(16).padStart(16, '0');
    const ts = Number(head.readBigInt64BE(32));
    if (min === e.minTxid && max === e.maxTxid && Number.isFinite(ts) && ts > 0) return ts;
  }
  return fallback;
}

interface Resolved {
  entries: LtxEntry[];
  maxTxid: string;
  latestMs: number;
  earliestMs: number;
  /** Full states (files starting at txid 1) with their precise times, oldest first. */
  bases: { maxTxid: string; ms: number }[];
}

async function resolveInfo(replica: ParsedReplica, env: NodeJS.ProcessEnv, binary: string, signal?: AbortSignal): Promise<Resolved | null> {
  const entries = await listLtx(replica, env, binary, signal);
  if (entries.length === 0) return null;
  const maxTxid = entries.reduce((m, e) => (e.maxTxid > m ? e.maxTxid : m), entries[0]!.maxTxid);
  // Compacted files keep the time of their newest transaction, so any file ending at maxTxid gives the same time.
  const newest = entries.filter((e) => e.maxTxid === maxTxid).sort((a, b) => a.level - b.level)[0]!;
  const latestMs = await ltxTimestamp(replica, newest, env);
  const baseEntries = entries.filter((e) => e.minTxid === FIRST_TXID);
  const bases = (await Promise.all(baseEntries.map(async (e) => ({ maxTxid: e.maxTxid, ms: await ltxTimestamp(replica, e, env) })))).sort((a, b) => a.ms - b.ms);
  const earliestMs = bases.length > 0 ? bases[0]!.ms : Math.min(...entries.map((e) => Date.parse(e.timestamp)).filter(Number.isFinite));
  return { entries, maxTxid, latestMs, earliestMs, bases };
}

/** What a replica holds: its time range and newest transaction; null when it holds nothing. */
export async function replicaInfo(replicaUrl: string, opts: ReplicaToolOptions = {}): Promise<ReplicaInfo | null> {
  const replica = parseReplicaUrl(replicaUrl);
  const env = opts.env ?? process.env;
  const binary = litestreamBinary(opts.binary, env);
  const r = await resolveInfo(replica, env, binary, opts.signal);
  if (!r) return null;
  return { earliestAt: new Date(r.earliestMs).toISOString(), latestAt: new Date(r.latestMs).toISOString(), maxTxid: r.maxTxid };
}

/**
 * Restores a replica into `outFile` (absolute; it and its -wal/-shm/-journal must not exist): the newest state,
 * or the state at `at` (ISO 8601). The restore goes to a temporary name in the same directory, passes SQLite's
 * full integrity check, and only then appears under `outFile` (never overwriting anything).
 * Throws ReplicaMissingError when the replica holds nothing, RestorePointError when `at` is before what it retains.
 */
export async function restoreReplica(opts: {
  replicaUrl: string;
  outFile: string;
  at?: string;
  env?: NodeJS.ProcessEnv;
  binary?: string;
  signal?: AbortSignal;
}): Promise<{ bytes: number; txid: string | null }> {
  if (typeof opts !== 'object' || opts === null) throw new ReplicationError('restoreReplica needs an options object');
  const replica = parseReplicaUrl(opts.replicaUrl);
  const outFile = checkDbPath(opts.outFile, 'outFile');
  const atMs = opts.at === undefined ? null : checkIsoTime(opts.at);
  const env = opts.env ?? process.env;
  const binary = litestreamBinary(opts.binary, env);
  for (const p of [outFile, `${outFile}-wal`, `${outFile}-shm`, `${outFile}-journal`]) {
    if (fs.existsSync(p)) throw new ReplicationError(`cannot restore into ${outFile}: ${p} already exists`);
  }
  const dir = path.dirname(outFile);
  await fs.promises.mkdir(dir, { recursive: true });
  const tmp = path.join(dir, `.${path.basename(outFile)}.restoring-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  const url = litestreamUrl(replica, env);
  const run = async (extra: string[]) => {
    await removeWithJournals(tmp);
    const r = await runLitestream(binary, ['restore', ...extra, '-o', tmp, url], { env, signal: opts.signal });
    if (r.code === 0) {
      const m = /"txid"\s*:\s*"([0-9a-f]{16})"/.exec(r.stdout);
      return { ok: true as const, txid: m ? m[1]! : null };
    }
    return { ok: false as const, error: cliError(r) };
  };
  try {
    let res = await run(['-json', ...(atMs === null ? [] : ['-timestamp', new Date(atMs).toISOString()])]);
    if (!res.ok) {
      const first = res.error;
      const info = await resolveInfo(replica, env, binary, opts.signal);
      if (!info) throw new ReplicaMissingError(replica.url);
      if (atMs === null) throw new ReplicationError(`restore of ${replica.url} failed: ${first}`);
      const earliestAt = new Date(info.earliestMs).toISOString();
      const latestAt = new Date(info.latestMs).toISOString();
      let txid: string | null = null;
      if (atMs >= info.latestMs) {
        txid = info.maxTxid; // nothing newer exists: the state at `at` is the newest state
      } else if (atMs >= info.earliestMs) {
        // Between full states Litestream resolves times itself; what fails is the edge at a full state's own time.
        const base = info.bases.filter((b) => b.ms <= atMs).sort((a, b) => (a.maxTxid < b.maxTxid ? 1 : -1))[0];
        if (base) txid = base.maxTxid;
      }
      if (txid === null) {
        if (atMs < info.earliestMs) {
          throw new RestorePointError(
            `cannot restore ${replica.url} at ${opts.at}: that is earlier than anything the replica retains (it reaches back to ${earliestAt}, newest ${latestAt})`,
            earliestAt,
            latestAt,
          );
        }
        throw new ReplicationError(`restore of ${replica.url} at ${opts.at} failed: ${first}`);
      }
      res = await run(['-json', '-txid', txid]);
      if (!res.ok) throw new ReplicationError(`restore of ${replica.url} up to txid ${txid} failed: ${res.error}`);
    }
    if (!fs.existsSync(tmp)) throw new ReplicationError(`restore of ${replica.url} reported success but wrote no file`);
    const problems = await integrityCheckOffThread(tmp, 'full', { readonly: false });
    if (problems.length > 0) {
      throw new ReplicaCorruptError(`restored copy of ${replica.url} fails SQLite's integrity check: ${problems.slice(0, 5).join('; ')}`);
    }
    await removeJournals(tmp);
    const fh = await fs.promises.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.promises.link(tmp, outFile); // never overwrites: EEXIST if something appeared meanwhile
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new ReplicationError(`cannot restore into ${outFile}: it appeared while restoring`);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EXDEV') throw err;
      if (fs.existsSync(outFile)) throw new ReplicationError(`cannot restore into ${outFile}: it appeared while restoring`);
      await fs.promises.rename(tmp, outFile);
    }
    await fsyncDir(dir);
    return { bytes: (await fs.promises.stat(outFile)).size, txid: res.txid };
  } finally {
    await removeWithJournals(tmp);
  }
}

async function removeJournals(file: string): Promise<void> {
  await Promise.all([`${file}-wal`, `${file}-shm`, `${file}-journal`].map((p) => fs.promises.rm(p, { force: true })));
}

/** Removes a SQLite file and the journals SQLite may have left beside it (none there is fine). */
export async function removeWithJournals(file: string): Promise<void> {
  await Promise.all([file, `${file}-wal`, `${file}-shm`, `${file}-journal`].map((p) => fs.promises.rm(p, { force: true })));
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const fh = await fs.promises.open(dir, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // best effort (some filesystems refuse fsync on directories)
  }
}

// A replica's own files: `<dir>/…/ltx/<level>/<min>-<max>.ltx` (plus Litestream's temporary `….ltx.tmp`) on disk,
// `<prefix>/…/<level as 4 hex digits>/<min>-<max>.ltx` on S3.
const FILE_REPLICA_ENTRY = /(^|\/)ltx\/\d+\/[0-9a-f]{16}-[0-9a-f]{16}\.ltx(\.tmp[^/]*)?$/;
const S3_REPLICA_KEY = /(^|\/)[0-9a-f]{4}\/[0-9a-f]{16}-[0-9a-f]{16}\.ltx$/;

/** One file or object under a replica URL: its path below the URL (`<generation>/ltx/0/….ltx`), size, and kind. */
export interface ReplicaFile {
  path: string;
  bytes: number;
  /** Litestream replica data (an LTX file, or Litestream's temporary of one); anything else is not ours. */
  replicaData: boolean;
}

/**
 * Every file or object under a replica URL (a replica, or a directory/prefix holding several), with its size; a
 * missing replica lists as nothing. At most `maxFiles` are read (`truncated` says when more were there). Sizes and
 * paths are checked as they are read (S3: s3ListPages); a file:// entry that is not a regular file or directory
 * (a link, a socket) is listed as not replica data, with 0 bytes.
 */
export async function listReplicaFiles(
  replicaUrl: string,
  opts: ReplicaToolOptions & { maxFiles?: number } = {},
): Promise<{ files: ReplicaFile[]; truncated: boolean }> {
  const replica = parseReplicaUrl(replicaUrl);
  const max = opts.maxFiles ?? Number.POSITIVE_INFINITY;
  const files: ReplicaFile[] = [];
  if (replica.kind === 'file') {
    let st: fs.Stats;
    try {
      st = await fs.promises.lstat(replica.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { files, truncated: false };
      throw err;
    }
    if (!st.isDirectory()) throw new ReplicationError(`cannot list ${replica.url}: ${replica.dir} is not a directory`);
    let truncated = false;
    const walk = async (dir: string, rel: string): Promise<void> => {
      let entries: fs.Dirent[];
      try {
        entries = await fs.promises.readdir(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // removed while listed
        throw err;
      }
      for (const e of entries) {
        if (truncated) return;
        opts.signal?.throwIfAborted();
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) {
          await walk(path.join(dir, e.name), r);
          continue;
        }
        if (files.length >= max) {
          truncated = true;
          return;
        }
        let bytes = 0;
        if (e.isFile()) {
          try {
            bytes = (await fs.promises.lstat(path.join(dir, e.name))).size;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // removed while listed
            throw err;
          }
        }
        files.push({ path: r, bytes, replicaData: e.isFile() && FILE_REPLICA_ENTRY.test(r) });
      }
    };
    await walk(replica.dir, '');
    return { files, truncated };
  }
  const base = `${replica.prefix}/`;
  for await (const page of s3ListPages(s3Client(s3SettingsFromEnv(opts.env ?? process.env)), { bucket: replica.bucket, prefix: base, signal: opts.signal })) {
    for (const o of page.objects) {
      if (files.length >= max) return { files, truncated: true };
      const rel = o.key.slice(base.length);
      files.push({ path: rel, bytes: o.bytes, replicaData: S3_REPLICA_KEY.test(rel) });
    }
  }
  return { files, truncated: false };
}

/**
 * Removes every file or object under a replica URL (a replica, or a directory/prefix holding several); a missing
 * replica is fine. Anything under it that is not Litestream replica data makes it refuse, deleting nothing: a
 * mistaken URL must not wipe unrelated files. No daemon may still be replicating to it.
 */
export async function deleteReplica(replicaUrl: string, opts: ReplicaToolOptions = {}): Promise<{ deleted: number }> {
  const replica = parseReplicaUrl(replicaUrl);
  const env = opts.env ?? process.env;
  const foreign = (files: ReplicaFile[]) => files.find((f) => !f.replicaData);
  if (replica.kind === 'file') {
    const { files } = await listReplicaFiles(replicaUrl, opts);
    const bad = foreign(files);
    if (bad) throw new ReplicationError(`refusing to delete ${replica.url}: ${path.join(replica.dir, bad.path)} is not Litestream replica data`);
    opts.signal?.throwIfAborted();
    await fs.promises.rm(replica.dir, { recursive: true, force: true });
    return { deleted: files.length };
  }
  const client = s3Client(s3SettingsFromEnv(env));
  let deleted = 0;
  for (let round = 0; round < 5; round++) {
    const { files } = await listReplicaFiles(replicaUrl, opts);
    const bad = foreign(files);
    if (bad) throw new ReplicationError(`refusing to delete ${replica.url}: s3://${replica.bucket}/${replica.prefix}/${bad.path} is not Litestream replica data`);
    const keys = files.map((f) => `${replica.prefix}/${f.path}`);
    if (keys.length === 0) return { deleted };
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const out = await client.send(
        new DeleteObjectsCommand({ Bucket: replica.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        { abortSignal: opts.signal },
      );
      if (out.Errors && out.Errors.length > 0) {
        const e = out.Errors[0]!;
        throw new ReplicationError(`deleting ${replica.url}: ${out.Errors.length} object(s) not deleted, first s3://${replica.bucket}/${e.Key}: ${e.Code} ${e.Message ?? ''}`.trim());
      }
      deleted += batch.length;
    }
  }
  throw new ReplicationError(`deleting ${replica.url}: objects keep appearing under it (is something still replicating to it?)`);
}
