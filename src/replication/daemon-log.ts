/**
 * Reading the Litestream 0.5 daemon's log lines (Go's slog text format, as our config asks: `logging.type: text`):
 *
 *   time=2026-12-07T18:42:43.993Z level=ERROR msg="monitor error" system=store db=w1.sqlite replica=file
 *     error="write ltx file: mkdir /srv/replicas: not a directory" consecutive_errors=1 backoff=1s
 *
 * A value is either bare (no spaces, no quotes) or a quoted Go string (`\"`, `\\`, `\n`, `\t` escapes). Lines are
 * read from the daemon's own output, so nothing in them is trusted: a line that does not parse yields no fields,
 * and values are bounded in length.
 */

/** Longest value kept of one attribute (an S3 error can carry a long XML body). */
const MAX_VALUE_CHARS = 500;

/** The attributes of one slog text line (`key=value ...`); {} when the line is not in that form. */
export function parseSlogLine(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  let i = 0;
  const n = line.length;
  while (i < n) {
    while (i < n && line[i] === ' ') i++;
    if (i >= n) break;
    const eq = line.indexOf('=', i);
    if (eq <= i) return {};
    const key = line.slice(i, eq);
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) return {};
    i = eq + 1;
    let value = '';
    if (line[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const c = line[i]!;
        if (c === '\\' && i + 1 < n) {
          const e = line[i + 1]!;
          value += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          i += 2;
          continue;
        }
        if (c === '"') {
          closed = true;
          i++;
          break;
        }
        value += c;
        i++;
      }
      if (!closed) return {};
    } else {
      const sp = line.indexOf(' ', i);
      const end = sp < 0 ? n : sp;
      value = line.slice(i, end);
      i = end;
    }
    out[key] = value.length > MAX_VALUE_CHARS ? `${value.slice(0, MAX_VALUE_CHARS)}…` : value;
  }
  return out;
}

/** A failure the daemon reported while replicating one database. */
export interface DatabaseError {
  /** The database's file name as Litestream logs it (its base name, e.g. `w1.sqlite`). */
  db: string;
  message: string;
  /** When the daemon logged it (epoch ms; the line's `time`, else null). */
  atMs: number | null;
}

/**
 * The replication failure a daemon log line reports, or null. A line reports one when it is at WARN or ERROR
 * level and names both the database (`db=`) and an error (`error=`): Litestream's "monitor error" (a sync to the
 * replica failed; it retries with backoff), "shutdown sync failed", and failed syncs requested over the socket.
 * Lines without a database (the start-up "no databases specified in configuration") are not replication failures.
 */
export function databaseErrorOf(line: string): DatabaseError | null {
  const f = parseSlogLine(line);
  if (f.level !== 'ERROR' && f.level !== 'WARN') return null;
  if (!f.db || !f.error) return null;
  const t = f.time ? Date.parse(f.time) : NaN;
  const what = f.msg ? `${f.msg}: ${f.error}` : f.error;
  return { db: f.db, message: what, atMs: Number.isFinite(t) ? t : null };
}
