/**
 * The shape of the workflow code that keeps each data-safety rule in one place (no server): one behaviour per
 * legal edge, and the model's fields written only by the model's own intent methods.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { EDGES, Edge, STATES, edgeOf, parsePolicy } from '../../src/lifecycle';
import { MOVES } from '../../src/workflows/moves';
import { WorkspaceModel } from '../../src/workflows/workspace-model';
import type { HostInfo, StoredCopy } from '../../src/contract/types';
import { prefetchKeepMs } from '../../src/contract/recovery';

// The edge table is checked by the compiler: a missing or an extra edge does not compile.
type EdgeTable = { readonly [E in Edge]: 1 };
// @ts-expect-error a table without 'archived->deleted'
const missing: EdgeTable = { 'created->active': 1, 'active->suspended': 1, 'active->archived': 1, 'suspended->active': 1, 'suspended->frozen': 1, 'frozen->active': 1, 'frozen->archived': 1, 'archived->active': 1 };
const extra: EdgeTable = {
  'created->active': 1,
  'active->suspended': 1,
  'active->archived': 1,
  'suspended->active': 1,
  'suspended->frozen': 1,
  'frozen->active': 1,
  'frozen->archived': 1,
  'archived->active': 1,
  'archived->deleted': 1,
  // @ts-expect-error not a legal edge
  'deleted->active': 1,
};

test('every legal edge has exactly one behaviour, and edgeOf names only legal edges', () => {
  const legal = STATES.flatMap((from) => EDGES[from].map((to) => `${from}->${to}`)).sort();
  assert.deepEqual(Object.keys(MOVES).sort(), legal);
  assert.equal(Object.keys(missing).length + Object.keys(extra).length, legal.length * 2, 'the compile-time tables above');
  for (const from of STATES) {
    for (const to of STATES) assert.equal(edgeOf(from, to), EDGES[from].includes(to) ? `${from}->${to}` : null, `${from} -> ${to}`);
  }
});

const FIELDS = ['host', 'filePath', 'cold', 'archive', 'prefetched', 'replicas', 'lastPlacement', 'busy', 'state', 'lastActiveAt'];

test('no workflow code outside the model writes its fields', () => {
  const dir = path.resolve(__dirname, '../../../src/workflows');
  const write = new RegExp(`\\.(${FIELDS.join('|')})\\s*(=(?![=>])|\\+=|-=|\\?\\?=|\\|\\|=)|\\bm\\.\\w+\\.(push|splice|pop|shift|unshift)\\(`);
  const found: string[] = [];
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith('.ts') && f !== 'workspace-model.ts')) {
    fs.readFileSync(path.join(dir, f), 'utf8')
      .split('\n')
      .forEach((line, i) => {
        if (write.test(line)) found.push(`${f}:${i + 1}: ${line.trim()}`);
      });
  }
  assert.deepEqual(found, []);
});

const copy = (url: string): StoredCopy => ({ url, sha256: 'a'.repeat(64), bytes: 1, at: '2026-12-01T00:00:00.000Z' });
const host = (h: string): HostInfo => ({ host: h, taskQueue: `q@${h}`, endpoint: `http://${h}` });

test('intent methods: an archive supersedes the cold copy; delete forgets every copy and the file', () => {
  const m = new WorkspaceModel({ workspaceId: 'ws', tenant: 'acme' }, parsePolicy(undefined), Date.parse('2026-12-01T00:00:00Z'));
  m.placeOn(host('h1'), '/d/ws.sqlite', m.nextPlacement());
  m.replicaStarted('file:///r/ws/e0-g1', 'h1', 0);
  m.recordCold(copy('file:///store/ws/c.sqlite'));
  m.prefetchedOn(host('h2'), '/d/pre.sqlite', 'a'.repeat(64), Date.parse('2026-12-01T01:00:00Z'));
  m.recordArchive(copy('file:///store/ws/a.sqlite'));
  assert.equal(m.cold, null);
  assert.equal(m.archive?.url, 'file:///store/ws/a.sqlite');
  m.markBusy('deleted', Date.parse('2026-12-02T00:00:00Z'));
  assert.deepEqual(m.busy, { to: 'deleted', since: '2026-12-02T00:00:00.000Z' });
  m.forgetEverything();
  m.clearBusy();
  const c = m.carry();
  assert.deepEqual(
    [c.cold, c.archive, c.replicas, c.prefetched, c.host, c.filePath, c.lastPlacement, m.busy],
    [null, null, [], null, null, null, null, null],
  );
  assert.equal(c.placement, 1, 'placement numbers are never reused');
});

test('prefetch expiry: the keep counts from the prefetch, a carried copy without a time from the run start, a failed removal from its retry', () => {
  const t0 = Date.parse('2026-12-01T00:00:00Z');
  const m = new WorkspaceModel({ workspaceId: 'ws', tenant: 'acme' }, parsePolicy(undefined), t0);
  m.prefetchedOn(host('h2'), '/d/pre.sqlite', 'a'.repeat(64), t0 + 1000);
  // A run without the prefetch-expiry patch never expires it.
  assert.equal(m.prefetchExpiresAt(), null);
  assert.equal(m.describe(0).prefetched?.expiresAt, null);
  m.prefetchKeep = { ms: 60_000, runStart: t0 };
  assert.equal(m.prefetchExpiresAt(), t0 + 61_000);
  assert.equal(m.describe(0).prefetched?.expiresAt, new Date(t0 + 61_000).toISOString());
  m.prefetchRemovalFailed(t0 + 600_000);
  assert.equal(m.prefetchExpiresAt(), t0 + 600_000);
  // Prefetched again: the keep starts over and the retry is forgotten.
  m.prefetchedOn(host('h2'), '/d/pre.sqlite', 'a'.repeat(64), t0 + 700_000);
  assert.equal(m.prefetchExpiresAt(), t0 + 760_000);
  assert.equal(m.carry().prefetched?.at, new Date(t0 + 700_000).toISOString());
  m.dropPrefetch();
  assert.equal(m.prefetchExpiresAt(), null);
  // State carried by an older build has no time: it counts from this run's start.
  const carried = { ...m.carry(), state: 'frozen' as const, prefetched: { host: host('h2'), filePath: '/d/pre.sqlite', sha256: 'b'.repeat(64) } };
  const m2 = new WorkspaceModel({ workspaceId: 'ws', tenant: 'acme', carried }, parsePolicy(undefined), t0 + 5_000_000);
  m2.prefetchKeep = { ms: 60_000, runStart: t0 + 5_000_000 };
  assert.equal(m2.prefetchExpiresAt(), t0 + 5_060_000);
});

test('prefetchKeep: a duration of at least 1 s, 24 h by default; anything else is refused', () => {
  assert.equal(prefetchKeepMs(undefined), 24 * 3_600_000);
  assert.equal(prefetchKeepMs('30m'), 1_800_000);
  assert.equal(prefetchKeepMs(5), 5_000);
  for (const bad of ['0s', '500ms', 'soon', -1, '11y', {}]) assert.throws(() => prefetchKeepMs(bad), /prefetchKeep|shorter|duration|seconds/, String(bad));
});
