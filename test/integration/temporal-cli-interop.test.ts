/**
 * docs/contract.md is enough for a service in any language: drive a workspace only with the `temporal` CLI
 * (start by type name with JSON input, signal, update, query, list by search attribute), exactly as documented.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startTestDevServer } from '../../harness/temporal';
import { eventually, startTestHost, TestHost, uniqueQueue } from '../../harness/stack';
import { resolveBinary } from '../../src/tools';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

let server: Server;
let host: TestHost;
let taskQueue: string;

/** Runs the CLI asynchronously: the worker lives in this process and must keep answering meanwhile. */
async function temporal(args: string[]): Promise<string> {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('TEMPORAL_')) delete env[k];
  const { stdout } = await promisify(execFile)(resolveBinary('temporal'), [...args, '--address', server.address], { encoding: 'utf8', env, timeout: 60_000 });
  return stdout;
}

async function describeViaCli(id: string): Promise<{ state: string; ledger: { from: string; to: string; outcome: string; by: string }[] }> {
  const out = JSON.parse(await temporal(['workflow', 'query', '--workflow-id', `workspace:${id}`, '--type', 'describe', '--output', 'json']));
  return out.queryResult[0];
}

describe('driving a workspace with the temporal CLI only', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('cli');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue });
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  it('starts, queries, signals, updates and lists as docs/contract.md says', async () => {
    await temporal([
      'workflow', 'start', '--type', 'workspace', '--task-queue', taskQueue, '--workflow-id', 'workspace:notes-42',
      '--input', '{"workspaceId":"notes-42","tenant":"acme"}',
      '--search-attribute', 'WorkbookState="created"', '--search-attribute', 'WorkbookTenant="acme"',
    ]);
    await eventually(async () => (await describeViaCli('notes-42')).state === 'active', 'the new workspace to be active');

    await temporal(['workflow', 'signal', '--workflow-id', 'workspace:notes-42', '--name', 'suspend', '--input', '{"reason":"nightly","by":"scheduler"}']);
    await eventually(async () => (await describeViaCli('notes-42')).state === 'suspended', 'suspend signal to apply');

    // An illegal signal is recorded as refused and changes nothing.
    await temporal(['workflow', 'signal', '--workflow-id', 'workspace:notes-42', '--name', 'archive', '--input', '{"reason":"offboarding","by":"billing"}']);
    await eventually(async () => (await describeViaCli('notes-42')).ledger.some((e) => e.outcome === 'refused' && e.by === 'billing'), 'refusal in the ledger');
    assert.equal((await describeViaCli('notes-42')).state, 'suspended');

    const woke = JSON.parse(await temporal(['workflow', 'update', 'execute', '--workflow-id', 'workspace:notes-42', '--name', 'wake', '--input', '{}', '--output', 'json']));
    assert.equal(JSON.stringify(woke).includes('"active"'), true, `wake update result: ${JSON.stringify(woke)}`);

    const listed = await eventually(async () => {
      const out = await temporal(['workflow', 'list', '--query', "WorkflowType = 'workspace' AND WorkbookState = 'active' AND WorkbookTenant = 'acme'", '--output', 'json']);
      const rows = JSON.parse(out || '[]') as { execution: { workflowId: string } }[];
      return rows.some((r) => r.execution.workflowId === 'workspace:notes-42') ? rows : null;
    }, 'the workspace to be listed by search attribute');
    assert.ok(listed.length >= 1);

    // Bad input fails the workflow with a clear, non-retryable reason.
    await temporal(['workflow', 'start', '--type', 'workspace', '--task-queue', taskQueue, '--workflow-id', 'workspace:bad', '--input', '{"workspaceId":"Bad/Id","tenant":"acme"}']);
    const failed = await eventually(async () => {
      const out = JSON.parse(await temporal(['workflow', 'describe', '--workflow-id', 'workspace:bad', '--output', 'json']));
      return out.workflowExecutionInfo?.status === 'WORKFLOW_EXECUTION_STATUS_FAILED' ? out : null;
    }, 'the bad workflow to fail');
    assert.ok(failed);
    const show = await temporal(['workflow', 'show', '--workflow-id', 'workspace:bad', '--output', 'json']);
    assert.match(show, /workspace id 'Bad\/Id' is invalid/);
  });
});
