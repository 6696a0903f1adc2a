/**
 * Off-box durability through the workflow against real servers on loopback: a Temporal dev server, MinIO (a
 * real S3 server) holding cold copies, archives and Litestream replicas, and the real litestream binary.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../../harness/stack';
import { startMinio, useS3Env, MinioServer } from '../../harness/minio';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { liveFile } from '../../src/host/data-dir';
import { s3Client, s3SettingsFromEnv } from '../../src/storage/s3-client';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const COLD = 'wb-cold';
const ARCHIVE = 'wb-archive';
const REPLICAS = 'wb-replicas';

let server: Server;
let minio: MinioServer;
let restoreEnv: () => void;
let host: TestHost;
let wb: WorkbooksClient;

const s3 = () => s3Client(s3SettingsFromEnv());

async function keys(bucket: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const r = await s3().send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of r.Contents ?? []) out.push(o.Key!);
    token = r.NextContinuationToken;
  } while (token);
  return out;
}

function bucketAndKey(url: string): { Bucket: string; Key: string } {
  const u = new URL(url);
  return { Bucket: u.host, Key: u.pathname.slice(1) };
}

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

describe('S3 cold storage, archive and replicas through the workflow', { concurrency: false }, () => {
  before(async () => {
    minio = await startMinio();
    restoreEnv = useS3Env(minio);
    // Small parts so a modest file is a real multipart upload.
    process.env.WORKBOOKS_S3_PART_SIZE = String(5 * 1024 * 1024);
    for (const b of [COLD, ARCHIVE, REPLICAS]) await minio.createBucket(b);
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('s3');
    host = await startTestHost({
      connection: server.connection,
      client: server.client,
      taskQueue,
      hostId: 's3-host',
      coldUrl: `s3://${COLD}/frozen`,
      archiveUrl: `s3://${ARCHIVE}/kept`,
      replicaUrl: `s3://${REPLICAS}/live`,
    });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
    await minio?.stop();
    delete process.env.WORKBOOKS_S3_PART_SIZE;
    restoreEnv?.();
  });

  it('freeze to S3 and resume keep workspace and memory; tmp is gone', async () => {
    await wb.create({ workspaceId: 'round', tenant: 'acme' });
    await wb.putFile('round', 'workspace', '/book.md', Buffer.from('chapter one'));
    await wb.putFile('round', 'memory', '/facts', Buffer.from('remembered'));
    await wb.putFile('round', 'tmp', '/scratch', Buffer.from('scratch'));
    await wb.transition('round', 'suspended');
    await wb.transition('round', 'frozen');

    const d = await wb.describe('round');
    assert.ok(d.cold && d.cold.url.startsWith(`s3://${COLD}/frozen/round.`), `cold copy in the bucket: ${d.cold?.url}`);
    const head = await s3().send(new HeadObjectCommand(bucketAndKey(d.cold.url)));
    assert.equal(head.Metadata?.sha256, d.cold.sha256, 'the object carries its sha256');
    assert.equal(Number(head.ContentLength), d.cold.bytes);
    assert.equal(fs.existsSync(liveFile(host.cfg, 'round')), false, 'the local copy was released');
    assert.match(d.ledger.at(-1)!.detail ?? '', /restore-verified/);

    const w = await wb.wake('round');
    assert.equal(w.path, 'cold');
    assert.equal((await wb.getFile('round', 'workspace', '/book.md')).toString(), 'chapter one');
    assert.equal((await wb.getFile('round', 'memory', '/facts')).toString(), 'remembered');
    await assert.rejects(wb.getFile('round', 'tmp', '/scratch'), /no file tmp:\/scratch/);
  });

  it('a workspace larger than one part goes up in parallel parts and comes back intact', async () => {
    await wb.create({ workspaceId: 'big', tenant: 'acme' });
    const blob = crypto.randomBytes(13 * 1024 * 1024);
    await wb.putFile('big', 'workspace', '/blob', blob);
    await wb.transition('big', 'suspended');
    await wb.transition('big', 'frozen');
    const d = await wb.describe('big');
    assert.ok(d.cold && d.cold.bytes > 10 * 1024 * 1024);
    const head = await s3().send(new HeadObjectCommand(bucketAndKey(d.cold.url)));
    assert.match(head.ETag ?? '', /-\d+"?$/, `a multipart ETag (parts), got ${head.ETag}`);
    await wb.wake('big');
    assert.equal(sha(await wb.getFile('big', 'workspace', '/blob')), sha(blob));
  });

  it('archive moves the copy to the archive bucket; wake restores from there', async () => {
    await wb.create({ workspaceId: 'old', tenant: 'acme' });
    await wb.putFile('old', 'workspace', '/a', Buffer.from('kept for years'));
    await wb.transition('old', 'suspended');
    await wb.transition('old', 'frozen');
    const frozen = await wb.describe('old');
    await wb.transition('old', 'archived');
    const d = await wb.describe('old');
    assert.ok(d.archive && d.archive.url.startsWith(`s3://${ARCHIVE}/kept/old.`));
    assert.equal(d.cold, null);
    assert.deepEqual(await keys(COLD, 'frozen/old.'), [], 'the cold object was moved, not copied');
    assert.equal(d.archive.sha256, frozen.cold!.sha256);
    const w = await wb.wake('old');
    assert.equal(w.path, 'cold');
    assert.equal((await wb.getFile('old', 'workspace', '/a')).toString(), 'kept for years');
  });

  it('delete leaves no object behind in any bucket', async () => {
    await wb.create({ workspaceId: 'gone', tenant: 'acme' });
    await wb.putFile('gone', 'workspace', '/a', Buffer.from('x'));
    await wb.transition('gone', 'suspended');
    await wb.transition('gone', 'frozen');
    await wb.wake('gone');
    await wb.putFile('gone', 'workspace', '/b', Buffer.from('y'));
    await wb.transition('gone', 'archived');
    assert.ok((await keys(REPLICAS, 'live/gone/')).length > 0, 'the workspace was replicated while active');
    await wb.transition('gone', 'deleted');
    assert.deepEqual(await keys(COLD, 'frozen/gone.'), []);
    assert.deepEqual(await keys(ARCHIVE, 'kept/gone.'), []);
    assert.deepEqual(await keys(REPLICAS, 'live/gone/'), []);
  });

  it('a corrupted cold object is refused on resume and the replica restores the workspace', async () => {
    await wb.create({ workspaceId: 'flip', tenant: 'acme' });
    await wb.putFile('flip', 'workspace', '/doc', Buffer.from('must survive'));
    await wb.putFile('flip', 'memory', '/m', Buffer.from('memory too'));
    await wb.transition('flip', 'suspended');
    await wb.transition('flip', 'frozen');
    const d = await wb.describe('flip');
    const loc = bucketAndKey(d.cold!.url);
    const obj = await s3().send(new GetObjectCommand(loc));
    const bytes = Buffer.from(await obj.Body!.transformToByteArray());
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await s3().send(new PutObjectCommand({ ...loc, Body: bytes, Metadata: obj.Metadata }));

    const w = await wb.wake('flip');
    assert.equal(w.path, 'cold');
    assert.equal((await wb.getFile('flip', 'workspace', '/doc')).toString(), 'must survive');
    assert.equal((await wb.getFile('flip', 'memory', '/m')).toString(), 'memory too');
    const last = (await wb.describe('flip')).ledger.at(-1)!;
    assert.equal(last.outcome, 'done');
    assert.match(last.detail ?? '', /restored from replica s3:\/\//);
    assert.match(last.detail ?? '', /skipped: .*sha256/);
  });
});
