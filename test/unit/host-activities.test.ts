import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Config, loadConfig } from '../../src/config';
import { liveDir, liveFile } from '../../src/host/data-dir';
import type { HostInfo, StoredCopy } from '../../src/contract/types';
import { createHostActivities } from '../../src/activities/host';
import { createStorageActivities } from '../../src/activities/stored-copies';
import type { HostActivities, RecoverySource, TemplateSource } from '../../src/activities/types';
import { HostInstances, NotActiveError } from '../../src/host/instances';
import { HostLease } from '../../src/host/lease';
import { Fence } from '../../src/host/fence';
import { createLocalStopActivities } from '../../src/activities/local-stop';
import { Vfs } from '../../src/vfs/vfs';
import { hashFile } from '../../src/storage/copy';
import { FileStore } from '../../src/storage/file-store';
import { storeForCopyUrl } from '../../src/storage/open-store';
import { corruptBtreePage } from '../../harness/sqlite-damage';

interface Harness {
  dir: string;
  cfg: Config;
  instances: HostInstances;
  acts: HostActivities;
  storage: ReturnType<typeof createStorageActivities>;
  hostInfo: HostInfo;
  heartbeats: { bytesCopied: number; phase: string }[];
  env: MockActivityEnvironment;
  run<I, O>(fn: (input: I) => Promise<O>, input: I): Promise<O>;
}

function setup(t: { after(fn: () => void): void }, overrides: Partial<Config> = {}, dir?: string): Harness {
  dir ??= fs.mkdtempSync(path.join(os.tmpdir(), 'wb-host-'));
  const root = dir;
  const cfg = loadConfig(
    {},
    { dataDir: path.join(root, 'data'), coldUrl: `file://${root}/cold`, archiveUrl: `file://${root}/archive`, hostId: 'host-a', hostPort: 0, ...overrides },
  );
  const instances = new HostInstances(cfg);
  const hostInfo: HostInfo = { host: cfg.hostId, taskQueue: `workbooks@${cfg.hostId}`, endpoint: 'http://127.0.0.1:1' };
  const acts = createHostActivities({ cfg, instances, hostInfo: () => hostInfo });
  const storage = createStorageActivities(cfg);
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const heartbeats: Harness['heartbeats'] = [];
  env.on('heartbeat', (d) => heartbeats.push(d));
  t.after(() => {
    instances.closeAll();
    fs.rmSync(root, { recursive: true, force: true });
  });
  return { dir: root, cfg, instances, acts, storage, hostInfo, heartbeats, env, run: (fn, input) => env.run(fn, input) };
}

/** Asserts an activity failed with a non-retryable ApplicationFailure of `type`. */
async function rejectsWith(p: Promise<unknown>, type: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, `expected ApplicationFailure, got ${String(err)}`);
    assert.equal(err.type, type, err.message);
    assert.equal(err.nonRetryable, true);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** Provisions and starts a workspace and writes one file per volume. */
async function makeWorkspace(h: Harness, id: string, tag = id): Promise<void> {
  await h.run(h.acts.provision, { workspaceId: id });
  await h.run(h.acts.startInstance, { workspaceId: id, clearTmp: false });
  h.instances.withVfs(id, (v) => {
    v.put('workspace', '/notes.md', `notes of ${tag}`);
    v.put('workspace', '/data/big.bin', crypto.randomBytes(300_000));
    v.put('memory', '/facts.json', `{"who":"${tag}"}`);
    v.put('tmp', '/scratch.txt', 'throwaway');
  });
}

function liveNames(h: Harness): string[] {
  return fs.existsSync(liveDir(h.cfg)) ? fs.readdirSync(liveDir(h.cfg)).sort() : [];
}

function flipByte(file: string, offset: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, offset);
    b[0] ^= 0xff;
    fs.writeSync(fd, b, 0, 1, offset);
  } finally {
    fs.closeSync(fd);
  }
}

/** Local path of a file:// stored copy's object. */
function objectPath(copy: StoredCopy): string {
  return fileURLToPath(copy.url);
}

/** The content-addressed key a copy of `id` with these bytes must have: `<id>.<first 16 hex of sha256>.sqlite`. */
function contentKey(id: string, sha256: string): string {
  assert.match(sha256, /^[0-9a-f]{64}$/);
  return `${id}.${sha256.slice(0, 16)}.sqlite`;
}

/** Everything in a store directory (objects, metadata, temporaries), or only what belongs to workspace `id`. */
function storeNames(h: Harness, target: 'cold' | 'archive', id?: string): string[] {
  const dir = path.join(h.dir, target);
  const names = fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
  return id === undefined ? names : names.filter((n) => n.startsWith(`${id}.`) || n.startsWith(`.${id}.`));
}

/** What storeLocal's restore-verification left in `<dataDir>/scratch` (must be nothing once it returns). */
function scratchNames(h: Harness): string[] {
  const dir = path.join(h.cfg.dataDir, 'scratch');
  return fs.existsSync(dir) ? fs.readdirSync(dir) : [];
}

/** SQLite's full integrity check of a copy of `file` (the file itself is not opened: no journal appears next to it). */
function integrityProblemsOfCopy(h: Harness, file: string): string[] {
  const probe = path.join(h.dir, `probe-${crypto.randomBytes(4).toString('hex')}.sqlite`);
  fs.copyFileSync(file, probe);
  try {
    const v = Vfs.open(probe, { create: false, readonly: true }); // opens: the schema page is intact
    try {
      return v.integrityCheck('full');
    } finally {
      v.close();
    }
  } finally {
    for (const f of [probe, `${probe}-wal`, `${probe}-shm`]) fs.rmSync(f, { force: true });
  }
}

/** Records every Vfs.open while `fn` runs. */
async function recordingOpens<T>(fn: () => Promise<T>): Promise<{ opened: string[]; result: PromiseSettledResult<T> }> {
  const orig = Vfs.open;
  const opened: string[] = [];
  Vfs.open = ((file: string, options?: Parameters<typeof Vfs.open>[1]) => {
    opened.push(file);
    return orig.call(Vfs, file, options);
  }) as typeof Vfs.open;
  try {
    const [result] = await Promise.allSettled([fn()]);
    return { opened, result };
  } finally {
    Vfs.open = orig;
  }
}

test('freeze and restore round trip keeps workspace and memory; resuming with clearTmp drops tmp', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-1');
  const stopped = await h.run(h.acts.stopInstance, { workspaceId: 'ws-1' });
  assert.equal(stopped.filePath, liveFile(h.cfg, 'ws-1'));
  assert.equal(stopped.host.host, 'host-a');
  const localSha = (await hashFile(stopped.filePath)).sha256;

  h.heartbeats.length = 0;
  const copy = await h.run(h.acts.storeLocal, { workspaceId: 'ws-1', target: 'cold' });
  // Content-addressed: the key names the workspace and the first 16 hex digits of the copy's sha256.
  assert.equal(copy.url, `file://${h.dir}/cold/${contentKey('ws-1', localSha)}`);
  assert.equal(copy.sha256, localSha);
  assert.equal(copy.bytes, stopped.bytes);
  assert.deepEqual(await hashFile(objectPath(copy)), { sha256: copy.sha256, bytes: copy.bytes });
  assert.deepEqual(storeNames(h, 'cold'), [contentKey('ws-1', localSha), `${contentKey('ws-1', localSha)}.meta.json`], 'one object, no temporaries');
  const phases = new Set(h.heartbeats.map((b) => b.phase));
  // file://: the copy (with its read-back) runs while the file is hashed; 'copy' is the wait for what is left of it.
  for (const p of ['fold', 'hash', 'copy', 'integrity']) assert.ok(phases.has(p), `heartbeat phase ${p} missing: ${[...phases].join(',')}`);
  for (const b of h.heartbeats) assert.equal(typeof b.bytesCopied, 'number');
  assert.deepEqual(scratchNames(h), [], 'no scratch copy was made for the verification');
  // The local copy is released: no file, WAL, marker; only the release record.
  assert.deepEqual(liveNames(h), ['ws-1.released.json']);

  const restored = await h.run(h.acts.restoreLocal, { workspaceId: 'ws-1', copy });
  assert.equal(restored.filePath, liveFile(h.cfg, 'ws-1'));
  assert.equal(restored.bytes, copy.bytes);
  assert.equal((await hashFile(restored.filePath)).sha256, copy.sha256);
  assert.equal(h.instances.isOpen('ws-1'), false, 'restoring does not start the instance');

  await h.run(h.acts.startInstance, { workspaceId: 'ws-1', clearTmp: true });
  h.instances.withVfs('ws-1', (v) => {
    assert.equal(v.get('workspace', '/notes.md')?.toString(), 'notes of ws-1');
    assert.equal(v.get('workspace', '/data/big.bin')?.length, 300_000);
    assert.equal(v.get('memory', '/facts.json')?.toString(), '{"who":"ws-1"}');
    assert.equal(v.get('tmp', '/scratch.txt'), null);
  });
  const la = await h.run(h.acts.lastAccess, { workspaceId: 'ws-1' });
  assert.equal(la.open, true);
  assert.ok(la.lastAccessAt !== null && Date.now() - la.lastAccessAt < 5000);
});

