/**
 * Property, on the real workflow (dev server, real host, real files): after every step of a random sequence of
 * moves and writes, every stored copy the workspace records (cold, archive) exists and hashes to what is recorded,
 * and the newest write is what a wake reads back. Run over each store layout: cold and archive at separate URLs or
 * the same URL (content-addressed keys then collide whenever the bytes are unchanged), replication on and off.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { startTestDevServer } from '../../../harness/temporal';
import { clientFor, startTestHost, TestHost, tempDir, uniqueQueue } from '../../../harness/stack';
import type { StoredCopy, WorkspaceDescription } from '../../../src/contract/types';
import { nextStates } from '../../../src/lifecycle';
import type { WorkbooksClient } from '../../../src/client/workbooks-client';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;
type Step = 'put' | 'suspend' | 'freeze' | 'wake' | 'archive';

const LAYOUTS = [
  { name: 'separate stores, replication on', same: false, replication: true },
  { name: 'separate stores, replication off', same: false, replication: false },
  { name: 'cold = archive URL, replication on', same: true, replication: true },
  { name: 'cold = archive URL, replication off', same: true, replication: false },
];

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** The recorded copy exists in its file store with the recorded sha256 and size. */
function checkCopy(c: StoredCopy, what: string, context: string): void {
  const file = fileURLToPath(c.url);
  assert.ok(fs.existsSync(file), `${context}: the ${what} copy ${c.url} is missing`);
  const bytes = fs.readFileSync(file);
  assert.equal(bytes.length, c.bytes, `${context}: ${what} size`);
  assert.equal(sha(bytes), c.sha256, `${context}: ${what} sha256`);
}

function checkReferences(d: WorkspaceDescription, context: string): void {
  if (d.cold) checkCopy(d.cold, 'cold', context);
  if (d.archive) checkCopy(d.archive, 'archive', context);
  if (d.state === 'frozen') assert.ok(d.cold, `${context}: frozen without a cold copy`);
  if (d.state === 'archived') assert.ok(d.archive, `${context}: archived without an archive`);
}

describe('stored copies the model references always exist and verify', { concurrency: false }, () => {
  let server: Server;

  before(async () => {
    server = await startTestDevServer();
  });
  after(async () => {
    await server?.stop();
  });

  for (const layout of LAYOUTS) {
    it(layout.name, { timeout: 600_000 }, async () => {
      const queue = uniqueQueue('copies');
      const root = tempDir('wb-copies-');
      const cold = `file://${path.join(root, layout.same ? 'store' : 'cold')}`;
      const archive = `file://${path.join(root, layout.same ? 'store' : 'archive')}`;
      let host: TestHost | null = null;
      try {
        host = await startTestHost({
          connection: server.connection,
          client: server.client,
          taskQueue: queue,
          coldUrl: cold,
          archiveUrl: archive,
          replicaUrl: layout.replication ? `file://${path.join(root, 'replicas')}` : 'off',
        });
        const wb: WorkbooksClient = clientFor(server.client, queue);
        let n = 0;
        await fc.assert(
          fc.asyncProperty(fc.array(fc.constantFrom<Step>('put', 'suspend', 'freeze', 'wake', 'archive', 'put'), { minLength: 4, maxLength: 9 }), async (steps) => {
            const id = `p${LAYOUTS.indexOf(layout)}-${++n}`;
            await wb.create({ workspaceId: id, tenant: 'acme', policy: { suspendAfter: 'never', freezeAfter: 'never' } });
            let newest = Buffer.from(`${id} v0`);
            await wb.putFile(id, 'workspace', '/v', newest);
            const done: string[] = [];
            for (const step of steps) {
              const d = await wb.describe(id);
              const to = { suspend: 'suspended', freeze: 'frozen', wake: 'active', archive: 'archived', put: null }[step];
              if (step === 'put') {
                newest = Buffer.from(`${id} after ${done.join(',')}`);
                await wb.putFile(id, 'workspace', '/v', newest); // wakes it if needed
              } else if (to && nextStates(d.state).includes(to as never)) {
                if (to === 'active') await wb.wake(id);
                else await wb.transition(id, to);
              } else {
                continue;
              }
              done.push(step);
              checkReferences(await wb.describe(id), `${layout.name} ${id} after ${done.join(',')}`);
            }
            assert.equal((await wb.getFile(id, 'workspace', '/v')).toString(), newest.toString(), `${id}: the newest write, after ${done.join(',')}`);
            checkReferences(await wb.describe(id), `${layout.name} ${id} at the end`);
          }),
          // The sequence that once lost the archive (cold = archive URL, replication off) always runs, then random ones.
          { numRuns: 4, seed: 20261207 + LAYOUTS.indexOf(layout), examples: [[['suspend', 'freeze', 'wake', 'archive', 'wake', 'put']]] },
        );
      } finally {
        await host?.stop();
        fs.rmSync(root, { recursive: true, force: true });
      }
    });
  }
});
