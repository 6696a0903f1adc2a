/**
 * The prebuilt workflow bundle is used only when it was built from the workflow code as compiled now: the hash
 * covers every module the entry reaches by relative require (not only src/workflows), and nothing else.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { tempDir, workflowBundle } from '../../harness/stack';
import { WORKFLOW_BUNDLE_META_PATH, WORKFLOW_BUNDLE_PATH, prebuiltWorkflowBundle, workflowModules, workflowSourcesHash } from '../../src/worker/workflow-bundle';

function tree(): { root: string; entry: string; where: { bundlePath: string; metaPath: string; entry: string; root: string } } {
  const root = tempDir('wb-bundle-');
  fs.mkdirSync(path.join(root, 'workflows'));
  fs.mkdirSync(path.join(root, 'contract'));
  fs.writeFileSync(path.join(root, 'workflows', 'index.js'), 'const a = require("./a");\nconst c = require("../contract/c");\nconst w = require("@temporalio/workflow");\n');
  fs.writeFileSync(path.join(root, 'workflows', 'a.js'), 'exports.a = require("../contract/c");\n');
  fs.writeFileSync(path.join(root, 'contract', 'c.js'), 'exports.c = 1;\n');
  fs.writeFileSync(path.join(root, 'contract', 'unrelated.js'), 'exports.u = 1;\n');
  const entry = path.join(root, 'workflows', 'index.js');
  return { root, entry, where: { bundlePath: path.join(root, 'bundle.js'), metaPath: path.join(root, 'bundle.json'), entry, root } };
}

function record(t: ReturnType<typeof tree>): void {
  const { hash, modules } = workflowSourcesHash(t.entry, t.root);
  fs.writeFileSync(t.where.bundlePath, '/* bundle */');
  fs.writeFileSync(t.where.metaPath, JSON.stringify({ sourcesHash: hash, modules, builtAt: 'then' }));
}

describe('prebuilt workflow bundle', () => {
  it('follows relative requires out of the workflows folder, and only those', () => {
    const t = tree();
    try {
      assert.deepEqual(
        workflowModules(t.entry).map((m) => path.relative(t.root, m)),
        ['contract/c.js', 'workflows/a.js', 'workflows/index.js'],
      );
    } finally {
      fs.rmSync(t.root, { recursive: true, force: true });
    }
  });

  it('is used when current, and refused when a module it was built from changed', () => {
    const t = tree();
    try {
      assert.match(String((prebuiltWorkflowBundle(t.where) as { stale: string }).stale), /missing/);
      record(t);
      assert.deepEqual(prebuiltWorkflowBundle(t.where), { codePath: t.where.bundlePath });
      fs.writeFileSync(path.join(t.root, 'contract', 'unrelated.js'), 'exports.u = 2;\n');
      assert.deepEqual(prebuiltWorkflowBundle(t.where), { codePath: t.where.bundlePath }, 'a module the workflows do not reach changes nothing');
      fs.writeFileSync(path.join(t.root, 'contract', 'c.js'), 'exports.c = 2;\n');
      assert.match(String((prebuiltWorkflowBundle(t.where) as { stale: string }).stale), /other workflow code/);
      record(t);
      fs.rmSync(t.where.bundlePath);
      assert.match(String((prebuiltWorkflowBundle(t.where) as { stale: string }).stale), /bundle\.js missing/);
    } finally {
      fs.rmSync(t.root, { recursive: true, force: true });
    }
  });

  it('the build made one for the compiled workflow code, and a worker accepts it', async (ctx) => {
    if (!fs.existsSync(WORKFLOW_BUNDLE_META_PATH)) return ctx.skip('no dist/workflow-bundle.json: the build step did not run (npm run build)');
    assert.deepEqual(prebuiltWorkflowBundle(), { codePath: WORKFLOW_BUNDLE_PATH });
    // Tests take it too, and it runs the workflow: a recorded history replays on it (no server needed).
    assert.deepEqual(await workflowBundle(), { codePath: WORKFLOW_BUNDLE_PATH });
    const fixture = path.resolve(__dirname, '../../../test/fixtures/histories/rec-base.json');
    const history = historyFromJSON(JSON.parse(fs.readFileSync(fixture, 'utf8')));
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, 'rec-base');
  });
});