test('stopIfIdle stops only an instance idle for long enough; a retry after the stop stops it again', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-idle');
  // makeWorkspace wrote through the instance just now: used less than a minute ago.
  const busy = await h.run(h.acts.stopIfIdle, { workspaceId: 'ws-idle', idleForMs: 60_000 });
  assert.equal(busy.stopped, false);
  assert.ok(!busy.stopped && busy.idleMs >= 0 && busy.idleMs < 60_000, `idleMs ${JSON.stringify(busy)}`);
  assert.equal(h.instances.isOpen('ws-idle'), true, 'a busy instance stays open');
  const stopped = await h.run(h.acts.stopIfIdle, { workspaceId: 'ws-idle', idleForMs: 0 });
  assert.ok(stopped.stopped && stopped.bytes > 0 && stopped.filePath.endsWith('.sqlite'), JSON.stringify(stopped));
  assert.equal(h.instances.isOpen('ws-idle'), false, 'an idle instance is closed');
  // The task's answer can be lost after the stop: the retry finds it closed and answers stopped again.
  const again = await h.run(h.acts.stopIfIdle, { workspaceId: 'ws-idle', idleForMs: 60_000 });
  assert.equal(again.stopped, true);
  await rejectsWith(h.run(h.acts.stopIfIdle, { workspaceId: 'ws-idle', idleForMs: -1 }), 'InvalidInput');
  await rejectsWith(h.run(h.acts.stopIfIdle, { workspaceId: 'ws-idle', idleForMs: '5' as unknown as number }), 'InvalidInput');
  await rejectsWith(h.run(h.acts.stopIfIdle, { workspaceId: '../x', idleForMs: 0 }), 'InvalidInput');
});

test('a host activity handed out before the lease lapsed does nothing after it (a paused host resuming with the tasks its polls held)', async (t) => {
  const h = setup(t);
  // Monotonic and wall clocks the test moves; the lease is 1 s.
  const clock = { mono: 0, wall: 1_000_000, down: false };
  const lease = new HostLease({
    leaseMs: 1000,
    now: () => clock.mono,
    wallNow: () => clock.wall,
    renew: async () => {
      if (clock.down) throw new Error('cluster unreachable');
    },
  });
  await lease.renewNow();
  const asked: string[] = [];
  const fence = new Fence({
    hostId: 'host-a',
    lease,
    instances: h.instances,
    truth: async (id) => {
      asked.push(id);
      return { state: 'active', host: 'host-b', placement: 2 };
    },
    setAside: async (id) => {
      h.instances.close(id, { checkpoint: false });
      return undefined;
    },
  });
  const acts = createHostActivities({ cfg: h.cfg, instances: h.instances, hostInfo: () => h.hostInfo, fence });
  const at = <I, O>(scheduledMs: number, fn: (input: I) => Promise<O>, input: I) =>
    new MockActivityEnvironment({ currentAttemptScheduledTimestampMs: scheduledMs }, { logger: new DefaultLogger('ERROR') }).run(fn, input);
  const fenced = (p: Promise<unknown>) =>
    assert.rejects(p, (err: unknown) => {
      assert.ok(err instanceof ApplicationFailure, String(err));
      assert.equal(err.type, 'HostFenced');
      assert.equal(err.nonRetryable, false, 'retryable: the next attempt is scheduled after the lapse');
      return true;
    });

  await at(clock.wall, acts.provision, { workspaceId: 'ws' });
  await at(clock.wall, acts.startInstance, { workspaceId: 'ws', clearTmp: false, placement: 1 });
  await at(clock.wall + 100, acts.stopInstance, { workspaceId: 'ws' });
  // A start of placement 1 is handed to this host's poll; then the process is paused for 4 s.
  const stale = clock.wall + 200;
  clock.mono += 4000;
  clock.wall += 4000;
  await fenced(at(stale, acts.startInstance, { workspaceId: 'ws', clearTmp: false, placement: 1 }));
  assert.equal(h.instances.isOpen('ws'), false, 'refused while the lease is out: nothing opened');
  await lease.renewNow(); // the lease is back
  assert.equal(lease.valid(), true);
  await fenced(at(stale, acts.startInstance, { workspaceId: 'ws', clearTmp: false, placement: 1 }));
  assert.equal(h.instances.isOpen('ws'), false, 'refused after the lease healed too: it was handed out before the lapse');
  await fenced(at(stale, acts.stopIfIdle, { workspaceId: 'ws', idleForMs: 0 }));
  // A data request under the old placement is not served either: nothing confirmed it since the lapse.
  await assert.rejects(fence.admit('ws', 1), /not served here/);
  // An attempt the cluster scheduled after the lapse runs and confirms the placement it carries.
  clock.wall += 50;
  await at(clock.wall, acts.startInstance, { workspaceId: 'ws', clearTmp: false, placement: 3 });
  await fence.admit('ws', 3);
  assert.deepEqual(asked, []);
  // Activities called outside an activity context (no scheduled time) are admitted on the lease alone.
  clock.mono += 4000;
  await assert.rejects(acts.stopInstance({ workspaceId: 'ws' }), /HostFenced|lease/);
});

test('the local stop acts only on the host that serves the workspace under that placement, confirmed since its lease lapsed', async (t) => {
  const h = setup(t);
  const clock = { mono: 0 };
  const lease = new HostLease({ leaseMs: 1000, now: () => clock.mono, renew: async () => undefined });
  await lease.renewNow();
  const fence = new Fence({
    hostId: 'host-a',
    lease,
    instances: h.instances,
    truth: async () => ({ state: 'active', host: 'host-a', placement: 1 }),
    setAside: async () => undefined,
  });
  const acts = createHostActivities({ cfg: h.cfg, instances: h.instances, hostInfo: () => h.hostInfo, fence });
  const local = createLocalStopActivities({ hostId: 'host-a', fence, stopIfIdle: acts.stopIfIdle });
  // A local activity is scheduled by the workflow task that runs it: now.
  const run = <I, O>(fn: (input: I) => Promise<O>, input: I) =>
    new MockActivityEnvironment({ currentAttemptScheduledTimestampMs: Date.now() }, { logger: new DefaultLogger('ERROR') }).run(fn, input) as Promise<O>;
  await run(acts.provision, { workspaceId: 'ws' });
  await run(acts.startInstance, { workspaceId: 'ws', clearTmp: false, placement: 1 });
  h.instances.withVfs('ws', (v) => v.put('workspace', '/used', 'just now'));

  const other = await run(local.stopIfIdleHere, { workspaceId: 'ws', idleForMs: 0, host: 'host-b', placement: 1 });
  assert.equal(other.here, false, 'another host: not here');
  const stale = await run(local.stopIfIdleHere, { workspaceId: 'ws', idleForMs: 0, host: 'host-a', placement: 7 });
  assert.equal(stale.here, false, 'another placement: not here');
  assert.equal(h.instances.isOpen('ws'), true, 'nothing stopped by a refused local stop');
  const busy = await run(local.stopIfIdleHere, { workspaceId: 'ws', idleForMs: 60_000, host: 'host-a', placement: 1 });
  assert.ok(busy.here && !busy.stopped, 'used less than the rung ago: stays open');
  assert.equal(h.instances.isOpen('ws'), true);

  clock.mono = 5000; // the lease lapsed (paused), then came back: not confirmed since
  assert.equal((await run(local.stopIfIdleHere, { workspaceId: 'ws', idleForMs: 0, host: 'host-a', placement: 1 })).here, false, 'lease out');
  await lease.renewNow();
  assert.equal((await run(local.stopIfIdleHere, { workspaceId: 'ws', idleForMs: 0, host: 'host-a', placement: 1 })).here, false, 'not confirmed since the lapse');
  await fence.admit('ws', 1); // the workflow confirms it (truth)
  const stopped = await run(local.stopIfIdleHere, { workspaceId: 'ws', idleForMs: 0, host: 'host-a', placement: 1 });
  assert.ok(stopped.here && stopped.stopped, 'idle, held and confirmed: stopped here');
  assert.equal(h.instances.isOpen('ws'), false);
  await assert.rejects(run(local.stopIfIdleHere, { workspaceId: 'ws', idleForMs: 0, host: 'host-a' } as never), /placement/);
});

test('resuming without clearTmp keeps tmp; a retried startInstance does not clear tmp again', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-2');
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-2' });
  await h.run(h.acts.startInstance, { workspaceId: 'ws-2', clearTmp: false });
  assert.equal(h.instances.withVfs('ws-2', (v) => v.get('tmp', '/scratch.txt')?.toString()), 'throwaway');
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-2' });
  await h.run(h.acts.startInstance, { workspaceId: 'ws-2', clearTmp: true });
  h.instances.withVfs('ws-2', (v) => v.put('tmp', '/new.txt', 'written after resume'));
  await h.run(h.acts.startInstance, { workspaceId: 'ws-2', clearTmp: true }); // retry of the same start
  h.instances.withVfs('ws-2', (v) => {
    assert.equal(v.get('tmp', '/scratch.txt'), null);
    assert.equal(v.get('tmp', '/new.txt')?.toString(), 'written after resume');
  });
});

