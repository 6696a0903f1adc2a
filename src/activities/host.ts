/**
 * HostActivities: everything that touches a workspace's local file on this host (see ./types.ts).
 *
 * Local layout under `<dataDir>/live/` for workspace `<id>`:
 *   <id>.sqlite (+ -wal, -shm)    the live file
 *   <id>.active                   marker: the instance is open (see HostInstances)
 *   <id>.placement                the placement the file was last placed under (see Fence, recoverLocal)
 *   <id>.verified.json            written by restoreLocal: which stored copy the file was verified against, and
 *                                 the file's size and mtime at that moment (a later restoreLocal of the same copy
 *                                 skips the copy while the file is unchanged)
 *   <id>.released.json            written by storeLocal just before it deletes the file: where the verified copy
 *                                 went, so a retry after the release returns that copy instead of failing
 *   .<id>.sqlite.<op>-….partial   temporary names of copies in progress (renamed into place when complete)
 *
 * Every method validates its input (non-retryable `InvalidInput`), is idempotent, and leaves no half file under
 * a real name after a crash at any point. Non-retryable failure types: InvalidInput, NotStopped, SourceMissing,
 * IntegrityError, ChecksumMismatch, TemplateUnavailable, StoreUnavailable, VerifyFailed, NoUsableSource,
 * RestorePointUnavailable.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ApplicationFailure, Context, asyncLocalStorage } from '@temporalio/activity';
import type { Config } from '../config';
import { liveDir, liveFile, placementPath, releasedPath as releasedPathOf, scratchDir as scratchDirOf, setAside, verifiedPath as verifiedPathOf } from '../host/data-dir';
import type { Fence } from '../host/fence';
import { InputError, checkWorkspaceId } from '../contract/ids';
import type { HostInfo, Placement, StoredCopy } from '../contract/types';
import { HostInstances } from '../host/instances';
import { activeMarkerPath } from '../host/data-dir';
import { BadKeyError, BlobStore, ChecksumMismatchError, ObjectMissingError, SHA256_PATTERN, keyForCopy, keyForWorkspace } from '../storage/blob-store';
import { copyWithSha256, fsyncDir, hashFile, tempNameFor, writeFileAtomic } from '../storage/copy';
import { integrityCheckOffThread } from '../storage/sqlite-check';
import { StoreUnavailableError, openStore, storeForCopyUrl } from '../storage/open-store';
import { FileStore } from '../storage/file-store';
import { Vfs, VfsError } from '../vfs/vfs';
import { NO_REPLICATION, ReplicationOffError, ReplicationPort } from '../host/replication-port';
import { ReplicaCorruptError, ReplicaMissingError } from '../replication/errors';
import { RestorePointError } from '../replication/restore';
import { startCopy } from '../metrics/host-metrics';
import { faultPoint } from '../faults/fault-points';
import type { CopyHeartbeat, HostActivities, RecoverySource, TemplateSource } from './types';

export interface HostActivityContext {
  cfg: Config;
  instances: HostInstances;
  hostInfo: () => HostInfo;
  /** This host's replication (default: none). */
  replication?: ReplicationPort;
  /** This host's fence: a start of an instance confirms it (default: none, for activity-only tests). */
  fence?: Fence;
}

type LocalResult = { host: HostInfo; filePath: string; bytes: number };

/** Heartbeat details of long copies (defined in ./types.ts, read by the CLI's progress bar). */
export type { CopyHeartbeat } from './types';

// ---------------------------------------------------------------------------------------------------------------
// Activity context helpers: usable inside a real worker, MockActivityEnvironment, or plain unit tests.

function activityContext(): Context | undefined {
  return asyncLocalStorage.getStore();
}

function heartbeat(details: CopyHeartbeat): void {
  activityContext()?.heartbeat(details);
}

/** A warning in the activity's log (nothing outside an activity). */
function log(message: string, fields: Record<string, unknown>): void {
  activityContext()?.log.warn(message, fields);
}

function cancellationSignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}

/** A file's size for a heartbeat's `bytesTotal`, or undefined when it cannot be read. */
function sizeForHeartbeat(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch {
    return undefined;
  }
}

/** A phase's heartbeat; `bytesTotal` only when it is a known size. */
export function copyDetails(phase: string, bytesCopied: number, bytesTotal?: number): CopyHeartbeat {
  return bytesTotal !== undefined && Number.isFinite(bytesTotal) && bytesTotal >= 0 ? { bytesCopied, phase, bytesTotal } : { bytesCopied, phase };
}

/** Heartbeats every few seconds while `fn` runs (for steps that report no progress of their own). */
async function withTicker<T>(phase: string, bytes: () => number, fn: () => Promise<T>, bytesTotal?: number): Promise<T> {
  heartbeat(copyDetails(phase, bytes(), bytesTotal));
  const t = activityContext() ? setInterval(() => heartbeat(copyDetails(phase, bytes(), bytesTotal)), 5000) : null;
  try {
    return await fn();
  } finally {
    if (t) clearInterval(t);
  }
}

/**
 * Hard-links `src` to `link` so a stored copy can be read in place under a scratch name. False when the two
 * are on different filesystems or the filesystem has no hard links (the caller copies instead).
 */
