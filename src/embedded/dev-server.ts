import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { SEARCH_ATTRIBUTE_KEYS } from '../contract/search-attributes';
import { resolveBinary } from '../tools';
import { childEnv } from '../child-env';

export interface DevServerOptions {
  /** The host's data dir; the server keeps its state in `<dataDir>/temporal/temporal.db`. */
  dataDir: string;
  /** Address the frontend (and UI) bind to; default 127.0.0.1. */
  ip?: string;
  /** Frontend gRPC port. */
  port: number;
  /** Web UI port (ignored when headless). */
  uiPort: number;
  headless?: boolean;
  /**
   * Extra `temporal server start-dev` arguments, e.g. `['--dynamic-config-value', 'K=V']`. Any `--sqlite-pragma`
   * among them replaces ours (SQLITE_PRAGMAS).
   */
  extraArgs?: string[];
  /** Where the server's stdout/stderr go (appended); default `<dataDir>/temporal/server.log`. */
  logFile?: string;
  /** Namespace to create and check search attributes in; default "default". */
  namespace?: string;
  /** How long to wait for the frontend and search attributes; default 60 s. */
  startTimeoutMs?: number;
}

export interface DevServer {
  /** host:port for clients and workers. */
  address: string;
  /** Web UI URL, or null when headless. */
  uiUrl: string | null;
  pid: number;
  logFile: string;
  /** SIGTERM, then SIGKILL after 10 s; resolves once the process has exited. Idempotent. */
  stop(): Promise<void>;
}

const STOP_GRACE_MS = 10_000;

/**
 * The database in WAL mode, the WAL fsynced at every commit (synchronous=FULL): the server's writes no longer wait
 * on a rollback journal's extra fsyncs per transaction, readers do not block the writer, and a committed (so
 * acknowledged) write survives a crash of the server or of the machine. An existing database in the rollback
 * journal switches on its next start; `temporal.db-wal` and `temporal.db-shm` belong to it from then on (copy or
 * remove the three files together, with the server stopped). Measured: docs/BENCHMARKS.md, record "worker-options".
 * busy_timeout=5000: `workbooks up` replicates the database with Litestream (src/embedded/control-plane-replica.ts),
 * which takes the write lock briefly for its checkpoints; the server waits for it instead of failing with
 * SQLITE_BUSY (Litestream's own advice; the Temporal SQLite plugin passes any pragma through).
 */
export const SQLITE_PRAGMAS = ['journal_mode=wal', 'synchronous=full', 'busy_timeout=5000'] as const;
const TAIL_LINES = 15;

/** Keyword type of the operator API (temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD). */
const INDEXED_VALUE_TYPE_KEYWORD = 2;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The embedded server's SQLite database (with `-wal` and `-shm` beside it): `<dataDir>/temporal/temporal.db`. */
export function temporalDbFile(dataDir: string): string {
  return path.join(path.resolve(dataDir), 'temporal', 'temporal.db');
}

/** Host part clients should dial for a bind address. */
function dialHost(ip: string): string {
  if (ip === '0.0.0.0' || ip === '') return '127.0.0.1';
  if (ip === '::') return '[::1]';
  if (ip.includes(':') && !ip.startsWith('[')) return `[${ip}]`;
  return ip;
}