test('a corrupted stored copy fails restore with ChecksumMismatch; the file is never opened nor placed', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-3');
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-3' });
  const copy = await h.run(h.acts.storeLocal, { workspaceId: 'ws-3', target: 'cold' });
  const object = objectPath(copy);
  flipByte(object, Math.floor(copy.bytes / 2));

  const { opened, result } = await recordingOpens(() => h.run(h.acts.restoreLocal, { workspaceId: 'ws-3', copy }));
  assert.equal(result.status, 'rejected');
  await rejectsWith(Promise.reject((result as PromiseRejectedResult).reason), 'ChecksumMismatch', /expected/);
  assert.deepEqual(opened, [], 'no SQLite handle was opened on the bad bytes');
  assert.deepEqual(liveNames(h), ['ws-3.released.json'], 'nothing placed, no temporary or journal left');
  await rejectsWith(h.run(h.acts.startInstance, { workspaceId: 'ws-3', clearTmp: true }), 'SourceMissing');

  // Same for a clone from that stored copy.
  const template: TemplateSource = { kind: 'stored', templateId: 'ws-3', copy };
  await rejectsWith(h.run(h.acts.provision, { workspaceId: 'ws-3-clone', template }), 'ChecksumMismatch');
  assert.equal(fs.existsSync(liveFile(h.cfg, 'ws-3-clone')), false);
  assert.deepEqual(liveNames(h), ['ws-3.released.json']);
});

test('storeLocal twice, and after the local file was released, returns the same verified copy', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-4');
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-4' });
  const first = await h.run(h.acts.storeLocal, { workspaceId: 'ws-4', target: 'archive' });
  const second = await h.run(h.acts.storeLocal, { workspaceId: 'ws-4', target: 'archive' });
  assert.deepEqual(second, first);
  assert.equal(first.url, `file://${h.dir}/archive/${contentKey('ws-4', first.sha256)}`);

  // The release record only vouches for the same target.
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-4', target: 'cold' }), 'SourceMissing');
  // And only while the stored object is still there.
  fs.rmSync(objectPath(first));
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-4', target: 'archive' }), 'SourceMissing', /no longer there/);
  // A workspace that never had a file here is SourceMissing, not a stale object.
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'never-here', target: 'cold' }), 'SourceMissing');
});

test('a retried storeLocal after the release does not vouch for a stored object whose bytes changed since', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-4b');
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-4b' });
  const first = await h.run(h.acts.storeLocal, { workspaceId: 'ws-4b', target: 'archive' });
  flipByte(objectPath(first), 100);
  // Which failure type is the workflow's choice; returning the damaged object as "the verified copy" is not.
  await assert.rejects(h.run(h.acts.storeLocal, { workspaceId: 'ws-4b', target: 'archive' }), (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure && err.nonRetryable, `expected a non-retryable failure, got ${String(err)}`);
    assert.ok(['ChecksumMismatch', 'VerifyFailed', 'SourceMissing'].includes(err.type ?? ''), `${err.type}: ${err.message}`);
    return true;
  });
});

test('storeLocal after a crash between the put and the release reuses the stored object; a changed file gets its own object', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-5');
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-5' });
  const file = liveFile(h.cfg, 'ws-5');
  const keep = fs.readFileSync(file);
  const first = await h.run(h.acts.storeLocal, { workspaceId: 'ws-5', target: 'cold' });
  // Simulate: object stored, host died before deleting the local file.
  fs.writeFileSync(file, keep);
  fs.rmSync(path.join(liveDir(h.cfg), 'ws-5.released.json'));
  h.heartbeats.length = 0;
  const again = await h.run(h.acts.storeLocal, { workspaceId: 'ws-5', target: 'cold' });
  assert.equal(again.sha256, first.sha256);
  assert.ok(!h.heartbeats.some((b) => b.phase === 'copy'), 'the verified object was not uploaded again');

  assert.deepEqual(again, first, 'the same object, not a second one');
  assert.deepEqual(storeNames(h, 'cold'), [contentKey('ws-5', first.sha256), `${contentKey('ws-5', first.sha256)}.meta.json`]);

  // Restore, change, stop, store again: the new bytes are stored under their own key.
  await h.run(h.acts.restoreLocal, { workspaceId: 'ws-5', copy: again });
  await h.run(h.acts.startInstance, { workspaceId: 'ws-5', clearTmp: true });
  h.instances.withVfs('ws-5', (v) => v.put('workspace', '/notes.md', 'changed'));
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-5' });
  const third = await h.run(h.acts.storeLocal, { workspaceId: 'ws-5', target: 'cold' });
  assert.notEqual(third.sha256, first.sha256);
  assert.notEqual(third.url, first.url);
  const { store, key } = storeForCopyUrl(third.url);
  assert.equal(key, contentKey('ws-5', third.sha256));
  assert.equal((await store.head(key))?.sha256, third.sha256);
});

test('re-freezing changed content stores a new content-addressed object and leaves the previous one untouched', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'rf-1');
  await h.run(h.acts.stopInstance, { workspaceId: 'rf-1' });
  const first = await h.run(h.acts.storeLocal, { workspaceId: 'rf-1', target: 'cold' });
  const firstBytes = fs.readFileSync(objectPath(first));
  const firstMeta = fs.readFileSync(`${objectPath(first)}.meta.json`);
  const firstStat = fs.statSync(objectPath(first));

  await h.run(h.acts.restoreLocal, { workspaceId: 'rf-1', copy: first });
  await h.run(h.acts.startInstance, { workspaceId: 'rf-1', clearTmp: true });
  h.instances.withVfs('rf-1', (v) => v.put('workspace', '/notes.md', 'second version'));
  await h.run(h.acts.stopInstance, { workspaceId: 'rf-1' });
  const second = await h.run(h.acts.storeLocal, { workspaceId: 'rf-1', target: 'cold' });

  assert.notEqual(second.sha256, first.sha256);
  assert.equal(second.url, `file://${h.dir}/cold/${contentKey('rf-1', second.sha256)}`);
  assert.notEqual(second.url, first.url);
  assert.deepEqual(await hashFile(objectPath(second)), { sha256: second.sha256, bytes: second.bytes });
  // The copy the workflow still has on record is exactly as it was: bytes, metadata, not even rewritten.
  assert.ok(fs.readFileSync(objectPath(first)).equals(firstBytes), 'previous object byte-identical');
  assert.ok(fs.readFileSync(`${objectPath(first)}.meta.json`).equals(firstMeta), 'previous metadata unchanged');
  assert.equal(fs.statSync(objectPath(first)).ino, firstStat.ino);
  assert.equal(fs.statSync(objectPath(first)).mtimeMs, firstStat.mtimeMs);
  const keys = [contentKey('rf-1', first.sha256), contentKey('rf-1', second.sha256)];
  assert.deepEqual(storeNames(h, 'cold'), keys.flatMap((k) => [k, `${k}.meta.json`]).sort(), 'two objects, no temporaries');

  // Each copy still restores to its own content.
  for (const [copy, notes] of [
    [first, 'notes of rf-1'],
    [second, 'second version'],
  ] as const) {
    await h.run(h.acts.restoreLocal, { workspaceId: 'rf-1', copy });
    assert.equal((await hashFile(liveFile(h.cfg, 'rf-1'))).sha256, copy.sha256);
    await h.run(h.acts.startInstance, { workspaceId: 'rf-1', clearTmp: true });
    assert.equal(h.instances.withVfs('rf-1', (v) => v.get('workspace', '/notes.md')?.toString()), notes);
    await h.run(h.acts.stopInstance, { workspaceId: 'rf-1' });
  }

  // The workflow deletes the previous copy once the new one is recorded: only that object goes.
  assert.deepEqual(await h.run(h.storage.deleteStoredCopies, { workspaceId: 'rf-1', copies: [first] }), { deleted: 1 });
  assert.deepEqual(storeNames(h, 'cold'), [keys[1]!, `${keys[1]!}.meta.json`]);
  assert.deepEqual(await hashFile(objectPath(second)), { sha256: second.sha256, bytes: second.bytes });
});

test('storeLocal refuses an open instance and a file that fails its integrity check (keeping the file)', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-6');
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-6', target: 'cold' }), 'NotStopped');
  h.instances.withVfs('ws-6', (v) => {
    for (let i = 0; i < 400; i++) v.put('workspace', `/many/${String(i).padStart(4, '0')}`, `row ${i}`);
  });
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-6' });
  const file = liveFile(h.cfg, 'ws-6');
  // Scribble over the b-tree pages after the schema page.
  const fd = fs.openSync(file, 'r+');
  fs.writeSync(fd, crypto.randomBytes(4096 * 3), 0, 4096 * 3, 4096);
  fs.closeSync(fd);
  const damaged = fs.readFileSync(file);
  // The file still opens, so it is uploaded; its integrity check (the stored bytes are the same) fails.
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-6', target: 'cold' }), 'VerifyFailed', /integrity check/);
  assert.ok(fs.readFileSync(file).equals(damaged), 'the local file is kept as it was');
  assert.deepEqual(storeNames(h, 'cold', 'ws-6'), [], 'no object (under any key), metadata or temporary of ws-6 remains');
  assert.ok(!liveNames(h).includes('ws-6.released.json'), 'nothing was released');
  assert.deepEqual(scratchNames(h), []);

  // A file SQLite cannot open at all fails before anything is uploaded.
  const fd2 = fs.openSync(file, 'r+');
  fs.writeSync(fd2, Buffer.alloc(100, 0x42), 0, 100, 0);
  fs.closeSync(fd2);
  const unreadable = fs.readFileSync(file);
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-6', target: 'archive' }), 'IntegrityError');
  assert.ok(fs.readFileSync(file).equals(unreadable), 'the local file is kept as it was');
  assert.deepEqual(storeNames(h, 'archive'), []);
});