async function linkForCheck(src: string, link: string): Promise<boolean> {
  try {
    await fs.promises.link(src, link);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // ENOENT too: the store's own read then reports the missing object.
    if (['EXDEV', 'EPERM', 'EMLINK', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EACCES', 'ENOENT'].includes(code ?? '')) return false;
    throw err;
  }
}

/** An onProgress callback that heartbeats; stores and copy helpers pass the file's or object's size as `bytesTotal`. */
function progress(phase: string): (bytesCopied: number, bytesTotal?: number) => void {
  return (bytesCopied, bytesTotal) => heartbeat(copyDetails(phase, bytesCopied, bytesTotal));
}

// ---------------------------------------------------------------------------------------------------------------
// Failures

export function invalidInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'InvalidInput');
}

/** Maps storage errors to the non-retryable failure types the workflow knows; anything else is rethrown. */
export function mapStoreError(err: unknown, what: string): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ChecksumMismatchError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'ChecksumMismatch');
  if (err instanceof ObjectMissingError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'SourceMissing');
  if (err instanceof StoreUnavailableError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'StoreUnavailable');
  if (err instanceof BadKeyError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'InvalidInput');
  if (err instanceof ReplicaMissingError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'SourceMissing');
  if (err instanceof RestorePointError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'RestorePointUnavailable');
  if (err instanceof ReplicaCorruptError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'IntegrityError');
  if (err instanceof ReplicationOffError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'StoreUnavailable');
  return err;
}

// ---------------------------------------------------------------------------------------------------------------
// Input validation

function checkId(id: unknown, what = 'workspaceId'): string {
  try {
    return checkWorkspaceId(id, what);
  } catch (err) {
    throw invalidInput((err as InputError).message);
  }
}

function checkObject(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw invalidInput(`${what} must be an object`);
  return x as Record<string, unknown>;
}

/** Validates a StoredCopy and that it is `ownerId`'s object; returns the store that holds it and its key. */
export function checkStoredCopy(raw: unknown, ownerId: string, what = 'copy'): { copy: StoredCopy; store: BlobStore; key: string } {
  const c = checkObject(raw, what);
  if (typeof c.url !== 'string' || c.url.length === 0 || c.url.length > 4096) throw invalidInput(`${what}.url must be a non-empty string`);
  if (typeof c.sha256 !== 'string' || !SHA256_PATTERN.test(c.sha256)) throw invalidInput(`${what}.sha256 must be 64 lowercase hex digits`);
  if (typeof c.bytes !== 'number' || !Number.isSafeInteger(c.bytes) || c.bytes < 0) throw invalidInput(`${what}.bytes must be a non-negative integer`);
  if (typeof c.at !== 'string' || Number.isNaN(Date.parse(c.at))) throw invalidInput(`${what}.at must be an ISO time`);
  let opened: { store: BlobStore; key: string };
  try {
    opened = storeForCopyUrl(c.url);
  } catch (err) {
    if (err instanceof StoreUnavailableError) throw ApplicationFailure.nonRetryable(`${what}.url: ${err.message}`, 'StoreUnavailable');
    throw invalidInput(`${what}.url: ${(err as Error).message}`);
  }
  if (opened.key !== keyForCopy(ownerId, c.sha256) && opened.key !== keyForWorkspace(ownerId)) {
    throw invalidInput(`${what}.url ${c.url} is not a copy of workspace '${ownerId}' with sha256 ${c.sha256.slice(0, 16)}…`);
  }
  return { copy: { url: c.url, sha256: c.sha256, bytes: c.bytes, at: c.at }, ...opened };
}

function checkTemplate(raw: unknown, forWorkspace: string): TemplateSource {
  const t = checkObject(raw, 'template');
  const templateId = checkId(t.templateId, 'template.templateId');
  if (templateId === forWorkspace) throw invalidInput(`workspace '${forWorkspace}' cannot be its own template`);
  if (t.kind === 'local') {
    const h = checkObject(t.host, 'template.host');
    if (typeof h.host !== 'string' || typeof h.taskQueue !== 'string' || typeof h.endpoint !== 'string') {
      throw invalidInput('template.host must be { host, taskQueue, endpoint }');
    }
    if (typeof t.filePath !== 'string' || !path.isAbsolute(t.filePath)) throw invalidInput('template.filePath must be an absolute path');
    if (typeof t.open !== 'boolean') throw invalidInput('template.open must be a boolean');
    return { kind: 'local', templateId, host: { host: h.host, taskQueue: h.taskQueue, endpoint: h.endpoint }, filePath: t.filePath, open: t.open };
  }
  if (t.kind === 'stored') {
    const { copy } = checkStoredCopy(t.copy, templateId, 'template.copy');
    return { kind: 'stored', templateId, copy };
  }
  if (t.kind === 'replica') {
    const replicaUrl = checkReplicaUrl(t.replicaUrl, templateId, 'template.replicaUrl');
    if (t.at !== undefined && (typeof t.at !== 'string' || Number.isNaN(Date.parse(t.at)))) throw invalidInput('template.at must be an ISO time');
    return { kind: 'replica', templateId, replicaUrl, ...(t.at !== undefined ? { at: t.at as string } : {}) };
  }
  throw invalidInput(`template.kind must be 'local', 'stored' or 'replica'`);
}

