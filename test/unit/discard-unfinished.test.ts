/**
 * What unfinished puts leave in a file:// store goes with the workspace's delete, and only that workspace's:
 * FileStore.discardUnfinished on real temporaries (named by tempNameFor, as puts name them), and the
 * deleteStoredCopies activity, which discards them when the whole workspace is deleted (`replicas` given) and not
 * when a move deletes a superseded copy (a freeze of the same workspace may be running then); and the S3 store's
 * paging of the multipart-upload listing, against a small paging endpoint (the real servers here never page).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { createStorageActivities } from '../../src/activities/stored-copies';
import { isCopyKeyOf, keyForCopy } from '../../src/storage/blob-store';
import { tempNameFor } from '../../src/storage/copy';
import { FileStore, isTemporaryOf } from '../../src/storage/file-store';
import { s3SettingsFromEnv } from '../../src/storage/s3-client';
import { S3Store } from '../../src/storage/s3-store';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-discard-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sha(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

/** A complete object of `id` in `store` (bytes and metadata). */
async function putCopy(store: FileStore, id: string, scratch: string): Promise<{ key: string; url: string; sha256: string; bytes: number; at: string }> {
  const buf = crypto.randomBytes(1000);
  const src = path.join(scratch, `src-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(src, buf);
  const key = keyForCopy(id, sha(buf));
  const copy = await store.put(src, key, { sha256: sha(buf), bytes: buf.length, workspaceId: id });
  return { key, ...copy };
}

/**
 * What puts of `id` that never finished leave in `dir`, named as the puts name them: the staged copy of a freeze
 * (`.<id>.sqlite.put-….partial`), an archive put from a cold file (`.<copy key>.put-….partial`), an archive put
 * from a downloaded temporary (two layers), a metadata write (`.<copy key>.meta.json.w-….partial`).
 */
function leftoversOf(dir: string, id: string): string[] {
  const key = keyForCopy(id, 'ab'.repeat(32));
  const download = tempNameFor(path.join('/elsewhere/tmp', `${id}.archive`), 'get');
  const names = [
    path.basename(tempNameFor(path.join(dir, `${id}.sqlite`), 'put')),
    path.basename(tempNameFor(path.join(dir, key), 'put')),
    path.basename(tempNameFor(path.join(dir, path.basename(download)), 'put')),
    path.basename(tempNameFor(path.join(dir, `${key}.meta.json`), 'w')),
  ];
  fs.mkdirSync(dir, { recursive: true });
  for (const n of names) fs.writeFileSync(path.join(dir, n), 'partial bytes');
  return names;
}

function names(dir: string): string[] {
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

test('isCopyKeyOf and isTemporaryOf match a workspace exactly, never a neighbour or a tenant of the same name', (t) => {
  const sha16 = '0123456789abcdef';
  assert.ok(isCopyKeyOf(`acme.notes.${sha16}.sqlite`, 'acme.notes'));
  assert.ok(!isCopyKeyOf(`acme.notes-2.${sha16}.sqlite`, 'acme.notes'));
  assert.ok(!isCopyKeyOf(`acme.notes.sqlite`, 'acme.notes'), 'the legacy plain key is not an upload target any more');
  assert.ok(!isCopyKeyOf(`notes.x.${sha16}.sqlite`, 'notes'), 'bare key notes vs tenant notes');
  assert.ok(!isCopyKeyOf(`acme.notes.${sha16}.sqlite.meta.json`, 'acme.notes'));

  for (const n of leftoversOf(tempDir(t), 'acme.notes')) {
    assert.ok(isTemporaryOf(n, 'acme.notes'), n);
    assert.ok(!isTemporaryOf(n, 'acme.notes-2'), n);
    assert.ok(!isTemporaryOf(n, 'acme'), n);
  }
  assert.ok(!isTemporaryOf(`.notes.x.sqlite.put-12-${'a'.repeat(12)}.partial`, 'notes'), 'tenant notes, workspace x');
  assert.ok(!isTemporaryOf(`acme.notes.${sha16}.sqlite`, 'acme.notes'), 'an object is not a temporary');
  assert.ok(!isTemporaryOf(`.acme.notes.sqlite.put-12-nothex.partial`, 'acme.notes'));
});

test('FileStore.discardUnfinished removes the workspace temporaries and incomplete objects, keeps complete objects and neighbours', async (t) => {
  const root = tempDir(t);
  const store = new FileStore(path.join(root, 'store'));
  const mine = leftoversOf(store.dir, 'acme.notes');
  const neighbour = leftoversOf(store.dir, 'acme.notes-2');
  // A workspace from before tenants with the bare key `acme`: its keys start like acme.notes's (`acme.`).
  const bareKey = leftoversOf(store.dir, 'acme');
  const complete = await putCopy(store, 'acme.notes', root);
  const neighbourCopy = await putCopy(store, 'acme.notes-2', root);
  // A put that crashed after the rename, before its metadata: bytes without metadata (head says null).
  const halfPut = await putCopy(store, 'acme.notes', root);
  fs.rmSync(path.join(store.dir, `${halfPut.key}.meta.json`));
  const neighbourHalfPut = await putCopy(store, 'acme.notes-2', root);
  fs.rmSync(path.join(store.dir, `${neighbourHalfPut.key}.meta.json`));
  const before = names(store.dir);

  assert.equal(await store.discardUnfinished('acme.notes'), mine.length + 1);
  const gone = new Set([...mine, halfPut.key]);
  assert.deepEqual(names(store.dir), before.filter((n) => !gone.has(n)));
  for (const n of [...neighbour, ...bareKey, complete.key, `${complete.key}.meta.json`, neighbourCopy.key, neighbourHalfPut.key]) {
    assert.ok(fs.existsSync(path.join(store.dir, n)), `${n} kept`);
  }
  assert.ok(await store.head(complete.key), 'the complete object still reads');
  // Idempotent.
  assert.equal(await store.discardUnfinished('acme.notes'), 0);
  // A store directory that does not exist yet has nothing to discard.
  assert.equal(await new FileStore(path.join(root, 'none')).discardUnfinished('acme.notes'), 0);
});

test('deleteStoredCopies of a deleted workspace discards its unfinished puts in the cold and archive stores; a superseded-copy delete does not', async (t) => {
  const root = tempDir(t);
  const cfg = loadConfig({}, { dataDir: path.join(root, 'data'), coldUrl: `file://${root}/cold`, archiveUrl: `file://${root}/archive`, hostId: 'host-a', hostPort: 0, replicaUrl: null });
  const storage = createStorageActivities(cfg);
  const env = new MockActivityEnvironment(undefined, { logger: new DefaultLogger('ERROR') });
  const cold = new FileStore(path.join(root, 'cold'));
  const archive = new FileStore(path.join(root, 'archive'));
  const archived = await putCopy(archive, 'acme.notes', root);
  const coldLeft = leftoversOf(cold.dir, 'acme.notes');
  const archiveLeft = leftoversOf(archive.dir, 'acme.notes');
  const neighbourCold = leftoversOf(cold.dir, 'acme.notes-2');
  const neighbourArchive = leftoversOf(archive.dir, 'acme.notes-2');
  const copy = { url: archived.url, sha256: archived.sha256, bytes: archived.bytes, at: archived.at };

  // A move deleting a superseded copy: the copy goes, temporaries stay (a freeze may be writing them).
  const superseded = await putCopy(cold, 'acme.notes', root);
  const r1 = await env.run(storage.deleteStoredCopies, { workspaceId: 'acme.notes', copies: [{ url: superseded.url, sha256: superseded.sha256, bytes: superseded.bytes, at: superseded.at }] });
  assert.deepEqual(r1, { deleted: 1 });
  assert.deepEqual(names(cold.dir), [...coldLeft, ...neighbourCold].sort());

  // The workspace's delete (the workflow names its replicas): everything of it goes, the neighbour's stays.
  const r2 = await env.run(storage.deleteStoredCopies, { workspaceId: 'acme.notes', copies: [copy], replicas: [] });
  assert.deepEqual(names(cold.dir), [...neighbourCold].sort());
  assert.deepEqual(names(archive.dir), [...neighbourArchive].sort());
  assert.deepEqual(r2, { deleted: 1, unfinished: coldLeft.length + archiveLeft.length });
  // Retried (idempotent): nothing left to do.
  assert.deepEqual(await env.run(storage.deleteStoredCopies, { workspaceId: 'acme.notes', copies: [copy], replicas: [] }), { deleted: 0, unfinished: 0 });
});