test('storeLocal of a file that opens but fails the integrity check: VerifyFailed, file kept, nothing stored, scratch empty', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'bad-1');
  h.instances.withVfs('bad-1', (v) => {
    for (let i = 0; i < 400; i++) v.put('workspace', `/many/${String(i).padStart(4, '0')}`, `row ${i}`);
  });
  await h.run(h.acts.stopInstance, { workspaceId: 'bad-1' });
  const file = liveFile(h.cfg, 'bad-1');
  assert.deepEqual(integrityProblemsOfCopy(h, file), [], 'intact before the damage');
  corruptBtreePage(file, 2);
  assert.notDeepEqual(integrityProblemsOfCopy(h, file), [], 'the damage is one the integrity check sees (and the file still opens)');
  const damaged = fs.readFileSync(file);
  const namesBefore = liveNames(h);

  for (const target of ['cold', 'archive', 'cold'] as const) {
    h.heartbeats.length = 0;
    await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'bad-1', target }), 'VerifyFailed', /fails SQLite's integrity check/);
    const phases = new Set(h.heartbeats.map((b) => b.phase));
    // Uploaded (read back in the put), then the integrity check (of the unchanged local file) is taken.
    assert.ok(phases.has('copy') && phases.has('integrity'), `uploaded, read back, checked: ${[...phases].join(',')}`);
    assert.ok(fs.readFileSync(file).equals(damaged), 'the local file is kept byte-identical');
    assert.deepEqual(liveNames(h), namesBefore, 'no release record, no temporaries next to the file');
    assert.deepEqual(storeNames(h, target, 'bad-1'), [], `no object of bad-1 under any key in ${target}`);
    assert.deepEqual(scratchNames(h), [], 'the scratch copy (and any journal of it) is gone');
  }
  assert.deepEqual([...storeNames(h, 'cold'), ...storeNames(h, 'archive')], []);
});

for (const how of ['in the put (file store: the copy is read back before the rename)', 'by a re-hash (a store whose put does not read back)'] as const) {
  test(`storeLocal whose stored bytes read back different (${how}): VerifyFailed, object deleted, file kept; a later retry stores it`, async (t) => {
    const h = setup(t);
    await makeWorkspace(h, 'rb-1');
    await h.run(h.acts.stopInstance, { workspaceId: 'rb-1' });
    const file = liveFile(h.cfg, 'rb-1');
    const before = fs.readFileSync(file);
    const inPut = how.startsWith('in the put');
    const realCopyFile = fs.promises.copyFile;
    const realStage = FileStore.prototype.stagePut;
    const readsBack = Object.getOwnPropertyDescriptor(FileStore.prototype, 'readsBackOnPut')!;
    if (inPut) {
      // The kernel copy lands other bytes than it was given (one byte flipped in the destination).
      fs.promises.copyFile = async (src, dst, mode) => {
        await realCopyFile(src, dst, mode);
        flipByte(String(dst), 5000);
      };
    } else {
      // A store that keeps other bytes than it was given (flipped once they are in place) and says its put does
      // not read back (as S3's does not): the re-hash after the put must catch it.
      Object.defineProperty(FileStore.prototype, 'readsBackOnPut', { get: () => false, configurable: true });
      FileStore.prototype.stagePut = function (this: FileStore, localFile, opts) {
        const st = realStage.call(this, localFile, opts);
        return {
          commit: async (key, meta) => {
            const r = await st.commit(key, meta);
            flipByte(this.pathFor(key), 5000);
            return r;
          },
          discard: () => st.discard(),
        };
      };
    }
    try {
      h.heartbeats.length = 0;
      await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'rb-1', target: 'cold' }), 'VerifyFailed', inPut ? /reads back as .* sha256/ : /reads as sha256/);
    } finally {
      fs.promises.copyFile = realCopyFile;
      FileStore.prototype.stagePut = realStage;
      Object.defineProperty(FileStore.prototype, 'readsBackOnPut', readsBack);
    }
    const phases = new Set(h.heartbeats.map((b) => b.phase));
    assert.ok(phases.has(inPut ? 'copy' : 'verify'), [...phases].join(','));
    assert.ok(fs.readFileSync(file).equals(before), 'the local file is kept byte-identical');
    assert.deepEqual(storeNames(h, 'cold'), [], 'the unverifiable object (or its temporary) is gone');
    assert.deepEqual(scratchNames(h), []);
    assert.deepEqual(liveNames(h), ['rb-1.sqlite'], 'no journal of the integrity check next to the file');

    const copy = await h.run(h.acts.storeLocal, { workspaceId: 'rb-1', target: 'cold' });
    assert.equal(copy.sha256, crypto.createHash('sha256').update(before).digest('hex'));
    assert.deepEqual(liveNames(h), ['rb-1.released.json']);
    assert.deepEqual(scratchNames(h), [], 'nothing in scratch');
    assert.ok(fs.readFileSync(objectPath(copy)).equals(before), 'the stored copy is the file, untouched by the check');
    const key = path.basename(objectPath(copy));
    assert.deepEqual(storeNames(h, 'cold'), [key, `${key}.meta.json`], 'no -wal/-shm next to the stored copy');
  });
}

test('a second restoreLocal of the same copy (prefetch, then resume) skips the copy; a changed file is restored again', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ws-7');
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-7' });
  const copy = await h.run(h.acts.storeLocal, { workspaceId: 'ws-7', target: 'cold' });
  await h.run(h.acts.restoreLocal, { workspaceId: 'ws-7', copy }); // prefetch
  h.heartbeats.length = 0;
  await h.run(h.acts.restoreLocal, { workspaceId: 'ws-7', copy }); // resume
  assert.deepEqual(
    h.heartbeats.filter((b) => b.phase === 'copy' || b.phase === 'verify'),
    [],
    'no second copy, not even a re-hash: the sidecar vouches for the unchanged file',
  );

  // Crash between the rename and the sidecar: the local file is hashed and recognised, no copy either.
  fs.rmSync(path.join(liveDir(h.cfg), 'ws-7.verified.json'));
  const object = objectPath(copy);
  const objectBytes = fs.readFileSync(object);
  fs.rmSync(object);
  await h.run(h.acts.restoreLocal, { workspaceId: 'ws-7', copy });
  assert.ok(fs.existsSync(path.join(liveDir(h.cfg), 'ws-7.verified.json')));

  // A local file changed since verification is not trusted: the copy is fetched again (and is missing now).
  await h.run(h.acts.startInstance, { workspaceId: 'ws-7', clearTmp: true });
  h.instances.withVfs('ws-7', (v) => v.put('workspace', '/notes.md', 'diverged'));
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-7' });
  await rejectsWith(h.run(h.acts.restoreLocal, { workspaceId: 'ws-7', copy }), 'SourceMissing');
  fs.writeFileSync(object, objectBytes);
  await h.run(h.acts.restoreLocal, { workspaceId: 'ws-7', copy });
  assert.equal((await hashFile(liveFile(h.cfg, 'ws-7'))).sha256, copy.sha256);

  // Restoring over a running instance is refused.
  await h.run(h.acts.startInstance, { workspaceId: 'ws-7', clearTmp: true });
  await rejectsWith(h.run(h.acts.restoreLocal, { workspaceId: 'ws-7', copy }), 'NotStopped');
});

test('clone from a closed template leaves the template byte-identical and drops tmp in the clone', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'tpl');
  await h.run(h.acts.stopInstance, { workspaceId: 'tpl' });
  const tplFile = liveFile(h.cfg, 'tpl');
  const before = { bytes: fs.readFileSync(tplFile), mtime: fs.statSync(tplFile).mtimeMs, names: liveNames(h) };

  const template: TemplateSource = { kind: 'local', templateId: 'tpl', host: h.hostInfo, filePath: tplFile, open: false, keep: ['workspace', 'memory'] };
  const p = await h.run(h.acts.provision, { workspaceId: 'clone-1', template });
  assert.equal(p.filePath, liveFile(h.cfg, 'clone-1'));
  assert.ok(fs.readFileSync(tplFile).equals(before.bytes), 'template bytes unchanged');
  assert.equal(fs.statSync(tplFile).mtimeMs, before.mtime);
  assert.deepEqual(liveNames(h), [...before.names, 'clone-1.sqlite'].sort(), 'no journal next to the template, no temporaries');

  await h.run(h.acts.startInstance, { workspaceId: 'clone-1', clearTmp: false });
  h.instances.withVfs('clone-1', (v) => {
    assert.equal(v.get('workspace', '/notes.md')?.toString(), 'notes of tpl');
    assert.equal(v.get('memory', '/facts.json')?.toString(), '{"who":"tpl"}');
    assert.equal(v.get('tmp', '/scratch.txt'), null, 'tmp is cleared in the clone');
  });
  assert.ok(fs.readFileSync(tplFile).equals(before.bytes), 'still unchanged after the clone started');

  // Idempotent: provisioning again changes nothing.
  h.instances.withVfs('clone-1', (v) => v.put('workspace', '/mine.md', 'clone data'));
  await h.run(h.acts.provision, { workspaceId: 'clone-1', template });
  assert.equal(h.instances.withVfs('clone-1', (v) => v.get('workspace', '/mine.md')?.toString()), 'clone data');
});

