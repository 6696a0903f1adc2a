import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { COPY_CHUNK_BYTES, copyDurably, copyWithSha256, hashFile, kernelCopy, writeFileAtomic } from '../../src/storage/copy';
import { FileStore } from '../../src/storage/file-store';
import { StoreUnavailableError, openStore, storeForCopyUrl } from '../../src/storage/open-store';
import { S3Store } from '../../src/storage/s3-store';
import { BadKeyError, ChecksumMismatchError, ObjectMissingError, checkKey } from '../../src/storage/blob-store';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-storage-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function sha(buf: Buffer): string {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function writeRandom(file: string, bytes: number): Buffer {
  const buf = crypto.randomBytes(bytes);
  fs.writeFileSync(file, buf);
  return buf;
}

test('hashFile matches crypto over sizes around the chunk boundary, reporting progress up to the size', async (t) => {
  const dir = tempDir(t);
  for (const size of [0, 1, COPY_CHUNK_BYTES - 1, COPY_CHUNK_BYTES, COPY_CHUNK_BYTES + 1, 2 * COPY_CHUNK_BYTES + 12345]) {
    const f = path.join(dir, `f${size}`);
    const buf = writeRandom(f, size);
    const seen: number[] = [];
    const r = await hashFile(f, (done, total) => {
      assert.equal(total, size);
      seen.push(done);
    });
    assert.deepEqual(r, { sha256: sha(buf), bytes: size });
    if (size > 0) assert.equal(seen[seen.length - 1], size);
    assert.deepEqual([...seen].sort((a, b) => a - b), seen, 'progress is monotonic');
  }
});

test('copyWithSha256 copies exactly and returns the sha256 of the bytes written', async (t) => {
  const dir = tempDir(t);
  for (const size of [0, 7, COPY_CHUNK_BYTES + 3, 3 * COPY_CHUNK_BYTES]) {
    const src = path.join(dir, `s${size}`);
    const dst = path.join(dir, `d${size}`);
    const buf = writeRandom(src, size);
    fs.writeFileSync(dst, 'old contents that are longer than seven bytes'); // truncated, not merged
    let last = -1;
    const r = await copyWithSha256(src, dst, { onProgress: (done) => (last = done) });
    assert.deepEqual(r, { sha256: sha(buf), bytes: size });
    assert.ok(fs.readFileSync(dst).equals(buf));
    if (size > 0) assert.equal(last, size);
  }
});

test('copyWithSha256 throttles to roughly throttleBps', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  writeRandom(src, 512 * 1024);
  const started = Date.now();
  await copyWithSha256(src, path.join(dir, 'dst'), { throttleBps: 2 * 1024 * 1024 }); // 0.25 s at 2 MiB/s
  const ms = Date.now() - started;
  assert.ok(ms >= 200, `throttled copy took only ${ms} ms`);
  assert.ok(ms < 2000, `throttled copy took ${ms} ms`);
});

test('copyWithSha256 stops on abort and removes the partial destination', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  const dst = path.join(dir, 'dst');
  writeRandom(src, 2 * 1024 * 1024);
  const ac = new AbortController();
  const reason = new Error('stop now');
  const p = copyWithSha256(src, dst, {
    throttleBps: 1024 * 1024,
    signal: ac.signal,
    onProgress: (done) => {
      if (done >= 256 * 1024) ac.abort(reason);
    },
  });
  await assert.rejects(p, (err) => err === reason);
  assert.equal(fs.existsSync(dst), false);

  const pre = new AbortController();
  pre.abort(reason);
  await assert.rejects(copyWithSha256(src, dst, { signal: pre.signal }), (err) => err === reason);
  assert.equal(fs.existsSync(dst), false);
});

