/**
 * What a real `workbooks worker` process leaves on disk and hands to its children: its files are its own (0600,
 * directories 0700), and the Litestream daemon it starts sees S3 credentials but not the service's API tokens.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, tempDir, uniqueQueue } from '../../harness/stack';
import { kill9, spawnWorker } from '../../harness/worker-process';
import { liveDir, liveFile } from '../../src/host/data-dir';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const mode = (p: string) => fs.statSync(p).mode & 0o777;

describe('a worker process keeps its files and secrets to itself', { concurrency: false }, () => {
  let server: Server;
  let worker: ChildProcess | null = null;
  const dataDir = path.join(tempDir('wb-hygiene-'), 'data'); // made by the worker itself
  const queue = uniqueQueue('hygiene');

  before(async () => {
    server = await startTestDevServer();
    worker = await spawnWorker({
      host: 'hygiene-host',
      dataDir,
      env: {
        TEMPORAL_ADDRESS: server.address,
        WORKBOOKS_TASK_QUEUE: queue,
        WORKBOOKS_TOKENS: 'a-long-secret-admin-token=*',
        AWS_SECRET_ACCESS_KEY: 'not-a-real-secret',
      },
    });
  });
  after(async () => {
    await kill9(worker);
    await server?.stop();
  });

  it('live files are 0600 in 0700 directories; Litestream gets the S3 key, not the API tokens', async () => {
    const wb = clientFor(server.client, queue);
    await wb.create({ workspaceId: 'private', tenant: 'acme', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
    await wb.putFile('private', 'workspace', '/a', Buffer.from('a'));
    assert.equal(mode(liveFile({ dataDir }, 'private')).toString(8), '600');
    assert.equal(mode(dataDir).toString(8), '700');
    assert.equal(mode(liveDir({ dataDir })).toString(8), '700');
    // Everything under the data dir, the replicas Litestream wrote included (it inherits the process's umask).
    await eventually(async () => fs.existsSync(path.join(dataDir, 'replicas', 'private')) || null, 'the first replica files');
    // Litestream renames its temporaries meanwhile: a name gone between listing and stat is skipped.
    const statOf = (p: string): fs.Stats | null => {
      try {
        return fs.lstatSync(p);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    };
    const walk = (dir: string): string[] => {
      let entries: fs.Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
        throw err;
      }
      return entries.flatMap((e) => [path.join(dir, e.name), ...(e.isDirectory() ? walk(path.join(dir, e.name)) : [])]);
    };
    const open = walk(dataDir).filter((p) => {
      const st = statOf(p);
      return st !== null && !st.isSocket() && (st.mode & 0o077) !== 0;
    });
    assert.deepEqual(open, [], 'nothing under the data dir is readable by others');

    const pidFile = path.join(dataDir, 'litestream', 'litestream.pid');
    const pid = await eventually(async () => (fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : null), 'the Litestream daemon');
    const env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    assert.ok(env.includes('AWS_SECRET_ACCESS_KEY=not-a-real-secret'), 'Litestream may need the S3 key');
    assert.ok(!env.some((e) => e.startsWith('WORKBOOKS_TOKENS=')), 'but never the API tokens');
    assert.ok(!env.some((e) => e.startsWith('TEMPORAL_ADDRESS=')), 'nor the service\'s other settings');
  });
});
