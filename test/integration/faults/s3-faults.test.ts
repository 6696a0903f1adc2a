/**
 * S3 faults between a worker and its cold store, through the workflow: a real Temporal dev server, a real worker
 * host in this process, a real MinIO, and a fault-injecting proxy (harness/s3-fault-proxy.ts) between them.
 *
 * Config: cold copies go to `s3://wb-cold/frozen` (through the proxy); replication is OFF, so a stored copy is the
 * only source a frozen workspace can be restored from (a wake while S3 is down cannot fall back to a replica).
 * The test reads and lists MinIO directly (not through the proxy) for its own checks. MinIO checks SigV4
 * signatures, Host header included: the proxy forwards every header unchanged, so they stay valid.
 *
 * Transient faults (5xx, connection resets, slow responses) are absorbed by the AWS SDK's retries (5 attempts)
 * or, when those run out or a body is cut mid-stream, by the activity's retry (1 s, doubling); the move
 * succeeds and the bytes come back identical. Permanent faults:
 *   - 403 / NoSuchBucket are non-retryable (StoreUnavailable): the freeze fails at once;
 *   - every request answering 503 is retried by the activity (8 attempts, ~95 s in all) before the freeze fails:
 *     that case takes about 95 s (it runs in CI like every other);
 *   - a wake from frozen while every request answers 503: recoverLocal gives the stored copy three attempts
 *     (~5 s), then fails with NoUsableSource.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { startTestDevServer } from '../../../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../../../harness/stack';
import { startMinio, useS3Env, MinioServer } from '../../../harness/minio';
import { startS3FaultProxy, S3FaultProxy } from '../../../harness/s3-fault-proxy';
import { WorkbooksClient } from '../../../src/client/workbooks-client';
import { WorkbooksError } from '../../../src/client/errors';
import { liveDir, liveFile } from '../../../src/host/data-dir';
import { s3Client, s3SettingsFromEnv } from '../../../src/storage/s3-client';
import type { LedgerEntry, WorkspaceDescription } from '../../../src/contract/types';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const COLD = 'wb-cold';
const MiB = 1024 * 1024;

let server: Server;
let minio: MinioServer;
let proxy: S3FaultProxy;
let restoreEnv: () => void;
let savedEndpoint: string | undefined;
let host: TestHost;
let wb: WorkbooksClient;
/** Straight to MinIO, never through the proxy. */
let direct: S3Client;

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
const shaFile = (f: string) => sha(fs.readFileSync(f));

function bucketAndKey(url: string): { Bucket: string; Key: string } {
  const u = new URL(url);
  return { Bucket: u.host, Key: u.pathname.slice(1) };
}

async function objectBytes(url: string): Promise<Buffer> {
  const r = await direct.send(new GetObjectCommand(bucketAndKey(url)));
  return Buffer.from(await r.Body!.transformToByteArray());
}

async function coldKeys(prefix: string): Promise<string[]> {
  const r = await direct.send(new ListObjectsV2Command({ Bucket: COLD, Prefix: prefix }));
  return (r.Contents ?? []).map((o) => o.Key!);
}

/** A workspace with a random blob (multipart above 5 MiB) and a small file in each kept volume. */
async function makeWorkspace(id: string, blobBytes: number): Promise<Buffer> {
  await wb.create({ workspaceId: id, tenant: 'acme' });
  const blob = crypto.randomBytes(blobBytes);
  await wb.putFile(id, 'workspace', '/blob', blob);
  await wb.putFile(id, 'workspace', '/note.md', Buffer.from(`note of ${id}`));
  await wb.putFile(id, 'memory', '/facts', Buffer.from(`memory of ${id}`));
  return blob;
}

async function checkContent(id: string, blob: Buffer): Promise<void> {
  assert.equal(sha(await wb.getFile(id, 'workspace', '/blob')), sha(blob), `${id}: /blob comes back byte-identical`);
  assert.equal((await wb.getFile(id, 'workspace', '/note.md')).toString(), `note of ${id}`);
  assert.equal((await wb.getFile(id, 'memory', '/facts')).toString(), `memory of ${id}`);
}