test('copyWithSha256 of a missing source fails with ENOENT and creates nothing', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(copyWithSha256(path.join(dir, 'nope'), path.join(dir, 'dst')), { code: 'ENOENT' });
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('kernelCopy copies exactly, reporting progress from 0 to the size; copyDurably returns the sha256 read back from the copy', async (t) => {
  const dir = tempDir(t);
  for (const size of [0, 1, COPY_CHUNK_BYTES + 7]) {
    const src = path.join(dir, `src${size}`);
    const buf = writeRandom(src, size);
    const seen: number[] = [];
    assert.equal(await kernelCopy(src, path.join(dir, `k${size}`), { onProgress: (done, total) => (assert.equal(total, size), seen.push(done)) }), size);
    assert.ok(fs.readFileSync(path.join(dir, `k${size}`)).equals(buf));
    assert.equal(seen[0], 0);
    assert.equal(seen[seen.length - 1], size);
    const readBack: number[] = [];
    const got = await copyDurably(src, path.join(dir, `d${size}`), { onReadBack: (done) => readBack.push(done) });
    assert.deepEqual(got, { sha256: sha(buf), bytes: size });
    assert.ok(fs.readFileSync(path.join(dir, `d${size}`)).equals(buf));
    if (size > 0) assert.equal(readBack[readBack.length - 1], size, 'the read-back reports its progress');
  }
});

test('copyDurably hashes what landed, not what was sent: a copy that differs reads back with its own sha256', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  const buf = writeRandom(src, 100_000);
  const real = fs.promises.copyFile;
  fs.promises.copyFile = async (a, b, mode) => {
    await real(a, b, mode);
    fs.appendFileSync(String(b), 'x'); // one byte more than the source
  };
  let got;
  try {
    got = await copyDurably(src, path.join(dir, 'dst'));
  } catch (err) {
    got = err as Error;
  } finally {
    fs.promises.copyFile = real;
  }
  // The kernel copy's own count (from the destination) and the read-back agree here, so it returns the hash of
  // the bytes there: not the source's.
  assert.ok(!(got instanceof Error), String(got));
  assert.notEqual(got.sha256, sha(buf));
  assert.equal(got.bytes, buf.length + 1);
});

test('copyDurably: an abort rejects with its reason and removes the destination; a missing source fails with ENOENT and creates nothing', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  writeRandom(src, 3 * COPY_CHUNK_BYTES);
  const reason = new Error('stop');
  const pre = new AbortController();
  pre.abort(reason);
  await assert.rejects(copyDurably(src, path.join(dir, 'a'), { signal: pre.signal }), (err) => err === reason);
  // Aborted during the read-back (after the first chunk of it).
  const ac = new AbortController();
  await assert.rejects(
    copyDurably(src, path.join(dir, 'b'), { signal: ac.signal, onReadBack: (done) => done > 0 && ac.abort(reason) }),
    (err) => err === reason,
  );
  await assert.rejects(copyDurably(path.join(dir, 'nope'), path.join(dir, 'c')), { code: 'ENOENT' });
  assert.deepEqual(fs.readdirSync(dir), ['src']);
});

test('kernelCopy aborted while the kernel copies: rejects at once with the reason; the destination is gone once the copy ends', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  writeRandom(src, 32 * 1024 * 1024);
  const dst = path.join(dir, 'dst');
  const reason = new Error('stop');
  const ac = new AbortController();
  // Aborted as soon as the kernel copy has created its destination.
  const p = kernelCopy(src, dst, { signal: ac.signal });
  while (!fs.existsSync(dst)) await new Promise((r) => setImmediate(r));
  ac.abort(reason);
  await assert.rejects(p, (err) => err === reason);
  // The kernel call finishes in the background, then its destination is removed.
  for (let i = 0; i < 100 && fs.existsSync(dst); i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(fs.readdirSync(dir), ['src']);
});

test('kernelCopy with throttleBps copies through user space at roughly that rate', async (t) => {
  const dir = tempDir(t);
  const src = path.join(dir, 'src');
  const buf = writeRandom(src, 512 * 1024);
  const t0 = performance.now();
  assert.equal(await kernelCopy(src, path.join(dir, 'dst'), { throttleBps: 2 * 1024 * 1024 }), buf.length); // 0.25 s
  assert.ok(performance.now() - t0 >= 200, 'throttled');
  assert.ok(fs.readFileSync(path.join(dir, 'dst')).equals(buf));
});

test('writeFileAtomic replaces a file and leaves no temporaries', async (t) => {
  const dir = tempDir(t);
  const f = path.join(dir, 'x.json');
  await writeFileAtomic(f, 'one');
  await writeFileAtomic(f, 'two');
  assert.equal(fs.readFileSync(f, 'utf8'), 'two');
  assert.deepEqual(fs.readdirSync(dir), ['x.json']);
});

