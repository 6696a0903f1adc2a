/**
 * Storage reports: how many objects and bytes a workspace, or a tenant, holds in the cold store, the archive and the
 * replica store, and which of them its workflow records (referenced) versus what the stores hold besides
 * (leftovers), ledger pages on their own. Runs in the process asking (API or CLI), listing the stores with that
 * process's configured URLs and credentials: nothing of it travels through Temporal but the `describe` query and
 * the visibility list. Every listing is bounded (entries per store, files per replica, workspaces per tenant, a few
 * at a time), and what is read is checked before it is counted (src/storage/s3-list.ts, src/storage/usage.ts: sizes
 * whole numbers ≥ 0, names under the asked prefix, owners read from exact keys).
 */
import { keyTenant } from '../contract/ids';
import type { State } from '../lifecycle';
import type { WorkspaceDescription } from '../contract/types';
import type { BlobStore, StoreEntry } from '../storage/blob-store';
import { openStore } from '../storage/open-store';
import { listReplicaFiles, type ReplicaFile } from '../replication/restore';
import { replicaChildren } from '../replication/replica-children';
import {
  Amount,
  OwnedName,
  ReplicaUsage,
  StoreUsage,
  emptyReplicaUsage,
  emptyStoreUsage,
  groupByWorkspace,
  replicaUsage,
  storeUsage,
  sumUsage,
  zero,
} from '../storage/usage';
import { WorkbooksError } from './errors';
import type { WorkbooksClient } from './workbooks-client';

/** Where this process finds the stores (its own configuration: cfg.coldUrl, cfg.archiveUrl, cfg.replicaUrl). */
export interface StoreLocations {
  coldUrl: string;
  archiveUrl: string;
  /** null: replication off here (generations the workflow remembers are still listed by their own URLs). */
  replicaUrl: string | null;
  env?: NodeJS.ProcessEnv;
}

export interface ReportLimits {
  /** Names read from one store for one listing (a workspace's prefix, or a tenant's). */
  maxStoreEntries: number;
  /** Files read under one workspace's replica root. */
  maxReplicaFiles: number;
  /** Workspaces of one tenant reported (the visibility list is read up to one more, to tell). */
  maxWorkspaces: number;
  /** Describes and replica listings in flight at once. */
  concurrency: number;
}

export const DEFAULT_REPORT_LIMITS: ReportLimits = { maxStoreEntries: 100_000, maxReplicaFiles: 100_000, maxWorkspaces: 1000, concurrency: 8 };

/** What is local on a host (not in any store, not in the totals). */
export interface LocalUsage {
  /** live: the workspace's file on its host (active or suspended); prefetched: a verified copy made local while asleep. */
  kind: 'live' | 'prefetched' | null;
  host: string | null;
  /** Known only for a prefetched copy (the size of the stored copy it matches); a host does not report its live file. */
  bytes: number | null;
}

export interface WorkspaceStorage {
  workspaceId: string;
  tenant: string;
  state: State;
  cold: StoreUsage;
  /** Empty when the archive is the cold store's location (its copies are counted once, in `cold`). */
  archive: StoreUsage;
  replicas: ReplicaUsage;
  local: LocalUsage;
  /** cold + archive + replicas. */
  total: Amount;
  /** Leftover objects by URL (at most 50): what the stores hold that the workflow does not record. */
  leftovers: string[];
  /** Some listing stopped at its limit: the figures are at least these. */
  truncated: boolean;
  stores: { cold: string; archive: string; replicas: string | null };
}

/** A workspace's row in a tenant report. */
export interface WorkspaceStorageRow {
  workspaceId: string;
  state: State | null;
  cold: Amount;
  archive: Amount;
  replicas: Amount;
  /** Leftover copies and replica generations (all stores). */
  leftover: Amount;
  ledgerPages: Amount;
  total: Amount;
  /** false: its workflow could not be asked (`describe` failed), so nothing of it counts as referenced. */
  described: boolean;
}

export interface TenantStorage {
  tenant: string;
  /** The tenant's running workspaces, largest first. */
  workspaces: WorkspaceStorageRow[];
  /**
   * What the stores hold under the tenant's keys for workspaces that are not running (deleted ones: their ledger
   * pages are kept by design; or ones too new to be listed yet); null when the list was truncated (cannot tell).
   */
  others: { workspaces: number; ids: string[]; cold: StoreUsage; archive: StoreUsage; replicas: ReplicaUsage; total: Amount } | null;
  /** Everything above summed: running workspaces and others. */
  totals: { cold: StoreUsage; archive: StoreUsage; replicas: ReplicaUsage; local: { live: number; prefetched: number; prefetchedBytes: number }; total: Amount };
  truncated: boolean;
  /** Why it is truncated, or what it could not see. */
  notes: string[];
  stores: { cold: string; archive: string; replicas: string | null };
}