/** Temporaries of unfinished copies of `id` in live/ (restore, provision, …). */
function partials(id: string): string[] {
  return fs.readdirSync(liveDir(host.cfg)).filter((n) => n.startsWith(`.${id}.sqlite.`) && n.includes('.partial'));
}

function lastEntry(d: WorkspaceDescription): LedgerEntry {
  const e = d.ledger.at(-1);
  assert.ok(e, 'the ledger has entries');
  return e;
}

/** A reason a person can read: one line, says what failed and where, no stack trace, no SDK placeholder text. */
function assertReadable(detail: string | undefined, ...mustMatch: RegExp[]): void {
  assert.ok(detail && detail.length > 0, 'the failure has a reason');
  assert.ok(!/\n\s+at /.test(detail), `no stack trace in the reason: ${detail}`);
  assert.ok(!/UnknownError|\[object Object\]|undefined/.test(detail), `no placeholder text in the reason: ${detail}`);
  for (const re of mustMatch) assert.match(detail, re);
}

async function expectMoveFailed(p: Promise<unknown>): Promise<WorkbooksError> {
  let caught: unknown;
  await p.then(
    () => assert.fail('the move should have failed'),
    (err: unknown) => {
      caught = err;
    },
  );
  assert.ok(caught instanceof WorkbooksError, `a WorkbooksError, got ${String(caught)}`);
  assert.equal(caught.code, 'move_failed', caught.message);
  return caught;
}