/** A replica generation URL of `ownerId`: file:// or s3://, ending in `/<ownerId>/<generation>`. */
export function checkReplicaUrl(raw: unknown, ownerId: string, what = 'replicaUrl'): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 4096) throw invalidInput(`${what} must be a non-empty string`);
  if (!/^(file|s3):\/\//.test(raw)) throw invalidInput(`${what} '${raw}' must be a file:// or s3:// URL`);
  const parts = raw.split('/');
  const gen = parts[parts.length - 1] ?? '';
  if (parts[parts.length - 2] !== ownerId || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(gen) || raw.includes('/../') || raw.includes('/./')) {
    throw invalidInput(`${what} '${raw}' is not a replica generation of workspace '${ownerId}'`);
  }
  return raw;
}

function checkSources(raw: unknown, ownerId: string, mayBeEmpty = false): RecoverySource[] {
  if (!Array.isArray(raw) || (raw.length === 0 && !mayBeEmpty) || raw.length > 10) {
    throw invalidInput(mayBeEmpty ? 'sources must be an array (at most 10)' : 'sources must be a non-empty array (at most 10)');
  }
  return raw.map((x, i) => {
    const s = checkObject(x, `sources[${i}]`);
    if (s.kind === 'replica') return { kind: 'replica', replicaUrl: checkReplicaUrl(s.replicaUrl, ownerId, `sources[${i}].replicaUrl`) };
    if (s.kind === 'stored') return { kind: 'stored', copy: checkStoredCopy(s.copy, ownerId, `sources[${i}].copy`).copy };
    throw invalidInput(`sources[${i}].kind must be 'replica' or 'stored'`);
  });
}

function checkPlacement(raw: unknown): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1) throw invalidInput('placement must be a positive integer');
  return raw;
}

function checkKeep(raw: unknown): Placement | null {
  if (raw === undefined || raw === null) return null;
  const k = checkObject(raw, 'keep');
  if (typeof k.host !== 'string' || k.host.length === 0 || k.host.length > 63) throw invalidInput('keep.host must be a host id');
  const placement = checkPlacement(k.placement);
  if (placement === undefined) throw invalidInput('keep.placement must be a positive integer');
  return { host: k.host, placement };
}

// ---------------------------------------------------------------------------------------------------------------
// Local files

interface VerifiedSidecar {
  url: string;
  sha256: string;
  bytes: number;
  size: number;
  mtimeMs: number;
}

interface ReleasedRecord {
  target: 'cold' | 'archive';
  url: string;
  sha256: string;
  bytes: number;
  at: string;
}

function exists(p: string): boolean {
  return fs.existsSync(p);
}

async function readJson<T>(p: string): Promise<T | null> {
  try {
    return JSON.parse(await fs.promises.readFile(p, 'utf8')) as T;
  } catch {
    return null;
  }
}

