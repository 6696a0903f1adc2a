import Database from 'better-sqlite3';
import fs from 'node:fs';
import path from 'node:path';
import { MAX_FILE_BYTES, Volume, VfsInputError, checkPath, checkPrefix, checkVolume } from './volumes';

export interface FileEntry {
  volume: Volume;
  path: string;
  bytes: number;
  updatedAt: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS files (
  id INTEGER PRIMARY KEY,
  volume TEXT NOT NULL CHECK (volume IN ('workspace', 'memory', 'tmp')),
  path TEXT NOT NULL,
  data BLOB NOT NULL,
  bytes INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  UNIQUE (volume, path)
);`;

/**
 * What sqlite_master may hold in a workspace file: our table (as SQLite stores its CREATE statement) and the index
 * of its UNIQUE constraint, both required; and the two bookkeeping tables Litestream adds to a file it replicates,
 * allowed exactly as it creates them. Anything else (a trigger, a view, a virtual table, another table or index,
 * other columns) means the file was made or changed by something else: it is refused before any statement of
 * ours runs on it.
 */
const EXPECTED_SCHEMA: readonly { type: string; name: string; sql: string | null }[] = [
  { type: 'table', name: 'files', sql: normalizeSql(SCHEMA.replace('CREATE TABLE IF NOT EXISTS', 'CREATE TABLE').replace(/;\s*$/, '')) },
  { type: 'index', name: 'sqlite_autoindex_files_1', sql: null },
];
const LITESTREAM_TABLES: readonly { type: string; name: string; sql: string | null }[] = [
  { type: 'table', name: '_litestream_seq', sql: 'CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)' },
  { type: 'table', name: '_litestream_lock', sql: 'CREATE TABLE _litestream_lock (id INTEGER)' },
];

function normalizeSql(sql: string | null): string | null {
  return sql === null ? null : sql.replace(/\s+/g, ' ').trim();
}

export class VfsError extends Error {
  override name = 'VfsError';
}

/** A SQLite file whose schema is not exactly a workspace file's (see EXPECTED_SCHEMA). */
export class VfsSchemaError extends VfsError {
  override name = 'VfsSchemaError';
}

/**
 * Refuses a database whose schema is not exactly ours. An empty database (a file being created) passes. Returns
 * whether the schema is there (false: empty).
 */
function checkSchema(db: Database.Database, file: string): boolean {
  const rows = db.prepare('SELECT type, name, sql FROM sqlite_master ORDER BY type DESC, name').all() as { type: string; name: string; sql: string | null }[];
  if (rows.length === 0) return false;
  const problems: string[] = [];
  for (const r of rows) {
    const want = [...EXPECTED_SCHEMA, ...LITESTREAM_TABLES].find((e) => e.type === r.type && e.name === r.name);
    if (!want) problems.push(`unexpected ${r.type} '${r.name}'`);
    else if (normalizeSql(r.sql) !== want.sql) problems.push(`${r.type} '${r.name}' is defined differently`);
  }
  for (const e of EXPECTED_SCHEMA) if (!rows.some((r) => r.type === e.type && r.name === e.name)) problems.push(`no ${e.type} '${e.name}'`);
  if (problems.length > 0) {
    throw new VfsSchemaError(`${file} is not a workbooks workspace file: its schema is not ours (${problems.slice(0, 5).join('; ')})`);
  }
  return true;
}

/**
 * One workspace's whole state: a single SQLite file in WAL mode holding files by (volume, path).
 * The connection settings are the ones Litestream needs: WAL, busy_timeout 5000, synchronous NORMAL.
 */
export class Vfs {
  /** Bytes of all files, once counted (see totalBytes); null until then, and after a clear. */
  private total: number | null = null;

  private constructor(
    readonly file: string,
    private readonly db: Database.Database,
  ) {}

  /** Opens (creating if missing) a VFS file. A file that is not a workbooks VFS is refused. */
  static open(file: string, options: { create?: boolean; readonly?: boolean } = {}): Vfs {
    const create = options.create ?? true;
    if (!create && !fs.existsSync(file)) throw new VfsError(`workspace file ${file} does not exist`);
    if (create) fs.mkdirSync(path.dirname(file), { recursive: true });
    let db: Database.Database;
    try {
      db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: !create });
    } catch (err) {
      throw new VfsError(`cannot open workspace file ${file}: ${(err as Error).message}`);
    }
    try {
      // Nothing a file brings may run as if we wrote it: no functions with side effects from its schema (and
      // better-sqlite3 keeps SQLite's defensive mode on). Then the schema must be exactly ours: a trigger, view or
      // virtual table in a file from elsewhere (a tampered copy, a crafted template) is refused before any
      // statement of ours touches the table. Reading the schema also makes SQLite reject a file that is not a
      // database at all (SQLITE_NOTADB). Only an empty database is initialised.
      db.pragma('trusted_schema = OFF');
      db.pragma('busy_timeout = 5000');
      const hasSchema = checkSchema(db, file);
      if (!hasSchema && options.readonly) throw new VfsSchemaError(`${file} is not a workbooks workspace file (it is an empty SQLite database)`);
      if (!options.readonly) {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.exec(SCHEMA);
        const version = db.pragma('user_version', { simple: true }) as number;
        if (version === 0) db.pragma(`user_version = ${SCHEMA_VERSION}`);
        else if (version > SCHEMA_VERSION) throw new VfsError(`workspace file ${file} has schema ${version}, newer than this build (${SCHEMA_VERSION})`);
      }
    } catch (err) {
      db.close();
      if (err instanceof VfsError) throw err;
      throw new VfsError(`${file} is not a usable workspace file: ${(err as Error).message}`);
    }
    return new Vfs(file, db);
  }

  put(volume: Volume, filePath: string, data: Buffer | string): FileEntry {
    checkVolume(volume);
    checkPath(filePath);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (!Buffer.isBuffer(buf)) throw new VfsInputError('data must be a Buffer or a string', 'bad_path');
    if (buf.length > MAX_FILE_BYTES) throw new VfsInputError(`file is ${buf.length} bytes; the limit is ${MAX_FILE_BYTES}`, 'too_large');
    const now = Date.now();
    const old = this.total === null ? 0 : (this.sizeOf(volume, filePath) ?? 0);
    this.db
      .prepare(
        `INSERT INTO files (volume, path, data, bytes, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (volume, path) DO UPDATE SET data = excluded.data, bytes = excluded.bytes, updated_at = excluded.updated_at`,
      )
      .run(volume, filePath, buf, buf.length, now);
    if (this.total !== null) this.total += buf.length - old;
    return { volume, path: filePath, bytes: buf.length, updatedAt: now };
  }

  get(volume: Volume, filePath: string): Buffer | null {
    checkVolume(volume);
    checkPath(filePath);
    const row = this.db.prepare('SELECT data FROM files WHERE volume = ? AND path = ?').get(volume, filePath) as { data: Buffer } | undefined;
    return row ? row.data : null;
  }

  stat(volume: Volume, filePath: string): FileEntry | null {
    checkVolume(volume);
    checkPath(filePath);
    const row = this.db.prepare('SELECT volume, path, bytes, updated_at AS updatedAt FROM files WHERE volume = ? AND path = ?').get(volume, filePath);
    return (row as FileEntry | undefined) ?? null;
  }

  /**
   * The size of one file, or null. Read as length(data): SQLite takes a blob's length from the record header,
   * while the `bytes` column, stored after the blob, is reached only by walking the blob's overflow pages.
   */
  sizeOf(volume: Volume, filePath: string): number | null {
    checkVolume(volume);
    checkPath(filePath);
    const row = this.db.prepare('SELECT length(data) AS n FROM files WHERE volume = ? AND path = ?').get(volume, filePath) as { n: number } | undefined;
    return row ? row.n : null;
  }

  /** Files in a volume, at or below `prefix`, in path order. */
  list(volume: Volume, prefix = '/'): FileEntry[] {
    checkVolume(volume);
    const p = checkPrefix(prefix);
    const rows =
      p === '/'
        ? this.db.prepare('SELECT volume, path, bytes, updated_at AS updatedAt FROM files WHERE volume = ? ORDER BY path').all(volume)
        : this.db
            .prepare(
              // Below `p` means starting with `p + '/'`: exactly the range [p + '/', p + '0') under SQLite's
              // byte-wise BINARY collation ('0' follows '/'). (A substr() on p.length was wrong for paths with
              // characters outside the BMP: JS counts UTF-16 units, SQLite counts characters.)
              `SELECT volume, path, bytes, updated_at AS updatedAt FROM files
               WHERE volume = ? AND (path = ? OR (path >= ? AND path < ?)) ORDER BY path`,
            )
            .all(volume, p, p + '/', p + '0');
    return rows as FileEntry[];
  }

  delete(volume: Volume, filePath: string): boolean {
    checkVolume(volume);
    checkPath(filePath);
    const old = this.total === null ? 0 : (this.sizeOf(volume, filePath) ?? 0);
    const deleted = this.db.prepare('DELETE FROM files WHERE volume = ? AND path = ?').run(volume, filePath).changes > 0;
    if (deleted && this.total !== null) this.total -= old;
    return deleted;
  }

  /** Removes every file of a volume; returns how many were removed. */
  clear(volume: Volume): number {
    checkVolume(volume);
    this.total = null;
    return this.db.prepare('DELETE FROM files WHERE volume = ?').run(volume).changes;
  }

  /**
   * Bytes of all files of all volumes. Counted once per open handle (in time proportional to the number of
   * files), then kept by this handle's own writes: a host's data server is the only writer of an open workspace.
   */
  totalBytes(): number {
    if (this.total === null) {
      this.total = (this.db.prepare('SELECT coalesce(sum(length(data)), 0) AS n FROM files').get() as { n: number }).n;
    }
    return this.total;
  }

  /** Totals per volume (files and bytes), in time proportional to the number of files, not their size. */
  usage(): Record<Volume, { files: number; bytes: number }> {
    const out: Record<Volume, { files: number; bytes: number }> = {
      workspace: { files: 0, bytes: 0 },
      memory: { files: 0, bytes: 0 },
      tmp: { files: 0, bytes: 0 },
    };
    // length(data), not the bytes column: O(files), where summing `bytes` walks every blob (see sizeOf).
    for (const r of this.db.prepare('SELECT volume, count(*) AS files, coalesce(sum(length(data)), 0) AS bytes FROM files GROUP BY volume').all() as {
      volume: Volume;
      files: number;
      bytes: number;
    }[]) {
      out[r.volume] = { files: r.files, bytes: r.bytes };
    }
    return out;
  }

  /**
   * Writes a new SQLite file at `outFile` holding only the `workspace` volume (memory is stripped, tmp never
   * leaves). Written under a temporary name and renamed, so a crash never leaves a half export behind.
   */
  export(outFile: string): { files: number; bytes: number } {
    const dir = path.dirname(path.resolve(outFile));
    if (!fs.existsSync(dir)) throw new VfsError(`cannot export: directory ${dir} does not exist`);
    if (path.resolve(outFile) === path.resolve(this.file)) throw new VfsError('cannot export a workspace onto its own file');
    const tmp = `${outFile}.${process.pid}.${Date.now()}.partial`;
    const out = new Database(tmp);
    try {
      out.pragma('trusted_schema = OFF');
      out.pragma('journal_mode = DELETE');
      out.exec(SCHEMA);
      out.pragma(`user_version = ${SCHEMA_VERSION}`);
      const insert = out.prepare('INSERT INTO files (volume, path, data, bytes, updated_at) VALUES (?, ?, ?, ?, ?)');
      let files = 0;
      let bytes = 0;
      const copy = out.transaction(() => {
        for (const row of this.db
          .prepare("SELECT volume, path, data, bytes, updated_at FROM files WHERE volume = 'workspace' ORDER BY path")
          .iterate() as Iterable<{ volume: string; path: string; data: Buffer; bytes: number; updated_at: number }>) {
          insert.run(row.volume, row.path, row.data, row.bytes, row.updated_at);
          files += 1;
          bytes += row.bytes;
        }
      });
      copy();
      out.close();
      fs.renameSync(tmp, outFile);
      return { files, bytes };
    } catch (err) {
      if (out.open) out.close();
      fs.rmSync(tmp, { force: true });
      throw err;
    }
  }

  /**
   * A consistent copy of the whole file (every volume) at `destFile`, taken through this open connection with
   * SQLite's online backup API while the workspace stays usable. `destFile` is overwritten; write to a temporary
   * name and rename if atomicity matters.
   */
  async backupTo(destFile: string, onProgress?: (pagesDone: number, totalPages: number) => void): Promise<void> {
    if (path.resolve(destFile) === path.resolve(this.file)) throw new VfsError('cannot back a workspace up onto its own file');
    await this.db.backup(destFile, {
      progress: ({ totalPages, remainingPages }) => {
        onProgress?.(totalPages - remainingPages, totalPages);
        return 4096; // pages per step (16 MiB at 4 KiB pages); the default 100 is slow for large files
      },
    });
  }

  /** Folds the WAL into the main file and truncates it (only call when no other writer is active). */
  checkpoint(): void {
    this.db.pragma('wal_checkpoint(TRUNCATE)');
  }

  /** SQLite's integrity check; returns the problems found (empty when the file is sound). */
  integrityCheck(kind: 'quick' | 'full' = 'quick'): string[] {
    let rows: { quick_check?: string; integrity_check?: string }[];
    try {
      rows = this.db.pragma(kind === 'quick' ? 'quick_check' : 'integrity_check') as { quick_check?: string; integrity_check?: string }[];
    } catch (err) {
      // Badly damaged pages make the check itself fail (SQLITE_CORRUPT, SQLITE_NOTADB): that is a finding, not a crash.
      const code = (err as { code?: unknown }).code;
      if (code === 'SQLITE_CORRUPT' || code === 'SQLITE_NOTADB') return [`${code}: ${(err as Error).message}`];
      throw err;
    }
    const msgs = rows.map((r) => r.quick_check ?? r.integrity_check ?? '');
    return msgs.length === 1 && msgs[0] === 'ok' ? [] : msgs;
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