describe('S3 faults through a fault-injecting proxy (cold store on S3, replication off)', { concurrency: false }, () => {
  before(async () => {
    minio = await startMinio();
    restoreEnv = useS3Env(minio);
    direct = s3Client(s3SettingsFromEnv({ ...process.env, WORKBOOKS_S3_ENDPOINT: minio.endpoint }));
    await minio.createBucket(COLD);
    proxy = await startS3FaultProxy(minio.endpoint);
    // The worker host opens its stores from this process's environment: every S3 request goes through the proxy.
    savedEndpoint = process.env.WORKBOOKS_S3_ENDPOINT;
    process.env.WORKBOOKS_S3_ENDPOINT = proxy.endpoint;
    process.env.WORKBOOKS_S3_PART_SIZE = String(5 * MiB);
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('s3faults');
    host = await startTestHost({
      connection: server.connection,
      client: server.client,
      taskQueue,
      hostId: 's3-faults-host',
      coldUrl: `s3://${COLD}/frozen`,
      replicaUrl: 'off',
    });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    proxy?.heal();
    await host?.stop();
    await server?.stop();
    await proxy?.close();
    await minio?.stop();
    delete process.env.WORKBOOKS_S3_PART_SIZE;
    process.env.WORKBOOKS_S3_ENDPOINT = savedEndpoint;
    restoreEnv?.();
  });

  it('freeze and resume succeed through transient 5xx on CreateMultipartUpload, UploadPart, HeadObject and GetObject', async () => {
    const id = 'flaky';
    const blob = await makeWorkspace(id, 11 * MiB); // three 5 MiB parts
    await wb.transition(id, 'suspended');
    const localSha = shaFile(liveFile(host.cfg, id));

    proxy.resetStats();
    const create = proxy.failNext(1, { op: 'CreateMultipartUpload' }, 500);
    const parts = proxy.failNext(2, { op: 'UploadPart' }, 503);
    const heads = proxy.failNext(1, { op: 'HeadObject' }, 503);
    const gets = proxy.failNext(2, { op: 'GetObject' }, 503);
    await wb.transition(id, 'frozen');
    const s = proxy.stats();
    assert.equal(create.fired, 1, 'a CreateMultipartUpload got a 500');
    assert.equal(parts.fired, 2, 'two UploadParts got a 503');
    assert.equal(heads.fired, 1, 'a HeadObject got a 503');
    assert.equal(gets.fired, 2, 'two ranged GETs of the verification got a 503');
    assert.ok((s.seen.UploadPart ?? 0) >= 5, `3 parts + 2 retried: ${JSON.stringify(s.seen)}`);
    assert.equal(s.seen.CompleteMultipartUpload, 1);

    const d = await wb.describe(id);
    assert.equal(d.state, 'frozen');
    assert.ok(d.cold, 'a cold copy is recorded');
    assert.equal(d.cold.sha256, localSha, 'the recorded copy is the local file as it was');
    assert.equal(sha(await objectBytes(d.cold.url)), localSha, 'the object in the bucket is byte-identical to the local file');
    assert.equal(lastEntry(d).outcome, 'done');
    assert.match(lastEntry(d).detail ?? '', /restore-verified/);
    assert.equal(fs.existsSync(liveFile(host.cfg, id)), false, 'the local copy was released');

    proxy.resetStats();
    const h2 = proxy.failNext(1, { op: 'HeadObject' }, 500);
    const g2 = proxy.failNext(2, { op: 'GetObject' }, 503);
    const w = await wb.wake(id);
    assert.equal(w.path, 'cold');
    assert.equal(h2.fired, 1);
    assert.equal(g2.fired, 2);
    await checkContent(id, blob);
    assert.deepEqual(partials(id), [], 'no temporary file left in live/');
  });

  it('a small workspace (one PutObject) freezes through 503s on the PUT', async () => {
    const id = 'flaky-small';
    const blob = await makeWorkspace(id, 64 * 1024);
    await wb.transition(id, 'suspended');
    const localSha = shaFile(liveFile(host.cfg, id));
    proxy.resetStats();
    const puts = proxy.failNext(3, { op: 'PutObject' }, 503);
    await wb.transition(id, 'frozen');
    assert.equal(puts.fired, 3);
    assert.equal(proxy.stats().seen.CreateMultipartUpload ?? 0, 0, 'one PUT, not a multipart upload');
    const d = await wb.describe(id);
    assert.equal(sha(await objectBytes(d.cold!.url)), localSha);
    await wb.wake(id);
    await checkContent(id, blob);
  });

  it('freeze and resume succeed through connection resets mid-request and mid-response', async () => {
    const id = 'resets';
    const blob = await makeWorkspace(id, 11 * MiB);
    await wb.transition(id, 'suspended');
    const localSha = shaFile(liveFile(host.cfg, id));

    proxy.resetStats();
    // A part upload cut after 64 KiB of its body (the SDK retries it); a verification GET cut halfway through
    // its body (the download fails, the activity retries: the upload is found in place and verified again).
    const upCut = proxy.resetNext(1, 'request', { op: 'UploadPart' }, 64 * 1024);
    const headCut = proxy.resetNext(1, 'request', { op: 'HeadObject' });
    const downCut = proxy.resetNext(1, 'response', { op: 'GetObject' });
    await wb.transition(id, 'frozen');
    assert.equal(upCut.fired, 1, 'an UploadPart was cut mid-request');
    assert.equal(headCut.fired, 1, 'a HeadObject was cut');
    assert.equal(downCut.fired, 1, 'a GET was cut mid-body');
    const d = await wb.describe(id);
    assert.equal(d.state, 'frozen');
    assert.equal(d.cold!.sha256, localSha);
    assert.equal(sha(await objectBytes(d.cold!.url)), localSha);
    assert.equal(lastEntry(d).outcome, 'done');
    assert.equal(proxy.stats().seen.CompleteMultipartUpload, 1, 'uploaded once: the retry found the object in place');

    proxy.resetStats();
    const cut1 = proxy.resetNext(1, 'response', { op: 'GetObject' }, 1024 * 1024);
    const cut2 = proxy.resetNext(1, 'request', { op: 'GetObject' });
    const w = await wb.wake(id);
    assert.equal(w.path, 'cold');
    assert.equal(cut1.fired + cut2.fired, 2, 'two GETs of the restore were cut');
    await checkContent(id, blob);
    assert.deepEqual(partials(id), [], 'no temporary file left in live/');
  });

  it('freeze and resume succeed through slow responses (slow first byte, slow body)', async () => {
    const id = 'slow';
    const blob = await makeWorkspace(id, 11 * MiB);
    await wb.transition(id, 'suspended');
    const localSha = shaFile(liveFile(host.cfg, id));

    proxy.resetStats();
    const firstByte = proxy.delay({ firstByteMs: 1500 }, { op: ['UploadPart', 'HeadObject', 'CompleteMultipartUpload'] }, 6);
    const slowBody = proxy.delay({ firstByteMs: 500, chunkDelayMs: 15, chunkBytes: 128 * 1024 }, { op: 'GetObject' });
    await wb.transition(id, 'frozen');
    assert.equal(firstByte.fired, 6, 'six responses held back 1.5 s');
    assert.ok(slowBody.fired >= 3, `every verification GET trickled its body (${slowBody.fired})`);
    const d = await wb.describe(id);
    assert.equal(d.cold!.sha256, localSha);
    assert.equal(sha(await objectBytes(d.cold!.url)), localSha);

    const before = slowBody.fired;
    const w = await wb.wake(id);
    assert.equal(w.path, 'cold');
    assert.ok(slowBody.fired >= before + 3, 'the restore GETs trickled too');
    proxy.heal();
    await checkContent(id, blob);
  });

  for (const c of [
    { status: 403, code: 'AccessDenied', reason: [/S3 access to bucket 'wb-cold'/, /refused \(HTTP 403\)|AccessDenied/] },
    { status: 404, code: 'NoSuchBucket', reason: [/S3 bucket 'wb-cold' does not exist/] },
  ]) {
    it(`a permanent failure (every request ${c.status} ${c.code}) fails the freeze: suspended, file intact, reason in the ledger; a freeze after healing works`, async () => {
      const id = `denied-${c.status}`;
      const blob = await makeWorkspace(id, 6 * MiB);
      await wb.transition(id, 'suspended');
      const file = liveFile(host.cfg, id);
      const before = fs.readFileSync(file);

      proxy.resetStats();
      proxy.failAll(c.status, c.code);
      const err = await expectMoveFailed(wb.transition(id, 'frozen'));
      assert.ok(proxy.stats().injectedTotal > 0, 'the proxy refused requests');
      proxy.heal();

      const d = await wb.describe(id);
      assert.equal(d.state, 'suspended', 'the workspace stays suspended');
      assert.equal(d.cold, null, 'no cold copy recorded');
      assert.equal(d.host, host.cfg.hostId, 'still on its host');
      assert.ok(fs.readFileSync(file).equals(before), 'the local file is byte-identical');
      const last = lastEntry(d);
      assert.equal(last.from, 'suspended');
      assert.equal(last.to, 'frozen');
      assert.equal(last.outcome, 'failed');
      console.log(`ledger: ${last.detail}`);
      assertReadable(last.detail, /^suspended -> frozen failed: /, ...c.reason);
      assert.ok(err.message.includes(c.code === 'AccessDenied' ? 'refused' : 'does not exist'), `the caller hears why: ${err.message}`);
      assert.deepEqual(await coldKeys(`frozen/${id}.`), [], 'nothing was stored');

      await wb.transition(id, 'frozen');
      const healed = await wb.describe(id);
      assert.equal(healed.state, 'frozen');
      assert.equal(healed.cold!.sha256, sha(before));
      assert.equal(sha(await objectBytes(healed.cold!.url)), sha(before));
      await wb.wake(id);
      await checkContent(id, blob);
    });
  }

  it('a wake from frozen while S3 is down fails (no replica to fall back to): stays frozen, reason in the ledger; works once healed', async () => {
    const id = 'outage';
    const blob = await makeWorkspace(id, 6 * MiB);
    await wb.transition(id, 'suspended');
    await wb.transition(id, 'frozen');
    const frozen = await wb.describe(id);
    const cold = frozen.cold!;

    proxy.resetStats();
    proxy.failAll(503, 'ServiceUnavailable', 'S3 is down (injected)');
    const t0 = Date.now();
    const err = await expectMoveFailed(wb.wake(id));
    const took = Date.now() - t0;
    const s = proxy.stats();
    proxy.heal();
    console.log(`wake with S3 answering 503 to everything failed after ${took} ms (${s.injectedTotal} requests refused)`);
    assert.ok((s.seen.HeadObject ?? 0) >= 3, `the stored copy was tried on several attempts: ${JSON.stringify(s.seen)}`);

    const d = await wb.describe(id);
    assert.equal(d.state, 'frozen', 'still frozen');
    assert.deepEqual(d.cold, cold, 'the same cold copy is recorded');
    assert.equal(d.host, null);
    const last = lastEntry(d);
    assert.equal(last.from, 'frozen');
    assert.equal(last.to, 'active');
    assert.equal(last.outcome, 'failed');
    console.log(`ledger: ${last.detail}`);
    assertReadable(last.detail, /^frozen -> active failed: no source could restore 'outage'/, /HTTP 503|ServiceUnavailable/, /wb-cold\/frozen\/outage\./);
    assert.match(err.message, /no source could restore/);
    assert.equal(sha(await objectBytes(cold.url)), cold.sha256, 'the cold object is intact');
    assert.equal(fs.existsSync(liveFile(host.cfg, id)), false, 'no live file');
    assert.deepEqual(partials(id), [], 'no temporary file left in live/');

    const w = await wb.wake(id);
    assert.equal(w.path, 'cold');
    await checkContent(id, blob);
    assert.equal(lastEntry(await wb.describe(id)).outcome, 'done');
  });

  it(
    'every request answering 503 fails the freeze after the activity retries run out (slow: ~95 s)',
    async () => {
      const id = 'down-503';
      await makeWorkspace(id, 64 * 1024);
      await wb.transition(id, 'suspended');
      const file = liveFile(host.cfg, id);
      const before = fs.readFileSync(file);
      proxy.resetStats();
      proxy.failAll(503, 'ServiceUnavailable', 'S3 is down (injected)');
      const t0 = Date.now();
      await expectMoveFailed(wb.transition(id, 'frozen'));
      const took = Date.now() - t0;
      proxy.heal();
      console.log(`freeze with S3 answering 503 to everything failed after ${took} ms`);
      const d = await wb.describe(id);
      assert.equal(d.state, 'suspended');
      assert.ok(fs.readFileSync(file).equals(before));
      console.log(`ledger: ${lastEntry(d).detail}`);
      assertReadable(lastEntry(d).detail, /^suspended -> frozen failed: /, /HTTP 503|ServiceUnavailable/);
      await wb.transition(id, 'frozen');
    },
  );

  it('the proxy classifies requests and counts what it injects', async () => {
    // Guards the helper itself: with a rule for a different operation, nothing is injected.
    proxy.resetStats();
    const never = proxy.failNext(1, { op: 'DeleteBucket' });
    const id = 'plain';
    await makeWorkspace(id, 16 * 1024);
    await wb.transition(id, 'suspended');
    await wb.transition(id, 'frozen');
    assert.equal(never.fired, 0);
    const s = proxy.stats();
    assert.equal(s.injectedTotal, 0);
    assert.ok((s.seen.PutObject ?? 0) >= 1 && (s.seen.HeadObject ?? 0) >= 2 && (s.seen.GetObject ?? 0) >= 1, JSON.stringify(s.seen));
    never.remove();
  });
});
