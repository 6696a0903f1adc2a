/**
 * Prefetched copies do not outlive their use, on a real Temporal dev server with a real worker host.
 *
 * Expiry: a frozen workspace's prefetched copy that no wake used within the workspace's `prefetchKeep` is removed
 * from its host by the workflow; nothing else about the workspace changes (state, lastActiveAt, ledger), and a
 * later wake restores from the cold copy as usual.
 *
 * Delete: delete removes a prefetched local copy from the host that holds it (the archived → deleted move drops the
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

describe('prefetched copies', { concurrency: false }, () => {
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

  it('a prefetched copy no wake used within prefetchKeep is removed from its host; the workspace is otherwise untouched', async () => {
    const id = 'prefetched-unused';
    await assert.rejects(wb.create({ workspaceId: id, tenant: 'acme', prefetchKeep: '10 minutes' }), /prefetchKeep .* is not a duration/);
    await assert.rejects(wb.create({ workspaceId: id, tenant: 'acme', prefetchKeep: '200ms' }), /shorter than 1s/);
    await wb.create({ workspaceId: id, tenant: 'acme', prefetchKeep: '4s' });
    await wb.putFile(id, 'workspace', '/keep', Buffer.from('frozen, prefetched, never woken'));
    await wb.transition(id, 'suspended');
    await wb.transition(id, 'frozen');
    const before = await wb.describe(id);

    const r = await wb.prefetch(id, { reason: 'login' });
    assert.equal(r.outcome, 'prefetched');
    const d = await wb.describe(id);
    const pre = d.prefetched!;
    assert.ok(pre && fs.existsSync(pre.filePath), 'the prefetched copy is on the host');
    assert.ok(pre.expiresAt, 'describe says when it expires');
    const keepMs = Date.parse(pre.expiresAt!) - Date.now();
    assert.ok(keepMs > 0 && keepMs <= 4000, `it expires within 4 s of the prefetch (${keepMs} ms left)`);

    await eventually(async () => !fs.existsSync(pre.filePath), 'the expired copy is removed from the host', 30_000);
    const after = await eventually(async () => {
      const x = await wb.describe(id);
      return x.prefetched === null ? x : null;
    }, 'the workflow records no prefetched copy');
    assert.deepEqual(filesOf(path.join(host.cfg.dataDir, 'live'), id), [], 'nothing of it in live/');
    assert.equal(after.state, 'frozen');
    assert.equal(after.lastActiveAt, before.lastActiveAt, 'an expiry is not use');
    assert.equal(after.stateSince, before.stateSince);
    assert.deepEqual(after.ledger, before.ledger, 'neither the prefetch nor its expiry is a move');

    // A copy made again and used within its keep serves the wake; the data is the frozen data.
    await wb.prefetch(id, { reason: 'login again' });
    const w = await wb.wake(id, { reason: 'first request' });
    assert.equal(w.state, 'active');
    const last = (await wb.describe(id)).ledger.at(-1)!;
    assert.match(last.detail ?? '', /resumed from prefetched cold copy/);
    assert.equal((await wb.getFile(id, 'workspace', '/keep')).toString(), 'frozen, prefetched, never woken');
  });
});
