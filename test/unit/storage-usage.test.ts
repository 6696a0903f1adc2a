/**
 * The pure part of storage reports (src/storage/usage.ts): stored names are owned by exact keys only, and the sums
 * split referenced copies, leftovers, ledger pages and replica generations as the report says.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { keyForCopy } from '../../src/storage/blob-store';
import { ledgerPageKey } from '../../src/storage/ledger-archive';
import { emptyStoreUsage, groupByWorkspace, ownerOfName, replicaUsage, storeUsage, sumUsage } from '../../src/storage/usage';

const sha = (c: string) => c.repeat(64);

describe('storage usage', () => {
  it('owns names by exact key: acme.notes never owns acme.notes-2, a bare key never owns its namesake tenant', () => {
    const a = keyForCopy('acme.notes', sha('a'));
    const b = keyForCopy('acme.notes-2', sha('b'));
    assert.deepEqual(ownerOfName(a), { workspaceId: 'acme.notes', key: a, kind: 'copy', sidecar: false });
    assert.equal(ownerOfName(b)?.workspaceId, 'acme.notes-2');
    assert.deepEqual(ownerOfName(`${a}.meta.json`), { workspaceId: 'acme.notes', key: a, kind: 'copy', sidecar: true });
    assert.equal(ownerOfName(keyForCopy('notes', sha('c')))?.workspaceId, 'notes');
    assert.equal(ownerOfName(keyForCopy('notes.x', sha('c')))?.workspaceId, 'notes.x');
    assert.deepEqual(ownerOfName(ledgerPageKey('acme.notes', 3)), { workspaceId: 'acme.notes', key: 'acme.notes.ledger-000003.json', kind: 'ledger', sidecar: false });
    for (const name of ['acme.notes.sqlite', 'acme.notes.0123.sqlite', 'acme.notes.0123456789ABCDEF.sqlite', 'Acme.notes.0123456789abcdef.sqlite', '.acme.notes.0123456789abcdef.sqlite.put-1-0123456789ab.partial', 'acme.notes.ledger-1.json', 'a.b.c.0123456789abcdef.sqlite', 'acme.notes/0000/x.ltx', '']) {
      assert.equal(ownerOfName(name), null, name);
    }
  });

  it('every name it owns is rebuilt exactly from its owner', () => {
    const seg = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,8}$/);
    fc.assert(
      fc.property(fc.option(seg, { nil: undefined }), seg, fc.stringMatching(/^[0-9a-f]{64}$/), fc.nat(999_999), (tenant, name, hash, page) => {
        const id = tenant === undefined ? name : `${tenant}.${name}`;
        assert.equal(ownerOfName(keyForCopy(id, hash))?.workspaceId, id);
        assert.equal(ownerOfName(ledgerPageKey(id, page))?.workspaceId, id);
      }),
    );
  });

  it('sums a store: referenced, leftover, ledger pages, missing; a sidecar adds to its object', () => {
    const ref = keyForCopy('acme.notes', sha('a'));
    const old = keyForCopy('acme.notes', sha('b'));
    const gone = keyForCopy('acme.notes', sha('c'));
    const grouped = groupByWorkspace([
      { name: ref, bytes: 1000 },
      { name: `${ref}.meta.json`, bytes: 100 },
      { name: old, bytes: 500 },
      { name: ledgerPageKey('acme.notes', 0), bytes: 40 },
      { name: keyForCopy('acme.notes-2', sha('d')), bytes: 7 },
      { name: 'acme.notes.unrelated', bytes: 9 },
      { name: keyForCopy('acme.notes', sha('e')), bytes: -1 },
    ]);
    assert.deepEqual([...grouped.keys()].sort(), ['acme.notes', 'acme.notes-2']);
    const u = storeUsage(grouped.get('acme.notes')!, [ref, gone]);
    assert.deepEqual(u, {
      objects: 3,
      bytes: 1640,
      copies: { objects: 2, bytes: 1600 },
      ledgerPages: { objects: 1, bytes: 40 },
      referenced: { objects: 1, bytes: 1100 },
      leftover: { objects: 1, bytes: 500 },
      missing: 1,
    });
    assert.deepEqual(sumUsage([u, u], emptyStoreUsage).leftover, { objects: 2, bytes: 1000 });
  });

  it('sums replica generations: remembered, left over, missing', () => {
    const u = replicaUsage(
      [
        { path: '01a-g1/ltx/0/0000000000000001-0000000000000001.ltx', bytes: 4096, replicaData: true },
        { path: '01a-g1/ltx/0/0000000000000002-0000000000000002.ltx', bytes: 100, replicaData: true },
        { path: '01a-g2/ltx/0/0000000000000001-0000000000000001.ltx', bytes: 4096, replicaData: true },
        { path: '01a-g2/stray', bytes: 3, replicaData: false },
      ],
      ['01a-g2', '01a-g3'],
    );
    assert.deepEqual(u, {
      objects: 4,
      bytes: 8295,
      generations: 2,
      referenced: { objects: 2, bytes: 4099, generations: 1 },
      leftover: { objects: 2, bytes: 4196, generations: 1 },
      missing: 1,
    });
  });
});
