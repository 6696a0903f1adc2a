/**
 * The host's lease and fence (src/host/lease.ts, src/host/fence.ts) with a clock the test moves: when a host may
 * serve a workspace, and what happens to an instance the workflow has given to another host.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { HostLease } from '../../src/host/lease';
import { Fence, FencedError, NotHereError, PlacementRequiredError, PlacementTruth } from '../../src/host/fence';
import { HostInstances } from '../../src/host/instances';
import { liveFile, orphansDir, placementPath, setAside } from '../../src/host/data-dir';
import { Vfs } from '../../src/vfs/vfs';
import { tempDir } from '../../harness/stack';

/** A lease on a clock the test sets; renewals succeed unless `down`. */
function fakeLease(leaseMs = 1000) {
  const clock = { now: 0, down: false, renewals: 0 };
  const lease = new HostLease({
    leaseMs,
    now: () => clock.now,
    renew: async () => {
      clock.renewals += 1;
      if (clock.down) throw new Error('cluster unreachable');
    },
  });
  return { lease, clock };
}

test('a lease is valid for its length from the start of the last good renewal, and counts its lapses', async () => {
  const { lease, clock } = fakeLease(1000);
  assert.equal(lease.valid(), false, 'nothing is served before the first renewal');
  await lease.renewNow();
  assert.equal(lease.valid(), true);
  assert.equal(lease.lapses, 1, 'the first grant counts: nothing was confirmed before it');
  clock.now = 900;
  await lease.renewNow();
  assert.equal(lease.lapses, 1, 'renewed in time: no lapse');
  clock.now = 1850;
  assert.equal(lease.valid(), true, 'valid until 900 + 1000');
  clock.down = true;
  clock.now = 1950;
  await lease.renewNow();
  assert.equal(lease.valid(), false, 'a failed renewal does not extend it');
  clock.now = 5000; // a pause, a stall or a cut link
  assert.equal(lease.valid(), false);
  clock.down = false;
  await lease.renewNow();
  assert.equal(lease.valid(), true);
  assert.equal(lease.lapses, 2, 'the gap is a lapse');
});

test('a renewal that answers only after the lease ran out counts as a lapse', async () => {
  const clock = { now: 0 };
  let answerAt = 0;
  const lease = new HostLease({
    leaseMs: 1000,
    now: () => clock.now,
    renew: async () => {
      clock.now = answerAt;
    },
  });
  await lease.renewNow(); // at 0
  clock.now = 500;
  answerAt = 1700; // started at 500, answered at 1700: between 1000 and 1700 nothing was valid
  await lease.renewNow();
  assert.equal(lease.lapses, 2);
  assert.equal(lease.valid(), false, 'a lease runs from the start of its renewal (500): over at 1500, before the answer');
});

interface Setup {
  dir: string;
  instances: HostInstances;
  fence: Fence;
  lease: HostLease;
  clock: { now: number; down: boolean };
  truth: Map<string, PlacementTruth | null>;
  asked: string[];
}