test('a copy into another tenant carries neither memory nor tmp; one within the tenant keeps memory', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'acme.tpl');
  await h.run(h.acts.stopInstance, { workspaceId: 'acme.tpl' });
  const tplFile = liveFile(h.cfg, 'acme.tpl');
  const base: TemplateSource = { kind: 'local', templateId: 'acme.tpl', host: h.hostInfo, filePath: tplFile, open: false };
  // As resolved for another tenant, for the same tenant, and (older builds) with no `keep`: decided from the keys.
  await h.run(h.acts.provision, { workspaceId: 'globex.copy', template: { ...base, keep: ['workspace'] } });
  await h.run(h.acts.provision, { workspaceId: 'acme.copy', template: { ...base, keep: ['workspace', 'memory'] } });
  await h.run(h.acts.provision, { workspaceId: 'globex.old', template: base });
  await h.run(h.acts.provision, { workspaceId: 'acme.old', template: base });
  await h.run(h.acts.provision, { workspaceId: 'bare-old', template: base });
  const memoryOf = async (id: string) => {
    await h.run(h.acts.startInstance, { workspaceId: id, clearTmp: false });
    return h.instances.withVfs(id, (v) => {
      assert.equal(v.get('workspace', '/notes.md')?.toString(), 'notes of acme.tpl', `${id}: workspace volume copied`);
      assert.equal(v.get('tmp', '/scratch.txt'), null, `${id}: tmp never copied`);
      return v.list('memory', '/').length;
    });
  };
  assert.equal(await memoryOf('globex.copy'), 0, 'another tenant: memory stripped');
  assert.equal(await memoryOf('acme.copy'), 1, 'same tenant: memory kept');
  assert.equal(await memoryOf('globex.old'), 0);
  assert.equal(await memoryOf('acme.old'), 1);
  assert.equal(await memoryOf('bare-old'), 0, 'a bare key has no known tenant: stripped');
  // A `keep` that would carry tmp, or is not a list, is refused before anything is copied.
  await rejectsWith(h.run(h.acts.provision, { workspaceId: 'acme.bad', template: { ...base, keep: ['workspace', 'tmp'] } as unknown as TemplateSource }), 'InvalidInput');
  await rejectsWith(h.run(h.acts.provision, { workspaceId: 'acme.bad', template: { ...base, keep: 'all' } as unknown as TemplateSource }), 'InvalidInput');
  assert.equal(fs.existsSync(liveFile(h.cfg, 'acme.bad')), false);
});

test('clone from a closed template that still has a WAL (crashed host) includes the WAL and writes neither file', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'tpl');
  h.instances.withVfs('tpl', (v) => v.put('workspace', '/in-wal.md', 'only in the WAL'));
  const tplFile = liveFile(h.cfg, 'tpl');
  // A crash snapshot: main file and WAL copied while the instance is open, under another id that is not open.
  const crashed = liveFile(h.cfg, 'tpl-crashed');
  fs.copyFileSync(tplFile, crashed);
  fs.copyFileSync(`${tplFile}-wal`, `${crashed}-wal`);
  assert.ok(fs.statSync(`${crashed}-wal`).size > 0, 'the snapshot has a WAL');
  const before = [fs.readFileSync(crashed), fs.readFileSync(`${crashed}-wal`)];

  const template: TemplateSource = { kind: 'local', templateId: 'tpl-crashed', host: h.hostInfo, filePath: crashed, open: false };
  await h.run(h.acts.provision, { workspaceId: 'from-wal', template });
  assert.ok(fs.readFileSync(crashed).equals(before[0]), 'template main file unchanged');
  assert.ok(fs.readFileSync(`${crashed}-wal`).equals(before[1]), 'template WAL unchanged');
  assert.equal(fs.existsSync(`${crashed}-shm`), false, 'template never opened');
  await h.run(h.acts.startInstance, { workspaceId: 'from-wal', clearTmp: false });
  assert.equal(h.instances.withVfs('from-wal', (v) => v.get('workspace', '/in-wal.md')?.toString()), 'only in the WAL');
});

test('clones are isolated from their template and from each other', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'tpl');
  const tplFile = liveFile(h.cfg, 'tpl');
  // Template open on this host: cloned through its handle (including what is still in its WAL).
  h.instances.withVfs('tpl', (v) => v.put('workspace', '/late.md', 'written just before cloning'));
  const openTpl: TemplateSource = { kind: 'local', templateId: 'tpl', host: h.hostInfo, filePath: tplFile, open: true };
  await h.run(h.acts.provision, { workspaceId: 'c-open', template: openTpl });
  await h.run(h.acts.stopInstance, { workspaceId: 'tpl' });
  const closedTpl: TemplateSource = { ...openTpl, open: false };
  await h.run(h.acts.provision, { workspaceId: 'c-closed', template: closedTpl });
  for (const id of ['c-open', 'c-closed']) await h.run(h.acts.startInstance, { workspaceId: id, clearTmp: false });

  h.instances.withVfs('c-open', (v) => {
    assert.equal(v.get('workspace', '/late.md')?.toString(), 'written just before cloning');
    assert.equal(v.get('tmp', '/scratch.txt'), null);
    v.put('workspace', '/notes.md', 'changed in c-open');
  });
  h.instances.withVfs('c-closed', (v) => v.put('workspace', '/notes.md', 'changed in c-closed'));
  await h.run(h.acts.startInstance, { workspaceId: 'tpl', clearTmp: false });
  h.instances.withVfs('tpl', (v) => {
    assert.equal(v.get('workspace', '/notes.md')?.toString(), 'notes of tpl');
    v.put('workspace', '/notes.md', 'changed in tpl');
  });
  assert.equal(h.instances.withVfs('c-open', (v) => v.get('workspace', '/notes.md')?.toString()), 'changed in c-open');
  assert.equal(h.instances.withVfs('c-closed', (v) => v.get('workspace', '/notes.md')?.toString()), 'changed in c-closed');
});

test('clone from a stored template verifies the sha256; a local template on another host is refused', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'tpl-s');
  await h.run(h.acts.stopInstance, { workspaceId: 'tpl-s' });
  const copy = await h.run(h.acts.storeLocal, { workspaceId: 'tpl-s', target: 'cold' });
  await h.run(h.acts.provision, { workspaceId: 'from-stored', template: { kind: 'stored', templateId: 'tpl-s', copy, keep: ['workspace', 'memory'] } });
  await h.run(h.acts.startInstance, { workspaceId: 'from-stored', clearTmp: false });
  h.instances.withVfs('from-stored', (v) => {
    assert.equal(v.get('memory', '/facts.json')?.toString(), '{"who":"tpl-s"}');
    assert.equal(v.get('tmp', '/scratch.txt'), null);
  });
  assert.deepEqual(await hashFile(objectPath(copy)), { sha256: copy.sha256, bytes: copy.bytes }, 'stored template untouched');

  const elsewhere: TemplateSource = {
    kind: 'local',
    templateId: 'tpl-s',
    host: { host: 'host-b', taskQueue: 'workbooks@host-b', endpoint: 'http://b' },
    filePath: liveFile(h.cfg, 'tpl-s'),
    open: false,
  };
  await rejectsWith(h.run(h.acts.provision, { workspaceId: 'x-1', template: elsewhere }), 'TemplateUnavailable');
  const missing: TemplateSource = { ...elsewhere, host: h.hostInfo };
  await rejectsWith(h.run(h.acts.provision, { workspaceId: 'x-1', template: missing }), 'SourceMissing');
  assert.equal(fs.existsSync(liveFile(h.cfg, 'x-1')), false);
});

