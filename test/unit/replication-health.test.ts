/**
 * Replication health without servers: the daemon's log lines and /list answers read (src/replication/daemon-log.ts,
 * daemon-list.ts), the rules for lag and state (health.ts), the host's monitor (src/host/replication-health.ts),
 * the data server's `/workspaces/:id/replication` route, the client's check of a host's answer and what the API
 * shows an admin and a tenant.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { databaseErrorOf, parseSlogLine } from '../../src/replication/daemon-log';
import { parseGoTime, parseListAnswer } from '../../src/replication/daemon-list';
import { DatabaseReplication, LAG_BOUND_SECONDS, healthOf, lagSecondsOf, summarize } from '../../src/replication/health';
import { monitorReplication, workspaceOfLiveFile } from '../../src/host/replication-health';
import { ReplicationHealth, checkReplicationHealth } from '../../src/contract/data-plane';
import type { ReplicatorStatus } from '../../src/replication/replicator';
import { loadConfig } from '../../src/config';
import { HostInstances } from '../../src/host/instances';
import { liveDir, liveFile } from '../../src/host/data-dir';
import { startDataServer } from '../../src/host/data-server';
import { Fence } from '../../src/host/fence';
import { HostLease } from '../../src/host/lease';
import { Vfs } from '../../src/vfs/vfs';
import { TEST_DATA_KEY } from '../../harness/stack';
import { workspaceViewFor } from '../../src/api/tenant-view';
import { formatReplication } from '../../src/cli/format';
import type { WorkspaceDescription } from '../../src/contract/types';

// Lines as Litestream 0.5.17 writes them (copied from its log with a file:// replica made unwritable).
const MONITOR_ERROR =
  'time=2026-12-07T18:42:43.993Z level=ERROR msg="monitor error" system=store db=w1.sqlite replica=file error="write ltx file: mkdir /tmp/rep/w1: not a directory" consecutive_errors=1 backoff=1s';
const SHUTDOWN_WARN =
  'time=2026-12-07T18:42:47.042Z level=WARN msg="shutdown sync failed, retrying (press Ctrl+C again to skip)" system=store db=w1.sqlite attempts=1 error="calc pos: max ltx file: open /tmp/rep/w1/ltx/0: not a directory" elapsed=17.356µs remaining=29.999982484s';
const NO_DATABASES = 'time=2026-12-07T18:42:34.010Z level=ERROR msg="no databases specified in configuration"';
const INFO = 'time=2026-12-07T18:42:34.010Z level=INFO msg="starting compaction monitor" system=store level=1 interval=30s';

test('slog text lines: bare and quoted values, escapes; anything else yields nothing', () => {
  assert.deepEqual(parseSlogLine('a=1 b="two words" c="q\\"uote\\\\" d='), { a: '1', b: 'two words', c: 'q"uote\\', d: '' });
  assert.equal(parseSlogLine(MONITOR_ERROR).consecutive_errors, '1');
  assert.equal(parseSlogLine(MONITOR_ERROR).error, 'write ltx file: mkdir /tmp/rep/w1: not a directory');
  assert.deepEqual(parseSlogLine('not a slog line'), {});
  assert.deepEqual(parseSlogLine('a="unterminated'), {});
  assert.deepEqual(parseSlogLine('=x'), {});
  assert.ok(parseSlogLine(`e="${'x'.repeat(5000)}"`).e!.length <= 501, 'values are bounded');
});

test('a database error is a WARN/ERROR line naming a db and an error; start-up noise and INFO are not', () => {
  assert.deepEqual(databaseErrorOf(MONITOR_ERROR), {
    db: 'w1.sqlite',
    message: 'monitor error: write ltx file: mkdir /tmp/rep/w1: not a directory',
    atMs: Date.parse('2026-12-07T18:42:43.993Z'),
  });
  assert.equal(databaseErrorOf(SHUTDOWN_WARN)?.db, 'w1.sqlite');
  assert.equal(databaseErrorOf(NO_DATABASES), null);
  assert.equal(databaseErrorOf(INFO), null);
  assert.equal(databaseErrorOf('level=ERROR db=w1.sqlite msg=x'), null, 'no error attribute');
  assert.equal(databaseErrorOf('level=ERROR db=w1.sqlite error=boom')?.atMs, null, 'no time: the reader stamps it');
});

test('/list answers: Go times with nanoseconds, zero time and junk are null; entries without a path are dropped', () => {
  assert.equal(parseGoTime('2026-12-07T18:42:36.002436135Z'), Date.parse('2026-12-07T18:42:36.002Z'));
  assert.equal(parseGoTime('2026-12-07T18:42:36Z'), Date.parse('2026-12-07T18:42:36Z'));
  assert.equal(parseGoTime('2026-12-07T20:42:36.5+02:00'), Date.parse('2026-12-07T18:42:36.500Z'));
  assert.equal(parseGoTime('0001-01-01T00:00:00Z'), null);
  assert.equal(parseGoTime('yesterday'), null);
  assert.equal(parseGoTime(12), null);
  const listed = parseListAnswer({
    databases: [
      { path: '/d/live/w1.sqlite', status: 'replicating', last_sync_at: '2026-12-07T18:42:36.002436135Z' },
      { path: '/d/live/w2.sqlite', status: 'replicating' },
      { status: 'open' },
      null,
      { path: 7 },
    ],
  });
  assert.deepEqual(listed, [
    { path: '/d/live/w1.sqlite', status: 'replicating', lastSyncAtMs: Date.parse('2026-12-07T18:42:36.002Z') },
    { path: '/d/live/w2.sqlite', status: 'replicating', lastSyncAtMs: null },
  ]);
  assert.throws(() => parseListAnswer({ error: 'x' }), /databases/);
  assert.throws(() => parseListAnswer(null), /databases/);
});

const T0 = Date.parse('2026-12-07T12:00:00Z');
const db = (over: Partial<DatabaseReplication> = {}): DatabaseReplication => ({ registeredAtMs: T0, lastSyncAtMs: null, lastError: null, ...over });

test('lag: since the last successful sync, before the first one since registration; never negative', () => {
  assert.equal(lagSecondsOf(db(), T0 + 2500), 2.5);
  assert.equal(lagSecondsOf(db({ lastSyncAtMs: T0 + 60_000 }), T0 + 61_000), 1);
  assert.equal(lagSecondsOf(db({ lastSyncAtMs: T0 + 5000 }), T0), 0, 'a daemon clock a little ahead');
});

test('state: ok within the bound, lagging past it, failing on an error since the last sync or a silent daemon', () => {
  const at = (nowMs: number, daemonError: string | null = null) => ({ nowMs, checkedAtMs: nowMs, daemonError });
  const synced = T0 + 100_000;
  assert.deepEqual(healthOf(db({ lastSyncAtMs: synced }), at(synced + 800)), { state: 'ok', lagSeconds: 0.8, checkedAt: new Date(synced + 800).toISOString() });
  const lagging = healthOf(db({ lastSyncAtMs: synced }), at(synced + (LAG_BOUND_SECONDS + 1) * 1000));
  assert.equal(lagging.state, 'lagging');
  assert.equal(lagging.lastError, undefined);
  assert.equal(healthOf(db({ lastSyncAtMs: synced }), at(synced + 3000), 2).state, 'lagging', 'the bound is a parameter');

  // An error after the last sync: failing at once, whatever the lag; an error that a later sync superseded: ok.
  const failed = healthOf(db({ lastSyncAtMs: synced, lastError: { atMs: synced + 500, message: 'monitor error: AccessDenied' } }), at(synced + 2000));
  assert.deepEqual([failed.state, failed.lastError, failed.lagSeconds], ['failing', 'monitor error: AccessDenied', 2]);
  assert.equal(healthOf(db({ lastSyncAtMs: synced, lastError: { atMs: synced - 500, message: 'old' } }), at(synced + 900)).state, 'ok');
  assert.equal(healthOf(db({ lastError: { atMs: T0 + 1, message: 'never synced' } }), at(T0 + 2000)).state, 'failing');

  // The daemon does not answer: failing, the lag still growing from the last sync seen.
  const silent = healthOf(db({ lastSyncAtMs: synced }), at(synced + 30_000, 'the Litestream daemon did not report on its databases: timeout'));
  assert.deepEqual([silent.state, silent.lagSeconds], ['failing', 30]);
  assert.match(silent.lastError!, /did not report/);
});

test('host summary: largest lag and how many are behind, off ones left out', () => {
  const h = (state: ReplicationHealth['state'], lagSeconds: number | null): ReplicationHealth => ({ state, lagSeconds, checkedAt: '' });
  assert.deepEqual(summarize([]), { databases: 0, maxLagSeconds: 0, behind: 0 });
  assert.deepEqual(summarize([h('ok', 0.7), h('lagging', 42), h('failing', 3), h('off', null)]), { databases: 3, maxLagSeconds: 42, behind: 2 });
});

test("a host's answer is checked before a client shows it", () => {
  const good = { state: 'lagging', lagSeconds: 12.5, checkedAt: '2026-12-07T12:00:00.000Z' };
  assert.deepEqual(checkReplicationHealth(good), good);
  assert.equal(checkReplicationHealth({ ...good, lastError: 'x'.repeat(5000) }).lastError!.length, 1000);
  assert.deepEqual(checkReplicationHealth({ ...good, extra: 'dropped' }), good);
  for (const bad of [null, 'ok', { ...good, state: 'great' }, { ...good, lagSeconds: -1 }, { ...good, lagSeconds: '3' }, { ...good, checkedAt: 'soon' }, { ...good, lastError: 5 }]) {
    assert.throws(() => checkReplicationHealth(bad), /replication health/, JSON.stringify(bad));
  }
});

test('live files map to workspace ids; other paths do not', () => {
  assert.equal(workspaceOfLiveFile('/d/live', '/d/live/acme.notes.sqlite'), 'acme.notes');
  assert.equal(workspaceOfLiveFile('/d/live', '/d/other/acme.notes.sqlite'), null);
  assert.equal(workspaceOfLiveFile('/d/live', '/d/live/acme.notes.db'), null);
  assert.equal(workspaceOfLiveFile('/d/live', '/d/live/.sqlite'), null);
});

function fakeStatus(over: Partial<ReplicatorStatus> = {}): ReplicatorStatus {
  return { checkedAtMs: Date.now(), daemonError: null, errorsTotal: 0, databases: [], ...over };
}

test('monitor: per-workspace health and host summary from one status per check; a new registration is asked about at once', async (t) => {
  const now = Date.now();
  let status = fakeStatus({
    checkedAtMs: now,
    errorsTotal: 3,
    databases: [
      { dbPath: '/d/live/w1.sqlite', replicaUrl: 'file:///r/w1/g1', registeredAtMs: now - 60_000, lastSyncAtMs: now - 500, lastError: null },
      { dbPath: '/d/live/w2.sqlite', replicaUrl: 'file:///r/w2/g1', registeredAtMs: now - 60_000, lastSyncAtMs: now - 45_000, lastError: { atMs: now - 2000, message: 'monitor error: boom' } },
      { dbPath: '/elsewhere/x.sqlite', replicaUrl: 'file:///r/x/g1', registeredAtMs: now - 60_000, lastSyncAtMs: null, lastError: null },
    ],
  });
  let asked = 0;
  const registered = new Set(['w1', 'w2']);
  const m = monitorReplication({
    status: async () => {
      asked++;
      return status;
    },
    workspaceOf: (p) => workspaceOfLiveFile('/d/live', p),
    replicated: (id) => registered.has(id),
    everyMs: 60_000,
  });
  t.after(() => m.stop());
  let refreshed = 0;
  m.onRefresh(() => refreshed++);
  await m.refresh();
  assert.ok(refreshed >= 1);
  assert.equal((await m.healthOf('w1')).state, 'ok');
  const w2 = await m.healthOf('w2');
  assert.deepEqual([w2.state, w2.lagSeconds, w2.lastError], ['failing', 45, 'monitor error: boom']);
  assert.equal((await m.healthOf('w9')).state, 'off', 'not replicated here');
  assert.deepEqual(m.summary(), { databases: 2, maxLagSeconds: 45, behind: 1, errorsTotal: 3 });

  // w3 registered after the last check: asked about now instead of answering `off`.
  registered.add('w3');
  status = fakeStatus({ ...status, databases: [...status.databases, { dbPath: '/d/live/w3.sqlite', replicaUrl: 'file:///r/w3/g1', registeredAtMs: now, lastSyncAtMs: null, lastError: null }] });
  const before = asked;
  assert.equal((await m.healthOf('w3')).state, 'ok');
  assert.equal(asked, before + 1);

  // Replication off on the host: everything is off.
  const offMonitor = monitorReplication({ status: async () => null, workspaceOf: () => 'w1', replicated: () => false, everyMs: 60_000 });
  t.after(() => offMonitor.stop());
  await offMonitor.refresh();
  assert.equal((await offMonitor.healthOf('w1')).state, 'off');
  assert.deepEqual(offMonitor.summary(), { databases: 0, maxLagSeconds: 0, behind: 0, errorsTotal: 0 });
});

test("data server: /workspaces/:id/replication needs a read grant for the workspace and answers only where it is held", async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-rephealth-'));
  const cfg = loadConfig({}, { dataDir: path.join(dir, 'data'), hostId: 'host-a', hostPort: 0, hostBind: '127.0.0.1' });
  const instances = new HostInstances(cfg);
  const fence = new Fence({
    hostId: cfg.hostId,
    lease: HostLease.always(),
    instances,
    truth: async (id) => (instances.isOpen(id) ? { state: 'active', host: cfg.hostId, placement: instances.servedPlacement(id) } : null),
    setAside: async () => undefined,
  });
  const health: ReplicationHealth = { state: 'lagging', lagSeconds: 12, checkedAt: new Date().toISOString() };
  const server = await startDataServer(cfg, instances, fence, TEST_DATA_KEY, async (id) => (id === 'ws-1' ? health : { ...health, state: 'off', lagSeconds: null }));
  t.after(async () => {
    await server.close();
    instances.closeAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(path.dirname(liveFile(cfg, 'ws-1')), liveDir(cfg));
  Vfs.open(liveFile(cfg, 'ws-1')).close();
  instances.open('ws-1');
  const url = `${server.url}/workspaces/ws-1/replication`;
  const grant = (id: string, ops: ('read' | 'write' | 'export')[] = ['read']) => ({ authorization: `Bearer ${TEST_DATA_KEY.grantFor(id, null, ops)}` });

  let res = await fetch(url, { headers: grant('ws-1') });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { workspaceId: 'ws-1', host: 'host-a', replication: health });

  res = await fetch(url);
  assert.equal(res.status, 401, 'no grant');
  res = await fetch(url, { headers: grant('ws-2') });
  assert.equal(res.status, 403, "another workspace's grant");
  res = await fetch(url, { headers: grant('ws-1', ['write']) });
  assert.equal(res.status, 403, 'a grant without read');
  res = await fetch(`${server.url}/workspaces/ws-2/replication`, { headers: grant('ws-2') });
  assert.equal(res.status, 409, 'not held here');
  assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'not_here');
});

test('API view: an admin sees the whole health, a tenant only the state word', () => {
  const d = {
    workspaceId: 'acme.notes', tenant: 'acme', state: 'active', createdAt: '', stateSince: '', lastActiveAt: '', host: 'host-a', template: null,
    restoredFrom: null, policy: {}, nextAutoAt: null, nextAutoTo: null, busy: null, cold: null, archive: null, replicas: [],
  } as unknown as WorkspaceDescription;
  const replication = { state: 'failing' as const, lagSeconds: 75, lastError: 'monitor error: s3://replicas/r/acme.notes/g1: AccessDenied', checkedAt: '2026-12-07T12:00:00.000Z' };
  const admin = workspaceViewFor({ admin: true, tenant: null }, d, (k) => k, replication);
  assert.deepEqual(admin.replication, replication);
  const tenant = workspaceViewFor({ admin: false, tenant: 'acme' }, d, (k) => k, replication);
  assert.deepEqual(tenant.replication, { state: 'failing' });
  assert.ok(!JSON.stringify(tenant).includes('s3://'));
  assert.equal(workspaceViewFor({ admin: false, tenant: 'acme' }, d, (k) => k).replication, undefined, 'routes that do not ask show none');
});

test('CLI line: state, lag, when checked and the last error', () => {
  assert.equal(formatReplication({ state: 'off', lagSeconds: null, checkedAt: 'x' }), 'off');
  assert.equal(formatReplication({ state: 'ok', lagSeconds: 0.8, checkedAt: 'T' }), 'ok, 0.8 s behind (checked T)');
  assert.match(formatReplication({ state: 'unknown', lagSeconds: null, checkedAt: 'T' }), /did not answer/);
  assert.match(formatReplication({ state: 'failing', lagSeconds: 70, checkedAt: 'T', lastError: 'boom' }), /^failing, 70 s behind \(checked T\)\n\s+last error: boom$/);
});