async function setup(t: { after(fn: () => void): void }): Promise<Setup> {
  const dir = tempDir('wb-fence-');
  const cfg = { dataDir: dir };
  const instances = new HostInstances(cfg);
  const { lease, clock } = fakeLease(1000);
  await lease.renewNow();
  const truth = new Map<string, PlacementTruth | null>();
  const asked: string[] = [];
  const fence = new Fence({
    hostId: 'host-a',
    lease,
    instances,
    truth: async (id) => {
      asked.push(id);
      if (!truth.has(id)) throw new Error('workflow did not answer');
      return truth.get(id)!;
    },
    setAside: async (id) => {
      instances.close(id, { checkpoint: false });
      return setAside(cfg, id);
    },
  });
  t.after(() => {
    instances.closeAll();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, instances, fence, lease, clock, truth, asked };
}

function open(s: Setup, id: string, placement: number): void {
  Vfs.open(liveFile({ dataDir: s.dir }, id)).close();
  s.instances.open(id, { placement });
}

test('a workspace is served only under its placement, and only while the lease holds', async (t) => {
  const s = await setup(t);
  open(s, 'ws', 3);
  s.fence.confirm('ws');
  assert.equal(fs.readFileSync(placementPath({ dataDir: s.dir }, 'ws'), 'utf8').trim(), '3', 'the placement is kept next to the file');

  await s.fence.admit('ws', 3);
  await assert.rejects(s.fence.admit('ws', 2), NotHereError, 'an old placement is not here');
  await assert.rejects(s.fence.admit('ws', null), PlacementRequiredError);
  await assert.rejects(s.fence.admit('other', 1), NotHereError, 'a workspace not open here');
  assert.deepEqual(s.asked, [], 'confirmed by the start: the workflow is not asked');

  s.clock.now = 1500; // no renewal for longer than the lease
  await assert.rejects(s.fence.admit('ws', 3), FencedError);
  assert.throws(() => s.fence.check('ws', 3), FencedError, 'the check right before an operation refuses too');
});

test('after a lapse an instance is served again only once the workflow confirms it is still here', async (t) => {
  const s = await setup(t);
  open(s, 'ws', 3);
  s.fence.confirm('ws');
  s.clock.now = 5000;
  await s.lease.renewNow(); // back, after a lapse
  assert.equal(s.lease.lapses, 2);

  s.truth.set('ws', { state: 'active', host: 'host-a', placement: 3 });
  await Promise.all([s.fence.admit('ws', 3), s.fence.admit('ws', 3)]);
  assert.deepEqual(s.asked, ['ws'], 'asked once for two requests');
  await s.fence.admit('ws', 3);
  assert.deepEqual(s.asked, ['ws'], 'confirmed until the next lapse');
});

test('an instance the workflow gave to another host is closed and its file set aside, never served again', async (t) => {
  const s = await setup(t);
  open(s, 'moved', 3);
  s.instances.withVfs('moved', (v) => v.put('workspace', '/late', Buffer.from('written before the pause')));
  s.fence.confirm('moved');
  s.clock.now = 5000;
  await s.lease.renewNow();

  s.truth.set('moved', { state: 'active', host: 'host-b', placement: 4 });
  await assert.rejects(s.fence.admit('moved', 3), (err: Error) => err instanceof NotHereError && /host 'host-b' under placement 4/.test(err.message));
  assert.equal(s.instances.isOpen('moved'), false);
  assert.equal(fs.existsSync(liveFile({ dataDir: s.dir }, 'moved')), false);
  const kept = fs.readdirSync(orphansDir({ dataDir: s.dir })).filter((n) => n.endsWith('.sqlite'));
  assert.equal(kept.length, 1, 'the file is kept aside for an operator');
  const v = Vfs.open(path.join(orphansDir({ dataDir: s.dir }), kept[0]!), { create: false, readonly: true });
  assert.equal(v.get('workspace', '/late')?.toString(), 'written before the pause');
  v.close();
  await assert.rejects(s.fence.admit('moved', 3), NotHereError);
});

test('a workflow that cannot be asked leaves the host fenced for that workspace (nothing served, nothing set aside)', async (t) => {
  const s = await setup(t);
  open(s, 'ws', 1);
  s.clock.now = 5000;
  await s.lease.renewNow();
  await assert.rejects(s.fence.admit('ws', 1), FencedError);
  assert.equal(s.instances.isOpen('ws'), true, 'kept open: it may still be this host\'s');
  s.truth.set('ws', { state: 'active', host: 'host-a', placement: 1 });
  await s.fence.admit('ws', 1);
});

test('a lease that lapses during an operation means its outcome is not acknowledged', async (t) => {
  const s = await setup(t);
  open(s, 'ws', 1);
  s.fence.confirm('ws');
  await s.fence.admit('ws', 1);
  s.clock.now = 2000; // the operation took longer than the lease (or the process was paused in it)
  assert.throws(() => s.fence.after(), FencedError);
});