test('invalid inputs fail as non-retryable InvalidInput', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ok-1');
  await h.run(h.acts.stopInstance, { workspaceId: 'ok-1' });
  const copy = await h.run(h.acts.storeLocal, { workspaceId: 'ok-1', target: 'cold' });
  const a = h.acts as unknown as Record<string, (i: unknown) => Promise<unknown>>;
  const cases: [string, unknown][] = [
    ['provision', { workspaceId: '../etc' }],
    ['provision', { workspaceId: 'Upper' }],
    ['provision', null],
    ['provision', { workspaceId: 'n-1', template: { kind: 'nope', templateId: 'ok-1' } }],
    ['provision', { workspaceId: 'n-1', template: { kind: 'local', templateId: 'ok-1', host: h.hostInfo, filePath: '/etc/passwd', open: false } }],
    ['provision', { workspaceId: 'n-1', template: { kind: 'stored', templateId: 'n-1', copy } }],
    ['provision', { workspaceId: 'n-1', template: { kind: 'replica', templateId: 'ok-1', replicaUrl: 'http://replicas.example/ok-1/g1' } }],
    ['provision', { workspaceId: 'n-1', template: { kind: 'replica', templateId: 'ok-1', replicaUrl: `file://${h.dir}/replicas/other/g1` } }],
    ['provision', { workspaceId: 'n-1', template: { kind: 'replica', templateId: 'ok-1', replicaUrl: `file://${h.dir}/replicas/ok-1/g1`, at: 'yesterday' } }],
    ['startInstance', { workspaceId: 'ok-1', clearTmp: 'yes' }],
    ['stopInstance', { workspaceId: '' }],
    ['lastAccess', { workspaceId: 42 }],
    ['storeLocal', { workspaceId: 'ok-1', target: 'glacier' }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, sha256: 'abc' } }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, bytes: -1 } }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, at: 'yesterday' } }],
    ['restoreLocal', { workspaceId: 'other', copy }],
    // A content-addressed key vouches for its sha256: a record whose sha256 does not match its key is refused.
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, sha256: 'f'.repeat(64) } }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, url: `file://${h.dir}/cold/../cold/${contentKey('ok-1', copy.sha256)}` } }],
    ['removeLocal', { workspaceId: 'a/b' }],
  ];
  for (const [name, input] of cases) await rejectsWith(h.run(a[name], input), 'InvalidInput');
  // A malformed s3:// URL is bad input; a scheme this build cannot read is an unusable store.
  const key = contentKey('ok-1', copy.sha256);
  await rejectsWith(h.run(h.acts.restoreLocal, { workspaceId: 'ok-1', copy: { ...copy, url: `s3://Bad_Bucket/${key}` } }), 'InvalidInput');
  await rejectsWith(h.run(h.acts.restoreLocal, { workspaceId: 'ok-1', copy: { ...copy, url: `gs://bucket/${key}` } }), 'StoreUnavailable');
  assert.equal(fs.existsSync(liveFile(h.cfg, 'n-1')), false);

  // A well-formed replica template is accepted; this host does not replicate, so it cannot restore it, and
  // nothing is placed.
  const replica: TemplateSource = { kind: 'replica', templateId: 'ok-1', replicaUrl: `file://${h.dir}/replicas/ok-1/g1` };
  await assert.rejects(h.run(h.acts.provision, { workspaceId: 'n-1', template: replica }), (err: unknown) => {
    assert.ok(!(err instanceof ApplicationFailure && err.type === 'InvalidInput'), `accepted as input: ${String(err)}`);
    assert.match((err as Error).message, /replication is switched off/);
    return true;
  });
  assert.equal(fs.existsSync(liveFile(h.cfg, 'n-1')), false);
  assert.deepEqual(liveNames(h), ['ok-1.released.json'], 'no temporary left behind');
});

test('removeLocal removes file, journals, markers and sidecars; idempotent', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'rm-1');
  assert.ok(liveNames(h).includes('rm-1.active'));
  assert.deepEqual(await h.run(h.acts.removeLocal, { workspaceId: 'rm-1' }), { removed: true });
  assert.deepEqual(liveNames(h), []);
  assert.equal(h.instances.isOpen('rm-1'), false);
  assert.deepEqual(await h.run(h.acts.removeLocal, { workspaceId: 'rm-1' }), { removed: false });
  await rejectsWith(h.run(h.acts.stopInstance, { workspaceId: 'rm-1' }), 'SourceMissing');
});

test('after a process restart an active workspace reopens lazily on first access; lastAccess starts empty', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'live-1');
  await makeWorkspace(h, 'live-2');
  h.instances.withVfs('live-1', (v) => v.put('workspace', '/before-restart.md', 'x'));
  h.instances.closeAll(); // process shutdown

  const h2 = setup(t, {}, h.dir);
  assert.equal(h2.instances.isOpen('live-1'), true);
  assert.equal(h2.instances.isLoaded('live-1'), false);
  assert.deepEqual(await h2.run(h2.acts.lastAccess, { workspaceId: 'live-1' }), { lastAccessAt: null, idleMs: null, open: true });
  assert.equal(h2.instances.withVfs('live-1', (v) => v.get('workspace', '/before-restart.md')?.toString()), 'x');
  assert.equal(h2.instances.isLoaded('live-1'), true);
  assert.notEqual((await h2.run(h2.acts.lastAccess, { workspaceId: 'live-1' })).lastAccessAt, null);
  // A retried start after the restart (instance marked active, not loaded yet) does not clear tmp.
  assert.equal(h2.instances.isLoaded('live-2'), false);
  await h2.run(h2.acts.startInstance, { workspaceId: 'live-2', clearTmp: true });
  assert.equal(h2.instances.withVfs('live-2', (v) => v.get('tmp', '/scratch.txt')?.toString()), 'throwaway');

  await h2.run(h2.acts.stopInstance, { workspaceId: 'live-1' });
  assert.throws(() => h2.instances.withVfs('live-1', () => 1), NotActiveError);
  const after = await h2.run(h2.acts.lastAccess, { workspaceId: 'live-1' });
  assert.equal(after.lastAccessAt, h2.instances.lastAccess('live-1'));
  assert.equal(after.open, false);
  assert.ok(after.idleMs !== null && after.idleMs >= 0 && after.idleMs < 5000, `idleMs ${after.idleMs}`);
});

test('a throttled copy heartbeats and stops on cancellation, leaving the local file and no object', async (t) => {
  const h = setup(t, { copyThrottleBps: 1024 * 1024 });
  await h.run(h.acts.provision, { workspaceId: 'slow-1' });
  await h.run(h.acts.startInstance, { workspaceId: 'slow-1', clearTmp: false });
  h.instances.withVfs('slow-1', (v) => {
    for (let i = 0; i < 8; i++) v.put('workspace', `/blob-${i}`, crypto.randomBytes(512 * 1024));
  });
  await h.run(h.acts.stopInstance, { workspaceId: 'slow-1' });
  const file = liveFile(h.cfg, 'slow-1');
  const before = fs.readFileSync(file);
  h.env.on('heartbeat', (d: { phase: string; bytesCopied: number }) => {
    if (d.phase === 'copy' && d.bytesCopied > 0) h.env.cancel();
  });
  const started = Date.now();
  await assert.rejects(h.run(h.acts.storeLocal, { workspaceId: 'slow-1', target: 'cold' }), CancelledFailure);
  assert.ok(Date.now() - started < 3000, 'stopped well before the 4 s a full throttled copy takes');
  assert.ok(fs.readFileSync(file).equals(before));
  const coldDir = path.join(h.dir, 'cold');
  assert.deepEqual(fs.existsSync(coldDir) ? fs.readdirSync(coldDir) : [], [], 'no object, no temporary');
});

test('archiveColdCopy moves the cold copy to the archive (idempotent); deleteStoredCopies deletes what it names', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ar-1');
  await h.run(h.acts.stopInstance, { workspaceId: 'ar-1' });
  const cold = await h.run(h.acts.storeLocal, { workspaceId: 'ar-1', target: 'cold' });
  const archive = await h.run(h.storage.archiveColdCopy, { workspaceId: 'ar-1', cold });
  // The same content-addressed key, in the archive location.
  assert.equal(archive.url, `file://${h.dir}/archive/${contentKey('ar-1', cold.sha256)}`);
  assert.equal(archive.sha256, cold.sha256);
  assert.equal(archive.bytes, cold.bytes);
  assert.deepEqual(fs.readdirSync(path.join(h.dir, 'cold')), [], 'cold object and metadata deleted');
  assert.deepEqual(await hashFile(objectPath(archive)), { sha256: cold.sha256, bytes: cold.bytes });

  // Re-run after the cold object is gone: the verified archive copy is the answer.
  assert.deepEqual(await h.run(h.storage.archiveColdCopy, { workspaceId: 'ar-1', cold }), archive);

  // The archive copy restores.
  await h.run(h.acts.restoreLocal, { workspaceId: 'ar-1', copy: archive });
  await h.run(h.acts.startInstance, { workspaceId: 'ar-1', clearTmp: true });
  assert.equal(h.instances.withVfs('ar-1', (v) => v.get('workspace', '/notes.md')?.toString()), 'notes of ar-1');

  assert.deepEqual(await h.run(h.storage.deleteStoredCopies, { workspaceId: 'ar-1', copies: [cold, archive] }), { deleted: 1 });
  assert.deepEqual(await h.run(h.storage.deleteStoredCopies, { workspaceId: 'ar-1', copies: [cold, archive] }), { deleted: 0 });
  assert.deepEqual(fs.readdirSync(path.join(h.dir, 'archive')), []);
  await rejectsWith(h.run(h.storage.archiveColdCopy, { workspaceId: 'ar-1', cold }), 'SourceMissing');
  await rejectsWith(h.run(h.storage.deleteStoredCopies, { workspaceId: 'other', copies: [cold] }), 'InvalidInput');
});

