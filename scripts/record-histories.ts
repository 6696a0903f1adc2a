/**
 * Records workflow histories for the replay test: runs real scenarios on a throwaway dev server
 * and writes them to test/fixtures/histories/. Run after building: `node dist/scripts/record-histories.js`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { resolveBinary } from '../src/tools';
import { startTestDevServer } from '../harness/temporal';
import { clientFor, startTestHost, uniqueQueue } from '../harness/stack';
import { workflowIdFor } from '../src/contract/ids';

async function main(): Promise<void> {
  const out = path.resolve(__dirname, '../../test/fixtures/histories');
  fs.mkdirSync(out, { recursive: true });
  const server = await startTestDevServer();
  const taskQueue = uniqueQueue('rec');
  const host = await startTestHost({ connection: server.connection, client: server.client, taskQueue });
  const wb = clientFor(server.client, taskQueue);
  try {
    // Fixtures of earlier builds (rec-*.json) stay as recorded: they prove old histories still replay (the
    // patched() branches). This records the current build's scenarios as rec2-*.json.
    // 1. the whole ladder by hand, with replication, verified freezes, a re-freeze of changed content, an
    //    illegal signal, prefetch, archive from active and delete
    await wb.create({ workspaceId: 'rec2-ladder', tenant: 'acme' });
    await wb.putFile('rec2-ladder', 'workspace', '/a', Buffer.from('a'));
    await server.client.workflow.getHandle(workflowIdFor('rec2-ladder')).signal('freeze', { reason: 'illegal on purpose' });
    await wb.transition('rec2-ladder', 'suspended');
    await wb.transition('rec2-ladder', 'frozen');
    await wb.signal('rec2-ladder', 'prefetch');
    await wb.wake('rec2-ladder');
    await wb.putFile('rec2-ladder', 'workspace', '/b', Buffer.from('b'));
    await wb.transition('rec2-ladder', 'suspended');
    await wb.transition('rec2-ladder', 'frozen');
    await wb.wake('rec2-ladder');
    await wb.wake('rec2-ladder', {}, { check: true });
    await wb.transition('rec2-ladder', 'archived');
    await wb.wake('rec2-ladder');
    await wb.transition('rec2-ladder', 'archived');
    await wb.transition('rec2-ladder', 'deleted');
    // 2. a corrupted cold copy: resumed from the replica instead
    await wb.create({ workspaceId: 'rec2-recover', tenant: 'acme' });
    await wb.putFile('rec2-recover', 'workspace', '/a', Buffer.from('kept'));
    await wb.transition('rec2-recover', 'suspended');
    await wb.transition('rec2-recover', 'frozen');
    const cold = new URL((await wb.describe('rec2-recover')).cold!.url).pathname;
    const bytes = fs.readFileSync(cold);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    fs.writeFileSync(cold, bytes);
    await wb.wake('rec2-recover');
    // 3. restore into a new workspace, and a clone
    await new Promise((r) => setTimeout(r, 2000));
    await wb.restore('rec2-recover', { as: 'rec2-restored' });
    await wb.create({ workspaceId: 'rec2-clone', tenant: 'globex', template: 'rec2-restored' });
    // 4. every rung of the ladder on short timers, to deletion
    await wb.create({ workspaceId: 'rec2-rungs', tenant: 'acme', policy: { suspendAfter: '1s', freezeAfter: '1s', archiveAfter: '1s', deleteAfter: '1s' } });
    await server.client.workflow.getHandle(workflowIdFor('rec2-rungs')).result();
    // 5. continue-as-new
    await server.client.workflow.start('workspace', { workflowId: workflowIdFor('rec2-can'), taskQueue, args: [{ workspaceId: 'rec2-can', tenant: 'acme', historyLimit: 50 }] });
    for (let i = 0; i < 4; i++) {
      await wb.transition('rec2-can', 'suspended');
      await wb.transition('rec2-can', 'active');
    }
    for (const id of ['rec2-ladder', 'rec2-recover', 'rec2-restored', 'rec2-clone', 'rec2-rungs', 'rec2-can']) {
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
