/** Where the embedded control plane is replicated, how its generations are told apart, and when `up` restores it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  controlPlaneReplicaRoot,
  generationsNewestFirst,
  isControlPlaneGeneration,
  newControlPlaneGeneration,
  replicaInsideDataDir,
  restoreControlPlaneIfMissing,
} from '../../src/embedded/control-plane-replica';
import { checkReplicaUrl } from '../../src/activities/input-checks';
import { WORKSPACE_KEY_PATTERN } from '../../src/contract/ids';

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'wb-cp-unit-'));

test('the control plane lives under <replica URL>/_control-plane/_temporal, for file:// and s3:// alike', () => {
  assert.equal(controlPlaneReplicaRoot('file:///srv/wb/replicas/'), 'file:///srv/wb/replicas/_control-plane/_temporal');
  assert.equal(controlPlaneReplicaRoot('s3://bucket/replicas'), 's3://bucket/replicas/_control-plane/_temporal');
  assert.throws(() => controlPlaneReplicaRoot('http://example/x'), /unsupported scheme/);
});

test('no workspace can own, list or delete the control-plane replica', () => {
  const base = 'file:///srv/wb/replicas';
  const root = controlPlaneReplicaRoot(base);
  const generation = `${root}/${newControlPlaneGeneration()}`;
  for (const segment of root.slice(base.length + 1).split('/')) assert.doesNotMatch(segment, WORKSPACE_KEY_PATTERN, `${segment} is no workspace key`);
  for (const key of ['temporal', 'control-plane', 'acme.temporal', 'notes']) {
    // A workspace's delete removes `<base>/<key>`; its replica URLs are checked to be `…/<key>/<generation>`.
    assert.ok(!root.startsWith(`${base}/${key}/`) && root !== `${base}/${key}`);
    assert.throws(() => checkReplicaUrl(generation, key), /is not a replica generation of workspace/);
  }
});

test('generations sort by age, newest first; other names under the root are ignored', () => {
  const older = newControlPlaneGeneration(Date.parse('2026-01-01T00:00:00Z'));
  const newer = newControlPlaneGeneration(Date.parse('2026-12-01T00:00:00Z'));
  assert.match(older, /^\d{13}-[0-9a-f]{8}$/);
  assert.deepEqual(generationsNewestFirst([older, 'ltx', '..', newer, 'notes', `${newer}x`]), [newer, older]);
  assert.ok(isControlPlaneGeneration(`${controlPlaneReplicaRoot('s3://bkt/r')}/${newer}`, 's3://bkt/r'));
  assert.ok(!isControlPlaneGeneration(`${controlPlaneReplicaRoot('s3://bkt/other')}/${newer}`, 's3://bkt/r'), 'another replica URL');
  assert.ok(!isControlPlaneGeneration('s3://bkt/r/acme.notes/1-g1', 's3://bkt/r'));
  assert.ok(!isControlPlaneGeneration(null, 's3://bkt/r'));
});

test('a file:// replica inside the data dir is called out (it shares the disk it should outlive)', () => {
  assert.ok(replicaInsideDataDir('file:///srv/wb/data/replicas', '/srv/wb/data'));
  assert.ok(!replicaInsideDataDir('file:///srv/wb/data-replicas', '/srv/wb/data'));
  assert.ok(!replicaInsideDataDir('file:///mnt/other/replicas', '/srv/wb/data'));
  assert.ok(!replicaInsideDataDir('s3://bucket/replicas', '/srv/wb/data'));
});

test('an existing database is never restored over; a missing one with no replica starts fresh', async () => {
  const dir = tmp();
  try {
    const dbFile = path.join(dir, 'temporal', 'temporal.db');
    const replicaUrl = `file://${path.join(dir, 'replicas')}`;
    assert.deepEqual(await restoreControlPlaneIfMissing({ dbFile, replicaUrl }), { kind: 'fresh', skipped: [] }, 'no replica dir at all');
    // Names under the root that are not generations are not restored from.
    fs.mkdirSync(path.join(dir, 'replicas', '_control-plane', '_temporal', 'not-a-generation'), { recursive: true });
    assert.deepEqual(await restoreControlPlaneIfMissing({ dbFile, replicaUrl }), { kind: 'fresh', skipped: [] });
    assert.ok(!fs.existsSync(dbFile));

    fs.mkdirSync(path.dirname(dbFile), { recursive: true });
    fs.writeFileSync(dbFile, 'the live one');
    assert.deepEqual(await restoreControlPlaneIfMissing({ dbFile, replicaUrl: 'file:///nonexistent/replicas' }), { kind: 'present' });
    assert.equal(fs.readFileSync(dbFile, 'utf8'), 'the live one');

    fs.rmSync(dbFile);
    fs.writeFileSync(`${dbFile}-wal`, 'a WAL without its database');
    await assert.rejects(restoreControlPlaneIfMissing({ dbFile, replicaUrl }), /temporal\.db is missing but .*temporal\.db-wal is there/);
    assert.ok(!fs.existsSync(dbFile), 'nothing restored beside a stray WAL');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
