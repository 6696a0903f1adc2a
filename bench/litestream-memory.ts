/**
 * Memory of the host's one Litestream daemon as a function of how many workspaces it replicates.
 *
 * One daemon (src/replication Replicator), N small databases written like Vfs writes them, registered at run time
 * to file:// replicas, each synced once and then written to again and left to the daemon's own 1 s cycle. The
 * daemon's resident memory (VmRSS from /proc/<pid>/status) is read before the first registration and at the end.
 *
 *   node dist/bench/litestream-memory.js [N ...]     (default: 100 500)
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Replicator } from '../src/replication/replicator';

export interface LitestreamMemoryResult {
  workspaces: number;
  /** Daemon RSS with no database registered. */
  baselineRssBytes: number;
  /** Daemon RSS with every workspace registered, replicated and written to again. */
  rssBytes: number;
  /** (rssBytes - baselineRssBytes) / workspaces. */
  perWorkspaceBytes: number;
  /** The daemon's peak RSS (VmHWM). */
  peakRssBytes: number;
  /** File descriptors the daemon holds at the end. */
  openFds: number;
  /** Wall time to register all workspaces (16 requests at a time). */
  registerMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function procStatus(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]) * 1024;
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function measureLitestreamMemory(opts: { workspaces: number; rowsEach?: number }): Promise<LitestreamMemoryResult> {
  const n = opts.workspaces;
  const rowsEach = opts.rowsEach ?? 20;
  if (!Number.isInteger(n) || n < 1) throw new Error('workspaces must be a positive integer');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'workbooks-litestream-mem-'));
  let rep: Replicator | undefined;
  try {
    rep = await Replicator.start({ stateDir: path.join(root, 'state'), reregister: false });
    const pid = rep.pid()!;
    await sleep(1000);
    const baselineRssBytes = procStatus(pid, 'VmRSS');

    const files: string[] = [];
    const write = (file: string, rows: number) => {
      const db = new Database(file);
      try {
        db.pragma('busy_timeout = 5000');
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.exec("CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, path TEXT NOT NULL, data BLOB NOT NULL)");
        const ins = db.prepare('INSERT INTO files (path, data) VALUES (?, randomblob(200))');
        db.transaction(() => {
          for (let i = 0; i < rows; i++) ins.run(`/f/${i}`);
        })();
      } finally {
        db.close();
      }
    };
    for (let i = 0; i < n; i++) {
      const file = path.join(root, 'live', `ws-${i}.db`);
      if (i === 0) fs.mkdirSync(path.dirname(file), { recursive: true });
      write(file, rowsEach);
      files.push(file);
    }

    const t0 = Date.now();
    await pool(files, 16, (f) => rep!.register(f, `file://${path.join(root, 'replicas', path.basename(f, '.db'))}`));
    const registerMs = Date.now() - t0;
    await pool(files, 16, async (f) => {
      await rep!.sync(f, 60_000);
    });
    // A little more in each, shipped by the daemon's own cycle.
    for (const f of files) write(f, 2);
    await sleep(3000);
    const rssBytes = procStatus(pid, 'VmRSS');
    const peakRssBytes = procStatus(pid, 'VmHWM');
    const openFds = fs.readdirSync(`/proc/${pid}/fd`).length;
    return { workspaces: n, baselineRssBytes, rssBytes, perWorkspaceBytes: Math.round((rssBytes - baselineRssBytes) / n), peakRssBytes, openFds, registerMs };
  } finally {
    await rep?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  }
}

if (require.main === module) {
  const counts = process.argv.slice(2).map(Number);
  const ns = counts.length > 0 ? counts : [100, 500];
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MiB`;
  (async () => {
    for (const n of ns) {
      const r = await measureLitestreamMemory({ workspaces: n });
      console.log(
        `${String(n).padStart(5)} workspaces: daemon RSS ${mib(r.baselineRssBytes)} → ${mib(r.rssBytes)} (peak ${mib(r.peakRssBytes)}), ` +
          `${(r.perWorkspaceBytes / 1024).toFixed(0)} KiB per workspace, ${r.openFds} fds, registered in ${r.registerMs} ms`,
      );
    }
  })().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