async function rmAll(files: string[]): Promise<boolean> {
  let any = false;
  for (const f of files) {
    try {
      await fs.promises.unlink(f);
      any = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  return any;
}

/** A SQLite file and the journal files SQLite may keep next to it. */
function withJournals(file: string): string[] {
  return [file, `${file}-wal`, `${file}-shm`, `${file}-journal`];
}

async function sizeOf(file: string): Promise<number> {
  return (await fs.promises.stat(file)).size;
}

function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return !!signal?.aborted && (err === signal.reason || (err as Error)?.name === 'AbortError');
}

// ---------------------------------------------------------------------------------------------------------------

export function createHostActivities(ctx: HostActivityContext): HostActivities {
  const { cfg, instances } = ctx;
  const live = liveDir(cfg);
  const verifiedPath = (id: string) => verifiedPathOf(cfg, id);
  const releasedPath = (id: string) => releasedPathOf(cfg, id);
  const throttleBps = cfg.copyThrottleBps > 0 ? cfg.copyThrottleBps : undefined;
  const replication = ctx.replication ?? NO_REPLICATION;
  const scratchDir = scratchDirOf(cfg);

  async function result(id: string): Promise<LocalResult> {
    const filePath = liveFile(cfg, id);
    return { host: ctx.hostInfo(), filePath, bytes: await sizeOf(filePath) };
  }

  function targetStore(target: 'cold' | 'archive'): BlobStore {
    try {
      return target === 'cold' ? openStore(cfg.coldUrl) : openStore(cfg.archiveUrl, { storageClass: cfg.archiveStorageClass });
    } catch (err) {
      throw mapStoreError(err, `open ${target} store`);
    }
  }

  /**
   * Folds a stopped local file's WAL into it (checkpoint) so the file alone is the whole state. The file is
   * verified later, on a copy restored from the store (see storeLocal).
   */
  function foldLocalFile(id: string, file: string): void {
    let vfs: Vfs;
    try {
      vfs = Vfs.open(file, { create: false });
    } catch (err) {
      if (err instanceof VfsError) throw ApplicationFailure.nonRetryable(`workspace '${id}': ${err.message}`, 'IntegrityError');
      throw err;
    }
    try {
      vfs.checkpoint();
    } finally {
      vfs.close();
    }
    if (exists(`${file}-wal`) && fs.statSync(`${file}-wal`).size > 0) {
      // Someone else holds the file open: copying now would miss what is in the WAL.
      throw ApplicationFailure.retryable(`workspace '${id}' still has a write-ahead log after closing; is another process using it?`, 'FileBusy');
    }
  }

  /**
   * Proves a stored object restorable: its bytes must hash to the sha256 and size recorded for it, and they must
   * be a workspace file that passes SQLite's full integrity check. Throws VerifyFailed (non-retryable) otherwise.
   *
   * A copy in a file store this host can hard-link is checked in place: SQLite reads the stored bytes themselves
   * through a link in the scratch dir (read-only; its -wal/-shm files land in scratch), while the same bytes are
   * hashed. Any other store (S3, a file store on another filesystem) is restored to a scratch file first, with
   * its sha256 checked on the way, and the integrity check runs on that restored copy.
   */
  async function verifyRestorable(store: BlobStore, key: string, want: { sha256: string; bytes: number }, signal?: AbortSignal): Promise<void> {
    const url = store.urlFor(key);
    await fs.promises.mkdir(scratchDir, { recursive: true });
    const scratch = tempNameFor(path.join(scratchDir, key), 'verify');
    const missing = () => ApplicationFailure.nonRetryable(`stored copy ${url} is missing right after the upload`, 'VerifyFailed');
    const mismatch = (got: { sha256: string; bytes: number }, how: string) =>
      ApplicationFailure.nonRetryable(`stored copy ${url} ${how} as sha256 ${got.sha256} (${got.bytes} bytes); expected ${want.sha256} (${want.bytes} bytes)`, 'VerifyFailed');
    try {
      let problems: string[];
      const inPlace = store instanceof FileStore && (await linkForCheck(store.pathFor(key), scratch));
      if (inPlace) {
        faultPoint('storeLocal:after-scratch-restore');
        let hashedBytes = 0;
        const onHash = progress('verify-in-place');
        const [hashed, checked] = await Promise.allSettled([
          store.rehash(key, { signal, onProgress: (done, total) => ((hashedBytes = done), onHash(done, total)) }),
          withTicker('verify-in-place', () => hashedBytes, () => integrityCheckOffThread(scratch, 'full'), want.bytes),
        ]);
        if (hashed.status === 'rejected') throw hashed.reason instanceof ObjectMissingError ? missing() : hashed.reason;
        if (checked.status === 'rejected') throw checked.reason;
        if (hashed.value.sha256 !== want.sha256 || hashed.value.bytes !== want.bytes) throw mismatch(hashed.value, 'reads');
        problems = checked.value;
      } else {
        let got;
        try {
          got = await store.get(key, scratch, { signal, onProgress: progress('verify') });
        } catch (err) {
          if (err instanceof ObjectMissingError) throw missing();
          throw err;
        }
        if (got.sha256 !== want.sha256 || got.bytes !== want.bytes) throw mismatch(got, 'restores');
        faultPoint('storeLocal:after-scratch-restore');
        problems = await withTicker('integrity', () => want.bytes, () => integrityCheckOffThread(scratch, 'full'));
      }
      // A file that opens but is not a workspace file is as bad as a corrupt one.
      if (problems.length === 0) {
        try {
          Vfs.open(scratch, { create: false, readonly: true }).close();
        } catch (err) {
          if (!(err instanceof VfsError)) throw err;
          problems = [err.message];
        }
      }
      if (problems.length > 0) {
        throw ApplicationFailure.nonRetryable(`stored copy ${url} is a file that fails SQLite's integrity check: ${problems.slice(0, 5).join('; ')}`, 'VerifyFailed');
      }
    } finally {
      await rmAll(withJournals(scratch));
    }
  }

  /** Copies a closed template file (and a leftover WAL, if any) to `tmp`, reflinking where the filesystem can. */
  async function cloneClosedFile(templateId: string, src: string, tmp: string): Promise<void> {
    const stamp = (f: string) => (exists(f) ? `${fs.statSync(f).size}:${fs.statSync(f).mtimeMs}` : '-');
    const before = `${stamp(src)}|${stamp(`${src}-wal`)}`;
    const copyOne = async (from: string, to: string) => {
      if (throttleBps) await copyWithSha256(from, to, { throttleBps, signal: cancellationSignal(), onProgress: progress('clone') });
      else await withTicker('clone', () => 0, () => fs.promises.copyFile(from, to, fs.constants.COPYFILE_FICLONE), sizeForHeartbeat(from));
    };
    await copyOne(src, tmp);
    const wal = `${src}-wal`;
    if (exists(wal) && fs.statSync(wal).size > 0) await copyOne(wal, `${tmp}-wal`);
    const after = `${stamp(src)}|${stamp(`${src}-wal`)}`;
    if (before !== after || instances.isOpen(templateId)) {
      throw ApplicationFailure.retryable(`template '${templateId}' changed while it was being copied; will retry`, 'TemplateBusy');
    }
  }

  /** Clears tmp in a fresh copy, folds its WAL in, closes it, and renames it to the workspace's live name. */
  async function placeNewFile(id: string, tmp: string): Promise<void> {
    let vfs: Vfs;
    try {
      vfs = Vfs.open(tmp, { create: false });
    } catch (err) {
      if (err instanceof VfsError) throw ApplicationFailure.nonRetryable(`new copy for '${id}': ${err.message}`, 'IntegrityError');
      throw err;
    }
    try {
      vfs.clear('tmp');
      vfs.checkpoint();
    } finally {
      vfs.close();
    }
    // The bytes may still be only in the page cache (a plain or reflinked copy, a checkpoint with nothing to do):
    // make them durable before the name says the workspace exists.
    const fh = await fs.promises.open(tmp, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    const dst = liveFile(cfg, id);
    await rmAll([`${dst}-wal`, `${dst}-shm`, `${dst}-journal`, verifiedPath(id), releasedPath(id), placementPath(cfg, id)]);
    await fs.promises.rename(tmp, dst);
    await fsyncDir(live);
  }

  /**
   * Refuses to restore over an open instance. A marker left by an earlier process whose file is gone (a host
   * that restarted without its disk) is not an instance: it is dropped.
   */
  const refuseIfOpen = (id: string) => {
    if (!instances.isOpen(id)) return;
    if (!instances.isLoaded(id) && !exists(liveFile(cfg, id))) {
      instances.close(id, { checkpoint: false });
      return;
    }
    throw ApplicationFailure.nonRetryable(`workspace '${id}' is open on host '${cfg.hostId}'; it cannot be restored over`, 'NotStopped');
  };

  const writeSidecar = async (id: string, copy: StoredCopy) => {
    const st = await fs.promises.stat(liveFile(cfg, id));
    const sc: VerifiedSidecar = { url: copy.url, sha256: copy.sha256, bytes: copy.bytes, size: st.size, mtimeMs: st.mtimeMs };
    await writeFileAtomic(verifiedPath(id), JSON.stringify(sc) + '\n');
  };

  /**
   * Makes a stored copy the workspace's local file: skipped when a file verified against this very copy is
   * already here (prefetched) or the file hashes to it; otherwise copied under a temporary name, checked
   * against the recorded sha256 and size (a mismatch is never opened or placed), then renamed into place.
   */
  async function restoreStored(id: string, { copy, store, key }: { copy: StoredCopy; store: BlobStore; key: string }, op: 'restoreLocal' | 'recoverLocal'): Promise<void> {
    const file = liveFile(cfg, id);
    const signal = cancellationSignal();
    await fs.promises.mkdir(live, { recursive: true });
    if (exists(file)) {
      const st = await fs.promises.stat(file);
      const side = await readJson<VerifiedSidecar>(verifiedPath(id));
      if (side && side.sha256 === copy.sha256 && side.bytes === copy.bytes && side.size === st.size && side.mtimeMs === st.mtimeMs) return;
      // No (matching) sidecar: a crash between the rename and the sidecar, or a file of unknown provenance.
      // If it hashes to the copy (and no WAL says otherwise), it is the copy.
      const walSize = exists(`${file}-wal`) ? fs.statSync(`${file}-wal`).size : 0;
      if (walSize === 0 && st.size === copy.bytes) {
        const h = await hashFile(file, progress('verify'), { signal });
        if (h.sha256 === copy.sha256) {
          await rmAll([`${file}-wal`, `${file}-shm`, releasedPath(id)]);
          await writeSidecar(id, copy);
          return;
        }
      }
    }
    const tmp = tempNameFor(file, 'restore');
    const timer = startCopy('restore');
    try {
      const got = await store.get(key, tmp, { throttleBps, signal, onProgress: progress('copy') });
      if (got.sha256 !== copy.sha256 || got.bytes !== copy.bytes) {
        // Never opened, never placed: the temporary file goes away in `finally`.
        throw ApplicationFailure.nonRetryable(
          `stored copy ${copy.url} read as ${got.bytes} bytes sha256 ${got.sha256}; expected ${copy.bytes} bytes sha256 ${copy.sha256}`,
          'ChecksumMismatch',
        );
      }
      faultPoint(`${op}:after-download`);
      await replaceLiveFile(id, tmp);
      faultPoint(`${op}:after-rename`);
      timer.done(got.bytes);
    } finally {
      await rmAll([tmp]);
    }
    await writeSidecar(id, copy);
  }

  /** Restores a replica's newest state (integrity-checked by the restore) as the workspace's local file. */
  async function restoreFromReplica(id: string, replicaUrl: string, signal: AbortSignal | undefined): Promise<void> {
    const file = liveFile(cfg, id);
    await fs.promises.mkdir(live, { recursive: true });
    const tmp = tempNameFor(file, 'replica');
    const timer = startCopy('restore');
    try {
      await withTicker('restore', () => 0, () => replication.restore(replicaUrl, tmp, { signal }));
      const bytes = await sizeOf(tmp);
      faultPoint('recoverLocal:after-replica-restore');
      await replaceLiveFile(id, tmp);
      timer.done(bytes);
    } finally {
      await rmAll(withJournals(tmp));
    }
  }

  /**
   * Renames a complete, verified temporary file over the live name. A file already there is replaced only if it
   * is a verified copy of a stored object (nothing of it is only here); any other is set aside in orphans/ first:
   * a restore never overwrites data it cannot prove is kept elsewhere.
   */
  async function replaceLiveFile(id: string, tmp: string): Promise<void> {
    const file = liveFile(cfg, id);
    // Litestream must not keep state of the file being replaced; journals of that file belong to it.
    await replication.forget(id);
    if (exists(file) && !(await isVerifiedStoredCopy(id))) {
      const movedTo = setAside(cfg, id);
      log('a local file that is not a stored copy was set aside before a restore', { workspaceId: id, movedTo });
    }
    await rmAll([`${file}-wal`, `${file}-shm`, `${file}-journal`, verifiedPath(id), releasedPath(id), placementPath(cfg, id)]);
    await fs.promises.rename(tmp, file);
    await fsyncDir(live);
  }

  /** Whether the live file is, unchanged, a copy verified against a stored object (restoreLocal's sidecar). */
  async function isVerifiedStoredCopy(id: string): Promise<boolean> {
    const file = liveFile(cfg, id);
    const side = await readJson<VerifiedSidecar>(verifiedPath(id));
    if (!side) return false;
    try {
      const st = await fs.promises.stat(file);
      const walSize = exists(`${file}-wal`) ? (await fs.promises.stat(`${file}-wal`)).size : 0;
      return walSize === 0 && side.size === st.size && side.mtimeMs === st.mtimeMs;
    } catch {
      return false;
    }
  }

  /**
   * The local file of the workspace's last placement, if this host holds it: that file has the newest data (the
   * replica and any stored copy were made from it). Checked with SQLite's quick check when it is not open.
   */
  async function newestLocalFile(id: string, keep: Placement | null): Promise<{ placement: number } | { problem: string } | null> {
    if (!keep || keep.host !== cfg.hostId) return null;
    const file = liveFile(cfg, id);
    if (!exists(file) || instances.placementOfFile(id) !== keep.placement) return null;
    // Still open from that placement (the workflow lost this host for a while): close it as a stop would, so
    // the file alone holds everything; the workflow starts it again, or stores it.
    if (instances.isOpen(id)) {
      const replicated = replication.current(id) !== null;
      instances.close(id, { checkpoint: !replicated });
      ctx.fence?.forget(id);
      if (replicated) {
        await replication.stop(id);
        foldLocalFile(id, file);
      }
    }
    const problems = await integrityCheckOffThread(file, 'quick', { readonly: false });
    if (problems.length > 0) return { problem: `the local file of placement ${keep.placement} fails SQLite's check: ${problems.slice(0, 3).join('; ')}` };
    return { placement: keep.placement };
  }

  return {
    async provision(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const template = inp.template === undefined || inp.template === null ? undefined : checkTemplate(inp.template, id);
      const dst = liveFile(cfg, id);
      // Already provisioned (a retry after the rename, or the instance is even running): nothing to do.
      if (instances.isOpen(id) || exists(dst)) return result(id);
      await fs.promises.mkdir(live, { recursive: true });
      const tmp = tempNameFor(dst, 'provision');
      const signal = cancellationSignal();
      // A new file from a template or restore point is a copy; an empty new file is not.
      const timer = template ? startCopy('clone') : null;
      try {
        if (!template) {
          Vfs.open(tmp, { create: true }).close();
        } else if (template.kind === 'local') {
          if (template.host.host !== cfg.hostId) {
            throw ApplicationFailure.nonRetryable(
              `template '${template.templateId}' is held by host '${template.host.host}', not '${cfg.hostId}'; clone it there`,
              'TemplateUnavailable',
            );
          }
          const src = liveFile(cfg, template.templateId);
          if (path.resolve(template.filePath) !== src) {
            throw invalidInput(`template.filePath ${template.filePath} is not template '${template.templateId}''s file on this host (${src})`);
          }
          if (instances.isOpen(template.templateId)) {
            // Open (or marked active): a consistent copy through its handle; the template never stops.
            const total = exists(src) ? fs.statSync(src).size : 0;
            let done = 0;
            await withTicker(
              'backup',
              () => done,
              () =>
                instances.backupTo(template.templateId, tmp, (pages, totalPages) => {
                  done = totalPages > 0 ? Math.round((pages / totalPages) * total) : 0;
                  heartbeat(copyDetails('backup', done, total));
                }),
              total,
            );
          } else {
            if (!exists(src)) throw ApplicationFailure.nonRetryable(`template '${template.templateId}' has no file on this host (${src})`, 'SourceMissing');
            await cloneClosedFile(template.templateId, src, tmp);
          }
        } else if (template.kind === 'replica') {
          await withTicker('restore', () => 0, () => replication.restore(template.replicaUrl, tmp, { at: template.at, signal }));
        } else {
          const { store, key } = checkStoredCopy(template.copy, template.templateId, 'template.copy');
          const got = await store.get(key, tmp, { throttleBps, signal, onProgress: progress('copy') });
          if (got.sha256 !== template.copy.sha256 || got.bytes !== template.copy.bytes) {
            throw ApplicationFailure.nonRetryable(
              `template copy ${template.copy.url} read as ${got.bytes} bytes sha256 ${got.sha256}, expected ${template.copy.bytes} bytes sha256 ${template.copy.sha256}`,
              'ChecksumMismatch',
            );
          }
        }
        if (template) faultPoint('provision:after-copy');
        await placeNewFile(id, tmp);
        faultPoint('provision:after-rename');
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        throw mapStoreError(err, `provision '${id}'`);
      } finally {
        await rmAll(withJournals(tmp));
      }
      const r = await result(id);
      timer?.done(r.bytes);
      return r;
    },

    async startInstance(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      if (typeof inp.clearTmp !== 'boolean') throw invalidInput('clearTmp must be a boolean');
      if (inp.generation !== undefined && (typeof inp.generation !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(inp.generation))) {
        throw invalidInput('generation must be a short name of letters, digits, dots, dashes or underscores');
      }
      const placement = checkPlacement(inp.placement);
      const file = liveFile(cfg, id);
      if (!instances.isLoaded(id) && !exists(file)) {
        // A marker without its file (the disk was lost or wiped) is dropped: the workflow recovers the file.
        if (instances.isOpen(id)) instances.close(id, { checkpoint: false });
        throw ApplicationFailure.nonRetryable(`workspace '${id}' has no local file on host '${cfg.hostId}' (${file})`, 'SourceMissing');
      }
      try {
        instances.open(id, { clearTmp: inp.clearTmp, ...(placement !== undefined ? { placement } : {}) });
        // The workflow itself placed it here: served under this placement until the lease next lapses.
        ctx.fence?.confirm(id);
      } catch (err) {
        if (err instanceof VfsError) throw ApplicationFailure.nonRetryable(`workspace '${id}': ${err.message}`, 'IntegrityError');
        throw err;
      }
      faultPoint('startInstance:after-open');
      let replicaUrl: string | null = null;
      if (typeof inp.generation === 'string') {
        replicaUrl = replication.urlFor(id, inp.generation);
        if (replicaUrl) {
          // Same generation again (a retry, or a resume on this host): replication simply continues.
          if (replication.current(id) !== replicaUrl) await replication.forget(id);
          await replication.start(id, replicaUrl);
        }
      } else {
        replicaUrl = replication.current(id);
      }
      return { ...(await result(id)), replicaUrl };
    },

    async stopInstance(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const file = liveFile(cfg, id);
      const replicated = replication.current(id) !== null;
      const idleMs = await instances.idleMs(id);
      // While replicated, Litestream owns checkpoints: close without one, flush the replica, then fold the WAL.
      instances.close(id, { checkpoint: !replicated });
      faultPoint('stopInstance:after-close');
      const replicaSynced = replicated ? await replication.stop(id) : false;
      if (!exists(file)) {
        throw ApplicationFailure.nonRetryable(`workspace '${id}' has no local file on host '${cfg.hostId}' (${file})`, 'SourceMissing');
      }
      if (replicated) foldLocalFile(id, file);
      return { ...(await result(id)), replicaSynced, idleMs };
    },

    async lastAccess(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      // Reported as an age too: the workflow applies it to its own clock, so host clock skew does not matter.
      return { lastAccessAt: instances.lastAccess(id), idleMs: await instances.idleMs(id), open: instances.isOpen(id) };
    },

    async storeLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      if (inp.target !== 'cold' && inp.target !== 'archive') throw invalidInput(`target must be 'cold' or 'archive'`);
      const target = inp.target;
      const store = targetStore(target);
      const signal = cancellationSignal();
      if (instances.isOpen(id)) {
        throw ApplicationFailure.nonRetryable(`workspace '${id}' is open on host '${cfg.hostId}'; stop it before storing it`, 'NotStopped');
      }
      const file = liveFile(cfg, id);

      try {
        if (!exists(file)) {
          // A retry after this host already released the file: the record says where the verified copy went.
          const rel = await readJson<ReleasedRecord>(releasedPath(id));
          if (rel && rel.target === target && typeof rel.sha256 === 'string' && typeof rel.bytes === 'number' && store.keyFromUrl(rel.url) !== null) {
            const relKey = store.keyFromUrl(rel.url)!;
            const head = await store.head(relKey);
            if (!head || head.sha256 !== rel.sha256 || head.bytes !== rel.bytes) {
              throw ApplicationFailure.nonRetryable(`the verified copy ${rel.url} this host released '${id}' to is no longer there`, 'SourceMissing');
            }
            // The bytes, not just the metadata: the workflow is about to record this copy as verified.
            const re = await store.rehash(relKey, { signal, onProgress: progress('verify') });
            if (re.sha256 !== rel.sha256 || re.bytes !== rel.bytes) {
              throw ApplicationFailure.nonRetryable(`the copy ${rel.url} this host released '${id}' to now reads as sha256 ${re.sha256}; expected ${rel.sha256}`, 'ChecksumMismatch');
            }
            return { url: rel.url, sha256: rel.sha256, bytes: rel.bytes, at: head.at };
          }
          throw ApplicationFailure.nonRetryable(`workspace '${id}' has no local file on host '${cfg.hostId}' to store (${file})`, 'SourceMissing');
        }

        heartbeat(copyDetails('fold', 0, sizeForHeartbeat(file)));
        await replication.forget(id);
        foldLocalFile(id, file);
        faultPoint('storeLocal:after-fold');

        // The sha256 goes with the object (its metadata and its key), so it is known before the upload.
        const timer = startCopy(target === 'cold' ? 'freeze' : 'archive');
        const local = await hashFile(file, progress('hash'), { signal });
        const key = keyForCopy(id, local.sha256);
        const url = store.urlFor(key);
        const existing = await store.head(key);
        // Counted only when the bytes were uploaded now (not when an earlier attempt already did).
        let uploaded = false;
        if (!existing || existing.sha256 !== local.sha256 || existing.bytes !== local.bytes) {
          await store.put(file, key, { sha256: local.sha256, bytes: local.bytes, workspaceId: id }, { throttleBps, signal, onProgress: progress('copy') });
          uploaded = true;
        }
        faultPoint('storeLocal:after-upload');
        const head = await store.head(key);
        if (!head || head.sha256 !== local.sha256 || head.bytes !== local.bytes) {
          throw ApplicationFailure.nonRetryable(`stored copy ${url} has no matching metadata after the upload`, 'VerifyFailed');
        }
        try {
          await verifyRestorable(store, key, local, signal);
        } catch (err) {
          // An unverifiable object must not be mistaken for a good copy later: remove it (it is content-addressed,
          // so nothing else refers to it). The local file stays where it is.
          if (err instanceof ApplicationFailure && err.type === 'VerifyFailed') await store.delete(key).catch(() => undefined);
          throw err;
        }
        faultPoint('storeLocal:after-verify');
        const copy: StoredCopy = { url, sha256: local.sha256, bytes: local.bytes, at: head.at };
        if (uploaded) timer.done(local.bytes);

        // Verified: record the release first, then let the local copy go.
        const record: ReleasedRecord = { target, url, sha256: copy.sha256, bytes: copy.bytes, at: copy.at };
        await writeFileAtomic(releasedPath(id), JSON.stringify(record) + '\n');
        faultPoint('storeLocal:after-release-record');
        await rmAll([...withJournals(file), activeMarkerPath(cfg, id), verifiedPath(id), placementPath(cfg, id)]);
        await fsyncDir(live);
        faultPoint('storeLocal:after-delete-local');
        return copy;
      } catch (err) {
        if (isAbort(err, signal)) throw err;
        throw mapStoreError(err, `store '${id}' to ${target}`);
      }
    },

    async restoreLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const checked = checkStoredCopy(inp.copy, id);
      refuseIfOpen(id);
      try {
        await restoreStored(id, checked, 'restoreLocal');
        return await result(id);
      } catch (err) {
        if (isAbort(err, cancellationSignal())) throw err;
        throw mapStoreError(err, `restore '${id}' from ${checked.copy.url}`);
      }
    },

    async recoverLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const keep = checkKeep(inp.keep);
      const placement = checkPlacement(inp.placement);
      const sources = checkSources(inp.sources, id, keep !== null);
      const skipped: string[] = [];
      // The newest data may be right here: the file of the last placement, on the host that held it. It is kept,
      // never replaced by an older source.
      const local = await newestLocalFile(id, keep);
      if (local && 'placement' in local) {
        if (placement !== undefined) instances.recordPlacement(id, placement);
        return { ...(await result(id)), used: { kind: 'local', placement: local.placement }, skipped };
      }
      if (local) skipped.push(local.problem);
      // Anything else open here is a stale instance of an earlier placement: closed, and its file set aside. A
      // workflow that names no last placement (state carried by an older build) cannot say so: refused.
      if (instances.isOpen(id) && !keep) refuseIfOpen(id);
      if (instances.isOpen(id)) {
        await replication.forget(id);
        instances.close(id, { checkpoint: false });
        ctx.fence?.forget(id);
        if (exists(liveFile(cfg, id))) {
          const movedTo = setAside(cfg, id);
          skipped.push(`a stale open copy here was set aside (${path.basename(movedTo ?? '')})`);
        }
      }
      if (sources.length === 0) {
        throw ApplicationFailure.nonRetryable(
          `no source could restore '${id}': its newest file is on host '${keep?.host ?? '?'}' (placement ${keep?.placement ?? '?'}), not here${skipped.length ? `; ${skipped.join('; ')}` : ''}`,
          'NoUsableSource',
        );
      }
      const signal = cancellationSignal();
      const done = async (source: RecoverySource) => {
        if (placement !== undefined) instances.recordPlacement(id, placement);
        return { ...(await result(id)), used: source, skipped };
      };
      for (const source of sources) {
        try {
          if (source.kind === 'stored') {
            await restoreStored(id, checkStoredCopy(source.copy, id), 'recoverLocal');
          } else {
            await restoreFromReplica(id, source.replicaUrl, signal);
          }
          return await done(source);
        } catch (err) {
          if (isAbort(err, signal)) throw err;
          const mapped = mapStoreError(err, source.kind === 'stored' ? `stored copy ${source.copy.url}` : `replica ${source.replicaUrl}`);
          // Errors that another source can get around are skipped. Others (a replica store briefly unreachable,
          // this host's disk) are retried first: falling back to an older source too eagerly would lose the
          // newest writes. From the third attempt on, a source that still fails is skipped.
          if (mapped instanceof ApplicationFailure && mapped.nonRetryable) {
            skipped.push(mapped.message);
            continue;
          }
          if ((activityContext()?.info.attempt ?? 1) >= 3) {
            skipped.push(`${source.kind === 'stored' ? `stored copy ${source.copy.url}` : `replica ${source.replicaUrl}`}: ${(err as Error).message}`);
            continue;
          }
          throw mapped;
        }
      }
      throw ApplicationFailure.nonRetryable(`no source could restore '${id}': ${skipped.join('; ')}`, 'NoUsableSource');
    },

    async removeLocal(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const file = liveFile(cfg, id);
      try {
        instances.close(id, { checkpoint: replication.current(id) === null });
      } catch {
        // a broken file is still removed
      }
      await replication.forget(id);
      const removed = await rmAll(withJournals(file));
      faultPoint('removeLocal:after-remove-file');
      await rmAll([activeMarkerPath(cfg, id), verifiedPath(id), releasedPath(id), placementPath(cfg, id)]);
      ctx.fence?.forget(id);
      // Temporaries of copies of this workspace that never finished.
      const prefix = `.${path.basename(file)}.`;
      const temps = (await fs.promises.readdir(live).catch(() => [] as string[])).filter((n) => n.startsWith(prefix) && n.includes('.partial'));
      await rmAll(temps.map((n) => path.join(live, n)));
      if (exists(live)) await fsyncDir(live);
      return { removed };
    },
  };
}