test('archiveColdCopy refuses a corrupted cold copy and keeps it; deleteStoredCopies skips a replaced object', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'ar-2');
  await h.run(h.acts.stopInstance, { workspaceId: 'ar-2' });
  const cold: StoredCopy = await h.run(h.acts.storeLocal, { workspaceId: 'ar-2', target: 'cold' });
  const object = objectPath(cold);
  flipByte(object, 10);
  await rejectsWith(h.run(h.storage.archiveColdCopy, { workspaceId: 'ar-2', cold }), 'ChecksumMismatch');
  assert.ok(fs.existsSync(object), 'cold object kept');
  assert.deepEqual(storeNames(h, 'archive', 'ar-2'), [], 'nothing of ar-2 in the archive, under any key, not even a temporary');
  flipByte(object, 10); // repaired

  // Copies recorded by earlier builds live under the plain key `<id>.sqlite`; they are still accepted.
  const { store: coldStore } = storeForCopyUrl(cold.url);
  const legacy = await coldStore.put(object, 'ar-2.sqlite', { sha256: cold.sha256, bytes: cold.bytes, workspaceId: 'ar-2' });
  assert.equal(legacy.url, `file://${h.dir}/cold/ar-2.sqlite`);
  await h.run(h.acts.restoreLocal, { workspaceId: 'ar-2', copy: legacy });
  assert.equal((await hashFile(liveFile(h.cfg, 'ar-2'))).sha256, cold.sha256);

  // An object replaced under such a URL (newer sha256) is not the copy being deleted.
  const stale: StoredCopy = { ...legacy, sha256: 'f'.repeat(64) };
  assert.deepEqual(await h.run(h.storage.deleteStoredCopies, { workspaceId: 'ar-2', copies: [stale] }), { deleted: 0 });
  assert.ok(fs.existsSync(objectPath(legacy)));
  // Under a content-addressed key that cannot happen: a sha256 that does not match the key is refused outright.
  await rejectsWith(h.run(h.storage.deleteStoredCopies, { workspaceId: 'ar-2', copies: [{ ...cold, sha256: 'f'.repeat(64) }] }), 'InvalidInput');
  assert.ok(fs.existsSync(object));
  // The legacy copy itself is deleted like any other, and only it.
  assert.deepEqual(await h.run(h.storage.deleteStoredCopies, { workspaceId: 'ar-2', copies: [legacy] }), { deleted: 1 });
  assert.deepEqual(storeNames(h, 'cold'), [contentKey('ar-2', cold.sha256), `${contentKey('ar-2', cold.sha256)}.meta.json`]);
});

/** A workspace frozen to cold storage, then (restored and) stored to the archive: two stored copies of the same bytes, no local file. */
async function twoStoredCopies(h: Harness, id: string): Promise<{ cold: StoredCopy; archive: StoredCopy }> {
  await makeWorkspace(h, id);
  await h.run(h.acts.stopInstance, { workspaceId: id });
  const cold = await h.run(h.acts.storeLocal, { workspaceId: id, target: 'cold' });
  await h.run(h.acts.restoreLocal, { workspaceId: id, copy: cold });
  const archive = await h.run(h.acts.storeLocal, { workspaceId: id, target: 'archive' });
  assert.equal(archive.sha256, cold.sha256, 'the archive copy holds the same bytes');
  assert.notEqual(archive.url, cold.url);
  assert.deepEqual(liveNames(h).filter((n) => n.startsWith(`${id}.`)), [`${id}.released.json`], 'no local file');
  return { cold, archive };
}

test('recoverLocal skips an unavailable replica and a corrupted stored copy and restores from the next good source', async (t) => {
  const h = setup(t);
  const { cold, archive } = await twoStoredCopies(h, 'rc-1');
  flipByte(objectPath(cold), Math.floor(cold.bytes / 2));

  const replicaUrl = `file://${h.dir}/replicas/rc-1/g1`;
  const sources: RecoverySource[] = [
    { kind: 'replica', replicaUrl }, // this host does not replicate
    { kind: 'stored', copy: cold }, // bytes no longer match the recorded sha256
    { kind: 'stored', copy: archive },
  ];
  const { opened, result } = await recordingOpens(() => h.run(h.acts.recoverLocal, { workspaceId: 'rc-1', sources }));
  assert.equal(result.status, 'fulfilled', result.status === 'rejected' ? String(result.reason) : '');
  const r = (result as PromiseFulfilledResult<Awaited<ReturnType<HostActivities['recoverLocal']>>>).value;
  assert.deepEqual(r.used, sources[2]);
  assert.equal(r.skipped.length, 2, r.skipped.join(' | '));
  assert.ok(r.skipped[0]!.includes(replicaUrl), r.skipped[0]);
  assert.match(r.skipped[0]!, /replication is switched off/);
  assert.ok(r.skipped[1]!.includes(cold.url), r.skipped[1]);
  assert.match(r.skipped[1]!, /sha256/);
  assert.deepEqual(opened, [], 'the bad bytes were never opened');
  assert.equal(r.host.host, 'host-a');
  assert.equal(r.filePath, liveFile(h.cfg, 'rc-1'));
  assert.equal(r.bytes, archive.bytes);
  assert.deepEqual(await hashFile(r.filePath), { sha256: archive.sha256, bytes: archive.bytes });
  assert.deepEqual(liveNames(h), ['rc-1.sqlite', 'rc-1.verified.json'], 'no temporaries of the skipped sources');
  assert.equal(h.instances.isOpen('rc-1'), false, 'recovering does not start the instance');

  await h.run(h.acts.startInstance, { workspaceId: 'rc-1', clearTmp: true });
  h.instances.withVfs('rc-1', (v) => {
    assert.equal(v.get('workspace', '/notes.md')?.toString(), 'notes of rc-1');
    assert.equal(v.get('memory', '/facts.json')?.toString(), '{"who":"rc-1"}');
  });
});

test('recoverLocal with no usable source fails NoUsableSource naming every reason and places nothing', async (t) => {
  const h = setup(t);
  const { cold, archive } = await twoStoredCopies(h, 'rc-2');
  flipByte(objectPath(cold), 10);
  fs.rmSync(objectPath(archive));
  const replicaUrl = `file://${h.dir}/replicas/rc-2/g1`;
  const sources: RecoverySource[] = [
    { kind: 'replica', replicaUrl },
    { kind: 'stored', copy: cold },
    { kind: 'stored', copy: archive },
  ];
  await assert.rejects(h.run(h.acts.recoverLocal, { workspaceId: 'rc-2', sources }), (err: unknown) => {
    assert.ok(err instanceof ApplicationFailure, String(err));
    assert.equal(err.type, 'NoUsableSource', err.message);
    assert.equal(err.nonRetryable, true);
    for (const u of [replicaUrl, cold.url, archive.url]) assert.ok(err.message.includes(u), `${u} in ${err.message}`);
    assert.match(err.message, /switched off/);
    assert.match(err.message, /sha256/);
    assert.match(err.message, /does not exist/);
    return true;
  });
  assert.deepEqual(liveNames(h), ['rc-2.released.json'], 'no file placed, no temporaries');

  // An unreadable local file that recovery was meant to replace is left as it was when nothing can replace it.
  const file = liveFile(h.cfg, 'rc-2');
  fs.writeFileSync(file, 'not a database');
  await rejectsWith(h.run(h.acts.recoverLocal, { workspaceId: 'rc-2', sources }), 'NoUsableSource');
  assert.equal(fs.readFileSync(file, 'utf8'), 'not a database');
  assert.deepEqual(liveNames(h), ['rc-2.released.json', 'rc-2.sqlite']);
});

test('recoverLocal refuses bad sources as InvalidInput before restoring anything', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'rc-3');
  await makeWorkspace(h, 'other');
  await h.run(h.acts.stopInstance, { workspaceId: 'rc-3' });
  await h.run(h.acts.stopInstance, { workspaceId: 'other' });
  const copy = await h.run(h.acts.storeLocal, { workspaceId: 'rc-3', target: 'cold' });
  const foreign = await h.run(h.acts.storeLocal, { workspaceId: 'other', target: 'cold' });
  const good: RecoverySource = { kind: 'stored', copy };
  const replicas = `file://${h.dir}/replicas`;
  const bad: unknown[] = [
    undefined,
    [],
    'sources',
    { kind: 'stored', copy },
    Array.from({ length: 11 }, () => good),
    [null],
    [{ kind: 'nope', copy }],
    [{ kind: 'stored', copy: foreign }], // another workspace's copy
    [good, { kind: 'stored', copy: foreign }], // checked before the good one is used
    [{ kind: 'stored', copy: { ...copy, sha256: 'f'.repeat(64) } }], // sha256 not the one in the key
    [{ kind: 'replica' }],
    [{ kind: 'replica', replicaUrl: 'http://replicas.example/rc-3/g1' }],
    [{ kind: 'replica', replicaUrl: `/abs/replicas/rc-3/g1` }],
    [{ kind: 'replica', replicaUrl: `${replicas}/other/g1` }], // another workspace's replica
    [good, { kind: 'replica', replicaUrl: `s3://bucket/replicas/other/g1` }],
    [{ kind: 'replica', replicaUrl: `${replicas}/rc-3` }], // no generation
    [{ kind: 'replica', replicaUrl: `${replicas}/rc-3/..` }],
    [{ kind: 'replica', replicaUrl: `${replicas}/rc-3/../other/g1` }],
  ];
  for (const sources of bad) {
    await rejectsWith(h.run(h.acts.recoverLocal, { workspaceId: 'rc-3', sources } as never), 'InvalidInput');
  }
  await rejectsWith(h.run(h.acts.recoverLocal, { workspaceId: '../rc-3', sources: [good] }), 'InvalidInput');
  await rejectsWith(h.run(h.acts.recoverLocal, null as never), 'InvalidInput');
  assert.deepEqual(liveNames(h), ['other.released.json', 'rc-3.released.json'], 'nothing restored');

  // Well-formed sources of the workspace itself are accepted (s3:// and file:// replica URLs alike).
  const r = await h.run(h.acts.recoverLocal, {
    workspaceId: 'rc-3',
    sources: [{ kind: 'replica', replicaUrl: 's3://bucket/replicas/rc-3/g-2.x' }, good],
  });
  assert.deepEqual(r.used, good);
  assert.equal(r.skipped.length, 1);
  // Not over a running instance.
  await h.run(h.acts.startInstance, { workspaceId: 'rc-3', clearTmp: false });
  await rejectsWith(h.run(h.acts.recoverLocal, { workspaceId: 'rc-3', sources: [good] }), 'NotStopped');
  assert.equal(h.instances.withVfs('rc-3', (v) => v.get('workspace', '/notes.md')?.toString()), 'notes of rc-3');
});

