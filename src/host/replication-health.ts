/**
 * This host's view of its replication health: every few seconds it asks the Litestream daemon about all the
 * databases it replicates (one `/list` request, whatever their number) and keeps the answer, from which
 * `healthOf` gives one workspace's health (the data server's `/workspaces/:id/replication`) and `summary` the
 * host's metrics (largest lag, how many are behind, failures seen). Rules: src/replication/health.ts.
 */
import path from 'node:path';
import type { ReplicationHealth } from '../contract/data-plane';
import { HostReplicationSummary, LAG_BOUND_SECONDS, healthOf, summarize } from '../replication/health';
import type { DatabaseStatus, ReplicatorStatus } from '../replication/replicator';

/** How often the daemon is asked: an unreachable store shows as failing within a few seconds of a failed sync. */
export const HEALTH_POLL_MS = 5000;

export interface ReplicationHealthMonitor {
  /** The workspace's replication health from this host (`off` when this host does not replicate it). */
  healthOf(workspaceId: string): Promise<ReplicationHealth>;
  /** The host's numbers as of the last check; errorsTotal only grows. */
  summary(): HostReplicationSummary & { errorsTotal: number };
  /** Every replicated workspace's health as of the last check. */
  healths(): Map<string, ReplicationHealth>;
  /** Asks the daemon now (concurrent calls share one request). */
  refresh(): Promise<void>;
  /** `fn` is called after every check (the metrics and the ledger warnings follow it); returns its removal. */
  onRefresh(fn: () => void): () => void;
  stop(): void;
}

export interface MonitorOptions {
  /** The replicator's status, or null when this host does not replicate. */
  status: () => Promise<ReplicatorStatus | null>;
  /** The workspace a replicated database file belongs to (null: not one of ours). */
  workspaceOf: (dbPath: string) => string | null;
  /** Whether the workspace is replicated from here right now (registered). */
  replicated: (workspaceId: string) => boolean;
  everyMs?: number;
  boundSeconds?: number;
}

/** The workspace id of a live file `<liveDir>/<id>.sqlite`, or null. */
export function workspaceOfLiveFile(liveDir: string, dbPath: string): string | null {
  if (path.dirname(dbPath) !== liveDir) return null;
  const base = path.basename(dbPath);
  return base.endsWith('.sqlite') && base.length > '.sqlite'.length ? base.slice(0, -'.sqlite'.length) : null;
}

export function monitorReplication(opts: MonitorOptions): ReplicationHealthMonitor {
  const bound = opts.boundSeconds ?? LAG_BOUND_SECONDS;
  let last: ReplicatorStatus | null = null;
  let byWorkspace = new Map<string, DatabaseStatus>();
  let inFlight: Promise<void> | null = null;
  let stopped = false;
  const listeners = new Set<() => void>();

  const off = (): ReplicationHealth => ({ state: 'off', lagSeconds: null, checkedAt: new Date(last?.checkedAtMs ?? Date.now()).toISOString() });
  const healthAt = (db: DatabaseStatus, s: ReplicatorStatus) => healthOf(db, { nowMs: s.checkedAtMs, checkedAtMs: s.checkedAtMs, daemonError: s.daemonError }, bound);

  const monitor: ReplicationHealthMonitor = {
    onRefresh(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
    refresh() {
      inFlight ??= (async () => {
        try {
          const s = await opts.status();
          last = s;
          const next = new Map<string, DatabaseStatus>();
          for (const db of s?.databases ?? []) {
            const id = opts.workspaceOf(db.dbPath);
            if (id !== null) next.set(id, db);
          }
          byWorkspace = next;
        } finally {
          inFlight = null;
        }
        for (const fn of listeners) fn();
      })();
      return inFlight;
    },
    async healthOf(workspaceId) {
      // Registered since the last check: ask now rather than answer `off` for a replicated workspace.
      if (!byWorkspace.has(workspaceId) && opts.replicated(workspaceId) && !stopped) await monitor.refresh();
      const db = byWorkspace.get(workspaceId);
      return db && last ? healthAt(db, last) : off();
    },
    healths() {
      const s = last;
      const out = new Map<string, ReplicationHealth>();
      if (s) for (const [id, db] of byWorkspace) out.set(id, healthAt(db, s));
      return out;
    },
    summary() {
      const s = last;
      if (!s) return { databases: 0, maxLagSeconds: 0, behind: 0, errorsTotal: 0 };
      return { ...summarize([...byWorkspace.values()].map((db) => healthAt(db, s))), errorsTotal: s.errorsTotal };
    },
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
  const timer = setInterval(() => void monitor.refresh().catch(() => undefined), opts.everyMs ?? HEALTH_POLL_MS);
  timer.unref();
  void monitor.refresh().catch(() => undefined);
  return monitor;
}