test('FileStore: put, head, get, rehash, delete', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(`file://${dir}/cold`);
  assert.equal(store.baseUrl, `file://${dir}/cold`);
  const src = path.join(dir, 'ws.sqlite');
  const buf = writeRandom(src, 3 * 1024 * 1024 + 17);
  const meta = { sha256: sha(buf), bytes: buf.length, workspaceId: 'ws-1' };

  assert.equal(await store.head('ws-1.sqlite'), null);
  const before = Date.now();
  const put = await store.put(src, 'ws-1.sqlite', meta);
  assert.equal(put.url, `file://${dir}/cold/ws-1.sqlite`);
  assert.equal(put.sha256, meta.sha256);
  assert.equal(put.bytes, meta.bytes);
  assert.ok(Date.parse(put.at) >= before - 1000);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'cold')).sort(), ['ws-1.sqlite', 'ws-1.sqlite.meta.json']);

  const head = await store.head('ws-1.sqlite');
  assert.deepEqual(head, { sha256: meta.sha256, bytes: meta.bytes, at: put.at, workspaceId: 'ws-1' });

  const out = path.join(dir, 'restored');
  assert.deepEqual(await store.get('ws-1.sqlite', out), { sha256: meta.sha256, bytes: meta.bytes });
  assert.ok(fs.readFileSync(out).equals(buf));
  assert.deepEqual(await store.rehash('ws-1.sqlite'), { sha256: meta.sha256, bytes: meta.bytes });

  await store.delete('ws-1.sqlite');
  await store.delete('ws-1.sqlite'); // missing is fine
  assert.equal(await store.head('ws-1.sqlite'), null);
  await assert.rejects(store.get('ws-1.sqlite', out), ObjectMissingError);
  await assert.rejects(store.rehash('ws-1.sqlite'), ObjectMissingError);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'cold')), []);
});

test('FileStore: a put whose bytes do not match the declared sha256 leaves the previous object intact', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(path.join(dir, 'cold'));
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  const bufA = writeRandom(a, 100_000);
  writeRandom(b, 100_000);
  await store.put(a, 'k.sqlite', { sha256: sha(bufA), bytes: bufA.length });
  await assert.rejects(store.put(b, 'k.sqlite', { sha256: sha(bufA), bytes: bufA.length }), ChecksumMismatchError);
  assert.ok(fs.readFileSync(store.pathFor('k.sqlite')).equals(bufA));
  assert.equal((await store.head('k.sqlite'))?.sha256, sha(bufA));
  assert.deepEqual(fs.readdirSync(path.join(dir, 'cold')).sort(), ['k.sqlite', 'k.sqlite.meta.json'], 'no temporary left behind');
});

test('FileStore: a put whose copy reads back different bytes fails with ChecksumMismatchError and stores nothing', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(path.join(dir, 'cold'));
  assert.equal(store.readsBackOnPut, true);
  const a = path.join(dir, 'a');
  const buf = writeRandom(a, 200_000);
  const real = fs.promises.copyFile;
  fs.promises.copyFile = async (from, to, mode) => {
    await real(from, to, mode);
    const fd = fs.openSync(String(to), 'r+');
    fs.writeSync(fd, Buffer.from([buf[1000]! ^ 0xff]), 0, 1, 1000);
    fs.closeSync(fd);
  };
  try {
    await assert.rejects(store.put(a, 'k.sqlite', { sha256: sha(buf), bytes: buf.length }), (err) => err instanceof ChecksumMismatchError && /reads back/.test(err.message));
  } finally {
    fs.promises.copyFile = real;
  }
  assert.equal(await store.head('k.sqlite'), null);
  assert.deepEqual(fs.readdirSync(path.join(dir, 'cold')), [], 'no object, metadata or temporary');
});

test('FileStore: bytes without metadata (a put that crashed before the sidecar) read as no object; a size mismatch too', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(path.join(dir, 'cold'));
  const a = path.join(dir, 'a');
  const buf = writeRandom(a, 5000);
  await store.put(a, 'k.sqlite', { sha256: sha(buf), bytes: buf.length });
  const metaFile = store.pathFor('k.sqlite') + '.meta.json';
  const metaText = fs.readFileSync(metaFile, 'utf8');
  fs.rmSync(metaFile);
  assert.equal(await store.head('k.sqlite'), null);
  fs.writeFileSync(metaFile, metaText);
  assert.notEqual(await store.head('k.sqlite'), null);
  fs.appendFileSync(store.pathFor('k.sqlite'), 'x');
  assert.equal(await store.head('k.sqlite'), null);
});

