/**
 * One Litestream 0.5 daemon per host replicating every active workspace file (a process per workspace does not
 * scale to thousands). Databases are registered and unregistered at run time through the daemon's control socket
 * (HTTP over a Unix socket: POST /register, /unregister, /sync, GET /list, /info — what `litestream register
 * -socket …` and friends send), so no command line ever carries a replica URL or a credential.
 *
 * Facts about Litestream 0.5.17 this relies on (checked against the binary):
 * - The daemon starts fine with no databases configured (it logs "no databases specified in configuration" at
 *   ERROR level and keeps serving the socket).
 * - A registered database is synced every second: the config's global `sync-interval` does not apply to databases
 *   registered at run time, so there is no sync-interval option here.
 * - `register` of a database that is already registered answers `already_registered` and keeps the old replica
 *   URL; the daemon's list does not show URLs. This class therefore keeps the registry (db → canonical URL) itself,
 *   in memory and in `<stateDir>/registry.json`, so a restarted daemon or a restarted worker can re-register.
 * - `register` accepts a path that does not exist; this class refuses that.
 * - Local state lives next to each database in `.<name>-litestream/`; Litestream adds the tables
 *   `_litestream_seq` and `_litestream_lock` to the database itself.
 * - Unregistering closes Litestream's connection without checkpointing: the -wal file (committed, replicated
 *   transactions) stays next to the database. Fold it (open, `wal_checkpoint(TRUNCATE)`, close) before handling
 *   the database file alone.
 */
import { ChildProcess, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Agent, errors as undiciErrors, request } from 'undici';
import { litestreamBinary } from './cli';
import { ReplicationError } from './errors';
import { alive } from '../process-alive';
import { ParsedReplica, checkDbPath, checkDuration, litestreamEnv, litestreamUrl, localStateDir, parseReplicaUrl } from './urls';
import { databaseErrorOf } from './daemon-log';
import { parseListAnswer } from './daemon-list';
import type { DatabaseReplication } from './health';

export interface ReplicatorOptions {
  /** Where the daemon's config, socket, pid file, log and the registry live (e.g. `<dataDir>/litestream`). Absolute. */
  stateDir: string;
  /** The litestream binary (default: resolveBinary('litestream')). */
  binary?: string;
  /** Environment of the daemon (default process.env); S3 settings and credentials come only from here. */
  env?: NodeJS.ProcessEnv;
  /**
   * How far back point-in-time restore reaches at least, default '24h' (Litestream `snapshot.interval` = this,
   * `snapshot.retention` = twice this; applies to databases registered at run time).
   */
  retention?: string;
  /** Bound on the final sync of all databases when the daemon is stopped (`shutdown-sync-timeout`), default '30s'. */
  shutdownSyncTimeout?: string;
  /**
   * Re-register what `<stateDir>/registry.json` lists from a previous run (a worker restarted while workspaces
   * were active), default true. Entries whose database file is gone are dropped. False starts with an empty registry.
   */
  reregister?: boolean;
  /** Receives the daemon's log lines and this class's notes (never credentials). */
  log?: (line: string) => void;
}

export interface Registration {
  dbPath: string;
  replicaUrl: string;
}

interface Reg extends DatabaseReplication {
  dbPath: string;
  replica: ParsedReplica;
}

/** One replicated database as status() reports it. */
export interface DatabaseStatus extends DatabaseReplication {
  dbPath: string;
  replicaUrl: string;
}

/** What the daemon said about every registered database (see status()). */
export interface ReplicatorStatus {
  /** When the daemon was asked (epoch ms). */
  checkedAtMs: number;
  /** Why the daemon could not be asked (it is restarting, hung or gone), or null when it answered. */
  daemonError: string | null;
  /**
   * Replication failures seen since this Replicator started: failures the daemon logged for a database (see
   * daemon-log.ts) and status requests it did not answer. Only grows.
   */
  errorsTotal: number;
  databases: DatabaseStatus[];
}

/** The control socket could not be reached or the connection broke (the daemon is gone or restarting). */
class ConnectionError extends ReplicationError {}