type Grouped = Map<string, { owned: OwnedName; bytes: number }[]>;

const MAX_LEFTOVER_URLS = 50;

/** Runs `fn` over `items`, at most `n` at a time, results in order. */
async function mapBounded<T, R>(items: readonly T[], n: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, run));
  return out;
}

/** A store or replica that could not be listed: 503, the work can be asked again (an admin sees why). */
function unavailable(what: string, err: unknown): WorkbooksError {
  return new WorkbooksError(`cannot list the ${what}: ${(err as Error).message ?? String(err)}`, 'unavailable', 503);
}

function amountOf(a: Amount): Amount {
  return { objects: a.objects, bytes: a.bytes };
}

export class StorageReporter {
  private readonly cold: BlobStore;
  private readonly archive: BlobStore;
  private readonly replicaRoot: string | null;
  private readonly limits: ReportLimits;

  constructor(
    private readonly client: WorkbooksClient,
    private readonly where: StoreLocations,
    limits: Partial<ReportLimits> = {},
  ) {
    this.cold = openStore(where.coldUrl);
    this.archive = openStore(where.archiveUrl);
    this.replicaRoot = where.replicaUrl ? where.replicaUrl.replace(/\/+$/, '') : null;
    this.limits = { ...DEFAULT_REPORT_LIMITS, ...limits };
  }

  private get sameStore(): boolean {
    return this.cold.baseUrl === this.archive.baseUrl;
  }

  private get stores() {
    return { cold: this.cold.baseUrl, archive: this.archive.baseUrl, replicas: this.replicaRoot };
  }

  /** Entries of `store` under `prefix`, grouped by their exact owner. */
  private async listStore(store: BlobStore, what: string, prefix: string): Promise<{ grouped: Grouped; truncated: boolean }> {
    let listing: { entries: StoreEntry[]; truncated: boolean };
    try {
      listing = await store.list(prefix, { maxEntries: this.limits.maxStoreEntries });
    } catch (err) {
      throw unavailable(what, err);
    }
    return { grouped: groupByWorkspace(listing.entries), truncated: listing.truncated };
  }

  private async listReplica(url: string): Promise<{ files: ReplicaFile[]; truncated: boolean }> {
    try {
      return await listReplicaFiles(url, { env: this.where.env, maxFiles: this.limits.maxReplicaFiles });
    } catch (err) {
      throw unavailable('replica store', err);
    }
  }

  /** Referenced keys of a workspace in one store: the stored copies its workflow records there. */
  private referencedKeys(store: BlobStore, d: WorkspaceDescription | null): string[] {
    if (!d) return [];
    return [d.cold?.url, d.archive?.url].map((u) => (u ? store.keyFromUrl(u) : null)).filter((k): k is string => k !== null);
  }

  /**
   * The workspace's replica usage: what the replica store holds under `<root>/<id>/`, plus generations its workflow
   * remembers under another root (another host's configuration), each listed by its own URL.
   */
  private async replicaUsageOf(id: string, d: WorkspaceDescription | null, files: ReplicaFile[] | null): Promise<{ usage: ReplicaUsage; truncated: boolean; leftovers: string[] }> {
    const root = this.replicaRoot ? `${this.replicaRoot}/${id}` : null;
    const remembered = d?.replicas.map((r) => r.url) ?? [];
    let truncated = false;
    let own = files;
    if (root && own === null) {
      const l = await this.listReplica(root);
      own = l.files;
      truncated ||= l.truncated;
    }
    const underRoot = root ? remembered.filter((u) => u.startsWith(`${root}/`) && !u.slice(root.length + 1).includes('/')) : [];
    const usage = replicaUsage(own ?? [], underRoot.map((u) => u.slice(root!.length + 1)));
    const parts = [usage];
    for (const url of remembered.filter((u) => !underRoot.includes(u))) {
      const l = await this.listReplica(url);
      truncated ||= l.truncated;
      parts.push(replicaUsage(l.files.map((f) => ({ ...f, path: `g/${f.path}` })), ['g']));
    }
    const leftovers = root
      ? [...new Set((own ?? []).map((f) => f.path.split('/')[0]!))].filter((g) => !underRoot.includes(`${root}/${g}`)).map((g) => `${root}/${g}`)
      : [];
    return { usage: sumUsage(parts, emptyReplicaUsage), truncated, leftovers };
  }

