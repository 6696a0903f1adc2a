/**
 * When a host tells a workspace's workflow about its replica (reportsDue, replicationWarnings), and when the workflow
 * writes it into the ledger (WorkspaceModel.replicationReported): once per change, bounded however often it is asked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OK_AFTER_MS, ToldState, replicationWarnings, reportsDue } from '../../src/host/replication-warnings';
import type { ReplicationHealth, ReplicationReport } from '../../src/contract/data-plane';
import { checkReplicationReport } from '../../src/contract/data-plane';
import { WorkspaceModel } from '../../src/workflows/workspace-model';
import { parsePolicy } from '../../src/lifecycle';
import { tenantLedgerEntry } from '../../src/api/tenant-view';

const h = (state: ReplicationHealth['state'], lagSeconds: number | null = 1, lastError?: string): ReplicationHealth => ({
  state,
  lagSeconds,
  checkedAt: '2026-12-07T00:00:00.000Z',
  ...(lastError ? { lastError } : {}),
});

test('reportsDue: behind once, lagging → failing again, the all-clear only after OK_AFTER_MS of ok, forgotten when no longer replicated', () => {
  const told = new Map<string, ToldState>();
  const ids = (d: [string, ReplicationHealth][]) => d.map(([id, x]) => `${id}:${x.state}`);
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('ok')], ['b', h('off')]]), 0, 30_000)), [], 'ok and off are not news');
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('lagging', 12)]]), 1000, 30_000)), ['a:lagging']);
  told.set('a', { state: 'lagging', okSinceMs: null });
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('lagging', 20)]]), 2000, 30_000)), [], 'the same news is not sent twice');
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('failing', 25, 'AccessDenied')]]), 3000, 30_000)), ['a:failing']);
  told.set('a', { state: 'failing', okSinceMs: null });
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('lagging', 30)]]), 4000, 30_000)), [], 'failing → lagging is not news');
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('ok')]]), 5000, 30_000)), [], 'ok, but not for long enough');
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('lagging', 11)]]), 6000, 30_000)), [], 'flapping back: still the same episode');
  assert.equal(told.get('a')!.okSinceMs, null, 'the ok clock starts over');
  reportsDue(told, new Map([['a', h('ok')]]), 7000, 30_000);
  assert.deepEqual(ids(reportsDue(told, new Map([['a', h('ok')]]), 37_000, 30_000)), ['a:ok']);
  assert.deepEqual(ids(reportsDue(told, new Map(), 38_000, 30_000)), []);
  assert.equal(told.has('a'), false, 'no longer replicated here: forgotten');
});

test('replicationWarnings: sends what is due with the host and bound, records it, retries a failed send at the next check', async () => {
  const sent: [string, ReplicationReport][] = [];
  let fail = true;
  let now = 0;
  const w = replicationWarnings({
    hostId: 'host-a',
    boundSeconds: 10,
    now: () => now,
    concurrency: 2,
    send: async (id, r) => {
      if (id === 'b' && fail) throw new Error('temporal unreachable');
      sent.push([id, r]);
    },
  });
  const behind = new Map([['a', h('lagging', 14)], ['b', h('failing', 30, 'boom')], ['c', h('lagging', 11)]]);
  await w.update(behind);
  assert.deepEqual(sent.map(([id, r]) => [id, r.state, r.host, r.boundSeconds]), [['a', 'lagging', 'host-a', 10], ['c', 'lagging', 'host-a', 10]]);
  assert.equal(w.told().has('b'), false, 'a failed send is not recorded as told');
  fail = false;
  await w.update(behind);
  assert.deepEqual(sent.map(([id]) => id), ['a', 'c', 'b'], 'only b again, now delivered');
  for (let i = 0; i < 100; i++) await w.update(behind);
  assert.equal(sent.length, 3, 'a hundred checks of the same state send nothing more');
  const ok = new Map([['a', h('ok')], ['b', h('ok')], ['c', h('ok')]]);
  await w.update(ok);
  now = OK_AFTER_MS;
  await w.update(ok);
  assert.deepEqual(sent.slice(3).map(([id, r]) => `${id}:${r.state}`).sort(), ['a:ok', 'b:ok', 'c:ok']);
  assert.equal(w.told().size, 0);
});

const host = { host: 'host-a', taskQueue: 'q@host-a', endpoint: 'http://host-a' };
const report = (state: ReplicationHealth['state'], o: Partial<ReplicationReport> = {}): ReplicationReport => ({ ...h(state, 15, state === 'failing' ? 'PUT s3://bucket/x: AccessDenied' : undefined), host: 'host-a', boundSeconds: 10, ...o });

test('replicationReported: the holder of an active workspace is heard, once per change; a move ends the warning', () => {
  const t0 = Date.parse('2026-12-07T00:00:00Z');
  const m = new WorkspaceModel({ workspaceId: 'acme.notes', tenant: 'acme' }, parsePolicy(undefined), t0);
  m.moveTo('active', t0);
  m.placeOn(host, '/d/live/acme.notes.sqlite', m.nextPlacement());
  const n = () => m.ledger.length;

  assert.equal(m.replicationReported(report('lagging', { host: 'host-b' }), t0), null, 'another host is not heard');
  assert.equal(m.replicationReported(report('ok'), t0), null, 'ok with nothing to clear is not news');
  const w = m.replicationReported(report('lagging'), t0 + 1000)!;
  assert.deepEqual([w.from, w.to, w.outcome, w.by], ['active', 'active', 'warning', 'replication']);
  assert.equal(w.detail, 'replica on host-a is 15 s behind (bound 10 s): the newest writes are not in the continuous backup yet');
  const before = n();
  assert.equal(m.replicationReported(report('lagging'), t0 + 2000), null, 'the same news again');
  const f = m.replicationReported(report('failing'), t0 + 3000)!;
  assert.match(f.detail!, /^replica on host-a is failing, 15 s behind: PUT s3:\/\/bucket\/x: AccessDenied$/);
  assert.equal(m.replicationReported(report('lagging'), t0 + 4000), null);
  assert.equal(m.replicationReported(report('failing'), t0 + 5000), null);
  assert.equal(n(), before + 1);
  // Carried across continue-as-new: the next run does not warn again.
  const m2 = new WorkspaceModel({ workspaceId: 'acme.notes', tenant: 'acme', carried: m.carry() }, parsePolicy(undefined), t0 + 6000);
  assert.equal(m2.replicationReported(report('failing'), t0 + 6000), null);
  const ok = m2.replicationReported(report('ok', { lagSeconds: 0.8 }), t0 + 7000)!;
  assert.deepEqual([ok.outcome, ok.detail], ['done', 'replica caught up on host-a: 0.8 s behind (failing since 2026-12-07T00:00:01.000Z)']);
  assert.equal(m2.replicaWarning, null);

  // During a move, or once stopped, nothing is heard; a stop ends a warning.
  m2.replicationReported(report('lagging'), t0 + 8000);
  m2.markBusy('suspended', t0 + 9000);
  assert.equal(m2.replicationReported(report('failing'), t0 + 9000), null);
  m2.clearBusy();
  m2.moveTo('suspended', t0 + 10_000);
  assert.equal(m2.replicaWarning, null);
  assert.equal(m2.replicationReported(report('failing'), t0 + 11_000), null);

  // A tenant reads fixed words, never the host's error (paths, buckets).
  const d = m.describe(0);
  assert.equal(tenantLedgerEntry(w, d).detail, 'the continuous backup is behind');
  assert.equal(tenantLedgerEntry(f, d).detail, 'the continuous backup is failing');
  assert.equal(tenantLedgerEntry(ok, d).detail, 'the continuous backup caught up');
});

test('checkReplicationReport: a signal payload is checked like a network answer', () => {
  assert.equal(checkReplicationReport(report('lagging')).host, 'host-a');
  for (const bad of [null, 'x', { ...report('ok'), host: '' }, { ...report('ok'), boundSeconds: 0 }, { ...report('ok'), state: 'great' }, { ...report('ok'), lagSeconds: -1 }]) {
    assert.throws(() => checkReplicationReport(bad), /replication (report|health)/);
  }
});
