/**
 * Storage usage, the pure part: which workspace a stored name belongs to (exactly: `acme.notes` never owns
 * `acme.notes-2`'s objects, and a bare key `notes` never owns tenant `notes`'s), and the sums a storage report shows
 * per store: objects and bytes, split into what the workspace's workflow records (referenced) and what the store
 * holds besides (leftovers), with ledger pages on their own. The listing itself is src/client/storage-report.ts.
 */
import { checkWorkspaceId } from '../contract/ids';
import { isCopyKeyOf, type StoreEntry } from './blob-store';
import { ledgerPageKey } from './ledger-archive';

export interface Amount {
  objects: number;
  bytes: number;
}

/** One store (cold or archive) for one workspace. `bytes` include a file store's metadata sidecars. */
export interface StoreUsage extends Amount {
  /** Copies of the workspace file (`<key>.<16 hex>.sqlite`). */
  copies: Amount;
  /** Pages of the complete ledger (`<key>.ledger-<n>.json`): kept by design, also after the delete. */
  ledgerPages: Amount;
  /** Copies the workflow records (its cold or archive copy). */
  referenced: Amount;
  /** Copies the workflow does not record: superseded, unfinished or left behind. */
  leftover: Amount;
  /** Copies the workflow records in this store that the store does not hold. */
  missing: number;
}

/** The replica store for one workspace: Litestream generations (`<replica URL>/<key>/<generation>/…`). */
export interface ReplicaUsage extends Amount {
  generations: number;
  /** Generations the workflow remembers (what point-in-time restore can reach). */
  referenced: Amount & { generations: number };
  /** Generations the store holds that the workflow does not remember. */
  leftover: Amount & { generations: number };
  /** Generations the workflow remembers that hold nothing (not shipped yet, or gone). */
  missing: number;
}

export const zero = (): Amount => ({ objects: 0, bytes: 0 });

export function emptyStoreUsage(): StoreUsage {
  return { objects: 0, bytes: 0, copies: zero(), ledgerPages: zero(), referenced: zero(), leftover: zero(), missing: 0 };
}

export function emptyReplicaUsage(): ReplicaUsage {
  return { objects: 0, bytes: 0, generations: 0, referenced: { ...zero(), generations: 0 }, leftover: { ...zero(), generations: 0 }, missing: 0 };
}

/** A stored name read as a workspace's object: its owner, the object's key, what it is, and whether it is a sidecar. */
export interface OwnedName {
  workspaceId: string;
  key: string;
  kind: 'copy' | 'ledger';
  sidecar: boolean;
}

const COPY_NAME = /^(.+)\.[0-9a-f]{16}\.sqlite$/;
const LEDGER_NAME = /^(.+)\.ledger-(\d{6})\.json$/;
const SIDECAR = '.meta.json';

/**
 * Whose object a stored name is: a copy key (keyForCopy) or a ledger page key (ledgerPageKey), or a file store's
 * metadata sidecar of one; null for anything else (another kind of name, or not a valid workspace key). The owner is
 * read from the name and then the name is rebuilt from it, so only exact keys count.
 */
export function ownerOfName(name: string): OwnedName | null {
  if (typeof name !== 'string') return null;
  const sidecar = name.endsWith(SIDECAR);
  const key = sidecar ? name.slice(0, -SIDECAR.length) : name;
  const valid = (id: string) => {
    try {
      return checkWorkspaceId(id) === id;
    } catch {
      return false;
    }
  };
  const copy = COPY_NAME.exec(key);
  if (copy && valid(copy[1]!) && isCopyKeyOf(key, copy[1]!)) return { workspaceId: copy[1]!, key, kind: 'copy', sidecar };
  const ledger = LEDGER_NAME.exec(key);
  if (ledger && valid(ledger[1]!) && ledgerPageKey(ledger[1]!, Number(ledger[2])) === key) return { workspaceId: ledger[1]!, key, kind: 'ledger', sidecar };
  return null;
}

