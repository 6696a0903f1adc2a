/**
 * The rules that turn what a host knows about one replicated database into its replication health, and a host's
 * databases into the numbers its metrics show. Pure: no clock, no I/O (callers pass `nowMs`).
 *
 * Lag is measured from the daemon's last successful sync (see daemon-list.ts): the last moment the replica held
 * every committed write. An idle database is synced every second without reaching the store, so its lag stays
 * about a second even while the store is unreachable: nothing of it is at risk then, and its first write after
 * that fails, stops the clock and is reported within seconds.
 */
import type { ReplicationHealth } from '../contract/data-plane';

/** Above this lag (seconds) a replica is `lagging`: Litestream ships every second, so 10 s is ten missed rounds. */
export const LAG_BOUND_SECONDS = 10;

/** What a host knows about one database it replicates. */
export interface DatabaseReplication {
  /** When it was registered with the daemon (first registration for this replica URL in this process). */
  registeredAtMs: number;
  /** The newest successful sync the daemon reported (kept across daemon restarts), or null. */
  lastSyncAtMs: number | null;
  /** The newest failure the daemon logged for it, or null. */
  lastError: { atMs: number; message: string } | null;
}

/** Seconds the replica is behind: since its last successful sync, or since registration before the first one. */
export function lagSecondsOf(db: DatabaseReplication, nowMs: number): number {
  const since = db.lastSyncAtMs ?? db.registeredAtMs;
  return Math.max(0, Math.round((nowMs - since) / 100) / 10);
}

/**
 * One database's health. `daemonError` is set when the daemon did not answer the last status request: then the
 * database is `failing` (nothing is being shipped that we can see) with the lag still growing from the last sync
 * seen. A failure logged after the last successful sync makes it `failing`; otherwise a lag over `boundSeconds`
 * makes it `lagging`.
 */
export function healthOf(
  db: DatabaseReplication,
  at: { nowMs: number; checkedAtMs: number; daemonError?: string | null },
  boundSeconds = LAG_BOUND_SECONDS,
): ReplicationHealth {
  const lagSeconds = lagSecondsOf(db, at.nowMs);
  const checkedAt = new Date(at.checkedAtMs).toISOString();
  if (at.daemonError) return { state: 'failing', lagSeconds, lastError: at.daemonError, checkedAt };
  const errorSinceSync = db.lastError !== null && (db.lastSyncAtMs === null || db.lastError.atMs > db.lastSyncAtMs);
  if (errorSinceSync) return { state: 'failing', lagSeconds, lastError: db.lastError!.message, checkedAt };
  return { state: lagSeconds > boundSeconds ? 'lagging' : 'ok', lagSeconds, checkedAt };
}

/** A host's replication in three numbers (its metrics): bounded cardinality whatever the number of databases. */
export interface HostReplicationSummary {
  /** Databases replicated. */
  databases: number;
  /** The largest lag among them (0 with none). */
  maxLagSeconds: number;
  /** How many are not ok: lagging or failing. */
  behind: number;
}

export function summarize(healths: Iterable<ReplicationHealth>): HostReplicationSummary {
  let databases = 0;
  let maxLagSeconds = 0;
  let behind = 0;
  for (const h of healths) {
    if (h.state === 'off') continue;
    databases++;
    maxLagSeconds = Math.max(maxLagSeconds, h.lagSeconds ?? 0);
    if (h.state !== 'ok') behind++;
  }
  return { databases, maxLagSeconds, behind };
}