test('FileStore: a put that dies after renaming the bytes (before new metadata) never shows the old metadata', async (t) => {
  const dir = tempDir(t);
  const store = new FileStore(path.join(dir, 'cold'));
  const a = path.join(dir, 'a');
  const b = path.join(dir, 'b');
  const bufA = writeRandom(a, 20_000);
  const bufB = writeRandom(b, 20_000);
  await store.put(a, 'k.sqlite', { sha256: sha(bufA), bytes: bufA.length });
  const open = fs.promises.open;
  fs.promises.open = (async (p: fs.PathLike, ...rest: unknown[]) => {
    if (String(p).includes('.meta.json')) throw Object.assign(new Error('injected crash'), { code: 'EIO' });
    return (open as (...args: unknown[]) => Promise<fs.promises.FileHandle>)(p, ...rest);
  }) as typeof fs.promises.open;
  try {
    await assert.rejects(store.put(b, 'k.sqlite', { sha256: sha(bufB), bytes: bufB.length }), /injected crash/);
  } finally {
    fs.promises.open = open;
  }
  assert.ok(fs.readFileSync(store.pathFor('k.sqlite')).equals(bufB), 'the new bytes were renamed in');
  assert.equal(await store.head('k.sqlite'), null, 'an unfinished put reads as no object, not as the old one');
  await store.put(b, 'k.sqlite', { sha256: sha(bufB), bytes: bufB.length }); // a retry completes it
  assert.equal((await store.head('k.sqlite'))?.sha256, sha(bufB));
});

test('FileStore: keys and URLs', async () => {
  const store = new FileStore('file:///srv/cold');
  assert.equal(store.urlFor('a-1.sqlite'), 'file:///srv/cold/a-1.sqlite');
  assert.equal(store.keyFromUrl('file:///srv/cold/a-1.sqlite'), 'a-1.sqlite');
  assert.equal(store.keyFromUrl('file:///srv/other/a-1.sqlite'), null);
  assert.equal(store.keyFromUrl('file:///srv/cold/sub/a-1.sqlite'), null);
  assert.equal(store.keyFromUrl('file:///srv/cold/../x.sqlite'), null);
  assert.equal(store.keyFromUrl('s3://bucket/a-1.sqlite'), null);
  for (const bad of ['', '.hidden', '../x', 'a/b', 'x.meta.json', 'x.partial', 'a b']) {
    assert.throws(() => checkKey(bad), BadKeyError, bad);
    assert.throws(() => store.urlFor(bad), BadKeyError, bad);
  }
  assert.throws(() => new FileStore('relative/dir'));
});

test('openStore and storeForCopyUrl', async (t) => {
  const dir = tempDir(t);
  const store = openStore(`file://${dir}/archive`);
  assert.ok(store instanceof FileStore);
  assert.equal(store.baseUrl, `file://${dir}/archive`);
  const s3 = openStore('s3://bucket/prefix/'); // opening sends nothing; the S3 tests live in s3-store.test.ts
  assert.ok(s3 instanceof S3Store);
  assert.equal(s3.baseUrl, 's3://bucket/prefix');
  assert.throws(() => openStore('s3://Bad_Bucket/prefix'), StoreUnavailableError);
  assert.throws(() => openStore('http://example.com/x'), /unsupported scheme/);
  assert.throws(() => openStore('file://relative'), /absolute/);

  const { store: s2, key } = storeForCopyUrl(`file://${dir}/archive/ws-9.sqlite`);
  assert.equal(key, 'ws-9.sqlite');
  assert.equal(s2.baseUrl, `file://${dir}/archive`);
  const s3copy = storeForCopyUrl('s3://bucket/a/b/ws-9.sqlite');
  assert.equal(s3copy.key, 'ws-9.sqlite');
  assert.equal(s3copy.store.baseUrl, 's3://bucket/a/b');
  assert.throws(() => storeForCopyUrl('s3://Bad_Bucket/ws-9.sqlite'), BadKeyError);
  assert.throws(() => storeForCopyUrl('s3://bucket//ws-9.sqlite'), BadKeyError);
  assert.throws(() => storeForCopyUrl('http://example.com/ws-9.sqlite'), StoreUnavailableError);
  assert.throws(() => storeForCopyUrl(`file://${dir}/archive/../ws-9.sqlite`), BadKeyError);
  assert.throws(() => storeForCopyUrl(`file://${dir}/archive/.ws-9.sqlite.partial`), BadKeyError);
  assert.throws(() => storeForCopyUrl('file://rel/ws.sqlite'), BadKeyError);

  // A copy is readable by URL from any process that sees the path.
  const src = path.join(dir, 'src');
  const buf = writeRandom(src, 1000);
  const put = await store.put(src, 'ws-9.sqlite', { sha256: sha(buf), bytes: buf.length });
  const opened = storeForCopyUrl(put.url);
  assert.equal((await opened.store.head(opened.key))?.sha256, sha(buf));
});