/**
 * A minimal S3 endpoint that answers ListMultipartUploads in pages of `pageSize` (as AWS does at 1,000; MinIO and
 * moto never page) and AbortMultipartUpload, and records the requests. Only what discardUnfinished sends.
 */
async function pagingS3(uploads: { key: string; uploadId: string }[], pageSize: number) {
  const live = [...uploads].sort((a, b) => (a.key === b.key ? a.uploadId.localeCompare(b.uploadId) : a.key < b.key ? -1 : 1));
  const listings: URLSearchParams[] = [];
  const aborted: string[] = [];
  const xml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    if (req.method === 'GET' && url.searchParams.has('uploads')) {
      listings.push(url.searchParams);
      const prefix = url.searchParams.get('prefix') ?? '';
      const km = url.searchParams.get('key-marker') ?? '';
      const um = url.searchParams.get('upload-id-marker') ?? '';
      const after = live.filter((u) => u.key.startsWith(prefix) && (u.key > km || (u.key === km && um !== '' && u.uploadId > um)));
      const page = after.slice(0, pageSize);
      const truncated = after.length > pageSize;
      const last = page[page.length - 1];
      res.writeHead(200, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult><Bucket>fake</Bucket><KeyMarker>${xml(km)}</KeyMarker><UploadIdMarker>${xml(um)}</UploadIdMarker>` +
          (truncated && last ? `<NextKeyMarker>${xml(last.key)}</NextKeyMarker><NextUploadIdMarker>${xml(last.uploadId)}</NextUploadIdMarker>` : '') +
          `<MaxUploads>${pageSize}</MaxUploads><IsTruncated>${truncated}</IsTruncated>` +
          page.map((u) => `<Upload><Key>${xml(u.key)}</Key><UploadId>${xml(u.uploadId)}</UploadId></Upload>`).join('') +
          `</ListMultipartUploadsResult>`,
      );
      return;
    }
    if (req.method === 'DELETE' && url.searchParams.has('uploadId')) {
      const key = decodeURIComponent(url.pathname.replace(/^\/fake\//, ''));
      const id = url.searchParams.get('uploadId')!;
      const i = live.findIndex((u) => u.key === key && u.uploadId === id);
      if (i < 0) {
        res.writeHead(404, { 'content-type': 'application/xml' });
        res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>NoSuchUpload</Code><Message>gone</Message></Error>');
        return;
      }
      live.splice(i, 1);
      aborted.push(`${key} ${id}`);
      res.writeHead(204);
      res.end();
      return;
    }
    res.writeHead(400);
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    store: new S3Store(
      's3://fake/archive',
      s3SettingsFromEnv({ WORKBOOKS_S3_ENDPOINT: `http://127.0.0.1:${port}`, AWS_REGION: 'us-east-1', AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test-secret' }),
    ),
    listings,
    aborted,
    live,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

test('S3Store.discardUnfinished follows the listing across pages and aborts every upload of the workspace, only those', async (t) => {
  const key = (id: string, n: number) => `archive/${keyForCopy(id, sha(Buffer.from(`${id}-${n}`)))}`;
  const mine = Array.from({ length: 23 }, (_, i) => ({ key: key('acme.notes', i), uploadId: `u${i}` }));
  mine.push({ key: mine[0]!.key, uploadId: 'u-second' }); // two uploads of one key, possibly on two pages
  const others = [
    { key: key('acme.notes-2', 1), uploadId: 'n1' },
    { key: `archive/acme.notes.sqlite`, uploadId: 'legacy' },
    { key: `archive/sub/${keyForCopy('acme.notes', sha(Buffer.from('sub')))}`, uploadId: 's1' },
    { key: `other/${keyForCopy('acme.notes', sha(Buffer.from('o')))}`, uploadId: 'o1' },
  ];
  const s3 = await pagingS3([...mine, ...others], 5);
  t.after(() => s3.close());
  assert.equal(await s3.store.discardUnfinished('acme.notes'), mine.length);
  assert.deepEqual(s3.aborted.sort(), mine.map((u) => `${u.key} ${u.uploadId}`).sort());
  assert.deepEqual(s3.live.map((u) => u.uploadId).sort(), others.map((u) => u.uploadId).sort());
  // Listed under the workspace's prefix in the store (with its trailing dot), page after page.
  assert.ok(s3.listings.length >= 5, `${s3.listings.length} pages`);
  assert.ok(s3.listings.every((q) => q.get('prefix') === 'archive/acme.notes.'));
  assert.ok(s3.listings.slice(1).every((q) => q.get('key-marker')), 'every later page asks from the previous one’s marker');
  // Again: the legacy upload still listed under the prefix shows the server matches prefixes; one listing, nothing aborted.
  let before = s3.listings.length;
  assert.equal(await s3.store.discardUnfinished('acme.notes'), 0);
  assert.deepEqual(s3.listings.slice(before).map((q) => q.get('prefix')), ['archive/acme.notes.']);
  // Nothing under a prefix (as MinIO answers a prefix that is not a whole key): asked again without one.
  before = s3.listings.length;
  assert.equal(await s3.store.discardUnfinished('acme.gone'), 0);
  assert.deepEqual(s3.listings.slice(before).map((q) => q.get('prefix')), ['archive/acme.gone.', null]);
  assert.equal(s3.live.length, others.length);
});