  private localOf(d: WorkspaceDescription | null): LocalUsage {
    if (!d) return { kind: null, host: null, bytes: null };
    if (d.prefetched) {
      const copy = [d.cold, d.archive].find((c) => c && d.prefetched?.sha256 === c.sha256);
      return { kind: 'prefetched', host: d.prefetched.host, bytes: copy ? copy.bytes : null };
    }
    if ((d.state === 'active' || d.state === 'suspended') && d.host) return { kind: 'live', host: d.host, bytes: null };
    return { kind: null, host: null, bytes: null };
  }

  /** The storage report of one workspace (its description from `describe`, already checked for ownership). */
  async workspace(d: WorkspaceDescription): Promise<WorkspaceStorage> {
    const id = d.workspaceId;
    const prefix = `${id}.`;
    const [cold, archive] = await Promise.all([
      this.listStore(this.cold, 'cold store', prefix),
      this.sameStore ? Promise.resolve({ grouped: new Map() as Grouped, truncated: false }) : this.listStore(this.archive, 'archive store', prefix),
    ]);
    const reps = await this.replicaUsageOf(id, d, null);
    return this.assemble(d, cold.grouped.get(id) ?? [], archive.grouped.get(id) ?? [], reps, cold.truncated || archive.truncated);
  }

  private assemble(
    d: WorkspaceDescription,
    coldEntries: { owned: OwnedName; bytes: number }[],
    archiveEntries: { owned: OwnedName; bytes: number }[],
    reps: { usage: ReplicaUsage; truncated: boolean; leftovers: string[] },
    truncated: boolean,
  ): WorkspaceStorage {
    const coldRefs = this.referencedKeys(this.cold, d);
    const cold = storeUsage(coldEntries, coldRefs);
    const archiveRefs = this.referencedKeys(this.archive, d);
    const archive = this.sameStore ? emptyStoreUsage() : storeUsage(archiveEntries, archiveRefs);
    const leftoverUrls = (store: BlobStore, entries: { owned: OwnedName }[], refs: string[]) =>
      [...new Set(entries.filter((e) => e.owned.kind === 'copy' && !refs.includes(e.owned.key)).map((e) => store.urlFor(e.owned.key)))];
    const leftovers = [...leftoverUrls(this.cold, coldEntries, coldRefs), ...(this.sameStore ? [] : leftoverUrls(this.archive, archiveEntries, archiveRefs)), ...reps.leftovers];
    return {
      workspaceId: d.workspaceId,
      tenant: d.tenant,
      state: d.state,
      cold,
      archive,
      replicas: reps.usage,
      local: this.localOf(d),
      total: sumUsage([amountOf(cold), amountOf(archive), amountOf(reps.usage)], zero),
      leftovers: leftovers.slice(0, MAX_LEFTOVER_URLS),
      truncated: truncated || reps.truncated,
      stores: this.stores,
    };
  }

