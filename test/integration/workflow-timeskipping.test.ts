/**
 * The idle ladder on durable timers, against the real time-skipping test server with real worker hosts
 * (real files, real activities). Skipped time is global to the environment, so these run serially.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { startTimeSkipping } from '../../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { describeQuery, transitionUpdate } from '../../src/contract/definitions';
import { workflowIdFor } from '../../src/contract/ids';

const MIN = 60_000;
const HOUR = 60 * MIN;

let env: TestWorkflowEnvironment;
let host: TestHost;
let wb: WorkbooksClient;
/** Skipped time: the host's clock follows the server's timeline, as a real host's clock follows real time. */
let skew = 0;

async function skip(ms: number): Promise<void> {
  await env.sleep(ms);
  skew = (await env.currentTimeMs()) - Date.now();
}

async function historyLength(id: string): Promise<number> {
  const h = await env.client.workflow.getHandle(workflowIdFor(id)).fetchHistory();
  return h.events?.length ?? 0;
}

describe('workspace workflow under time skipping', { concurrency: false }, () => {
  before(async () => {
    env = await startTimeSkipping();
    const taskQueue = uniqueQueue('ts');
    host = await startTestHost({ connection: env.nativeConnection, client: env.client, taskQueue, clock: () => Date.now() + skew,
      currentTime: () => env.currentTimeMs(),
    });
    wb = clientFor(env.client, taskQueue);
  });

  after(async () => {
    await host?.stop();
    await env?.teardown();
  });

  it('suspends at exactly 15 minutes idle, not a second before, then freezes 24 hours later', async () => {
    await wb.create({ workspaceId: 'ladder', tenant: 'acme' });
    const created = await wb.describe('ladder');
    assert.equal(created.state, 'active');
    const t0 = Date.parse(created.stateSince);

    await skip(15 * MIN - 1_000);
    assert.equal((await wb.describe('ladder')).state, 'active', 'still active one second before 15 minutes');

    await skip(2_000);
    const suspended = await wb.describe('ladder');
    assert.equal(suspended.state, 'suspended');
    const move = suspended.ledger.find((e) => e.to === 'suspended' && e.outcome === 'done');
    assert.ok(move, 'ledger records the suspension');
    assert.equal(move.by, 'policy');
    const late = Date.parse(move.at) - t0;
    assert.ok(late >= 15 * MIN && late < 15 * MIN + 1_000, `suspended ${late} ms after going active`);
    assert.ok(fs.existsSync(suspended.filePath!), 'suspended keeps its file on local disk');

    await skip(24 * HOUR - 2_000);
    assert.equal((await wb.describe('ladder')).state, 'suspended', 'still suspended just before 24 hours');
    await skip(3_000);
    const frozen = await wb.describe('ladder');
    assert.equal(frozen.state, 'frozen');
    assert.ok(frozen.cold && frozen.cold.sha256.length === 64, 'frozen has a verified cold copy');
    assert.equal(frozen.filePath, null);
    assert.ok(!fs.existsSync(suspended.filePath!), 'the local copy was released');
  });

  it('frozen waits for an explicit wake, however long', async () => {
    await skip(90 * 24 * HOUR);
    assert.equal((await wb.describe('ladder')).state, 'frozen');
    const r = await wb.wake('ladder', { reason: 'test', by: 'tester' });
    assert.equal(r.state, 'active');
    assert.equal(r.path, 'cold');
    const d = await wb.describe('ladder');
    assert.equal(d.state, 'active');
    assert.equal(d.ledger.at(-1)?.by, 'tester');
  });

  it('the optional archive and delete rungs archive a frozen workspace, then delete it', async () => {
    await wb.create({ workspaceId: 'retired', tenant: 'acme', policy: { suspendAfter: '15m', freezeAfter: '1h', archiveAfter: '30d', deleteAfter: '90d' } });
    await wb.putFile('retired', 'workspace', '/a', Buffer.from('old work'));
    await skip(15 * MIN + 1_000);
    await skip(HOUR + 1_000);
    assert.equal((await wb.describe('retired')).state, 'frozen');
    await skip(30 * 24 * HOUR - 10_000);
    assert.equal((await wb.describe('retired')).state, 'frozen', 'still frozen before 30 days');
    await skip(20_000);
    const archived = await wb.describe('retired');
    assert.equal(archived.state, 'archived');
    assert.ok(archived.archive && archived.cold === null);
    assert.equal(archived.ledger.at(-1)?.by, 'policy');
    const archiveFile = new URL(archived.archive.url).pathname;
    assert.ok(fs.existsSync(archiveFile));
    await skip(90 * 24 * HOUR + 10_000);
    const h = env.client.workflow.getHandle(workflowIdFor('retired'));
    const final = await h.result();
    assert.equal(final.state, 'deleted');
    assert.equal(fs.existsSync(archiveFile), false, 'the archive copy is gone');
  });

  it('off by default: a frozen workspace with the default policy is never archived', async () => {
    const d = await wb.describe('ladder');
    assert.equal(d.policy.archiveAfter, 'never');
    assert.equal(d.policy.deleteAfter, 'never');
  });

  it('a busy workspace stays active, and being busy adds no history per request', async () => {
    await wb.create({ workspaceId: 'busy', tenant: 'acme' });
    const before = await historyLength('busy');
    // Used every 10 minutes for an hour: never idle for 15 minutes.
    for (let i = 0; i < 6; i++) {
      for (let j = 0; j < 50; j++) await wb.putFile('busy', 'workspace', `/n/${i}-${j}.txt`, Buffer.from(`write ${i}.${j}`));
      await skip(10 * MIN);
      assert.equal((await wb.describe('busy')).state, 'active', `active after ${(i + 1) * 10} minutes of use`);
    }
    const grown = (await historyLength('busy')) - before;
    // 300 writes; what history gained is only the idle re-arms (a handful of events each), never per request.
    assert.ok(grown < 60, `history grew by ${grown} events for 300 writes`);
    await skip(15 * MIN + 1_000);
    assert.equal((await wb.describe('busy')).state, 'suspended', 'suspends once really idle');
  });

  it('refuses illegal updates with a clear error and changes nothing; illegal signals are recorded as refused', async () => {
    await wb.create({ workspaceId: 'strict', tenant: 'acme' });
    const h = env.client.workflow.getHandle(workflowIdFor('strict'));
    const before = await h.query(describeQuery);
    const causeOf = (re: RegExp) => (err: unknown) => {
      assert.match(String((err as { cause?: Error }).cause?.message), re);
      return true;
    };
    await assert.rejects(h.executeUpdate(transitionUpdate, { args: [{ to: 'frozen' }] }), causeOf(/cannot move from active to frozen/));
    await assert.rejects(h.executeUpdate(transitionUpdate, { args: [{ to: 'nonsense' as never }] }), causeOf(/not a state/));
    await assert.rejects(wb.transition('strict', 'frozen'), /cannot move from active to frozen/);
    const afterUpdates = await h.query(describeQuery);
    assert.equal(afterUpdates.state, 'active');
    assert.deepEqual(afterUpdates.ledger, before.ledger, 'a refused update leaves the ledger as it was');

    await h.signal('freeze', { reason: 'try', by: 'ops' });
    await skip(1_000);
    const afterSignal = await h.query(describeQuery);
    assert.equal(afterSignal.state, 'active');
    const last = afterSignal.ledger.at(-1)!;
    assert.deepEqual([last.from, last.to, last.outcome, last.by], ['active', 'frozen', 'refused', 'ops']);
    assert.match(last.detail ?? '', /cannot move from active to frozen/);
  });

  it('continues as new before history grows large, keeping state and ledger', async () => {
    const taskQueue = wb.taskQueue;
    const id = 'long-lived';
    await env.client.workflow.start('workspace', {
      workflowId: workflowIdFor(id),
      taskQueue,
      args: [{ workspaceId: id, tenant: 'acme', historyLimit: 60 }],
    });
    await wb.wake(id);
    const firstRun = (await env.client.workflow.getHandle(workflowIdFor(id)).describe()).runId;
    for (let i = 0; i < 8; i++) {
      await wb.transition(id, 'suspended', { reason: `cycle ${i}` });
      await wb.transition(id, 'active', { reason: `cycle ${i}` });
    }
    await wb.putFile(id, 'memory', '/kept.txt', Buffer.from('survives continue-as-new'));
    const d = await wb.describe(id);
    assert.ok(d.runs >= 1, `continued as new ${d.runs} time(s)`);
    const lastRun = (await env.client.workflow.getHandle(workflowIdFor(id)).describe()).runId;
    assert.notEqual(lastRun, firstRun);
    assert.equal(d.state, 'active');
    const cycles = d.ledger.filter((e) => e.reason.startsWith('cycle ')).length;
    assert.equal(cycles, 16, 'every move of every run is in the carried ledger');
    assert.equal((await wb.getFile(id, 'memory', '/kept.txt')).toString(), 'survives continue-as-new');
    assert.ok((await historyLength(id)) < 120, 'the current run is short');
  });
});
