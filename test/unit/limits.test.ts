/** The pure parts of bounded requests: the move limiter, the upload budget, the policy floor, the settings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MoveLimiter } from '../../src/api/rate-limit';
import { BudgetTimeoutError, UploadBudget } from '../../src/host/upload-budget';
import { checkPolicyFloor } from '../../src/lifecycle/policy-floor';
import { PolicyError } from '../../src/lifecycle';
import { ConfigError, DEFAULT_HTTP_LIMITS, DEFAULT_QUOTAS, loadConfig } from '../../src/config';
import { declaredLength } from '../../src/http-bounds';
import type { IncomingMessage } from 'node:http';

test('moves per minute: a burst of the budget, then one more per 60/n seconds; tenants apart', () => {
  let now = 1_000_000;
  const m = new MoveLimiter(6, () => now);
  for (let i = 0; i < 6; i++) assert.equal(m.take('acme'), 0, `move ${i + 1}`);
  assert.equal(m.take('acme'), 10, 'the 7th waits a token: 10 s');
  assert.equal(m.take('globex'), 0, 'another tenant has its own budget');
  now += 5_000;
  assert.equal(m.take('acme'), 5, 'half a token refilled: 5 s more');
  now += 5_000;
  assert.equal(m.take('acme'), 0, 'a whole token after 10 s');
  assert.equal(m.take('acme'), 10);
  now += 3_600_000;
  for (let i = 0; i < 6; i++) assert.equal(m.take('acme'), 0, 'refills to the burst, not beyond');
  assert.equal(m.take('acme'), 10);
  assert.equal(new MoveLimiter(0).take('acme'), 0, '0: no limit');
});

test('the upload budget: holds at most its capacity, first come first served, times out, gives back on release', async () => {
  const b = new UploadBudget(100);
  const r1 = await b.acquire(60, 1000);
  assert.equal(b.held, 60);
  const order: string[] = [];
  const p2 = b.acquire(50, 1000).then((r) => (order.push('second'), r));
  const p3 = b.acquire(10, 1000).then((r) => (order.push('third'), r));
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(order, [], 'the second waits; the third, which would fit, waits behind it (no starvation)');
  r1();
  const [r2, r3] = await Promise.all([p2, p3]);
  assert.deepEqual(order, ['second', 'third']);
  assert.equal(b.held, 60);
  r2();
  r2();
  assert.equal(b.held, 10, 'a release counts once');
  r3();
  const big = await b.acquire(1000, 10);
  assert.equal(b.held, 100, 'a body larger than the budget takes all of it, alone');
  await assert.rejects(b.acquire(1, 30), BudgetTimeoutError, 'no room within the wait');
  const ac = new AbortController();
  const waiting = b.acquire(1, 10_000, ac.signal);
  ac.abort();
  await assert.rejects(waiting, BudgetTimeoutError, 'a request that goes away stops waiting');
  big();
  assert.equal(b.held, 0);
  const after = await b.acquire(100, 10);
  after();
  assert.equal(b.held, 0, 'timed-out and aborted waiters hold nothing');
});

test('the policy floor refuses shorter rungs it is given, with the rung and the floor named', () => {
  const floor = 60_000;
  assert.doesNotThrow(() => checkPolicyFloor(undefined, floor));
  assert.doesNotThrow(() => checkPolicyFloor({ suspendAfter: '1m', freezeAfter: 'never', archiveAfter: null }, floor));
  assert.throws(() => checkPolicyFloor({ suspendAfter: '30s' }, floor), (e: Error) => e instanceof PolicyError && /policy\.suspendAfter '30s' is shorter than the floor of 1m/.test(e.message));
  assert.throws(() => checkPolicyFloor({ suspendAfter: '1h', deleteAfter: '59s' }, floor), /policy\.deleteAfter '59s'/);
  assert.throws(() => checkPolicyFloor({ suspendAfter: 'soon' }, floor), /not a duration/, 'invalid specs are refused as before');
  assert.doesNotThrow(() => checkPolicyFloor({ suspendAfter: '2s' }, 1000), 'tests lower the floor');
});

test('settings: defaults, overrides, and bad values refused at start', () => {
  const cfg = loadConfig({});
  assert.deepEqual(cfg.httpLimits, DEFAULT_HTTP_LIMITS);
  assert.deepEqual(cfg.quotas, DEFAULT_QUOTAS);
  assert.equal(cfg.policyFloorMs, 60_000);
  assert.equal(cfg.listPageDefault, 100);
  assert.equal(cfg.listPageMax, 1000);
  const set = loadConfig({
    WORKBOOKS_HEADERS_TIMEOUT_MS: '2000',
    WORKBOOKS_REQUEST_TIMEOUT_MS: '60000',
    WORKBOOKS_MAX_CONNECTIONS: '10',
    WORKBOOKS_QUOTA_WORKSPACES: '0',
    WORKBOOKS_QUOTA_WORKSPACE_BYTES: String(10 * 1024 ** 3),
    WORKBOOKS_POLICY_FLOOR: '5m',
  });
  assert.equal(set.httpLimits.headersTimeoutMs, 2000);
  assert.equal(set.httpLimits.maxConnections, 10);
  assert.equal(set.quotas.workspaces, 0);
  assert.equal(set.quotas.workspaceBytes, 10 * 1024 ** 3);
  assert.equal(set.policyFloorMs, 300_000);
  for (const [k, v, re] of [
    ['WORKBOOKS_POLICY_FLOOR', '500ms', /at least 1s/],
    ['WORKBOOKS_POLICY_FLOOR', 'soon', /not a duration/],
    ['WORKBOOKS_MAX_CONNECTIONS', '0', /between 1 and/],
    ['WORKBOOKS_HEADERS_TIMEOUT_MS', '400000', /must not exceed WORKBOOKS_REQUEST_TIMEOUT_MS/],
    ['WORKBOOKS_LIST_PAGE_MAX', '2000', /between 1 and 1000/],
    ['WORKBOOKS_QUOTA_MOVES_PER_MINUTE', '-1', /between 0 and/],
  ] as const) {
    assert.throws(() => loadConfig({ [k]: v }), (e: Error) => e instanceof ConfigError && re.test(e.message), `${k}=${v}`);
  }
  assert.throws(() => loadConfig({ WORKBOOKS_LIST_PAGE_DEFAULT: '500', WORKBOOKS_LIST_PAGE_MAX: '100' }), /must not exceed WORKBOOKS_LIST_PAGE_MAX/);
});

test('declared length: absent is null (chunked), a number is read, anything else is 400', () => {
  const req = (h: Record<string, string>) => ({ headers: h }) as unknown as IncomingMessage;
  assert.equal(declaredLength(req({})), null);
  assert.equal(declaredLength(req({ 'content-length': '0' })), 0);
  assert.equal(declaredLength(req({ 'content-length': '314572800' })), 314572800);
  for (const bad of ['-1', '1e9', 'abc', '99999999999999999']) {
    assert.throws(() => declaredLength(req({ 'content-length': bad })), (e: { statusCode?: number }) => e.statusCode === 400, bad);
  }
});