  /**
   * The storage report of a tenant: every running workspace (up to maxWorkspaces, from the visibility store), and
   * what the stores hold under the tenant's keys for workspaces that are not running (deleted ones' ledger pages,
   * and anything a delete left). The cold and archive stores are listed once under `<tenant>.`; workspaces with a
   * bare key from before keys carried the tenant are listed by their own keys.
   */
  async tenant(tenant: string): Promise<TenantStorage> {
    const notes: string[] = [];
    const listed = await this.client.list({ tenant, limit: this.limits.maxWorkspaces + 1 });
    let truncated = listed.length > this.limits.maxWorkspaces;
    const running = listed.slice(0, this.limits.maxWorkspaces);
    if (truncated) notes.push(`the tenant has more than ${this.limits.maxWorkspaces} running workspaces: only the ${this.limits.maxWorkspaces} newest are reported`);
    const ids = new Set(running.map((w) => w.workspaceId));
    const bare = running.filter((w) => keyTenant(w.workspaceId) === null).map((w) => w.workspaceId);

    const listAll = async (store: BlobStore, what: string): Promise<Grouped> => {
      const out: Grouped = new Map();
      for (const prefix of [`${tenant}.`, ...bare.map((b) => `${b}.`)]) {
        const l = await this.listStore(store, what, prefix);
        if (l.truncated) {
          truncated = true;
          notes.push(`the ${what} holds more than ${this.limits.maxStoreEntries} objects under '${prefix}': figures are at least these`);
        }
        for (const [owner, entries] of l.grouped) {
          // The tenant's keys (<tenant>.<name>), and its own bare keys; nothing else under the prefix.
          if (keyTenant(owner) !== tenant && !bare.includes(owner)) continue;
          if (!out.has(owner)) out.set(owner, entries);
        }
      }
      return out;
    };
    const cold = await listAll(this.cold, 'cold store');
    const archive = this.sameStore ? (new Map() as Grouped) : await listAll(this.archive, 'archive store');

    let replicaOwners: string[] = [];
    if (this.replicaRoot) {
      try {
        replicaOwners = (await replicaChildren(this.replicaRoot, { env: this.where.env, namePrefix: `${tenant}.` })).filter((k) => keyTenant(k) === tenant);
      } catch (err) {
        throw unavailable('replica store', err);
      }
      for (const b of bare) if (!replicaOwners.includes(b)) replicaOwners.push(b);
    }
    const owners = [...new Set([...ids, ...cold.keys(), ...archive.keys(), ...replicaOwners])];

    const described = new Map<string, WorkspaceDescription | null>();
    await mapBounded([...ids], this.limits.concurrency, async (id) => {
      described.set(id, await this.client.describe(id).catch(() => null));
    });
    const undescribed = [...described.values()].filter((d) => d === null).length;
    if (undescribed > 0) notes.push(`${undescribed} workspace(s) could not be asked what they reference (describe failed): their copies count as leftovers`);

    const reports = await mapBounded(owners, this.limits.concurrency, async (id) => {
      const d = described.get(id) ?? null;
      const files = this.replicaRoot && replicaOwners.includes(id) ? null : [];
      const reps = await this.replicaUsageOf(id, d, files);
      const stub: WorkspaceDescription = d ?? ({ workspaceId: id, tenant, state: 'deleted', cold: null, archive: null, replicas: [], prefetched: null, host: null } as unknown as WorkspaceDescription);
      return { id, d, report: this.assemble(stub, cold.get(id) ?? [], archive.get(id) ?? [], reps, false) };
    });
    if (reports.some((r) => r.report.truncated)) {
      truncated = true;
      notes.push(`a replica listing stopped at ${this.limits.maxReplicaFiles} files: figures are at least these`);
    }

    const row = (id: string, d: WorkspaceDescription | null, r: WorkspaceStorage): WorkspaceStorageRow => ({
      workspaceId: id,
      state: d?.state ?? running.find((w) => w.workspaceId === id)?.state ?? null,
      cold: amountOf(r.cold),
      archive: amountOf(r.archive),
      replicas: amountOf(r.replicas),
      leftover: sumUsage([r.cold.leftover, r.archive.leftover, amountOf(r.replicas.leftover)], zero),
      ledgerPages: sumUsage([r.cold.ledgerPages, r.archive.ledgerPages], zero),
      total: r.total,
      described: d !== null,
    });
    const mine = reports.filter((r) => ids.has(r.id));
    const rest = reports.filter((r) => !ids.has(r.id));
    const sums = (rs: typeof reports) => ({
      cold: sumUsage(rs.map((r) => r.report.cold), emptyStoreUsage),
      archive: sumUsage(rs.map((r) => r.report.archive), emptyStoreUsage),
      replicas: sumUsage(rs.map((r) => r.report.replicas), emptyReplicaUsage),
      total: sumUsage(rs.map((r) => r.report.total), zero),
    });
    const locals = mine.map((r) => r.report.local);
    return {
      tenant,
      workspaces: mine.map((r) => row(r.id, r.d, r.report)).sort((a, b) => b.total.bytes - a.total.bytes || a.workspaceId.localeCompare(b.workspaceId)),
      others: truncated && listed.length > this.limits.maxWorkspaces ? null : { workspaces: rest.length, ids: rest.map((r) => r.id).sort().slice(0, MAX_LEFTOVER_URLS), ...sums(rest) },
      totals: {
        ...sums(reports),
        local: {
          live: locals.filter((l) => l.kind === 'live').length,
          prefetched: locals.filter((l) => l.kind === 'prefetched').length,
          prefetchedBytes: locals.reduce((n, l) => n + (l.kind === 'prefetched' ? (l.bytes ?? 0) : 0), 0),
        },
      },
      truncated,
      notes,
      stores: this.stores,
    };
  }
}
