/** The pure rules behind recovery and point-in-time restore, and the replication settings. */
import test from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_REPLICA_GENERATIONS, generationAt, generationsPastRetention, replicaGenerationsKept, sourcesNewestFirst } from '../../src/contract/recovery';
import type { ReplicaGeneration, StoredCopy } from '../../src/contract/types';
import { ConfigError, loadConfig } from '../../src/config';

const copy = (at: string): StoredCopy => ({ url: 'file:///c/ws.0123456789abcdef.sqlite', sha256: 'a'.repeat(64), bytes: 1, at });
const gen = (n: number, from: string, to: string | null): ReplicaGeneration => ({ url: `file:///r/ws/e-g${n}`, host: 'h', from, to });

test('a live replica (its host lost mid-activity) holds newer data than any stored copy', () => {
  const s = sourcesNewestFirst({ replicas: [gen(1, '2026-01-01T00:00:00Z', null)], cold: copy('2025-12-31T00:00:00Z'), archive: null });
  assert.deepEqual(s.map((x) => x.kind), ['replica', 'stored']);
});

test('a replica stopped before the freeze is older than the cold copy made after it', () => {
  const s = sourcesNewestFirst({ replicas: [gen(1, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z')], cold: copy('2026-01-01T01:00:05Z'), archive: null });
  assert.deepEqual(s.map((x) => x.kind), ['stored', 'replica']);
});

test('a replica stopped after the last stored copy (resumed, used, suspended) is newer', () => {
  const s = sourcesNewestFirst({ replicas: [gen(2, '2026-01-02T00:00:00Z', '2026-01-02T01:00:00Z')], cold: copy('2026-01-01T01:00:05Z'), archive: null });
  assert.deepEqual(s.map((x) => x.kind), ['replica', 'stored']);
});

test('only what exists is offered; the archive stands in for a missing cold copy', () => {
  assert.deepEqual(sourcesNewestFirst({ replicas: [], cold: null, archive: null }), []);
  const s = sourcesNewestFirst({ replicas: [], cold: null, archive: copy('2026-01-01T00:00:00Z') });
  assert.equal(s.length, 1);
  assert.equal(s[0]!.kind, 'stored');
});

test('generationAt picks the generation live at that time, or the end of the one stopped before it', () => {
  const gens = [gen(1, '2026-01-01T00:00:00Z', '2026-01-01T01:00:00Z'), gen(2, '2026-01-02T00:00:00Z', null)];
  const at = (iso: string) => generationAt(gens, Date.parse(iso));
  assert.equal(at('2025-12-31T00:00:00Z'), null, 'before anything was replicated');
  assert.deepEqual(at('2026-01-01T00:30:00Z'), { generation: gens[0], timestamp: '2026-01-01T00:30:00.000Z' });
  assert.deepEqual(at('2026-01-01T12:00:00Z'), { generation: gens[0], timestamp: null }, 'frozen in between: the state when it stopped');
  assert.deepEqual(at('2026-01-03T00:00:00Z'), { generation: gens[1], timestamp: '2026-01-03T00:00:00.000Z' });
});

test('replication defaults to file:// under the data dir; off turns it off; bad values are refused', () => {
  assert.equal(loadConfig({}, { dataDir: '/d' }).replicaUrl, 'file:///d/replicas');
  assert.equal(loadConfig({ WORKBOOKS_REPLICA_URL: 'off' }, { dataDir: '/d' }).replicaUrl, null);
  assert.equal(loadConfig({ WORKBOOKS_REPLICA_URL: 's3://bucket/live/', WORKBOOKS_S3_ENDPOINT: 'http://127.0.0.1:9000' }, { dataDir: '/d' }).replicaUrl, 's3://bucket/live');
  assert.throws(() => loadConfig({ WORKBOOKS_REPLICA_URL: 'http://x/y' }, { dataDir: '/d' }), ConfigError);
  assert.throws(() => loadConfig({ WORKBOOKS_REPLICA_URL: 's3://B_ad/x' }, { dataDir: '/d' }), ConfigError);
  assert.throws(() => loadConfig({ WORKBOOKS_REPLICA_RETENTION: 'forever' }, { dataDir: '/d' }), /at least 1s/);
  assert.equal(loadConfig({ WORKBOOKS_REPLICA_RETENTION: '72h' }, { dataDir: '/d' }).replicaRetention, '72h');
});

test('replica retention drops stopped generations past the newest N, never the newest nor a live one', () => {
  const t = (h: number) => `2026-01-01T0${h}:00:00Z`;
  const gens = [gen(1, t(0), t(1)), gen(2, t(1), t(2)), gen(3, t(2), t(3)), gen(4, t(3), t(4)), gen(5, t(4), null)];
  assert.deepEqual(generationsPastRetention(gens, 3).map((g) => g.url), ['file:///r/ws/e-g1', 'file:///r/ws/e-g2']);
  assert.deepEqual(generationsPastRetention(gens, 1).map((g) => g.url), ['file:///r/ws/e-g1', 'file:///r/ws/e-g2', 'file:///r/ws/e-g3', 'file:///r/ws/e-g4']);
  assert.deepEqual(generationsPastRetention(gens, 5), []);
  // An older generation still marked live (its host lost before the stop was recorded) is never dropped.
  assert.deepEqual(generationsPastRetention([gen(1, t(0), null), gen(2, t(1), t(2)), gen(3, t(2), null)], 1).map((g) => g.url), ['file:///r/ws/e-g2']);
  assert.deepEqual(generationsPastRetention([], 3), []);
  for (const bad of [undefined, 0, 21, 2.5, '3', null]) assert.equal(replicaGenerationsKept(bad), DEFAULT_REPLICA_GENERATIONS);
  assert.equal(replicaGenerationsKept(1), 1);
  assert.equal(replicaGenerationsKept(20), 20);
});
