/**
 * The BlobStore contract, run against the file store and the S3 store (a real S3 server: MinIO, one per file),
 * plus S3-only behaviour (multipart, missing bucket, refused credentials, storage class, ETag checks) and the
 * configuration of s3:// stores. Only the storage-class test runs on moto: MinIO refuses every class but
 * STANDARD and REDUCED_REDUNDANCY (InvalidStorageClass), and the archive's classes are STANDARD_IA, GLACIER_IR, ...
 */
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HeadObjectCommand, ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { ConfigError, loadConfig } from '../../src/config';
import { BadKeyError, BlobStore, ChecksumMismatchError, ObjectMissingError, StoreError, StoreUnavailableError } from '../../src/storage/blob-store';
import { FileStore } from '../../src/storage/file-store';
import { openStore, storeForCopyUrl } from '../../src/storage/open-store';
import { S3Settings, s3Client, s3SettingsFromEnv } from '../../src/storage/s3-client';
import { S3AccessError, S3BucketMissingError, S3Store } from '../../src/storage/s3-store';
import { MinioServer, startMinio, useS3Env } from '../../harness/minio';
import { startMoto } from '../../harness/moto';

const MiB = 1024 * 1024;
const PART = 5 * MiB; // the smallest part S3 allows, so a 12 MiB file is a 3-part upload

let minio: MinioServer;
let restoreEnv: () => void;
let tmp: string;
let settings: S3Settings;

before(async () => {
  minio = await startMinio();
  restoreEnv = useS3Env(minio);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-s3-store-'));
  settings = s3SettingsFromEnv({ ...process.env, ...minio.env, WORKBOOKS_S3_PART_SIZE: String(PART), WORKBOOKS_S3_PARALLEL: '4' });
  for (const b of ['contract-root', 'contract-prefixed', 'etag-bucket', 'open-bucket']) await minio.createBucket(b);
});

