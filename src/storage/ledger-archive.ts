/**
 * The complete ledger of every workspace, kept where an operator can read it after the workflow's runs are gone:
 * append-only pages in the cold store (the same file:// or s3:// location as the cold copies), one object per page
 * under `<workspace key>.ledger-<page, 6 digits>.json`. The workflow writes a page whenever 50 entries are waiting,
 * before it continues as new and when the workspace is deleted (pages outlive the delete: they hold who moved
 * what, never data). Pages are numbered from 0 without gaps, so a reader walks them until the first missing one.
 * Each page's bytes are checked against the sha256 the store holds for them before a line of it is trusted.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { LedgerEntry } from '../contract/types';
import { STATES } from '../lifecycle';
import type { BlobStore } from './blob-store';
import { tempNameFor } from './copy';
import { openStore } from './open-store';

/** Most entries one page holds (the workflow writes at most LEDGER_KEEP = 100 at once). */
export const MAX_PAGE_ENTRIES = 1000;
const OUTCOMES = ['done', 'refused', 'failed', 'warning'];

export class LedgerArchiveError extends Error {
  override name = 'LedgerArchiveError';
}

export function ledgerPageKey(workspaceId: string, page: number): string {
  if (!Number.isInteger(page) || page < 0 || page > 999_999) throw new LedgerArchiveError(`ledger page ${page} is not a page number (0-999999)`);
  return `${workspaceId}.ledger-${String(page).padStart(6, '0')}.json`;
}

/** A ledger entry as the workflow records it; anything else is refused (written) or reported (read). */
export function checkLedgerEntry(raw: unknown, where: string): LedgerEntry {
  const e = raw as Record<string, unknown>;
  const str = (v: unknown, max: number) => typeof v === 'string' && v.length <= max;
  if (
    !e ||
    typeof e !== 'object' ||
    !(STATES as readonly unknown[]).includes(e.from) ||
    !(STATES as readonly unknown[]).includes(e.to) ||
    !str(e.at, 40) ||
    Number.isNaN(Date.parse(e.at as string)) ||
    !str(e.reason, 600) ||
    !str(e.by, 200) ||
    !OUTCOMES.includes(e.outcome as string) ||
    (e.detail !== undefined && !str(e.detail, 600))
  ) {
    throw new LedgerArchiveError(`${where} is not a ledger entry`);
  }
  return {
    from: e.from as LedgerEntry['from'],
    to: e.to as LedgerEntry['to'],
    at: e.at as string,
    reason: e.reason as string,
    by: e.by as string,
    outcome: e.outcome as LedgerEntry['outcome'],
    ...(e.detail !== undefined ? { detail: e.detail as string } : {}),
  };
}

export class LedgerArchive {
  constructor(
    private readonly store: BlobStore,
    /** Where temporary files go (a page is put from a file, like every object). */
    private readonly tmpDir: string = os.tmpdir(),
  ) {}

  /** Writes page `page` of the workspace's ledger (idempotent: the same entries again change nothing). */
  async write(workspaceId: string, page: number, entries: LedgerEntry[]): Promise<{ key: string; sha256: string }> {
    if (!Array.isArray(entries) || entries.length === 0 || entries.length > MAX_PAGE_ENTRIES) {
      throw new LedgerArchiveError(`a ledger page holds 1-${MAX_PAGE_ENTRIES} entries`);
    }
    const checked = entries.map((e, i) => checkLedgerEntry(e, `entries[${i}]`));
    const key = ledgerPageKey(workspaceId, page);
    const body = Buffer.from(JSON.stringify({ workspaceId, page, entries: checked }));
    const sha256 = crypto.createHash('sha256').update(body).digest('hex');
    const head = await this.store.head(key);
    if (head && head.sha256 === sha256 && head.bytes === body.length) return { key, sha256 };
    await fs.promises.mkdir(this.tmpDir, { recursive: true });
    const tmp = tempNameFor(path.join(this.tmpDir, key), 'ledger');
    try {
      await fs.promises.writeFile(tmp, body);
      await this.store.put(tmp, key, { sha256, bytes: body.length, workspaceId });
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
    return { key, sha256 };
  }

  /** Page `page`, or null when there is none; its bytes are checked against the store's sha256 first. */
  async read(workspaceId: string, page: number): Promise<LedgerEntry[] | null> {
    const key = ledgerPageKey(workspaceId, page);
    const head = await this.store.head(key);
    if (!head) return null;
    await fs.promises.mkdir(this.tmpDir, { recursive: true });
    const tmp = tempNameFor(path.join(this.tmpDir, key), 'ledger-read');
    try {
      const got = await this.store.get(key, tmp);
      if (got.sha256 !== head.sha256 || got.bytes !== head.bytes) {
        throw new LedgerArchiveError(`ledger page ${this.store.urlFor(key)} reads as sha256 ${got.sha256}, not the stored ${head.sha256}`);
      }
      let doc: { workspaceId?: unknown; page?: unknown; entries?: unknown };
      try {
        doc = JSON.parse(await fs.promises.readFile(tmp, 'utf8'));
      } catch {
        throw new LedgerArchiveError(`ledger page ${this.store.urlFor(key)} is not JSON`);
      }
      if (doc.workspaceId !== workspaceId || doc.page !== page || !Array.isArray(doc.entries) || doc.entries.length > MAX_PAGE_ENTRIES) {
        throw new LedgerArchiveError(`ledger page ${this.store.urlFor(key)} is not page ${page} of '${workspaceId}'`);
      }
      return doc.entries.map((e, i) => checkLedgerEntry(e, `${this.store.urlFor(key)} entry ${i}`));
    } finally {
      await fs.promises.rm(tmp, { force: true });
    }
  }

  /** Every archived entry of the workspace, oldest first (pages 0, 1, … until the first missing one). */
  async readAll(workspaceId: string): Promise<{ entries: LedgerEntry[]; pages: number }> {
    const entries: LedgerEntry[] = [];
    let page = 0;
    for (;;) {
      const got = await this.read(workspaceId, page);
      if (!got) return { entries, pages: page };
      entries.push(...got);
      page += 1;
    }
  }
}

/**
 * The ledger archive of a cold store URL, or null when that store cannot be opened here (a reader then sees the
 * workflows' ledger tails only; writes go through the workers' own activity).
 */
export function ledgerArchiveAt(coldUrl: string, tmpDir?: string): LedgerArchive | null {
  try {
    return new LedgerArchive(openStore(coldUrl), tmpDir);
  } catch {
    return null;
  }
}
