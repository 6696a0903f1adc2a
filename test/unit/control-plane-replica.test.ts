/** Where the embedded control plane is replicated, how its generations are told apart, and when `up` restores it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  controlPlaneGenerationsPastRetention,
  controlPlaneReplicaRoot,
  generationsNewestFirst,
  isControlPlaneGeneration,
  newControlPlaneGeneration,
  replicaInsideDataDir,
  restoreControlPlaneIfMissing,
} from '../../src/embedded/control-plane-replica';
import { checkReplicaUrl } from '../../src/activities/input-checks';
import { WORKSPACE_KEY_PATTERN } from '../../src/contract/ids';
import { loadConfig } from '../../src/config';

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

test('retention: all but the newest N generations go, never the current one or a newer name, never a name that is no generation', () => {
  const g = [1, 2, 3, 4, 5].map((day) => newControlPlaneGeneration(Date.parse(`2026-03-0${day}T00:00:00Z`)));
  const [g1, g2, g3, g4, g5] = g as [string, string, string, string, string];
  const others = ['notes', 'ltx', `${g1}x`, '0000000000001-zzzzzzzz', '..'];
  const past = (names: string[], current: string, keep: number) => controlPlaneGenerationsPastRetention(names, current, keep).sort();
  assert.deepEqual(past([...others, g5, g3, g1, g4, g2], g5, 2), [g1, g2, g3], 'listing order does not matter');
  assert.deepEqual(past([...g, ...others], g5, 3), [g1, g2]);
  assert.deepEqual(past([...g, ...others], g5, 5), []);
  assert.deepEqual(past([...g, ...others], g5, 20), []);
  assert.deepEqual(past([...g, ...others], g5, 1), [g1, g2, g3, g4], 'N=1: the current one alone');
  // A generation named newer than the current one (another clock) is never dropped, nor the current one.
  assert.deepEqual(past(g, g3, 1), [g1, g2]);
  assert.deepEqual(past(g, g3, 2), [g1, g2]);
  assert.deepEqual(past(g, g3, 4), [g1]);
  // Nothing when the current one is not listed (or not a generation), and never everything.
  assert.deepEqual(past([g1, g2, g3], g5, 1), []);
  assert.deepEqual(past([...g, 'notes'], 'notes', 1), []);
  assert.deepEqual(past(g, g5, 0), [g1, g2, g3, g4], 'keep below 1 counts as 1');
  assert.deepEqual(past([g5], g5, 1), []);
});

test('WORKBOOKS_CONTROL_PLANE_GENERATIONS: 3 by default, 1 to 20, anything else refused with its value', () => {
  assert.equal(loadConfig({}, { dataDir: '/d' }).controlPlaneGenerations, 3);
  assert.equal(loadConfig({ WORKBOOKS_CONTROL_PLANE_GENERATIONS: '1' }, { dataDir: '/d' }).controlPlaneGenerations, 1);
  assert.equal(loadConfig({ WORKBOOKS_CONTROL_PLANE_GENERATIONS: '20' }, { dataDir: '/d' }).controlPlaneGenerations, 20);
  for (const bad of ['0', '21', '-1', '2.5', 'three', 'all']) {
    assert.throws(
      () => loadConfig({ WORKBOOKS_CONTROL_PLANE_GENERATIONS: bad }, { dataDir: '/d' }),
      new RegExp(`^ConfigError: WORKBOOKS_CONTROL_PLANE_GENERATIONS must be an integer between 1 and 20, got '${bad.replace('.', '\\.')}'$`),
    );
  }
});
