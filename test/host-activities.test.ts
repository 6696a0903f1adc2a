import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { Config, liveDir, liveFile, loadConfig } from '../src/config';
import type { HostInfo, StoredCopy } from '../src/contract/types';
import { createHostActivities } from '../src/activities/host';
import { createStorageActivities } from '../src/activities/storage-shared';
import type { HostActivities, TemplateSource } from '../src/activities/types';
import { HostInstances, NotActiveError } from '../src/host/instances';
import { Vfs } from '../src/vfs/vfs';
import { hashFile } from '../src/storage/copy';
import { storeForCopyUrl } from '../src/storage/open-store';

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
  assert.equal(copy.url, `file://${h.dir}/cold/ws-1.sqlite`);
  assert.equal(copy.sha256, localSha);
  assert.equal(copy.bytes, stopped.bytes);
  assert.deepEqual(await hashFile(path.join(h.dir, 'cold', 'ws-1.sqlite')), { sha256: copy.sha256, bytes: copy.bytes });
  const phases = new Set(h.heartbeats.map((b) => b.phase));
  for (const p of ['check', 'hash', 'copy', 'verify']) assert.ok(phases.has(p), `heartbeat phase ${p} missing: ${[...phases].join(',')}`);
  for (const b of h.heartbeats) assert.equal(typeof b.bytesCopied, 'number');
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
  const object = path.join(h.dir, 'cold', 'ws-3.sqlite');
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
  assert.equal(first.url, `file://${h.dir}/archive/ws-4.sqlite`);

  // The release record only vouches for the same target.
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-4', target: 'cold' }), 'SourceMissing');
  // And only while the stored object still verifies.
  flipByte(path.join(h.dir, 'archive', 'ws-4.sqlite'), 100);
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-4', target: 'archive' }), 'ChecksumMismatch');
  fs.rmSync(path.join(h.dir, 'archive', 'ws-4.sqlite'));
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-4', target: 'archive' }), 'ChecksumMismatch', /missing/);
  // A workspace that never had a file here is SourceMissing, not a stale object.
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'never-here', target: 'cold' }), 'SourceMissing');
});

test('storeLocal after a crash between the put and the release reuses the stored object; a changed file replaces it', async (t) => {
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

  // Restore, change, stop, store again: the new bytes replace the object.
  await h.run(h.acts.restoreLocal, { workspaceId: 'ws-5', copy: again });
  await h.run(h.acts.startInstance, { workspaceId: 'ws-5', clearTmp: true });
  h.instances.withVfs('ws-5', (v) => v.put('workspace', '/notes.md', 'changed'));
  await h.run(h.acts.stopInstance, { workspaceId: 'ws-5' });
  const third = await h.run(h.acts.storeLocal, { workspaceId: 'ws-5', target: 'cold' });
  assert.notEqual(third.sha256, first.sha256);
  const { store, key } = storeForCopyUrl(third.url);
  assert.equal((await store.head(key))?.sha256, third.sha256);
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
  await rejectsWith(h.run(h.acts.storeLocal, { workspaceId: 'ws-6', target: 'cold' }), 'IntegrityError');
  assert.ok(fs.readFileSync(file).equals(damaged), 'the local file is kept as it was');
  assert.equal(fs.existsSync(path.join(h.dir, 'cold', 'ws-6.sqlite')), false);
});

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
  const object = path.join(h.dir, 'cold', 'ws-7.sqlite');
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

  const template: TemplateSource = { kind: 'local', templateId: 'tpl', host: h.hostInfo, filePath: tplFile, open: false };
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
  await h.run(h.acts.provision, { workspaceId: 'from-stored', template: { kind: 'stored', templateId: 'tpl-s', copy } });
  await h.run(h.acts.startInstance, { workspaceId: 'from-stored', clearTmp: false });
  h.instances.withVfs('from-stored', (v) => {
    assert.equal(v.get('memory', '/facts.json')?.toString(), '{"who":"tpl-s"}');
    assert.equal(v.get('tmp', '/scratch.txt'), null);
  });
  assert.deepEqual(await hashFile(path.join(h.dir, 'cold', 'tpl-s.sqlite')), { sha256: copy.sha256, bytes: copy.bytes }, 'stored template untouched');

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
    ['startInstance', { workspaceId: 'ok-1', clearTmp: 'yes' }],
    ['stopInstance', { workspaceId: '' }],
    ['lastAccess', { workspaceId: 42 }],
    ['storeLocal', { workspaceId: 'ok-1', target: 'glacier' }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, sha256: 'abc' } }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, bytes: -1 } }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, at: 'yesterday' } }],
    ['restoreLocal', { workspaceId: 'other', copy }],
    ['restoreLocal', { workspaceId: 'ok-1', copy: { ...copy, url: `file://${h.dir}/cold/../cold/ok-1.sqlite` } }],
    ['removeLocal', { workspaceId: 'a/b' }],
  ];
  for (const [name, input] of cases) await rejectsWith(h.run(a[name], input), 'InvalidInput');
  await rejectsWith(h.run(h.acts.restoreLocal, { workspaceId: 'ok-1', copy: { ...copy, url: 's3://bucket/ok-1.sqlite' } }), 'StoreUnavailable');
  assert.equal(fs.existsSync(liveFile(h.cfg, 'n-1')), false);
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
  assert.equal(archive.url, `file://${h.dir}/archive/ar-1.sqlite`);
  assert.equal(archive.sha256, cold.sha256);
  assert.equal(archive.bytes, cold.bytes);
  assert.deepEqual(fs.readdirSync(path.join(h.dir, 'cold')), [], 'cold object and metadata deleted');
  assert.deepEqual(await hashFile(path.join(h.dir, 'archive', 'ar-1.sqlite')), { sha256: cold.sha256, bytes: cold.bytes });

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
  const object = path.join(h.dir, 'cold', 'ar-2.sqlite');
  flipByte(object, 10);
  await rejectsWith(h.run(h.storage.archiveColdCopy, { workspaceId: 'ar-2', cold }), 'ChecksumMismatch');
  assert.ok(fs.existsSync(object), 'cold object kept');
  assert.equal(fs.existsSync(path.join(h.dir, 'archive', 'ar-2.sqlite')), false, 'nothing under the archive key');

  // An object replaced under the same URL (newer sha256) is not the copy being deleted.
  const stale: StoredCopy = { ...cold, sha256: 'f'.repeat(64) };
  flipByte(object, 10);
  assert.deepEqual(await h.run(h.storage.deleteStoredCopies, { workspaceId: 'ar-2', copies: [stale] }), { deleted: 0 });
  assert.ok(fs.existsSync(object));
});
