/**
 * Delete removes a prefetched local copy from the host that holds it (the archived → deleted move drops the
 * prefetched copy through that host's removeLocal before the stored copies go), on a real Temporal dev server with
 * a real worker host: after the delete no file of the workspace is left in the host's live/ (or set aside in
 * orphans/), and the workflow records no prefetched copy.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, startTestHost, TestHost, uniqueQueue } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { workflowIdFor } from '../../src/contract/ids';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

let server: Server;
let host: TestHost;
let wb: WorkbooksClient;

/** Names of files of workspace `id` in `dir` (the file, its journals and sidecars, temporaries). */
function filesOf(dir: string, id: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).filter((n) => n.startsWith(`${id}.`) || n.startsWith(`.${id}.`));
}

describe('delete and a prefetched copy', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('del-pre');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: 'host-a' });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  it('deleting an archived workspace removes its prefetched local copy from the holding host', async () => {
    const id = 'prefetched-doomed';
    await wb.create({ workspaceId: id, tenant: 'acme' });
    await wb.putFile(id, 'workspace', '/keep', Buffer.from('archived, then prefetched'));
    await wb.transition(id, 'archived');
    assert.deepEqual(filesOf(path.join(host.cfg.dataDir, 'live'), id), [], 'archiving released the local copy');

    await wb.signal(id, 'prefetch');
    const pre = await eventually(async () => (await wb.describe(id)).prefetched, 'the prefetch is recorded');
    assert.equal(pre.host, 'host-a');
    assert.ok(fs.existsSync(pre.filePath), `the prefetched copy ${pre.filePath} is on the host`);
    assert.equal(path.dirname(pre.filePath), path.join(host.cfg.dataDir, 'live'));
    assert.equal((await wb.describe(id)).state, 'archived', 'a prefetch moves nothing');

    await wb.transition(id, 'deleted');
    assert.equal(fs.existsSync(pre.filePath), false, 'the prefetched copy is gone');
    assert.deepEqual(filesOf(path.join(host.cfg.dataDir, 'live'), id), [], 'nothing of it in live/');
    assert.deepEqual(filesOf(path.join(host.cfg.dataDir, 'orphans'), id), [], 'nor set aside in orphans/');
    const res = await server.client.workflow.getHandle(workflowIdFor(id)).result();
    assert.equal(res.state, 'deleted');
    assert.equal(res.prefetched, null, 'the workflow records no prefetched copy');
  });
});
