/** The complete ledger's pages in a store (src/storage/ledger-archive.ts): written once, read back only when intact. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FileStore } from '../../src/storage/file-store';
import { LedgerArchive, ledgerPageKey } from '../../src/storage/ledger-archive';
import type { LedgerEntry } from '../../src/contract/types';
import { tempDir } from '../../harness/stack';

const entry = (i: number): LedgerEntry => ({ from: 'active', to: 'suspended', at: new Date(Date.UTC(2026, 11, 7, 0, 0, i)).toISOString(), reason: `r${i}`, by: 'test', outcome: 'done' });

test('pages are written, read back in order, idempotently, and a tampered or foreign page is refused', async (t) => {
  const dir = tempDir('wb-ledger-unit-');
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const store = new FileStore(dir);
  const a = new LedgerArchive(store, path.join(dir, 'tmp'));
  await a.write('acme.notes', 0, [entry(1), entry(2)]);
  await a.write('acme.notes', 0, [entry(1), entry(2)]); // a retried write: the same page
  await a.write('acme.notes', 1, [entry(3)]);
  await a.write('acme.notes-2', 0, [entry(9)]);
  const all = await a.readAll('acme.notes');
  assert.deepEqual([all.pages, all.entries.map((e) => e.reason)], [2, ['r1', 'r2', 'r3']]);
  assert.equal(await a.read('acme.notes', 2), null);
  assert.deepEqual((await a.readAll('acme.notes-2')).entries.map((e) => e.reason), ['r9'], 'a neighbour key is its own ledger');

  // Bytes changed behind the store's back: refused, not trusted.
  const file = store.pathFor(ledgerPageKey('acme.notes', 1));
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('r3', 'rX'));
  await assert.rejects(a.read('acme.notes', 1), /reads as sha256/);
  // A page of another workspace copied under this name: refused.
  fs.copyFileSync(store.pathFor(ledgerPageKey('acme.notes-2', 0)), store.pathFor(ledgerPageKey('acme.notes', 1)));
  fs.copyFileSync(`${store.pathFor(ledgerPageKey('acme.notes-2', 0))}.meta.json`, `${store.pathFor(ledgerPageKey('acme.notes', 1))}.meta.json`);
  await assert.rejects(a.read('acme.notes', 1), /is not page 1 of 'acme.notes'/);
  // Entries that are not ledger entries are never written.
  await assert.rejects(a.write('acme.notes', 2, [{ ...entry(4), outcome: 'maybe' } as unknown as LedgerEntry]), /not a ledger entry/);
  await assert.rejects(a.write('acme.notes', 2, []), /1-1000 entries/);
});