test('without replication startInstance returns replicaUrl null and stopInstance replicaSynced false; a bad generation is InvalidInput', async (t) => {
  const h = setup(t);
  await h.run(h.acts.provision, { workspaceId: 'gen-1' });
  for (const generation of ['../x', '', '.g', 'a/b', 'g 1', 'x'.repeat(101), 42, null]) {
    await rejectsWith(h.run(h.acts.startInstance, { workspaceId: 'gen-1', clearTmp: false, generation } as never), 'InvalidInput');
  }
  assert.equal(h.instances.isOpen('gen-1'), false, 'a refused start opens nothing');
  assert.deepEqual(liveNames(h), ['gen-1.sqlite']);

  const started = await h.run(h.acts.startInstance, { workspaceId: 'gen-1', clearTmp: false, generation: 'g-1.a_B' });
  assert.equal(started.replicaUrl, null);
  assert.equal(started.filePath, liveFile(h.cfg, 'gen-1'));
  assert.equal(started.host.host, 'host-a');
  assert.equal(h.instances.isOpen('gen-1'), true);
  const retried = await h.run(h.acts.startInstance, { workspaceId: 'gen-1', clearTmp: false });
  assert.equal(retried.replicaUrl, null);
  h.instances.withVfs('gen-1', (v) => v.put('workspace', '/a.md', 'a'));

  const stopped = await h.run(h.acts.stopInstance, { workspaceId: 'gen-1' });
  assert.equal(stopped.replicaSynced, false);
  assert.equal(stopped.filePath, liveFile(h.cfg, 'gen-1'));
  assert.equal(stopped.bytes, fs.statSync(liveFile(h.cfg, 'gen-1')).size);
  assert.deepEqual(liveNames(h), ['gen-1.sqlite'], 'closed with a checkpoint: no WAL, no marker');
  assert.equal((await h.run(h.acts.stopInstance, { workspaceId: 'gen-1' })).replicaSynced, false, 'idempotent');
  // The data is in the main file.
  await h.run(h.acts.startInstance, { workspaceId: 'gen-1', clearTmp: false, generation: 'g-2' });
  assert.equal(h.instances.withVfs('gen-1', (v) => v.get('workspace', '/a.md')?.toString()), 'a');
});

test('a host restarted without its disk: the stale active marker does not block recovery', async (t) => {
  const h = setup(t);
  const { cold } = await twoStoredCopies(h, 'rc-m');
  await h.run(h.acts.restoreLocal, { workspaceId: 'rc-m', copy: cold });
  await h.run(h.acts.startInstance, { workspaceId: 'rc-m', clearTmp: false });
  // The process goes away (markers stay), and so does the file.
  h.instances.closeAll();
  for (const suffix of ['', '-wal', '-shm']) fs.rmSync(liveFile(h.cfg, 'rc-m') + suffix, { force: true });
  const fresh = new HostInstances(h.cfg);
  assert.equal(fresh.isOpen('rc-m'), true, 'the marker survived');
  const acts = createHostActivities({ cfg: h.cfg, instances: fresh, hostInfo: () => h.hostInfo });

  await rejectsWith(h.run(acts.startInstance, { workspaceId: 'rc-m', clearTmp: true }), 'SourceMissing');
  assert.equal(fresh.isOpen('rc-m'), false, 'the marker without a file was dropped');
  const r = await h.run(acts.recoverLocal, { workspaceId: 'rc-m', sources: [{ kind: 'stored', copy: cold }] });
  assert.equal(r.used.kind, 'stored');
  await h.run(acts.startInstance, { workspaceId: 'rc-m', clearTmp: true });
  fresh.withVfs('rc-m', (v) => assert.equal(v.get('workspace', '/notes.md')?.toString(), 'notes of rc-m'));
  fresh.closeAll();
});

test('a host that starts sweeps temporaries of dead processes from live/ and scratch/, and keeps those of live ones', async (t) => {
  const h = setup(t);
  const live = liveDir(h.cfg);
  const scratch = path.join(h.cfg.dataDir, 'scratch');
  fs.mkdirSync(scratch, { recursive: true });
  // A process that has exited: its pid is free (reuse within this test is as good as impossible).
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const deadPid = Number(dead.stdout);
  assert.ok(deadPid > 0);
  const hex = 'a1b2c3d4e5f6';
  const names = {
    deadCopy: path.join(live, `.ws-1.sqlite.recover-${deadPid}-${hex}.partial`),
    deadMarker: path.join(live, `ws-1.active.${deadPid}.partial`),
    deadVerify: path.join(scratch, `.ws-1.0123456789abcdef.sqlite.verify-${deadPid}-${hex}.partial`),
    deadVerifyShm: path.join(scratch, `.ws-1.0123456789abcdef.sqlite.verify-${deadPid}-${hex}.partial-shm`),
    liveCopy: path.join(live, `.ws-2.sqlite.recover-${process.pid}-${hex}.partial`),
    unknownOwner: path.join(scratch, `.ws-3.sqlite.partial`),
    unknownOwnerOld: path.join(scratch, `.ws-4.sqlite.partial`),
    notATemp: path.join(live, 'ws-5.sqlite'),
  };
  for (const f of Object.values(names)) fs.writeFileSync(f, 'x');
  const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
  fs.utimesSync(names.unknownOwnerOld, twoHoursAgo, twoHoursAgo);

  const again = new HostInstances(h.cfg);
  t.after(() => again.closeAll());
  const left = (f: string) => fs.existsSync(f);
  assert.deepEqual(
    Object.fromEntries(Object.entries(names).map(([k, f]) => [k, left(f)])),
    { deadCopy: false, deadMarker: false, deadVerify: false, deadVerifyShm: false, liveCopy: true, unknownOwner: true, unknownOwnerOld: false, notATemp: true },
  );
});

test('recoverLocal keeps the newer local file of the last placement instead of restoring an older copy', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'keep-1');
  await h.run(h.acts.stopInstance, { workspaceId: 'keep-1' });
  const old = await h.run(h.acts.storeLocal, { workspaceId: 'keep-1', target: 'cold' });
  // Woken again on this host under placement 7, written, then the workflow lost sight of the host for a while.
  await h.run(h.acts.restoreLocal, { workspaceId: 'keep-1', copy: old });
  await h.run(h.acts.startInstance, { workspaceId: 'keep-1', clearTmp: true, placement: 7 });
  h.instances.withVfs('keep-1', (v) => v.put('workspace', '/newest.md', 'written after the freeze'));

  const r = await h.run(h.acts.recoverLocal, { workspaceId: 'keep-1', sources: [{ kind: 'stored', copy: old }], keep: { host: 'host-a', placement: 7 }, placement: 8 });
  assert.deepEqual(r.used, { kind: 'local', placement: 7 });
  assert.equal(h.instances.isOpen('keep-1'), false, 'closed, as a stop would: ready to be stored or started');
  assert.equal(h.instances.placementOfFile('keep-1'), 8, 'recorded under the recovery\'s placement');
  await h.run(h.acts.startInstance, { workspaceId: 'keep-1', clearTmp: true, placement: 8 });
  assert.equal(h.instances.withVfs('keep-1', (v) => v.get('workspace', '/newest.md')?.toString()), 'written after the freeze');
});

test('recoverLocal sets aside a local file of another placement instead of overwriting it', async (t) => {
  const h = setup(t);
  await makeWorkspace(h, 'keep-2');
  await h.run(h.acts.stopInstance, { workspaceId: 'keep-2' });
  const copy = await h.run(h.acts.storeLocal, { workspaceId: 'keep-2', target: 'cold' });
  await h.run(h.acts.restoreLocal, { workspaceId: 'keep-2', copy });
  await h.run(h.acts.startInstance, { workspaceId: 'keep-2', clearTmp: true, placement: 3 });
  h.instances.withVfs('keep-2', (v) => v.put('workspace', '/stale-but-unique', 'only here'));

  // The workflow's last placement is on another host: this open copy is a stale one.
  const r = await h.run(h.acts.recoverLocal, { workspaceId: 'keep-2', sources: [{ kind: 'stored', copy }], keep: { host: 'host-b', placement: 4 }, placement: 5 });
  assert.equal(r.used.kind, 'stored');
  assert.match(r.skipped.join('; '), /stale open copy here was set aside/);
  const orphans = fs.readdirSync(path.join(h.cfg.dataDir, 'orphans')).filter((n) => n.endsWith('.sqlite'));
  assert.equal(orphans.length, 1);
  const aside = Vfs.open(path.join(h.cfg.dataDir, 'orphans', orphans[0]!), { create: false, readonly: true });
  assert.equal(aside.get('workspace', '/stale-but-unique')?.toString(), 'only here');
  aside.close();

  // With no source at all and the newest file on another host, nothing is restored and the reason says where.
  await rejectsWith(
    h.run(h.acts.recoverLocal, { workspaceId: 'keep-2', sources: [], keep: { host: 'host-b', placement: 4 } }),
    'NoUsableSource',
    /newest file is on host 'host-b'/,
  );
  await rejectsWith(h.run(h.acts.recoverLocal, { workspaceId: 'keep-2', sources: [] }), 'InvalidInput');
});
