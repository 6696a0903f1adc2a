/**
 * A deleted workspace's unfinished S3 multipart uploads are aborted, on a real S3 server (MinIO, harness/minio.ts):
 * uploads a killed process left under the workspace's copy keys in the cold and archive stores go with
 * deleteStoredCopies when the whole workspace is deleted; uploads of a neighbour (`acme.notes-2`), of a bare-key
 * workspace `acme`, and under another prefix stay; a retried delete finds nothing more to abort. (MinIO and moto
 * answer every listing in one page: paging is tested in test/unit/discard-unfinished.test.ts.)
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { createStorageActivities } from '../../src/activities/stored-copies';
import { keyForCopy } from '../../src/storage/blob-store';
import { s3Client, s3SettingsFromEnv } from '../../src/storage/s3-client';
import { S3Store } from '../../src/storage/s3-store';
import { MinioServer, startMinio, useS3Env } from '../../harness/minio';

const BUCKET = 'discard-unfinished';

let minio: MinioServer;
let restoreEnv: () => void;
let tmp: string;
let client: S3Client;

before(async () => {
  minio = await startMinio();
  restoreEnv = useS3Env(minio);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-s3-discard-'));
  client = s3Client(s3SettingsFromEnv(process.env));
  await minio.createBucket(BUCKET);
});

after(async () => {
  restoreEnv?.();
  await minio?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function sha(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** Starts a multipart upload under `objectKey` and stores one part of it, as a put killed mid-upload leaves it. */
async function unfinishedUpload(objectKey: string): Promise<string> {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: objectKey }));
  assert.ok(UploadId);
  await client.send(new UploadPartCommand({ Bucket: BUCKET, Key: objectKey, UploadId, PartNumber: 1, Body: crypto.randomBytes(64 * 1024) }));
  return UploadId;
}

/** Every unfinished upload in the bucket, as `key` (listed without a prefix: MinIO matches a prefix only as a whole key). */
async function uploadsInBucket(): Promise<string[]> {
  const keys: string[] = [];
  let KeyMarker: string | undefined;
  let UploadIdMarker: string | undefined;
  for (;;) {
    const page = await client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, KeyMarker, UploadIdMarker }));
    for (const u of page.Uploads ?? []) keys.push(u.Key!);
    if (!page.IsTruncated) return keys.sort();
    KeyMarker = page.NextKeyMarker;
    UploadIdMarker = page.NextUploadIdMarker;
  }
}

test('deleting a workspace aborts its unfinished multipart uploads in the cold and archive stores, and only its', async () => {
  const cfg = loadConfig({}, {
    dataDir: path.join(tmp, 'data'),
    coldUrl: `s3://${BUCKET}/cold`,
    archiveUrl: `s3://${BUCKET}/archive`,
    replicaUrl: null,
    hostId: 'host-a',
    hostPort: 0,
  });
  const storage = createStorageActivities(cfg);
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });

  // The archived workspace's one copy, complete.
  const body = crypto.randomBytes(10_000);
  const src = path.join(tmp, 'copy.bin');
  fs.writeFileSync(src, body);
  const archive = new S3Store(cfg.archiveUrl);
  const copy = await archive.put(src, keyForCopy('acme.notes', sha(body)), { sha256: sha(body), bytes: body.length, workspaceId: 'acme.notes' });

  const k = (id: string, n: number) => keyForCopy(id, crypto.createHash('sha256').update(`${id}-${n}`).digest('hex'));
  const mine = [`cold/${k('acme.notes', 1)}`, `archive/${k('acme.notes', 2)}`, `archive/${k('acme.notes', 3)}`];
  const others = [
    `cold/${k('acme.notes-2', 1)}`, // a neighbour whose key starts with acme.notes
    `archive/${k('acme.notes-2', 2)}`,
    `archive/${k('acme', 1)}`, // a bare-key workspace `acme`
    `elsewhere/${k('acme.notes', 4)}`, // not a configured store
  ];
  for (const key of [...mine, ...others]) await unfinishedUpload(key);
  // Two unfinished uploads of the same key: both go.
  await unfinishedUpload(mine[0]!);
  assert.deepEqual(await uploadsInBucket(), [...mine, mine[0]!, ...others].sort());

  const r = await env.run(storage.deleteStoredCopies, { workspaceId: 'acme.notes', copies: [copy], replicas: [] });
  assert.deepEqual(await uploadsInBucket(), [...others].sort(), 'only the workspace uploads were aborted');
  assert.deepEqual(r, { deleted: 1, unfinished: mine.length + 1 });
  assert.equal(await archive.head(keyForCopy('acme.notes', sha(body))), null, 'the copy is deleted');

  // Retried: idempotent, nothing more to abort, the others still there.
  assert.deepEqual(await env.run(storage.deleteStoredCopies, { workspaceId: 'acme.notes', copies: [copy], replicas: [] }), { deleted: 0, unfinished: 0 });
  assert.deepEqual(await uploadsInBucket(), [...others].sort());

  // A superseded copy's delete (no replicas named) aborts nothing: a freeze of the workspace may be uploading.
  const running = await unfinishedUpload(`cold/${k('acme.notes-2', 9)}`);
  assert.ok(running);
  const neighbourCopy = await new S3Store(cfg.coldUrl).put(src, keyForCopy('acme.notes-2', sha(body)), { sha256: sha(body), bytes: body.length, workspaceId: 'acme.notes-2' });
  assert.deepEqual(await env.run(storage.deleteStoredCopies, { workspaceId: 'acme.notes-2', copies: [neighbourCopy] }), { deleted: 1 });
  assert.deepEqual(await uploadsInBucket(), [...others, `cold/${k('acme.notes-2', 9)}`].sort());
});