/** The last lines the server wrote during this run, on one line. */
function logTail(logFile: string, fromOffset: number): string {
  try {
    const fd = fs.openSync(logFile, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const start = Math.max(fromOffset, size - 16_384);
      const buf = Buffer.alloc(Math.max(0, size - start));
      fs.readSync(fd, buf, 0, buf.length, start);
      const lines = buf
        .toString('utf8')
        // eslint-disable-next-line no-control-regex
        .replace(/\x1b\[[0-9;]*m/g, '')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l.length > 0);
      const tail = lines.slice(-TAIL_LINES).join(' | ');
      return tail.length > 2000 ? `…${tail.slice(-2000)}` : tail || '(empty log)';
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    return `(log unreadable: ${(err as Error).message})`;
  }
}

/**
 * A helper process that SIGTERMs (then SIGKILLs) the server when this process goes away by any means,
 * including SIGKILL: it blocks reading a pipe from us and acts on EOF.
 */
function spawnWatchdog(serverPid: number): ChildProcess | null {
  const script = [
    "trap '' INT HUP",
    'read _ignored',
    'kill -TERM "$1" 2>/dev/null || exit 0',
    'i=0',
    'while kill -0 "$1" 2>/dev/null && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done',
    'kill -KILL "$1" 2>/dev/null',
    'exit 0',
  ].join('\n');
  try {
    const w = spawn('/bin/sh', ['-c', script, 'workbooks-devserver-watchdog', String(serverPid)], {
      stdio: ['pipe', 'ignore', 'ignore'],
      detached: true,
      env: childEnv(process.env),
    });
    w.on('error', () => undefined);
    w.stdin?.on('error', () => undefined);
    w.unref();
    // The pipe must not keep our event loop alive either.
    (w.stdin as unknown as { unref?: () => void } | null)?.unref?.();
    return w;
  } catch {
    return null;
  }
}

/** Start `temporal server start-dev` on a persistent SQLite file and wait until it serves requests. */
export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const bin = resolveBinary('temporal');
  const ip = opts.ip ?? '127.0.0.1';
  const namespace = opts.namespace ?? 'default';
  const headless = opts.headless ?? false;
  const timeoutMs = opts.startTimeoutMs ?? 60_000;
  const dbFile = temporalDbFile(opts.dataDir);
  const temporalDir = path.dirname(dbFile);
  fs.mkdirSync(temporalDir, { recursive: true });
  const logFile = path.resolve(opts.logFile ?? path.join(temporalDir, 'server.log'));
  fs.mkdirSync(path.dirname(logFile), { recursive: true });

  const args = ['server', 'start-dev', '--db-filename', dbFile, '--ip', ip, '--port', String(opts.port)];
  args.push('--ui-port', String(opts.uiPort));
  if (headless) args.push('--headless');
  args.push('--namespace', namespace, '--log-level', 'warn');
  for (const key of SEARCH_ATTRIBUTE_KEYS) args.push('--search-attribute', `${key.name}=Keyword`);
  if (!(opts.extraArgs ?? []).includes('--sqlite-pragma')) for (const p of SQLITE_PRAGMAS) args.push('--sqlite-pragma', p);
  args.push(...(opts.extraArgs ?? []));

  // The CLI reads TEMPORAL_* variables (address, namespace, TLS, profile) as client settings; keep ours out.
  // Only what any program needs: not TEMPORAL_* (the server takes its settings from flags), no tokens or keys.
  const env = childEnv(process.env);

  const logFd = fs.openSync(logFile, 'a');
  let child: ChildProcess;
  let startOffset: number;
  try {
    fs.writeSync(logFd, `\n--- ${new Date().toISOString()} workbooks: ${bin} ${args.join(' ')}\n`);
    startOffset = fs.fstatSync(logFd).size;
    // Own process group: a Ctrl-C in the terminal reaches our process, which decides the shutdown order.
    child = spawn(bin, args, { stdio: ['ignore', logFd, logFd], env, detached: true });
  } finally {
    fs.closeSync(logFd);
  }

  let exited = child.exitCode !== null || child.signalCode !== null;
  let spawnError: Error | null = null;
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      resolve();
    });
    child.on('error', (err) => {
      spawnError ??= err;
      exited = true;
      resolve();
    });
  });
  child.unref();

  const pid = child.pid;
  const watchdog = pid !== undefined ? spawnWatchdog(pid) : null;
  const onParentExit = () => {
    if (!exited && pid !== undefined) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
    }
  };
  process.on('exit', onParentExit);
  const cleanupHooks = () => {
    process.removeListener('exit', onParentExit);
    if (watchdog && watchdog.exitCode === null && watchdog.signalCode === null) {
      try {
        watchdog.kill('SIGKILL');
      } catch {
        /* ignore */
      }
    }
  };
  void exitPromise.then(cleanupHooks);

  let stopping: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (!exited) {
        child.ref(); // keep the event loop alive until the exit is observed
        child.kill('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exitPromise.then(() => false),
          new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), STOP_GRACE_MS))),
        ]);
        clearTimeout(timer);
        if (timedOut && !exited) {
          child.kill('SIGKILL');
          await exitPromise;
        }
      }
      cleanupHooks();
    })();
    return stopping;
  };

  const address = `${dialHost(ip)}:${opts.port}`;
  const fail = async (what: string): Promise<never> => {
    const tail = logTail(logFile, startOffset); // before stop() appends shutdown noise
    await stop();
    throw new Error(`temporal dev server on ${address} ${what}; log ${logFile}: ${tail}`);
  };

  if (pid === undefined) {
    await exitPromise;
    return fail(`could not be spawned (${(spawnError as Error | null)?.message ?? 'no pid'})`);
  }

  const deadline = Date.now() + timeoutMs;
  // A taken port makes the server exit within milliseconds; notice that before dialing whatever holds the port.
  await Promise.race([sleep(300), exitPromise]);
  const wanted = SEARCH_ATTRIBUTE_KEYS.map((k) => k.name);
  let lastError = 'no answer yet';
  let addedSearchAttributes = false;
  for (;;) {
    if (exited) {
      return fail(`exited during startup (code ${child.exitCode ?? 'none'}, signal ${child.signalCode ?? 'none'})`);
    }
    if (Date.now() > deadline) return fail(`did not become ready within ${Math.round(timeoutMs / 1000)} s (${lastError})`);
    let connection: Connection | null = null;
    try {
      connection = await Connection.connect({ address, connectTimeout: Math.max(250, Math.min(2_000, deadline - Date.now())) });
      await connection.withDeadline(Date.now() + 5_000, () => connection!.workflowService.getSystemInfo({}));
      const sa = await connection.withDeadline(Date.now() + 5_000, () => connection!.operatorService.listSearchAttributes({ namespace }));
      const custom = sa.customAttributes ?? {};
      const missing = wanted.filter((n) => custom[n] === undefined);
      const wrongType = wanted.filter((n) => custom[n] !== undefined && Number(custom[n]) !== INDEXED_VALUE_TYPE_KEYWORD);
      if (wrongType.length > 0) {
        return fail(`has search attributes ${wrongType.join(', ')} registered with a type other than Keyword`);
      }
      if (missing.length === 0) {
        return {
          address,
          uiUrl: headless ? null : `http://${dialHost(ip)}:${opts.uiPort}`,
          pid,
          logFile,
          stop,
        };
      }
      lastError = `search attributes missing: ${missing.join(', ')}`;
      if (!addedSearchAttributes) {
        // start-dev registers --search-attribute on every start; this is only a fallback for servers that did not.
        const searchAttributes: Record<string, number> = {};
        for (const n of missing) searchAttributes[n] = INDEXED_VALUE_TYPE_KEYWORD;
        await connection.withDeadline(Date.now() + 10_000, () =>
          connection!.operatorService.addSearchAttributes({ namespace, searchAttributes }),
        );
        addedSearchAttributes = true;
      }
    } catch (err) {
      lastError = ((err as Error).message ?? String(err)).split('\n')[0]!;
    } finally {
      if (connection) await connection.close().catch(() => undefined);
    }
    await Promise.race([sleep(250), exitPromise]);
  }
}
