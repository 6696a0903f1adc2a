/**
 * Bounded replica storage (src/contract/recovery.ts generationsPastRetention): a workspace keeps at most its
 * configured number of replica generations in the replica store, on a real dev server with a real worker host and
 * the real Litestream daemon replicating to a file:// store. Suspend and wake on the same host continue one
 * generation; each cold wake starts a new one, and each freeze deletes the stopped ones past the newest N.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, startTestHost, TestHost, tempDir, uniqueQueue } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { DEFAULT_REPLICA_GENERATIONS } from '../../src/contract/recovery';

let server: Awaited<ReturnType<typeof startTestDevServer>>;
let host: TestHost;
let wb: WorkbooksClient;
let replicaRoot: string;

/** Generation directories the replica store holds for a workspace. */
function storedGenerations(id: string): string[] {
  const dir = path.join(replicaRoot, id);
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

describe('replica generations are kept to a bound', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    replicaRoot = tempDir('wb-retention-replicas-');
    const taskQueue = uniqueQueue('ret');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, replicaUrl: `file://${replicaRoot}` });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  it('20 suspends and wakes on the same host continue one generation', async () => {
    const id = 'acme.steady';
    await wb.create({ workspaceId: id, tenant: 'acme' });
    for (let i = 0; i < 20; i++) {
      await wb.putFile(id, 'workspace', `/n${i}`, Buffer.from(String(i)));
      await wb.transition(id, 'suspended');
      await wb.wake(id);
    }
    assert.equal((await wb.describe(id)).replicas.length, 1);
    assert.equal(storedGenerations(id).length, 1);
  });

  it(`cold wakes start new generations; each freeze keeps the newest ${DEFAULT_REPLICA_GENERATIONS} (default) or the configured number`, async () => {
    for (const [id, keep] of [['acme.cycled', DEFAULT_REPLICA_GENERATIONS], ['acme.lean', 1]] as const) {
      await wb.create({ workspaceId: id, tenant: 'acme', ...(keep === 1 ? { replicaGenerations: 1 } : {}) });
      for (let round = 1; round <= 8; round++) {
        await wb.putFile(id, 'workspace', '/round', Buffer.from(`round ${round}`));
        await wb.transition(id, 'suspended');
        await wb.transition(id, 'frozen');
        const d = await wb.describe(id);
        assert.ok(d.replicas.length <= keep, `${id} round ${round}: ${d.replicas.length} generations remembered`);
        assert.ok(storedGenerations(id).length <= keep, `${id} round ${round}: stored ${storedGenerations(id).join(', ')}`);
        // The newest generation is always kept, and it is the one described last.
        assert.equal(storedGenerations(id).includes(d.replicas.at(-1)!.url.split('/').pop()!), true);
        await wb.wake(id);
      }
      const d = await wb.describe(id);
      assert.ok(d.ledger.some((e) => /old replica generations? deleted/.test(e.detail ?? '')), `${id}: the freeze says what it deleted`);
      assert.equal((await wb.getFile(id, 'workspace', '/round')).toString(), 'round 8');
    }
    // What is kept still restores: a restore of the newest data into a new workspace.
    await wb.putFile('acme.cycled', 'workspace', '/last', Buffer.from('last write'));
    await wb.transition('acme.cycled', 'suspended');
    await wb.transition('acme.cycled', 'frozen');
    const r = await wb.restore('acme.cycled', { as: 'acme.cycled-back' });
    assert.equal((await wb.getFile(r.workspaceId, 'workspace', '/last')).toString(), 'last write');
  });
});
