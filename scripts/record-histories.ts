/**
 * Records workflow histories for the replay test: runs real scenarios on a throwaway dev server
 * and writes them to test/fixtures/histories/. Run after building: `node dist/scripts/record-histories.js`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { resolveBinary } from '../src/tools';
import { startTestDevServer } from '../test/helpers/temporal';
import { clientFor, startTestHost, uniqueQueue } from '../test/helpers/stack';
import { workflowIdFor } from '../src/contract/ids';

async function main(): Promise<void> {
  const out = path.resolve(__dirname, '../../test/fixtures/histories');
  fs.mkdirSync(out, { recursive: true });
  const server = await startTestDevServer();
  const taskQueue = uniqueQueue('rec');
  const host = await startTestHost({ connection: server.connection, client: server.client, taskQueue });
  const wb = clientFor(server.client, taskQueue);
  try {
    // 1. full ladder by hand with data, refusals and a delete at the end
    await wb.create({ workspaceId: 'rec-ladder', tenant: 'acme' });
    await wb.putFile('rec-ladder', 'workspace', '/a', Buffer.from('a'));
    await server.client.workflow.getHandle(workflowIdFor('rec-ladder')).signal('freeze', { reason: 'illegal on purpose' });
    await wb.transition('rec-ladder', 'suspended');
    await wb.transition('rec-ladder', 'frozen');
    await wb.signal('rec-ladder', 'prefetch');
    await wb.wake('rec-ladder');
    await wb.wake('rec-ladder');
    await wb.transition('rec-ladder', 'archived');
    await wb.transition('rec-ladder', 'deleted');
    // 2. a clone of a suspended template
    await wb.create({ workspaceId: 'rec-base', tenant: 'acme' });
    await wb.transition('rec-base', 'suspended');
    await wb.create({ workspaceId: 'rec-clone', tenant: 'globex', template: 'rec-base' });
    // 3. the idle ladder on short timers, including a busy re-arm
    await wb.create({ workspaceId: 'rec-idle', tenant: 'acme', policy: { suspendAfter: '2s', freezeAfter: '2s' } });
    await new Promise((r) => setTimeout(r, 1500));
    await wb.putFile('rec-idle', 'workspace', '/touch', Buffer.from('x'));
    for (let i = 0; i < 100; i++) {
      const d = await wb.describe('rec-idle');
      if (d.state === 'frozen') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // 4. continue-as-new
    await server.client.workflow.start('workspace', { workflowId: workflowIdFor('rec-can'), taskQueue, args: [{ workspaceId: 'rec-can', tenant: 'acme', historyLimit: 50 }] });
    for (let i = 0; i < 4; i++) {
      await wb.transition('rec-can', 'suspended');
      await wb.transition('rec-can', 'active');
    }
    for (const id of ['rec-ladder', 'rec-base', 'rec-clone', 'rec-idle', 'rec-can']) {
      const runs: string[] = [];
      // every run of the chain, oldest first (continue-as-new makes several)
      for await (const wf of server.client.workflow.list({ query: `WorkflowId = '${workflowIdFor(id)}'` })) runs.push(wf.runId);
      for (const runId of runs.reverse()) {
        // The CLI's JSON is the format the Web UI downloads and historyFromJSON reads.
        const json = execFileSync(resolveBinary('temporal'), ['workflow', 'show', '--address', server.address, '-w', workflowIdFor(id), '-r', runId, '--output', 'json'], {
          encoding: 'utf8',
          maxBuffer: 64 * 1024 * 1024,
        });
        const name = runs.length > 1 ? `${id}-run${runs.indexOf(runId) + 1}` : id;
        fs.writeFileSync(path.join(out, `${name}.json`), json);
        process.stdout.write(`recorded ${name}: ${(JSON.parse(json).events ?? []).length} events\n`);
      }
    }
  } finally {
    await host.stop();
    await server.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
