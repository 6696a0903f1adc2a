/** The workflow worker's settings (cache, sticky timeout, slots, polls): defaults, values read, bad values refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, DEFAULT_WORKFLOW_WORKER, loadConfig } from '../../src/config';

const base = { WORKBOOKS_DATA_DIR: '/tmp/wb-config-test' };

test('workflow worker: defaults, and what the variables set', () => {
  assert.deepEqual(loadConfig(base).workflowWorker, { ...DEFAULT_WORKFLOW_WORKER });
  assert.deepEqual(
    loadConfig({ ...base, WORKBOOKS_WORKFLOW_CACHE: '500', WORKBOOKS_STICKY_TIMEOUT_SECONDS: '30', WORKBOOKS_WORKFLOW_SLOTS: '20', WORKBOOKS_WORKFLOW_POLLERS: '4' }).workflowWorker,
    { cache: 500, stickyTimeoutSeconds: 30, slots: 20, pollers: 4 },
  );
  // A small cache lowers the default slots (a task in a slot holds its workflow in the cache), and the polls with them.
  assert.deepEqual(loadConfig({ ...base, WORKBOOKS_WORKFLOW_CACHE: '8' }).workflowWorker, { cache: 8, stickyTimeoutSeconds: DEFAULT_WORKFLOW_WORKER.stickyTimeoutSeconds, slots: 8, pollers: 8 });
  // No cache: every task replays its history; slots are not bounded by it.
  assert.equal(loadConfig({ ...base, WORKBOOKS_WORKFLOW_CACHE: '0', WORKBOOKS_WORKFLOW_SLOTS: '100' }).workflowWorker.slots, 100);
});

test('workflow worker: bad values are refused with the variable named', () => {
  for (const [env, re] of [
    [{ WORKBOOKS_WORKFLOW_CACHE: '-5' }, /WORKBOOKS_WORKFLOW_CACHE must be an integer between 0 and/],
    [{ WORKBOOKS_WORKFLOW_CACHE: 'lots' }, /WORKBOOKS_WORKFLOW_CACHE must be an integer/],
    [{ WORKBOOKS_WORKFLOW_CACHE: '1' }, /WORKBOOKS_WORKFLOW_CACHE must be 0 \(no cache\) or at least 2/],
    [{ WORKBOOKS_STICKY_TIMEOUT_SECONDS: '0' }, /WORKBOOKS_STICKY_TIMEOUT_SECONDS must be an integer between 1 and 3600/],
    [{ WORKBOOKS_STICKY_TIMEOUT_SECONDS: '2.5' }, /WORKBOOKS_STICKY_TIMEOUT_SECONDS must be an integer/],
    [{ WORKBOOKS_WORKFLOW_SLOTS: '1' }, /WORKBOOKS_WORKFLOW_SLOTS must be an integer between 2 and/],
    [{ WORKBOOKS_WORKFLOW_CACHE: '10', WORKBOOKS_WORKFLOW_SLOTS: '20' }, /WORKBOOKS_WORKFLOW_SLOTS \(20\) must not exceed WORKBOOKS_WORKFLOW_CACHE \(10\)/],
    [{ WORKBOOKS_WORKFLOW_POLLERS: '1' }, /WORKBOOKS_WORKFLOW_POLLERS must be an integer between 2 and/],
    [{ WORKBOOKS_WORKFLOW_SLOTS: '4', WORKBOOKS_WORKFLOW_POLLERS: '6' }, /WORKBOOKS_WORKFLOW_POLLERS \(6\) must not exceed WORKBOOKS_WORKFLOW_SLOTS \(4\)/],
  ] as const) {
    assert.throws(() => loadConfig({ ...base, ...env }), (e: Error) => e instanceof ConfigError && re.test(e.message), JSON.stringify(env));
  }
});
