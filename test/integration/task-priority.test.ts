/**
 * Task priority on the embedded server (src/contract/priority.ts): user-facing moves run at priority 2, the idle
 * ladder's at 4, which only helps if the server's matcher orders a backlog by priority (Temporal 1.32 does, with no
 * dynamic config). A backlog of 60 policy tasks is formed first; a user task scheduled after them must run in the
 * first half once a worker drains the queue (without priorities it runs last). The same for a workflow's own
 * priority raised with UpdateWorkflowExecutionOptions, which its workflow tasks take.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from '@temporalio/worker';
import { POLICY_PRIORITY, USER_PRIORITY } from '../../src/contract/priority';
import { startTestDevServer } from '../../harness/temporal';
import { eventually } from '../../harness/stack';

test('a user-priority task scheduled behind a backlog of policy tasks runs before the backlog drains', { timeout: 120_000 }, async (t) => {
  const server = await startTestDevServer();
  t.after(() => server.stop());
  const wfQueue = `prio-wf-${process.pid}`;
  const actQueue = `prio-act-${process.pid}`;
  const workflowsPath = require.resolve('../fixtures/workflows/priority-burst');
  // Workflows only, so the activities pile up on their queue with nobody polling it.
  const wfWorker = await Worker.create({ connection: server.connection, namespace: server.namespace, taskQueue: wfQueue, workflowsPath });
  const running = wfWorker.run();
  const scheduled = async (id: string, n: number) =>
    eventually(
      async () => {
        const h = await server.client.workflow.getHandle(id).fetchHistory();
        return (h.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length >= n || null;
      },
      `${id}'s ${n} activities scheduled`,
      30_000,
      100,
    );
  const N = 60;
  await server.client.workflow.start('priorityBurst', { workflowId: 'burst', taskQueue: wfQueue, args: [N, actQueue, POLICY_PRIORITY] });
  await scheduled('burst', N);
  await server.client.workflow.start('priorityBurst', { workflowId: 'user', taskQueue: wfQueue, args: [1, actQueue, USER_PRIORITY] });
  await scheduled('user', 1);
  await sleep(500);

  const order: string[] = [];
  const actWorker = await Worker.create({
    connection: server.connection,
    namespace: server.namespace,
    taskQueue: actQueue,
    activities: {
      async work(tag: string) {
        order.push(tag);
        await sleep(20);
      },
    },
    maxConcurrentActivityTaskExecutions: 1,
  });
  await actWorker.runUntil(server.client.workflow.getHandle('user').result());
  const at = order.indexOf(`p${USER_PRIORITY}-0`);
  console.log(`# the user task ran ${at + 1}th of ${order.length} run so far, behind a backlog of ${N} policy tasks`);
  // Without priorities it runs last (61st); the server's matcher hands out a few tasks it read before, so allow a margin.
  assert.ok(at >= 0 && at < N / 2, `the user task ran in the first half, not after the backlog (position ${at + 1}: ${order.slice(0, 12).join(' ')})`);
  wfWorker.shutdown();
  await running;
});

test('a workflow task takes the workflow priority its options hold when it is scheduled (a user move raises it)', { timeout: 120_000 }, async (t) => {
  const server = await startTestDevServer();
  t.after(() => server.stop());
  const queue = `prio-wft-${process.pid}`;
  const workflowsPath = require.resolve('../fixtures/workflows/priority-burst');
  const N = 60;
  const ids = Array.from({ length: N }, (_, i) => `w${i}`);
  const all = [...ids, 'user'];
  // One worker without a cache (every task from the shared queue) runs each workflow's first task.
  const first = await Worker.create({ connection: server.connection, namespace: server.namespace, taskQueue: queue, workflowsPath, maxCachedWorkflows: 0 });
  await first.runUntil(async () => {
    for (const id of all) await server.client.workflow.start('priorityWaiter', { workflowId: id, taskQueue: queue, args: [1], priority: { priorityKey: POLICY_PRIORITY } });
    for (const id of all) {
      await eventually(async () => (await server.client.workflow.getHandle(id).fetchHistory()).events?.some((e) => e.workflowTaskCompletedEventAttributes) || null, `${id}'s first task`, 30_000, 50);
    }
  });
  // Nobody polls: a burst of 60 policy-priority tasks, then the user's workspace is raised and signalled.
  for (const id of ids) await server.client.workflow.getHandle(id).signal('poke');
  await server.client.workflowService.updateWorkflowExecutionOptions({
    namespace: server.namespace,
    workflowExecution: { workflowId: 'user' },
    workflowExecutionOptions: { priority: { priorityKey: 1 } },
    updateMask: { paths: ['priority'] },
  });
  await server.client.workflow.getHandle('user').signal('poke');
  await sleep(500);
  const second = await Worker.create({ connection: server.connection, namespace: server.namespace, taskQueue: queue, workflowsPath, maxCachedWorkflows: 0, maxConcurrentWorkflowTaskExecutions: 2 });
  await second.runUntil(Promise.all(all.map((id) => server.client.workflow.getHandle(id).result())));
  const closedAt = new Map<string, number>();
  for (const id of all) closedAt.set(id, (await server.client.workflow.getHandle(id).describe()).closeTime!.getTime());
  const before = ids.filter((id) => closedAt.get(id)! < closedAt.get('user')!).length;
  console.log(`# the raised workflow's task ran after ${before} of ${N} policy tasks scheduled before it`);
  // Without the raise it runs after all 60 (checked by hand); under load a few already-read tasks go first.
  assert.ok(before < N / 2, `raised above the burst: ${before} of ${N} ran first`);
});