/** A store's entries grouped by owning workspace (names no workspace owns are left out). */
export function groupByWorkspace(entries: readonly StoreEntry[]): Map<string, { owned: OwnedName; bytes: number }[]> {
  const out = new Map<string, { owned: OwnedName; bytes: number }[]>();
  for (const e of entries) {
    const owned = ownerOfName(e.name);
    if (!owned || !isSize(e.bytes)) continue;
    let list = out.get(owned.workspaceId);
    if (!list) out.set(owned.workspaceId, (list = []));
    list.push({ owned, bytes: e.bytes });
  }
  return out;
}

function isSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/**
 * One workspace's usage of one store: `entries` are its names (groupByWorkspace), `referencedKeys` the keys of the
 * copies its workflow records in this store. An object and its sidecar count as one object with both sizes.
 */
export function storeUsage(entries: readonly { owned: OwnedName; bytes: number }[], referencedKeys: readonly string[]): StoreUsage {
  const byKey = new Map<string, { kind: OwnedName['kind']; bytes: number }>();
  for (const { owned, bytes } of entries) {
    const o = byKey.get(owned.key) ?? { kind: owned.kind, bytes: 0 };
    o.bytes += bytes;
    byKey.set(owned.key, o);
  }
  const u = emptyStoreUsage();
  const refs = new Set(referencedKeys);
  for (const [key, o] of byKey) {
    add(u, o.bytes);
    if (o.kind === 'ledger') {
      add(u.ledgerPages, o.bytes);
      continue;
    }
    add(u.copies, o.bytes);
    add(refs.has(key) ? u.referenced : u.leftover, o.bytes);
  }
  for (const key of refs) if (!byKey.has(key)) u.missing += 1;
  return u;
}

/** A file under a replica URL as the replication module lists it (listReplicaFiles): path below the URL, size, kind. */
export interface ReplicaFileSize {
  path: string;
  bytes: number;
  replicaData: boolean;
}

/**
 * One workspace's replica usage: `files` are what the store holds under `<replica URL>/<key>/` (paths
 * `<generation>/…`), `referenced` the generation names the workflow remembers there. Every file counts, replica
 * data or not (it is stored either way).
 */
export function replicaUsage(files: readonly ReplicaFileSize[], referenced: readonly string[]): ReplicaUsage {
  const byGen = new Map<string, Amount>();
  for (const f of files) {
    if (!isSize(f.bytes)) continue;
    const gen = f.path.split('/')[0]!;
    const a = byGen.get(gen) ?? zero();
    add(a, f.bytes);
    byGen.set(gen, a);
  }
  const u = emptyReplicaUsage();
  const refs = new Set(referenced);
  for (const [gen, a] of byGen) {
    u.objects += a.objects;
    u.bytes += a.bytes;
    u.generations += 1;
    const side = refs.has(gen) ? u.referenced : u.leftover;
    side.objects += a.objects;
    side.bytes += a.bytes;
    side.generations += 1;
  }
  for (const gen of refs) if (!byGen.has(gen)) u.missing += 1;
  return u;
}

function add(a: Amount, bytes: number): void {
  a.objects += 1;
  a.bytes += bytes;
}

/** Sums amounts field by field (nested amounts too), into a new object shaped like the first. */
export function sumUsage<T extends object>(items: readonly T[], empty: () => T): T {
  const out = empty();
  const addInto = (into: Record<string, unknown>, from: Record<string, unknown>) => {
    for (const [k, v] of Object.entries(from)) {
      if (typeof v === 'number' && typeof into[k] === 'number') into[k] = (into[k] as number) + v;
      else if (v && typeof v === 'object' && into[k] && typeof into[k] === 'object') addInto(into[k] as Record<string, unknown>, v as Record<string, unknown>);
    }
  };
  for (const it of items) addInto(out as Record<string, unknown>, it as Record<string, unknown>);
  return out;
}
