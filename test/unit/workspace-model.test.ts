/** The workflow model's rules that keep data safe (pure: no server). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkspaceModel } from '../../src/workflows/workspace-model';
import { parsePolicy } from '../../src/lifecycle';
import type { HostInfo, StoredCopy } from '../../src/contract/types';

const copy = (url: string): StoredCopy => ({ url, sha256: 'a'.repeat(64), bytes: 1, at: '2026-12-01T00:00:00.000Z' });
const host = (h: string): HostInfo => ({ host: h, taskQueue: `q@${h}`, endpoint: `http://${h}` });
const model = () => new WorkspaceModel({ workspaceId: 'ws', tenant: 'acme' }, parsePolicy(undefined), Date.parse('2026-12-01T00:00:00Z'));

test('only copies nothing references may be deleted, compared by full URL, each once', () => {
  const m = model();
  const same = copy('file:///store/ws/aaaa.sqlite');
  m.archive = same; // an archive written under the same content-addressed key as the cold copy it supersedes
  assert.deepEqual(m.unreferenced([copy('file:///store/ws/aaaa.sqlite')]), [], 'the new archive is that very object');
  const old = copy('file:///store/ws/bbbb.sqlite');
  assert.deepEqual(m.unreferenced([old, old, null, undefined]), [old]);
  m.cold = old;
  assert.deepEqual(m.unreferenced([old]), [], 'the cold copy is referenced');
  assert.deepEqual(m.unreferenced([copy('s3://bucket/store/ws/aaaa.sqlite')]), [copy('s3://bucket/store/ws/aaaa.sqlite')], 'another store is another object');
});

test('placements: each new one is numbered, a lost host keeps the last, a release forgets it', () => {
  const m = model();
  const p1 = m.nextPlacement();
  m.placeOn(host('h1'), '/d/ws.sqlite', p1);
  m.state = 'active';
  assert.equal(m.servingPlacement(), 1);
  assert.equal(m.placementFor(host('h1')), 1, 'a check on the same host confirms the placement it has');
  assert.equal(m.placementFor(host('h2')), 2, 'another host gets a new one');
  m.loseHost();
  assert.equal(m.host, null);
  assert.equal(m.servingPlacement(), null, 'no host: nothing is served');
  assert.deepEqual(m.lastPlacement, { host: 'h1', placement: 1 }, 'kept: a recovery on h1 keeps its newer file');
  const carried = new WorkspaceModel({ workspaceId: 'ws', tenant: 'acme', carried: m.carry() }, parsePolicy(undefined), 0);
  assert.deepEqual(carried.lastPlacement, { host: 'h1', placement: 1 }, 'carried across continue-as-new');
  assert.equal(carried.nextPlacement(), 3);
  m.releaseLocal();
  assert.equal(m.lastPlacement, null);
});