/** The daemon answered with an error status. */
class DaemonError extends ReplicationError {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

const REGISTRY_VERSION = 1;
const MAX_CONCURRENT_REQUESTS = 16;
const START_TIMEOUT_MS = 15_000;
const inUse = new Set<string>();

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function durationMs(d: string): number {
  let ms = 0;
  for (const [, n, unit] of d.matchAll(/(\d+)(ms|s|m|h)/g)) ms += Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  return ms;
}

function isLitestreamDaemon(pid: number): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.some((a) => path.basename(a) === 'litestream') && argv.includes('replicate');
  } catch {
    return false;
  }
}

export class Replicator {
  private child: ChildProcess | null = null;
  private readyPromise: Promise<void> = Promise.resolve();
  private regs = new Map<string, Reg>();
  /** Registered databases by file name (how the daemon's log names them). */
  private byBase = new Map<string, Set<string>>();
  private locks = new Map<string, Promise<unknown>>();
  /** The control socket's HTTP client: at most MAX_CONCURRENT_REQUESTS connections, further requests queue. */
  private readonly control: Agent;
  private stopping = false;
  private stopped = false;
  private restarts = 0;
  private lastStartAt = 0;
  private logStream: fs.WriteStream | null = null;
  private recentLog: string[] = [];
  private errorsTotal = 0;

  private constructor(
    private readonly stateDir: string,
    private readonly binary: string,
    private readonly env: NodeJS.ProcessEnv,
    private readonly socketPath: string,
    private readonly shutdownMs: number,
    private readonly logFn: ((line: string) => void) | undefined,
  ) {
    this.control = new Agent({ connect: { socketPath }, connections: MAX_CONCURRENT_REQUESTS });
  }

  /**
   * Starts the host's daemon (`litestream replicate -config <stateDir>/litestream.yml`) and resolves once its
   * control socket answers. A daemon left running by a previous process for the same stateDir is stopped first
   * (SIGTERM: it flushes what it replicated), then what that process had registered is registered again.
   */
  static async start(opts: ReplicatorOptions): Promise<Replicator> {
    if (typeof opts !== 'object' || opts === null) throw new ReplicationError('Replicator.start needs an options object');
    const stateDir = checkDbPath(opts.stateDir, 'stateDir');
    const env = opts.env ?? process.env;
    const binary = litestreamBinary(opts.binary, env);
    const retention = checkDuration(opts.retention ?? '24h', 'retention');
    const shutdownSyncTimeout = checkDuration(opts.shutdownSyncTimeout ?? '30s', 'shutdownSyncTimeout');
    if (opts.log !== undefined && typeof opts.log !== 'function') throw new ReplicationError('log must be a function');
    if (inUse.has(stateDir)) throw new ReplicationError(`a Replicator for ${stateDir} is already running in this process`);
    inUse.add(stateDir);
    let started: Replicator | undefined;
    try {
      fs.mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      // Unix socket paths are limited to ~107 bytes; a deep stateDir gets its socket in the temp dir instead.
      let socketPath = path.join(stateDir, 'litestream.sock');
      if (Buffer.byteLength(socketPath) > 100) {
        socketPath = path.join(os.tmpdir(), `workbooks-litestream-${crypto.createHash('sha256').update(stateDir).digest('hex').slice(0, 16)}.sock`);
      }
      const r = new Replicator(stateDir, binary, env, socketPath, durationMs(shutdownSyncTimeout) + 10_000, opts.log);
      started = r;
      r.openLog();
      await r.stopStaleDaemon();
      r.writeConfig(retention, shutdownSyncTimeout);
      await r.spawnDaemon();
      const saved = opts.reregister === false ? [] : Replicator.savedRegistrations(stateDir);
      await r.reregister(saved, 'from the previous run');
      r.saveRegistry();
      return r;
    } catch (err) {
      await started?.stop().catch(() => undefined);
      inUse.delete(stateDir);
      throw err;
    }
  }