after(async () => {
  restoreEnv?.();
  await minio?.stop();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

function sha(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

let fileNo = 0;
function randomFile(bytes: number): { file: string; buf: Buffer; meta: { sha256: string; bytes: number } } {
  const buf = crypto.randomBytes(bytes);
  const file = path.join(tmp, `src-${++fileNo}`);
  fs.writeFileSync(file, buf);
  return { file, buf, meta: { sha256: sha(buf), bytes } };
}

function outFile(): string {
  return path.join(tmp, `out-${++fileNo}`);
}

/** What the contract needs to know about a store beyond the interface. */
interface Variant {
  name: string;
  make(): BlobStore;
  /** Number of multipart parts of the stored object, or null if the store has no such notion. */
  parts(store: BlobStore, key: string): Promise<number | null>;
  /** Asserts nothing but complete objects is left in the store (no temporaries, no unfinished uploads). */
  assertNoLeftovers(store: BlobStore): Promise<void>;
}

const s3Variant = (name: string, url: string): Variant => ({
  name,
  make: () => new S3Store(url, settings),
  async parts(store, key) {
    const s = store as S3Store;
    const h = await s3Client(settings).send(new HeadObjectCommand({ Bucket: s.bucket, Key: s.objectKey(key) }));
    // S3 (and MinIO) give a multipart object the ETag "<md5 of part md5s>-<number of parts>".
    const m = /-(\d+)"?$/.exec(h.ETag ?? '');
    return m ? Number(m[1]) : 1;
  },
  async assertNoLeftovers(store) {
    const s = store as S3Store;
    const r = await s3Client(settings).send(new ListMultipartUploadsCommand({ Bucket: s.bucket }));
    assert.deepEqual(r.Uploads ?? [], [], 'no multipart upload left in progress');
  },
});

const variants: Variant[] = [
  {
    name: 'FileStore',
    make: () => new FileStore(path.join(tmp, 'file-store')),
    parts: async () => null,
    async assertNoLeftovers(store) {
      const dir = (store as FileStore).dir;
      const names = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
      assert.deepEqual(
        names.filter((n) => n.endsWith('.partial')),
        [],
        'no temporaries left',
      );
    },
  },
  s3Variant('S3Store (bucket root)', 's3://contract-root'),
  s3Variant('S3Store (prefix)', 's3://contract-prefixed/some/prefix/'),
];

let keyNo = 0;
const freshKey = () => `ws-${++keyNo}.sqlite`;

for (const v of variants) {
  test(`${v.name}: put, head, get, rehash, delete round trip with sha256 and progress`, async () => {
    const store = v.make();
    const key = freshKey();
    const { file, buf, meta } = randomFile(3 * MiB + 17);

    assert.equal(await store.head(key), null);
    const putProgress: [number, number][] = [];
    const before = Date.now();
    const put = await store.put(file, key, { ...meta, workspaceId: 'ws-1' }, { onProgress: (d, t) => putProgress.push([d, t]) });
    assert.equal(put.url, store.urlFor(key));
    assert.equal(put.sha256, meta.sha256);
    assert.equal(put.bytes, meta.bytes);
    assert.ok(Date.parse(put.at) >= before - 1000 && Date.parse(put.at) <= Date.now() + 1000);
    assert.deepEqual(putProgress.at(-1), [meta.bytes, meta.bytes], 'put progress reaches the total');

    assert.deepEqual(await store.head(key), { sha256: meta.sha256, bytes: meta.bytes, at: put.at, workspaceId: 'ws-1' });

    const out = outFile();
    fs.writeFileSync(out, Buffer.alloc(5 * MiB, 1)); // longer than the object: must be truncated
    const getProgress: [number, number][] = [];
    assert.deepEqual(await store.get(key, out, { onProgress: (d, t) => getProgress.push([d, t]) }), meta);
    assert.ok(fs.readFileSync(out).equals(buf));
    assert.deepEqual(getProgress.at(-1), [meta.bytes, meta.bytes], 'get progress reaches the total');

    const rehashProgress: number[] = [];
    assert.deepEqual(await store.rehash(key, { onProgress: (d) => rehashProgress.push(d) }), meta);
    assert.equal(rehashProgress.at(-1), meta.bytes);

    await store.delete(key);
    await store.delete(key); // idempotent
    assert.equal(await store.head(key), null);
    const missingOut = outFile();
    await assert.rejects(store.get(key, missingOut), (err: unknown) => err instanceof ObjectMissingError && err.url === store.urlFor(key));
    assert.equal(fs.existsSync(missingOut), false, 'a failed get leaves no file');
    await assert.rejects(store.rehash(key), ObjectMissingError);
    await v.assertNoLeftovers(store);
  });

  test(`${v.name}: empty files and files of exactly whole parts round-trip`, async () => {
    const store = v.make();
    for (const size of [0, 1, 2 * PART]) {
      const key = freshKey();
      const { file, buf, meta } = randomFile(size);
      await store.put(file, key, meta);
      assert.deepEqual(await store.head(key), { ...meta, at: (await store.head(key))!.at, workspaceId: null });
      const out = outFile();
      assert.deepEqual(await store.get(key, out), meta);
      assert.ok(fs.readFileSync(out).equals(buf));
      assert.deepEqual(await store.rehash(key), meta);
      const parts = await v.parts(store, key);
      if (parts !== null) assert.equal(parts, size > PART ? 2 : 1, `${size} bytes`);
    }
  });

  test(`${v.name}: a file larger than one part is uploaded in parts and read back in parallel ranges`, async () => {
    const store = v.make();
    const key = freshKey();
    const { file, buf, meta } = randomFile(12 * MiB + 123);
    await store.put(file, key, meta);
    const parts = await v.parts(store, key);
    if (parts !== null) assert.equal(parts, 3, 'a 3-part multipart upload');
    const out = outFile();
    assert.deepEqual(await store.get(key, out), meta);
    assert.ok(fs.readFileSync(out).equals(buf));
    assert.deepEqual(await store.rehash(key), meta);
    await store.delete(key);
  });

  test(`${v.name}: a put whose bytes do not match leaves the previous object and its metadata intact`, async () => {
    const store = v.make();
    for (const size of [100_000, 12 * MiB]) {
      const key = freshKey();
      const a = randomFile(size);
      const b = randomFile(size);
      const first = await store.put(a.file, key, { ...a.meta, workspaceId: 'owner-a' });
      const headBefore = await store.head(key);
      await new Promise((r) => setTimeout(r, 20)); // a new put would carry a later `at`
      await assert.rejects(store.put(b.file, key, { ...a.meta, workspaceId: 'owner-b' }), (err: unknown) => {
        assert.ok(err instanceof ChecksumMismatchError, String(err));
        assert.deepEqual(err.expected, a.meta);
        assert.deepEqual(err.actual, b.meta);
        return true;
      });
      // Wrong size as well as wrong content.
      const short = randomFile(size - 1);
      await assert.rejects(store.put(short.file, key, a.meta), ChecksumMismatchError);
      assert.deepEqual(await store.head(key), headBefore);
      assert.deepEqual(headBefore, { sha256: a.meta.sha256, bytes: size, at: first.at, workspaceId: 'owner-a' });
      const out = outFile();
      assert.deepEqual(await store.get(key, out), a.meta);
      assert.ok(fs.readFileSync(out).equals(a.buf));
      await v.assertNoLeftovers(store);
      // A mismatching put of a key that never existed creates nothing.
      const fresh = freshKey();
      await assert.rejects(store.put(b.file, fresh, a.meta), ChecksumMismatchError);
      assert.equal(await store.head(fresh), null);
      await assert.rejects(store.get(fresh, outFile()), ObjectMissingError);
      await v.assertNoLeftovers(store);
    }
  });

  test(`${v.name}: aborting a put mid-upload rethrows the reason and leaves nothing`, async () => {
    const store = v.make();
    const key = freshKey();
    const { file, meta } = randomFile(11 * MiB);
    const ac = new AbortController();
    const reason = new Error('worker shutting down');
    let uploadsSeen: number | null = null;
    let checking: Promise<void> | null = null;
    const p = store.put(file, key, meta, {
      throttleBps: 8 * MiB,
      signal: ac.signal,
      onProgress: (done) => {
        if (done < 7 * MiB || checking) return;
        // By now the first part has been handed over: for S3, confirm a multipart upload is really under way.
        checking = (async () => {
          if (store instanceof S3Store) {
            const r = await s3Client(settings).send(new ListMultipartUploadsCommand({ Bucket: store.bucket }));
            uploadsSeen = (r.Uploads ?? []).length;
          }
          ac.abort(reason);
        })();
      },
    });
    await assert.rejects(p, (err) => err === reason);
    await checking;
    if (store instanceof S3Store) assert.equal(uploadsSeen, 1, 'the abort happened during a multipart upload');
    assert.equal(await store.head(key), null);
    await v.assertNoLeftovers(store);

    const pre = new AbortController();
    pre.abort(reason);
    await assert.rejects(store.put(file, key, meta, { signal: pre.signal }), (err) => err === reason);
    assert.equal(await store.head(key), null);
  });

  test(`${v.name}: get honours throttling and abort (no partial file left)`, async () => {
    const store = v.make();
    const key = freshKey();
    const { file, meta } = randomFile(2 * MiB);
    await store.put(file, key, meta);

    const started = Date.now();
    await store.get(key, outFile(), { throttleBps: 4 * MiB }); // ≈ 0.5 s
    const ms = Date.now() - started;
    assert.ok(ms >= 350, `throttled get took only ${ms} ms`);

    const ac = new AbortController();
    const reason = new Error('cancelled');
    const out = outFile();
    await assert.rejects(
      store.get(key, out, {
        throttleBps: 2 * MiB,
        signal: ac.signal,
        onProgress: (done) => {
          if (done >= 256 * 1024) ac.abort(reason);
        },
      }),
      (err) => err === reason,
    );
    assert.equal(fs.existsSync(out), false);
    const pre = new AbortController();
    pre.abort(reason);
    await assert.rejects(store.rehash(key, { signal: pre.signal }), (err) => err === reason);
    await store.delete(key);
  });

  test(`${v.name}: keys and URLs`, async () => {
    const store = v.make();
    assert.ok(!store.baseUrl.endsWith('/'));
    assert.equal(store.urlFor('a-1.sqlite'), `${store.baseUrl}/a-1.sqlite`);
    assert.equal(store.keyFromUrl(`${store.baseUrl}/a-1.sqlite`), 'a-1.sqlite');
    assert.equal(store.keyFromUrl(`${store.baseUrl}/sub/a-1.sqlite`), null);
    assert.equal(store.keyFromUrl(`${store.baseUrl}/../a-1.sqlite`), null);
    assert.equal(store.keyFromUrl(`${store.baseUrl}a-1.sqlite`), null);
    assert.equal(store.keyFromUrl(`${store.baseUrl}/`), null);
    assert.equal(store.keyFromUrl('s3://elsewhere/a-1.sqlite'), null);
    assert.equal(store.keyFromUrl('file:///elsewhere/a-1.sqlite'), null);
    const { file, meta } = randomFile(10);
    for (const bad of ['', '.hidden', '../x', 'a/b', 'x.meta.json', 'x.partial', 'a b']) {
      assert.throws(() => store.urlFor(bad), BadKeyError, bad);
      await assert.rejects(store.put(file, bad, meta), BadKeyError, bad);
      await assert.rejects(store.head(bad), BadKeyError, bad);
      await assert.rejects(store.get(bad, outFile()), BadKeyError, bad);
      await assert.rejects(store.rehash(bad), BadKeyError, bad);
      await assert.rejects(store.delete(bad), BadKeyError, bad);
    }
    await assert.rejects(store.put(file, 'ok.sqlite', { sha256: 'abc', bytes: 10 }), /sha256/);
    await assert.rejects(store.put(path.join(tmp, 'no-such-file'), 'ok.sqlite', meta), { code: 'ENOENT' });
    assert.equal(await store.head('ok.sqlite'), null);
    // Any process can open the store holding a copy from the copy's URL.
    const put = await store.put(file, 'by-url.sqlite', meta);
    const opened = storeForCopyUrl(put.url);
    assert.equal(opened.key, 'by-url.sqlite');
    assert.equal(opened.store.baseUrl, store.baseUrl);
    assert.equal((await opened.store.head(opened.key))?.sha256, meta.sha256);
    await store.delete('by-url.sqlite');
  });
}

// ---------------------------------------------------------------------------------------------------------------
// S3 only

test('S3Store: objects live under the prefix, with their metadata as x-amz-meta-* headers', async () => {
  const store = new S3Store('s3://contract-prefixed/deep/er', settings);
  assert.equal(store.baseUrl, 's3://contract-prefixed/deep/er');
  const { file, meta } = randomFile(1000);
  const put = await store.put(file, 'ws-meta.sqlite', { ...meta, workspaceId: 'ws-meta' });
  const r = await s3Client(settings).send(new ListObjectsV2Command({ Bucket: 'contract-prefixed', Prefix: 'deep/' }));
  assert.deepEqual(
    (r.Contents ?? []).map((o) => o.Key),
    ['deep/er/ws-meta.sqlite'],
  );
  const h = await s3Client(settings).send(new HeadObjectCommand({ Bucket: 'contract-prefixed', Key: 'deep/er/ws-meta.sqlite' }));
  assert.deepEqual(h.Metadata, { sha256: meta.sha256, bytes: '1000', at: put.at, 'workspace-id': 'ws-meta' });
  await store.delete('ws-meta.sqlite');
});

test('S3Store: head is null for objects without (valid) metadata or with a size that disagrees', async () => {
  const store = new S3Store('s3://contract-root', settings);
  const client = s3Client(settings);
  const body = Buffer.from('not written by the store');
  const good = { sha256: sha(body), bytes: String(body.length), at: new Date().toISOString() };
  const cases: [string, Record<string, string> | undefined][] = [
    ['no-meta.sqlite', undefined],
    ['bad-sha.sqlite', { ...good, sha256: 'xyz' }],
    ['bad-bytes.sqlite', { ...good, bytes: 'many' }],
    ['bad-at.sqlite', { ...good, at: 'yesterday' }],
    ['wrong-size.sqlite', { ...good, bytes: String(body.length + 1) }],
  ];
  for (const [key, Metadata] of cases) {
    await client.send(new PutObjectCommand({ Bucket: 'contract-root', Key: key, Body: body, Metadata }));
    assert.equal(await store.head(key), null, key);
    assert.deepEqual(await store.rehash(key), { sha256: good.sha256, bytes: body.length }, 'the bytes are still readable');
    await store.delete(key);
  }
  await client.send(new PutObjectCommand({ Bucket: 'contract-root', Key: 'good.sqlite', Body: body, Metadata: good }));
  assert.deepEqual(await store.head('good.sqlite'), { sha256: good.sha256, bytes: body.length, at: good.at, workspaceId: null });
  await store.delete('good.sqlite');
});

test('S3Store: a bucket that does not exist is named in a clear error by every operation', async () => {
  const store = new S3Store('s3://no-such-bucket/p', settings);
  const { file, meta } = randomFile(100);
  const isMissingBucket = (err: unknown) => {
    assert.ok(err instanceof S3BucketMissingError, String(err));
    assert.ok(err instanceof StoreUnavailableError && err instanceof StoreError);
    assert.equal(err.message, `S3 bucket 'no-such-bucket' does not exist at ${minio.endpoint}; create it or fix the store URL`);
    return true;
  };
  await assert.rejects(store.head('k.sqlite'), isMissingBucket);
  await assert.rejects(store.put(file, 'k.sqlite', meta), isMissingBucket);
  const out = outFile();
  await assert.rejects(store.get('k.sqlite', out), isMissingBucket);
  assert.equal(fs.existsSync(out), false);
  await assert.rejects(store.rehash('k.sqlite'), isMissingBucket);
  await assert.rejects(store.delete('k.sqlite'), isMissingBucket);
  const big = randomFile(6 * MiB); // the multipart path (CreateMultipartUpload) too
  await assert.rejects(store.put(big.file, 'k.sqlite', big.meta), isMissingBucket);
});

test('S3Store: refused credentials give a clear error that carries no secret', async () => {
  const secret = 'sekrit-value-that-must-not-leak';
  const strictSettings = s3SettingsFromEnv({ ...minio.env, AWS_ACCESS_KEY_ID: 'AKIAUNKNOWNKEY000000', AWS_SECRET_ACCESS_KEY: secret });
  const store = new S3Store('s3://some-bucket', strictSettings);
  const { file, meta } = randomFile(100);
  const isRefused = (err: unknown) => {
    assert.ok(err instanceof S3AccessError, String(err));
    assert.ok(err instanceof StoreUnavailableError);
    assert.match(err.message, /^S3 access to bucket 'some-bucket' at http:\/\/127\.0\.0\.1:\d+ was refused \((InvalidAccessKeyId|HTTP 403)/);
    assert.match(err.message, /check the credentials/);
    assert.ok(!err.message.includes(secret) && !String(err.stack).includes(secret), 'no secret in the error');
    return true;
  };
  await assert.rejects(store.head('k.sqlite'), isRefused);
  await assert.rejects(store.put(file, 'k.sqlite', meta), isRefused);
  await assert.rejects(store.get('k.sqlite', outFile()), isRefused);
  await assert.rejects(store.delete('k.sqlite'), isRefused);
  assert.ok(!JSON.stringify(strictSettings).includes(secret), 'settings serialize without credentials');
  // The right key with a wrong secret: a signature that does not match.
  const wrongSecret = new S3Store('s3://contract-root', s3SettingsFromEnv({ ...minio.env, AWS_SECRET_ACCESS_KEY: secret }));
  await assert.rejects(wrongSecret.head('k.sqlite'), (err: unknown) => err instanceof S3AccessError && !err.message.includes(secret));
  await assert.rejects(wrongSecret.put(file, 'k.sqlite', meta), (err: unknown) => err instanceof S3AccessError && /SignatureDoesNotMatch/.test(err.message));
});

test('S3Store: the storage class is applied to new objects; unknown classes are refused', async (t) => {
  // moto, not MinIO: MinIO answers InvalidStorageClass to STANDARD_IA and GLACIER_IR (it knows only STANDARD and
  // REDUCED_REDUNDANCY), and these are the classes an archive is given.
  const moto = await startMoto();
  t.after(() => moto.stop());
  const restore = useS3Env(moto); // openStore below reads the environment
  t.after(restore);
  await moto.createBucket('sc-bucket');
  const settings = s3SettingsFromEnv({ ...process.env, ...moto.env, WORKBOOKS_S3_PART_SIZE: String(PART), WORKBOOKS_S3_PARALLEL: '4' });
  const ia = new S3Store('s3://sc-bucket/archive', settings, { storageClass: 'STANDARD_IA' });
  const { file, meta } = randomFile(6 * MiB); // multipart: the class is set by CreateMultipartUpload
  await ia.put(file, 'ws-ia.sqlite', meta);
  const small = randomFile(10);
  await ia.put(small.file, 'ws-ia-small.sqlite', small.meta);
  const client = s3Client(settings);
  for (const key of ['archive/ws-ia.sqlite', 'archive/ws-ia-small.sqlite']) {
    const h = await client.send(new HeadObjectCommand({ Bucket: 'sc-bucket', Key: key }));
    assert.equal(h.StorageClass, 'STANDARD_IA', key);
  }
  const plain = new S3Store('s3://sc-bucket/plain', settings);
  await plain.put(small.file, 'ws-std.sqlite', small.meta);
  const h = await client.send(new HeadObjectCommand({ Bucket: 'sc-bucket', Key: 'plain/ws-std.sqlite' }));
  assert.ok(h.StorageClass === undefined || h.StorageClass === 'STANDARD', String(h.StorageClass));

  const opened = openStore('s3://sc-bucket/gir', { storageClass: 'GLACIER_IR' });
  await opened.put(small.file, 'ws-gir.sqlite', small.meta);
  assert.equal((await client.send(new HeadObjectCommand({ Bucket: 'sc-bucket', Key: 'gir/ws-gir.sqlite' }))).StorageClass, 'GLACIER_IR');
  assert.deepEqual(await opened.rehash('ws-gir.sqlite'), small.meta, 'GLACIER_IR objects read at once');

  assert.throws(() => new S3Store('s3://sc-bucket', settings, { storageClass: 'COLD_AND_SLOW' }), StoreUnavailableError);
});

test('S3Store: an object replaced during a download fails the download instead of mixing versions', async () => {
  // One part at a time, throttled, so the later parts are requested after the overwrite.
  const slow = s3SettingsFromEnv({ ...process.env, ...minio.env, WORKBOOKS_S3_PART_SIZE: String(PART), WORKBOOKS_S3_PARALLEL: '1' });
  const store = new S3Store('s3://etag-bucket', slow);
  const a = randomFile(3 * PART);
  const b = randomFile(1000); // small, so the overwrite lands while the first part is still being read
  await store.put(a.file, 'moving.sqlite', a.meta);
  let replacing: Promise<unknown> | null = null;
  const out = outFile();
  await assert.rejects(
    store.get('moving.sqlite', out, {
      throttleBps: 10 * MiB,
      onProgress: (done) => {
        if (done >= MiB && !replacing) replacing = store.put(b.file, 'moving.sqlite', b.meta);
      },
    }),
    (err: unknown) => err instanceof StoreError && /was replaced while it was being read/.test(err.message),
  );
  await replacing;
  assert.equal(fs.existsSync(out), false);
  assert.deepEqual(await store.get('moving.sqlite', out), b.meta, 'a new read gets the new version whole');
});

test('openStore / storeForCopyUrl open s3:// stores from the environment', async () => {
  const store = openStore('s3://open-bucket/pre/');
  assert.ok(store instanceof S3Store);
  assert.equal(store.baseUrl, 's3://open-bucket/pre');
  assert.equal(store.settings.endpoint, minio.endpoint);
  const { file, meta } = randomFile(1234);
  const put = await store.put(file, 'ws-open.sqlite', meta);
  assert.equal(put.url, 's3://open-bucket/pre/ws-open.sqlite');
  const { store: again, key } = storeForCopyUrl(put.url);
  assert.equal(key, 'ws-open.sqlite');
  assert.deepEqual(await again.rehash(key), meta);

  const root = storeForCopyUrl('s3://open-bucket/ws-open.sqlite');
  assert.equal(root.store.baseUrl, 's3://open-bucket');
  for (const bad of ['s3://open-bucket/', 's3://open-bucket', 's3:///ws.sqlite', 's3://open-bucket//ws.sqlite', 's3://open-bucket/pre/.x.partial', 's3://Open_Bucket/ws.sqlite', 's3://open-bucket/a/../ws.sqlite']) {
    assert.throws(() => storeForCopyUrl(bad), BadKeyError, bad);
  }
  assert.throws(() => openStore('s3://x'), StoreUnavailableError, 'bucket names have at least 3 characters');

  // Bad S3 settings in the environment make s3:// stores unavailable (not bad input).
  const saved = process.env.WORKBOOKS_S3_PART_SIZE;
  process.env.WORKBOOKS_S3_PART_SIZE = '1024';
  try {
    assert.throws(() => openStore('s3://open-bucket'), (err: unknown) => err instanceof StoreUnavailableError && /WORKBOOKS_S3_PART_SIZE/.test(err.message));
    assert.throws(() => storeForCopyUrl(put.url), StoreUnavailableError);
  } finally {
    if (saved === undefined) delete process.env.WORKBOOKS_S3_PART_SIZE;
    else process.env.WORKBOOKS_S3_PART_SIZE = saved;
  }
  await store.delete('ws-open.sqlite');
});

// ---------------------------------------------------------------------------------------------------------------
// Configuration

test('config: s3:// store URLs are accepted and normalized; malformed ones refused', () => {
  const base = { WORKBOOKS_DATA_DIR: path.join(tmp, 'cfg') };
  const cfg = loadConfig({ ...base, WORKBOOKS_COLD_URL: 's3://my-bucket/cold/', WORKBOOKS_ARCHIVE_URL: 's3://my-bucket' });
  assert.equal(cfg.coldUrl, 's3://my-bucket/cold');
  assert.equal(cfg.archiveUrl, 's3://my-bucket');
  assert.equal(cfg.archiveStorageClass, null);
  assert.equal(loadConfig({ ...base, WORKBOOKS_COLD_URL: 's3://my-bucket/a/b' }).coldUrl, 's3://my-bucket/a/b');
  assert.equal(loadConfig(base).coldUrl, `file://${path.join(tmp, 'cfg', 'cold')}`, 'file:// default unchanged');
  for (const bad of ['s3://My_Bucket/x', 's3://ab', 's3://bucket/a//b', 's3://bucket/a/../b', 's3://bucket/sp ace', 's3://']) {
    assert.throws(() => loadConfig({ ...base, WORKBOOKS_COLD_URL: bad }), (err: unknown) => err instanceof ConfigError && /WORKBOOKS_COLD_URL/.test(err.message), bad);
  }
  assert.throws(() => loadConfig({ ...base, WORKBOOKS_ARCHIVE_URL: 'gs://bucket' }), /unsupported scheme/);
});

test('config: S3 settings are validated at load when a store is on s3://', () => {
  const base = { WORKBOOKS_DATA_DIR: path.join(tmp, 'cfg') };
  const s3 = { ...base, WORKBOOKS_ARCHIVE_URL: 's3://my-bucket/archive' };
  for (const [name, value, pattern] of [
    ['WORKBOOKS_S3_PART_SIZE', '1000', /WORKBOOKS_S3_PART_SIZE/],
    ['WORKBOOKS_S3_PARALLEL', '0', /WORKBOOKS_S3_PARALLEL/],
    ['WORKBOOKS_S3_ENDPOINT', 'ftp://x', /endpoint/],
    ['WORKBOOKS_S3_ENDPOINT', 'http://user:pw@host:9000', /must not carry credentials/],
    ['WORKBOOKS_S3_FORCE_PATH_STYLE', 'maybe', /WORKBOOKS_S3_FORCE_PATH_STYLE/],
  ] as const) {
    assert.throws(() => loadConfig({ ...s3, [name]: value }), (err: unknown) => err instanceof ConfigError && pattern.test(err.message), `${name}=${value}`);
    // Irrelevant (and not checked) while both stores are file://.
    assert.doesNotThrow(() => loadConfig({ ...base, [name]: value }));
  }
  assert.throws(
    () => loadConfig({ ...s3, WORKBOOKS_S3_ENDPOINT: 'http://user:pw@host:9000' }),
    (err: unknown) => !(err as Error).message.includes('pw'),
  );
});

test('config: WORKBOOKS_ARCHIVE_STORAGE_CLASS allows only instantly readable classes, on an s3:// archive', () => {
  const base = { WORKBOOKS_DATA_DIR: path.join(tmp, 'cfg'), WORKBOOKS_ARCHIVE_URL: 's3://my-bucket/archive' };
  for (const sc of ['STANDARD', 'STANDARD_IA', 'ONEZONE_IA', 'INTELLIGENT_TIERING', 'GLACIER_IR']) {
    assert.equal(loadConfig({ ...base, WORKBOOKS_ARCHIVE_STORAGE_CLASS: sc }).archiveStorageClass, sc);
  }
  assert.equal(loadConfig({ ...base, WORKBOOKS_ARCHIVE_STORAGE_CLASS: 'standard_ia' }).archiveStorageClass, 'STANDARD_IA');
  assert.equal(loadConfig({ ...base, WORKBOOKS_ARCHIVE_STORAGE_CLASS: '' }).archiveStorageClass, null);
  assert.equal(loadConfig(base, { archiveStorageClass: 'ONEZONE_IA' }).archiveStorageClass, 'ONEZONE_IA');
  for (const sc of ['GLACIER', 'DEEP_ARCHIVE']) {
    assert.throws(
      () => loadConfig({ ...base, WORKBOOKS_ARCHIVE_STORAGE_CLASS: sc }),
      (err: unknown) => err instanceof ConfigError && /must be restored/.test(err.message) && /GLACIER_IR/.test(err.message),
      sc,
    );
  }
  for (const sc of ['REDUCED_REDUNDANCY', 'EXPRESS_ONEZONE', 'COLD']) {
    assert.throws(() => loadConfig({ ...base, WORKBOOKS_ARCHIVE_STORAGE_CLASS: sc }), ConfigError, sc);
  }
  assert.throws(
    () => loadConfig({ WORKBOOKS_DATA_DIR: path.join(tmp, 'cfg'), WORKBOOKS_ARCHIVE_STORAGE_CLASS: 'STANDARD_IA' }),
    (err: unknown) => err instanceof ConfigError && /only applies to an s3:\/\/ archive/.test(err.message),
  );
});
