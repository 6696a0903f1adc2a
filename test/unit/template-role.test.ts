/** The template role's pure rules (src/contract/template-role.ts): who may clone what, what may be published. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TemplateRole, checkShareWith, mayClone, publishable } from '../../src/contract/template-role';

const role = (shareWith: TemplateRole['shareWith']): TemplateRole => ({ version: 'a'.repeat(64), shareWith, publishedAt: '2026-12-07T00:00:00.000Z', by: 'admin' });

test('a tenant clones its own workspaces; another tenant only a published template shared with it', () => {
  assert.equal(mayClone({ tenant: 'acme', published: null }, 'acme'), true);
  assert.equal(mayClone({ tenant: 'acme', published: null }, 'globex'), false, 'an ordinary workspace never crosses tenants');
  assert.equal(mayClone({ tenant: 'acme', published: role(['globex']) }, 'globex'), true);
  assert.equal(mayClone({ tenant: 'acme', published: role(['globex']) }, 'initech'), false);
  assert.equal(mayClone({ tenant: 'acme', published: role('*') }, 'initech'), true);
  assert.equal(mayClone({ tenant: 'acme', published: role('*') }, null), false, 'an unknown tenant counts as another, and is never "every tenant"');
  assert.equal(mayClone({ tenant: 'acme', published: null }, null), false);
});

test('shareWith is "*" or a list of distinct valid tenants', () => {
  assert.equal(checkShareWith('*'), '*');
  assert.deepEqual(checkShareWith(['globex', 'initech']), ['globex', 'initech']);
  assert.deepEqual(checkShareWith([]), []);
  for (const bad of ['all', ['Globex'], ['globex', 'globex'], [''], [42], null, { '*': true }, Array.from({ length: 1001 }, (_, i) => `t${i}`)]) {
    assert.throws(() => checkShareWith(bad), /shareWith/, JSON.stringify(bad)?.slice(0, 40));
  }
});

test('only a frozen workspace with its cold copy can be published; its version is that copy', () => {
  assert.deepEqual(publishable('frozen', { sha256: 'b'.repeat(64) }), { ok: true, version: 'b'.repeat(64) });
  for (const state of ['active', 'suspended', 'archived', 'deleted', 'created'] as const) {
    const r = publishable(state, { sha256: 'b'.repeat(64) });
    assert.equal(r.ok, false, state);
  }
  assert.equal(publishable('frozen', null).ok, false);
});
