/**
 * The Litestream 0.5.17 daemon's `GET /list` answer on its control socket, checked:
 *
 *   {"databases":[{"path":"/srv/live/w1.sqlite","status":"replicating","last_sync_at":"2026-12-07T18:42:36.002436135Z"}]}
 *
 * `last_sync_at` is when the daemon last finished a sync of that database to its replica successfully: every
 * committed write was on the replica at that moment. The daemon syncs each registered database every second;
 * a sync with nothing new to ship succeeds without reaching the replica store, and a sync with something to ship
 * fails while the store cannot be reached (checked against the binary: the time then stops moving). It is absent
 * before the first successful sync.
 */

export interface ListedDatabase {
  path: string;
  /** `replicating`, `open` or `stopped` (anything else the daemon says is kept as it is, bounded). */
  status: string;
  /** Epoch ms of the last successful sync, or null (none yet, or a time that did not parse). */
  lastSyncAtMs: number | null;
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** An RFC 3339 time with any number of fraction digits (Go writes nanoseconds) as epoch ms, or null. */
export function parseGoTime(s: unknown): number | null {
  if (typeof s !== 'string') return null;
  const m = RFC3339.exec(s);
  if (!m) return null;
  const frac = m[2] ? m[2].slice(0, 4).padEnd(4, '0') : '';
  const ms = Date.parse(`${m[1]}${frac}${m[3]}`);
  // Go's zero time (0001-01-01T00:00:00Z) means "never".
  return Number.isFinite(ms) && ms > 0 ? ms : null;
}

/** The databases of a `/list` answer; throws when the answer is not of that shape. */
export function parseListAnswer(json: unknown): ListedDatabase[] {
  const dbs = (json as { databases?: unknown } | null)?.databases;
  if (!Array.isArray(dbs)) throw new Error('the daemon\'s /list answer has no "databases" array');
  const out: ListedDatabase[] = [];
  for (const d of dbs as unknown[]) {
    const e = d as { path?: unknown; status?: unknown; last_sync_at?: unknown } | null;
    if (!e || typeof e.path !== 'string' || e.path === '' || e.path.length > 4096) continue;
    out.push({
      path: e.path,
      status: typeof e.status === 'string' ? e.status.slice(0, 40) : 'unknown',
      lastSyncAtMs: parseGoTime(e.last_sync_at),
    });
  }
  return out;
}
