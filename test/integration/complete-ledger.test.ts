/**
 * The complete ledger (src/storage/ledger-archive.ts): 300 moves on one workspace (continuing as new on the way),
 * then its delete, then its workflow's runs deleted from Temporal: every entry is still readable, oldest first,
 * from the cold store, through the client and the CLI. Real dev server, real worker host, file:// cold store.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startTestDevServer } from '../../harness/temporal';
import { eventually, startTestHost, TestHost, tempDir, uniqueQueue, TEST_DATA_KEY, TEST_DATA_KEY_SECRET } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { ledgerArchiveAt } from '../../src/storage/ledger-archive';
import { workflowIdFor } from '../../src/contract/ids';
import { startApiServer } from '../../src/api/server';
import { parseTokenSpec } from '../../src/api/tokens';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');

let server: Awaited<ReturnType<typeof startTestDevServer>>;
let host: TestHost;
let wb: WorkbooksClient;
let coldUrl: string;
let taskQueue: string;

describe('the complete ledger', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('ledger');
    coldUrl = `file://${tempDir('wb-ledger-cold-')}`;
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, coldUrl, replicaUrl: 'off' });
    wb = new WorkbooksClient(server.client, taskQueue, TEST_DATA_KEY, ledgerArchiveAt(coldUrl));
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  it('300 moves, then delete, then the runs gone: every entry is still readable, oldest first', async () => {
    const id = 'acme.busy';
    await wb.create({ workspaceId: id, tenant: 'acme' });
    for (let i = 0; i < 150; i++) {
      await wb.transition(id, 'suspended', { reason: `round ${i} suspend` });
      await wb.wake(id, { reason: `round ${i} wake` });
    }
    // A refused move is an entry too.
    await wb.signal(id, 'freeze', { reason: 'refused: active cannot freeze' });
    await eventually(async () => (await wb.describe(id)).ledger.at(-1)?.outcome === 'refused', 'the refusal recorded');
    // While it runs, the API pages through all of it (offset/limit/nextOffset), for its tenant too.
    const api = await startApiServer({ client: wb, tokens: parseTokenSpec('tok-acme-0123456789=acme', 'test'), waitMs: 10_000, port: 0, bind: '127.0.0.1' });
    try {
      const seen: { from: string; to: string; reason: string }[] = [];
      let offset: number | null = 0;
      while (offset !== null) {
        const res = await fetch(`${api.url}/v1/workspaces/busy/history?offset=${offset}&limit=70`, { headers: { authorization: 'Bearer tok-acme-0123456789' } });
        assert.equal(res.status, 200);
        const body = (await res.json()) as { ledger: { from: string; to: string; reason: string }[]; total: number; nextOffset: number | null };
        assert.equal(body.total, 302);
        seen.push(...body.ledger);
        offset = body.nextOffset;
      }
      assert.equal(seen.length, 302);
      assert.equal(`${seen[1]!.from}>${seen[1]!.to}:${seen[1]!.reason}`, 'active>suspended:round 0 suspend');
    } finally {
      await api.close();
    }
    await wb.transition(id, 'archived', { reason: 'put away' });
    await wb.transition(id, 'deleted', { reason: 'done with it' });
    const live = await wb.fullHistory(id).catch(() => null);
    const d = await wb.describe(id).catch(() => null);
    assert.ok(d === null || d.runs >= 1, 'it continued as new at least once on the way');

    // The workflow's runs go (as the namespace's retention would take them).
    const runs = await server.client.workflowService.listWorkflowExecutions({ namespace: server.namespace, query: `WorkflowId = '${workflowIdFor(id)}'` });
    for (const e of runs.executions ?? []) {
      await server.client.workflowService.deleteWorkflowExecution({ namespace: server.namespace, workflowExecution: { workflowId: e.execution!.workflowId!, runId: e.execution!.runId! } });
    }
    await eventually(async () => !(await wb.describe(id).then(() => true, () => false)), 'the workflow to be gone', 60_000, 500);

    const h = await wb.fullHistory(id);
    assert.equal(h.live, false);
    assert.equal(h.complete, true);
    const moves = h.entries.map((e) => `${e.from}>${e.to}:${e.outcome}:${e.reason}`);
    assert.equal(moves[0], 'created>active:done:created');
    for (let i = 0; i < 150; i++) {
      assert.equal(moves[1 + 2 * i], `active>suspended:done:round ${i} suspend`, `entry ${1 + 2 * i}`);
      assert.equal(moves[2 + 2 * i], `suspended>active:done:round ${i} wake`, `entry ${2 + 2 * i}`);
    }
    assert.deepEqual(moves.slice(301), ['active>frozen:refused:refused: active cannot freeze', 'active>archived:done:put away', 'archived>deleted:done:done with it']);
    assert.equal(h.entries.length, 304);
    assert.ok(h.pages >= 5, `written a page at a time: ${h.pages} pages`);
    if (live) assert.deepEqual(live.entries, h.entries, 'read while the workflow was there: the same entries');

    // The operator's CLI reads it too (the cold store from WORKBOOKS_COLD_URL).
    const cli = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const env = { ...process.env, TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: server.namespace, WORKBOOKS_TASK_QUEUE: taskQueue, WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET, WORKBOOKS_COLD_URL: coldUrl, WORKBOOKS_DATA_DIR: tempDir('wb-ledger-cli-') };
      const child = spawn(process.execPath, [CLI, 'history', id, '--all', '--json'], { env });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b) => (stdout += b));
      child.stderr.on('data', (b) => (stderr += b));
      child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    });
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal(JSON.parse(cli.stdout).entries.length, 304);
  });
});