  /** What `<stateDir>/registry.json` lists (what a previous run had registered); [] if nothing. */
  static savedRegistrations(stateDir: string): Registration[] {
    let raw: string;
    try {
      raw = fs.readFileSync(path.join(checkDbPath(stateDir, 'stateDir'), 'registry.json'), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    try {
      const data = JSON.parse(raw) as { version?: unknown; dbs?: unknown };
      if (data.version !== REGISTRY_VERSION || !Array.isArray(data.dbs)) return [];
      return (data.dbs as Registration[]).filter((d) => d && typeof d.dbPath === 'string' && typeof d.replicaUrl === 'string');
    } catch {
      return [];
    }
  }

  /**
   * Starts replicating `dbPath` (an existing SQLite file; Litestream switches it to WAL) to `replicaUrl`
   * (file:///dir or s3://bucket/prefix). Idempotent for the same URL; a database replicated to another URL must be
   * unregistered first. After the file at `dbPath` was replaced (restore, import, copy), call resetLocalState first.
   */
  async register(dbPath: string, replicaUrl: string): Promise<void> {
    const db = checkDbPath(dbPath);
    const replica = parseReplicaUrl(replicaUrl);
    litestreamUrl(replica, this.env); // S3 settings problems surface here, before anything changes
    return this.withDb(db, async () => {
      this.checkNotStopped();
      let st: fs.Stats;
      try {
        st = fs.statSync(db);
      } catch {
        throw new ReplicationError(`cannot replicate ${db}: no such file`);
      }
      if (!st.isFile()) throw new ReplicationError(`cannot replicate ${db}: not a regular file`);
      const existing = this.regs.get(db);
      if (existing && existing.replica.url !== replica.url) {
        throw new ReplicationError(`${db} is already replicated to ${existing.replica.url}; unregister it before replicating it to ${replica.url}`);
      }
      await this.whenReady();
      const status = await this.daemonRegister(db, replica);
      if (status === 'already_registered' && !existing) {
        // Registered by someone else (or left over) with a URL we do not know: make it ours.
        await this.call('POST', '/unregister', { path: db, timeout: 30 }, 40_000);
        await this.daemonRegister(db, replica);
      }
      this.setReg(db, existing ?? { dbPath: db, replica, registeredAtMs: Date.now(), lastSyncAtMs: null, lastError: null });
      this.saveRegistry();
    });
  }

  /**
   * Resolves once every write committed before the call is on the replica (`sync -wait`). Throws if `dbPath` is
   * not registered, or if the replica is not reachable within `timeoutMs` (default 30 s).
   */
  async sync(dbPath: string, timeoutMs = 30_000): Promise<{ txid: number }> {
    const db = checkDbPath(dbPath);
    if (!Number.isFinite(timeoutMs) || timeoutMs < 1000) throw new ReplicationError('timeoutMs must be at least 1000');
    return this.withDb(db, () => this.syncLocked(db, timeoutMs));
  }

  /**
   * Flushes every committed write to the replica, then stops replicating `dbPath` (Litestream closes its
   * connection to the file). Resolves false when it was not registered (idempotent). If the final sync fails the
   * database stays registered and the error is thrown: retry, or its last writes may be missing from the replica.
   */
  async unregister(dbPath: string, timeoutMs = 30_000): Promise<boolean> {
    const db = checkDbPath(dbPath);
    if (!Number.isFinite(timeoutMs) || timeoutMs < 1000) throw new ReplicationError('timeoutMs must be at least 1000');
    return this.withDb(db, () => this.unregisterLocked(db, timeoutMs));
  }

  /**
   * Forgets Litestream's local state for `dbPath` (its `.<name>-litestream/` directory), unregistering it first
   * if needed. Required after the file at `dbPath` was replaced or is about to be: the next registration then
   * starts from a full snapshot of the file as it is instead of trusting state that belonged to the old file.
   */
  async resetLocalState(dbPath: string, timeoutMs = 30_000): Promise<void> {
    const db = checkDbPath(dbPath);
    return this.withDb(db, async () => {
      if (this.regs.has(db)) await this.unregisterLocked(db, timeoutMs);
      await fs.promises.rm(localStateDir(db), { recursive: true, force: true });
    });
  }

  /** What is being replicated, and where to (canonical URLs), by database path. */
  async registered(): Promise<Registration[]> {
    return [...this.regs.values()].map((r) => ({ dbPath: r.dbPath, replicaUrl: r.replica.url })).sort((a, b) => (a.dbPath < b.dbPath ? -1 : 1));
  }

  /** The replica URL `dbPath` is replicated to, or null. */
  replicaUrlOf(dbPath: string): string | null {
    return this.regs.get(dbPath)?.replica.url ?? null;
  }

  /**
   * Asks the daemon (`GET /list`, one request for all databases) when it last synced each registered database,
   * and reports every registered database with what is known of it: when it was registered, its newest
   * successful sync (kept across daemon restarts: a restarted daemon knows none until its first), and the newest
   * failure the daemon logged for it. Never throws: a daemon that does not answer within `timeoutMs` is reported
   * in `daemonError` (and counted as a failure).
   */
  async status(timeoutMs = 5000): Promise<ReplicatorStatus> {
    const checkedAtMs = Date.now();
    let daemonError: string | null = null;
    try {
      if (this.stopping || this.stopped) throw new ReplicationError('the replicator is stopped');
      if (!this.child) throw new ReplicationError('the Litestream daemon is not running (it is being restarted)');
      const listed = parseListAnswer(await this.rawCall('GET', '/list', undefined, timeoutMs));
      const byPath = new Map(listed.map((d) => [d.path, d]));
      for (const reg of this.regs.values()) {
        const t = byPath.get(reg.dbPath)?.lastSyncAtMs ?? null;
        if (t !== null && (reg.lastSyncAtMs === null || t > reg.lastSyncAtMs)) reg.lastSyncAtMs = t;
      }
    } catch (err) {
      daemonError = `the Litestream daemon did not report on its databases: ${(err as Error).message}`;
      this.errorsTotal += 1;
    }
    const databases = [...this.regs.values()].map((r) => ({
      dbPath: r.dbPath,
      replicaUrl: r.replica.url,
      registeredAtMs: r.registeredAtMs,
      lastSyncAtMs: r.lastSyncAtMs,
      lastError: r.lastError && { ...r.lastError },
    }));
    return { checkedAtMs, daemonError, errorsTotal: this.errorsTotal, databases };
  }

  /** The daemon's process id (null while it is being restarted or after stop). */
  pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Resolves when the daemon is up (after a restart, once everything is registered again). */
  async ready(timeoutMs = START_TIMEOUT_MS * 2): Promise<void> {
    await this.whenReady(timeoutMs);
  }

  /**
   * Stops the daemon: SIGTERM makes it sync every database one last time (bounded by shutdownSyncTimeout), then
   * it exits. The registry file stays, so the next start re-registers the same databases.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopping = true;
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => {
        this.note(`daemon did not exit within ${this.shutdownMs} ms of SIGTERM; killing it`);
        child.kill('SIGKILL');
      }, this.shutdownMs);
      await exited;
      clearTimeout(t);
    }
    this.child = null;
    fs.rmSync(path.join(this.stateDir, 'litestream.pid'), { force: true });
    this.stopped = true;
    inUse.delete(this.stateDir);
    await this.control.close().catch(() => undefined);
    await new Promise<void>((r) => (this.logStream ? this.logStream.end(() => r()) : r()));
    this.logStream = null;
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────────────────

  private checkNotStopped(): void {
    if (this.stopping || this.stopped) throw new ReplicationError('the replicator is stopped');
  }

  private async syncLocked(db: string, timeoutMs: number): Promise<{ txid: number }> {
    this.checkNotStopped();
    if (!this.regs.has(db)) throw new ReplicationError(`cannot sync ${db}: it is not registered for replication`);
    await this.whenReady();
    const body = { path: db, wait: true, timeout: Math.ceil(timeoutMs / 1000) };
    let res: Record<string, unknown>;
    try {
      res = await this.call('POST', '/sync', body, timeoutMs + 5000);
    } catch (err) {
      if (!(err instanceof DaemonError && err.status === 404)) throw err;
      // The daemon lost it (unregistered behind our back): register it again; Litestream resumes from its local
      // state and ships what is missing.
      this.note(`${db} was no longer registered with the daemon; registering it again`);
      await this.daemonRegister(db, this.regs.get(db)!.replica);
      res = await this.call('POST', '/sync', body, timeoutMs + 5000);
    }
    const txid = Number(res.txid ?? 0);
    const replicated = Number(res.replicated_txid ?? txid);
    if (replicated < txid) throw new ReplicationError(`sync of ${db} incomplete: local txid ${txid}, replicated ${replicated}`);
    return { txid };
  }

  private async unregisterLocked(db: string, timeoutMs: number): Promise<boolean> {
    this.checkNotStopped();
    await this.whenReady();
    const reg = this.regs.get(db);
    if (!reg) {
      // Not ours; make sure the daemon does not replicate it either (idempotent on the daemon's side).
      await this.call('POST', '/unregister', { path: db, timeout: Math.ceil(timeoutMs / 1000) }, timeoutMs + 5000);
      return false;
    }
    await this.syncLocked(db, timeoutMs);
    try {
      await this.call('POST', '/unregister', { path: db, timeout: Math.ceil(timeoutMs / 1000) }, timeoutMs + 5000);
    } catch (err) {
      const still = await this.listed(db).catch(() => true);
      if (still) throw err;
      // Gone from the daemon although it reported an error while closing; everything committed before the call
      // was flushed by the sync above.
      this.note(`unregister ${db}: ${(err as Error).message} (it is no longer replicated; the final sync before it succeeded)`);
    }
    this.deleteReg(db);
    this.saveRegistry();
    return true;
  }

  private async listed(db: string): Promise<boolean> {
    const res = await this.call('GET', '/list', undefined, 10_000);
    const dbs = Array.isArray(res.databases) ? (res.databases as { path?: unknown }[]) : [];
    return dbs.some((d) => d.path === db);
  }

  private async daemonRegister(db: string, replica: ParsedReplica, retry = true): Promise<string> {
    const res = await this.call('POST', '/register', { path: db, replica_url: litestreamUrl(replica, this.env) }, 40_000, retry);
    return String(res.status ?? '');
  }

  /** Serializes the operations on one database (register / sync / unregister never interleave). */
  private withDb<T>(db: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(db) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(db, tail);
    void tail.then(() => {
      if (this.locks.get(db) === tail) this.locks.delete(db);
    });
    return next;
  }

  private async whenReady(timeoutMs = START_TIMEOUT_MS * 2): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.readyPromise,
        new Promise<never>((_, reject) => {
          t = setTimeout(() => reject(new ReplicationError(`the Litestream daemon is not available (restarting for more than ${timeoutMs} ms)${this.lastLines()}`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(t);
    }
    this.checkNotStopped();
  }

  /**
   * One JSON request on the control socket; non-2xx answers become ReplicationErrors with the daemon's message.
   * With `retry` (every request but the re-registration after a restart, which readiness waits for), a request
   * that lost its connection because the daemon died is sent again once the daemon is back (all are idempotent).
   */
  private async call(method: 'GET' | 'POST', urlPath: string, body: unknown, timeoutMs: number, retry = true): Promise<Record<string, unknown>> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.rawCall(method, urlPath, body, timeoutMs);
      } catch (err) {
        if (!retry || attempt >= 3 || this.stopping || !(err instanceof ConnectionError)) throw err;
      }
      await sleep(200); // the exit event of a killed daemon may still be on its way
      await this.whenReady();
    }
  }

  private async rawCall(method: 'GET' | 'POST', urlPath: string, body: unknown, timeoutMs: number): Promise<Record<string, unknown>> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    let status: number;
    let text: string;
    try {
      const res = await request(`http://litestream${urlPath}`, {
        method,
        body: payload,
        headers: payload ? { 'content-type': 'application/json' } : {},
        dispatcher: this.control,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
        throw new ReplicationError(`litestream ${urlPath.slice(1)}: no answer within ${timeoutMs} ms`);
      }
      throw new ConnectionError(`litestream control socket ${this.socketPath}: ${(err as Error).message}`);
    }
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      json = { error: text.trim().slice(0, 500) };
    }
    if (status >= 200 && status < 300) return json;
    const what = (body as { path?: string } | undefined)?.path;
    throw new DaemonError(`litestream ${urlPath.slice(1)}${what ? ` ${what}` : ''}: ${String(json.error ?? `HTTP ${status}`)}`, status);
  }

  private configPath(): string {
    return path.join(this.stateDir, 'litestream.yml');
  }

  private writeConfig(retention: string, shutdownSyncTimeout: string): void {
    const yaml = [
      '# Written by workbooks (src/replication/replicator.ts) at every start; edits are overwritten.',
      '# Databases are registered at run time over the control socket; credentials come from the environment.',
      'socket:',
      '  enabled: true',
      `  path: ${JSON.stringify(this.socketPath)}`,
      // A snapshot every `retention`, each kept for twice that: the oldest kept snapshot (where a point-in-time
      // restore starts) is then always between `retention` and 2 × `retention` old. Litestream drops a snapshot
      // (and the changes before it) once it is older than its retention, so interval = retention would leave
      // moments with no reach back at all.
      'snapshot:',
      `  interval: ${retention}`,
      `  retention: ${Math.round((durationMs(retention) * 2) / 1000)}s`,
      `shutdown-sync-timeout: ${shutdownSyncTimeout}`,
      'logging:',
      '  level: info',
      '  type: text',
      '',
    ].join('\n');
    const tmp = `${this.configPath()}.tmp`;
    fs.writeFileSync(tmp, yaml, { mode: 0o600 });
    fs.renameSync(tmp, this.configPath());
  }

  private openLog(): void {
    const file = path.join(this.stateDir, 'litestream.log');
    try {
      if (fs.statSync(file).size > 20 * 1024 * 1024) fs.renameSync(file, `${file}.1`);
    } catch {
      // no log yet
    }
    this.logStream = fs.createWriteStream(file, { flags: 'a' });
    this.logStream.on('error', () => undefined);
  }

  private note(line: string): void {
    this.record(`workbooks: ${line}`);
  }

  private record(line: string): void {
    this.recentLog.push(line);
    if (this.recentLog.length > 20) this.recentLog.shift();
    this.logStream?.write(`${line}\n`);
    this.logFn?.(line);
  }

  /** A daemon log line that reports a failure for a database: remembered on that database and counted. */
  private noteDatabaseError(line: string): void {
    const e = databaseErrorOf(line);
    if (!e) return;
    this.errorsTotal += 1;
    // Litestream names the database by its file name; our databases of one host share a directory.
    const atMs = e.atMs ?? Date.now();
    for (const db of this.byBase.get(path.basename(e.db)) ?? []) {
      const reg = this.regs.get(db);
      if (reg && (!reg.lastError || reg.lastError.atMs <= atMs)) reg.lastError = { atMs, message: e.message };
    }
  }

  private setReg(db: string, reg: Reg): void {
    this.regs.set(db, reg);
    const base = path.basename(db);
    const same = this.byBase.get(base) ?? new Set<string>();
    same.add(db);
    this.byBase.set(base, same);
  }

  private deleteReg(db: string): void {
    this.regs.delete(db);
    const base = path.basename(db);
    const same = this.byBase.get(base);
    same?.delete(db);
    if (same && same.size === 0) this.byBase.delete(base);
  }

  private lastLines(): string {
    const lines = this.recentLog.filter((l) => /level=(ERROR|WARN)|workbooks:/.test(l)).slice(-3);
    return lines.length ? `; last log lines: ${lines.join(' | ')}` : '';
  }

  /** Stops a daemon that a previous process left running for this stateDir (pid file, or whoever owns the socket). */
  private async stopStaleDaemon(): Promise<void> {
    const pids = new Set<number>();
    const pidFile = path.join(this.stateDir, 'litestream.pid');
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 1) pids.add(pid);
    } catch {
      // none
    }
    if (fs.existsSync(this.socketPath)) {
      try {
        const info = await this.rawCall('GET', '/info', undefined, 2000);
        if (Number.isInteger(info.pid)) pids.add(info.pid as number);
      } catch {
        // nobody answers: a socket file left behind, the new daemon replaces it
      }
    }
    for (const pid of pids) {
      if (pid === process.pid || !alive(pid) || !isLitestreamDaemon(pid)) continue;
      this.note(`stopping the Litestream daemon (pid ${pid}) a previous run left behind`);
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        continue;
      }
      const deadline = Date.now() + this.shutdownMs;
      while (alive(pid) && Date.now() < deadline) await sleep(50);
      if (alive(pid)) {
        this.note(`daemon ${pid} did not exit after SIGTERM; killing it`);
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
        while (alive(pid)) await sleep(20);
      }
    }
    fs.rmSync(pidFile, { force: true });
  }

  private spawnDaemon(): Promise<void> {
    const p = this.startOnce();
    this.readyPromise = p.catch(() => undefined);
    return p;
  }

  private async startOnce(): Promise<void> {
    const child = spawn(this.binary, ['replicate', '-no-expand-env', '-config', this.configPath()], {
      env: litestreamEnv(this.env),
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a terminal's Ctrl-C reaches the worker, which stops the daemon after its instances.
      detached: true,
    });
    this.child = child;
    this.lastStartAt = Date.now();
    for (const stream of [child.stdout!, child.stderr!]) {
      let buf = '';
      stream.on('data', (d: Buffer) => {
        buf += d.toString();
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).trimEnd();
          buf = buf.slice(i + 1);
          if (line) {
            this.record(`litestream: ${line}`);
            this.noteDatabaseError(line);
          }
        }
      });
    }
    let spawnError: Error | null = null;
    child.once('error', (err) => {
      spawnError = err;
    });
    // Only a daemon that came up and then died is restarted from here; a failed start is the starter's business.
    let up = false;
    child.once('exit', (code, signal) => {
      if (this.child === child) this.child = null;
      if (!up || this.stopping) return;
      this.note(`daemon (pid ${child.pid}) exited unexpectedly (${signal ?? `code ${code}`}); restarting it`);
      this.restartLoop();
    });
    if (child.pid) fs.writeFileSync(path.join(this.stateDir, 'litestream.pid'), `${child.pid}\n`);
    const deadline = Date.now() + START_TIMEOUT_MS;
    for (;;) {
      if (spawnError) throw new ReplicationError(`cannot start ${this.binary}: ${(spawnError as Error).message}`);
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new ReplicationError(`the Litestream daemon exited at start (${child.signalCode ?? `code ${child.exitCode}`})${this.lastLines()}`);
      }
      try {
        const info = await this.rawCall('GET', '/info', undefined, 1000);
        if (info.pid === child.pid) {
          up = true;
          return;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new ReplicationError(`the Litestream daemon did not answer on ${this.socketPath} within ${START_TIMEOUT_MS} ms${this.lastLines()}`);
      }
      await sleep(25);
    }
  }

  /** Restarts the daemon (with backoff) until it is up again, then re-registers everything. */
  private restartLoop(): void {
    this.readyPromise = (async () => {
      for (;;) {
        if (this.stopping) return;
        // Back off when it keeps dying; a daemon that ran for a minute counts as healthy again.
        if (Date.now() - this.lastStartAt > 60_000) this.restarts = 0;
        const delay = Math.min(5000, 100 * 2 ** this.restarts);
        this.restarts += 1;
        await sleep(delay);
        if (this.stopping) return;
        try {
          await this.startOnce();
          await this.reregister(
            [...this.regs.values()].map((r) => ({ dbPath: r.dbPath, replicaUrl: r.replica.url })),
            'after the daemon restarted',
          );
          this.saveRegistry();
          this.note(`daemon restarted (pid ${this.child?.pid}); ${this.regs.size} database(s) registered again`);
          return;
        } catch (err) {
          this.note(`restarting the daemon failed: ${(err as Error).message}`);
          if (this.child) this.child.kill('SIGKILL');
        }
      }
    })();
  }

  /** Registers saved entries directly (no per-db locks: callers wait for readiness, which this precedes). */
  private async reregister(entries: Registration[], why: string): Promise<void> {
    const keep = new Map<string, Reg>();
    let next = 0;
    const worker = async () => {
      while (next < entries.length) {
        const e = entries[next++]!;
        try {
          const db = checkDbPath(e.dbPath);
          const replica = parseReplicaUrl(e.replicaUrl);
          if (!fs.existsSync(db)) {
            this.note(`not re-registering ${db} ${why}: the file is gone`);
            continue;
          }
          await this.daemonRegister(db, replica, false);
          const old = this.regs.get(db);
          keep.set(db, old && old.replica.url === replica.url ? old : { dbPath: db, replica, registeredAtMs: Date.now(), lastSyncAtMs: null, lastError: null });
        } catch (err) {
          this.note(`cannot re-register ${e.dbPath} ${why}: ${(err as Error).message}`);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, entries.length) }, worker));
    // Registrations made meanwhile (after a restart) stay; entries that failed are forgotten.
    for (const e of entries) if (!keep.has(e.dbPath)) this.deleteReg(e.dbPath);
    for (const [db, reg] of keep) this.setReg(db, reg);
  }

  private saveRegistry(): void {
    const file = path.join(this.stateDir, 'registry.json');
    const data = { version: REGISTRY_VERSION, dbs: [...this.regs.values()].map((r) => ({ dbPath: r.dbPath, replicaUrl: r.replica.url })) };
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, `${JSON.stringify(data, null, 1)}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
}
