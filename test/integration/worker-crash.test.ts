/**
 * Kill -9 the worker process in the middle of a (slowed) freeze and of a restore, start it again,
 * and check the workflow converges with every acknowledged byte still readable.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startTestDevServer, freePort } from '../../harness/temporal';
import { clientFor, eventually, tempDir, uniqueQueue } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { kill9, spawnWorker } from '../../harness/worker-process';
import { activityProgress } from '../../src/client/progress';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

let server: Server;
let wb: WorkbooksClient;
let taskQueue: string;
let dataDir: string;
let port: number;
let worker: ChildProcess | null = null;

function startWorker(extraEnv: Record<string, string> = {}): Promise<ChildProcess> {
  return spawnWorker({ host: 'crashy-host', dataDir, port, env: { TEMPORAL_ADDRESS: server.address, WORKBOOKS_TASK_QUEUE: taskQueue, ...extraEnv } });
}

describe('worker killed mid-copy', { concurrency: false }, () => {
  const files = new Map<string, string>();

  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('crash');
    dataDir = tempDir('wb-crash-');
    port = await freePort();
    wb = clientFor(server.client, taskQueue);
    worker = await startWorker();
    await wb.create({ workspaceId: 'crashy', tenant: 'acme' });
    for (let i = 0; i < 4; i++) {
      const data = crypto.randomBytes(4 * 1024 * 1024);
      await wb.putFile('crashy', 'workspace', `/blob-${i}`, data);
      files.set(`/blob-${i}`, crypto.createHash('sha256').update(data).digest('hex'));
    }
    await wb.putFile('crashy', 'memory', '/note', Buffer.from('acknowledged'));
  });

  after(async () => {
    if (worker && worker.exitCode === null) await kill9(worker);
    await server?.stop();
  });

  /**
   * Waits until the move's copy is under way (its activity has heartbeated some bytes of the `copy` or `restore`
   * phase), then kills the worker. Timing the kill from the move's start is not enough: right after the previous
   * worker was killed, the move's first workflow task may wait out the dead worker's sticky queue first.
   */
  async function killMidCopy(activity: string): Promise<void> {
    await eventually(
      async () => {
        const p = await activityProgress(wb, 'crashy');
        return p && p.activity === activity && (p.phase === 'copy' || p.phase === 'restore') && p.bytesCopied > 0 ? p : null;
      },
      `${activity} to be copying`,
      60_000,
      100,
    );
    await kill9(worker!);
  }

  async function assertAllBytes(): Promise<void> {
    for (const [p, sum] of files) {
      const got = await wb.getFile('crashy', 'workspace', p);
      assert.equal(crypto.createHash('sha256').update(got).digest('hex'), sum, `${p} intact`);
    }
    assert.equal((await wb.getFile('crashy', 'memory', '/note')).toString(), 'acknowledged');
  }

  // Bounded: a failed step must fail the test, not leave the next one waiting on a dead worker.
  it('converges after a kill during freeze', { timeout: 240_000 }, async () => {
    await wb.transition('crashy', 'suspended');
    // Restart slowed down so the freeze copy takes seconds, then kill it half way.
    await kill9(worker!);
    worker = await startWorker({ WORKBOOKS_COPY_THROTTLE_BPS: String(4 * 1024 * 1024) });
    await wb.signal('crashy', 'freeze', { reason: 'crash test' });
    await killMidCopy('storeLocal');
    const coldDir = path.join(dataDir, 'cold');
    const finished = fs.existsSync(coldDir) ? fs.readdirSync(coldDir).filter((n) => n.startsWith('crashy.') && n.endsWith('.meta.json')) : [];
    assert.deepEqual(finished, [], 'the kill landed before the freeze finished');

    worker = await startWorker();
    const d = await eventually(async () => {
      const x = await wb.describe('crashy');
      return x.state === 'frozen' && !x.busy ? x : null;
    }, 'freeze to converge after restart', 120_000, 500);
    assert.ok(d.cold);
    await assertAllBytes();
  });

  it('converges after a kill during restore from cold', { timeout: 240_000 }, async () => {
    await wb.transition('crashy', 'suspended');
    await wb.transition('crashy', 'frozen');
    await kill9(worker!);
    worker = await startWorker({ WORKBOOKS_COPY_THROTTLE_BPS: String(4 * 1024 * 1024) });
    await wb.signal('crashy', 'wake', { reason: 'crash test' });
    await killMidCopy('recoverLocal');
    worker = await startWorker();
    await eventually(async () => {
      const x = await wb.describe('crashy');
      return x.state === 'active' && !x.busy ? x : null;
    }, 'wake to converge after restart', 120_000, 500);
    await assertAllBytes();
  });
});
