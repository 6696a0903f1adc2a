/**
 * S3 store throughput: S3Store.put / get (multipart upload, parallel ranged GETs, sha256 on the way, fsync of
 * the downloaded file) against one plain PutObject (file stream body with ContentLength) and one plain
 * GetObject streamed to a file (then fsynced, so both sides end with durable bytes; only the store hashes).
 *
 * `node dist/bench/s3-throughput.js` starts moto itself and prints a table. Environment:
 *   BENCH_S3_MIB   object size in MiB (default 100)
 *   BENCH_RUNS     runs (default 3)
 *   WORKBOOKS_S3_PART_SIZE / WORKBOOKS_S3_PARALLEL   as for the service (default 8 MiB / 4)
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { s3Client, s3SettingsFromEnv } from '../src/storage/s3-client';
import { S3Store } from '../src/storage/s3-store';
import { median } from './raw-ops';

export interface S3ThroughputResult {
  storePutMs: number[];
  storeGetMs: number[];
  plainPutMs: number[];
  plainGetMs: number[];
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Writes `bytes` random bytes to `file` (in 16 MiB pieces, so memory stays small for large sizes). */
function writeRandomFile(file: string, bytes: number): string {
  const hash = crypto.createHash('sha256');
  const fd = fs.openSync(file, 'w');
  try {
    for (let done = 0; done < bytes; ) {
      const n = Math.min(16 * 1024 * 1024, bytes - done);
      const buf = crypto.randomBytes(n);
      hash.update(buf);
      fs.writeSync(fd, buf);
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest('hex');
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fs.promises.open(file, 'r+');
  try {
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/** One plain PutObject of `file`: a single request streaming the file, with its length. */
export async function plainPut(client: S3Client, bucket: string, key: string, file: string): Promise<void> {
  const bytes = (await fs.promises.stat(file)).size;
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: fs.createReadStream(file), ContentLength: bytes }));
}

/** One plain GetObject streamed to `file` (created or truncated), then fsynced. */
export async function plainGet(client: S3Client, bucket: string, key: string, file: string): Promise<void> {
  const r = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  await pipeline(r.Body as Readable, fs.createWriteStream(file));
  await fsyncFile(file);
}

/**
 * Puts and gets the same `bytes` random bytes `runs` times through S3Store and through single plain requests,
 * alternating which goes first. `endpointEnv` is merged over process.env to find the server and credentials;
 * `bucket` must exist.
 */
export async function measureS3Throughput(opts: { bytes: number; runs: number; endpointEnv: Record<string, string>; bucket: string }): Promise<S3ThroughputResult> {
  const settings = s3SettingsFromEnv({ ...process.env, ...opts.endpointEnv });
  const client = s3Client(settings);
  const store = new S3Store(`s3://${opts.bucket}/bench`, settings);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-s3-bench-'));
  const result: S3ThroughputResult = { storePutMs: [], storeGetMs: [], plainPutMs: [], plainGetMs: [] };
  try {
    const src = path.join(dir, 'src');
    const meta = { sha256: writeRandomFile(src, opts.bytes), bytes: opts.bytes };
    const out = path.join(dir, 'out');

    const viaStore = async () => {
      result.storePutMs.push(await timed(() => store.put(src, 'store.bin', meta)));
      result.storeGetMs.push(
        await timed(async () => {
          const got = await store.get('store.bin', out);
          if (got.sha256 !== meta.sha256) throw new Error('store get returned different bytes');
        }),
      );
      await store.delete('store.bin');
    };
    const plain = async () => {
      const Key = 'bench/plain.bin';
      result.plainPutMs.push(await timed(() => plainPut(client, opts.bucket, Key, src)));
      result.plainGetMs.push(await timed(() => plainGet(client, opts.bucket, Key, out)));
      if (fs.statSync(out).size !== opts.bytes) throw new Error('plain get returned a different size');
      await client.send(new DeleteObjectCommand({ Bucket: opts.bucket, Key }));
    };

    await viaStore(); // warm-up: connections, JIT, moto's first-request costs; not recorded
    await plain();
    for (const k of Object.keys(result) as (keyof S3ThroughputResult)[]) result[k] = [];

    for (let i = 0; i < opts.runs; i++) {
      if (i % 2 === 0) {
        await viaStore();
        await plain();
      } else {
        await plain();
        await viaStore();
      }
    }
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}


async function main(): Promise<void> {
  // Imported here so that importing this module for measureS3Throughput does not pull in test helpers.
  const { startMoto } = await import('../harness/moto');
  const mib = Number(process.env.BENCH_S3_MIB ?? 100);
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  if (!(mib > 0) || !Number.isInteger(runs) || runs < 1) throw new Error('BENCH_S3_MIB must be > 0 and BENCH_RUNS a positive integer');
  const bytes = Math.round(mib * 1024 * 1024);
  const moto = await startMoto();
  try {
    await moto.createBucket('bench');
    const env = { ...moto.env };
    const settings = s3SettingsFromEnv({ ...process.env, ...env });
    console.log(`S3 throughput against moto at ${moto.endpoint}: ${mib} MiB, ${runs} runs, part ${settings.partSize / 1024 / 1024} MiB, parallel ${settings.parallel}`);
    const r = await measureS3Throughput({ bytes, runs, endpointEnv: env, bucket: 'bench' });
    const rows: [string, number[]][] = [
      ['S3Store.put (multipart, parallel, sha256)', r.storePutMs],
      ['plain PutObject (one stream)', r.plainPutMs],
      ['S3Store.get (ranged, parallel, sha256, fsync)', r.storeGetMs],
      ['plain GetObject (one stream, fsync)', r.plainGetMs],
    ];
    const w = Math.max(...rows.map(([n]) => n.length));
    console.log(`${'operation'.padEnd(w)}  median ms     MiB/s  runs (ms)`);
    for (const [name, ms] of rows) {
      const med = median(ms);
      console.log(`${name.padEnd(w)}  ${med.toFixed(0).padStart(9)}  ${(mib / (med / 1000)).toFixed(1).padStart(8)}  ${ms.map((x) => x.toFixed(0)).join(', ')}`);
    }
  } finally {
    await moto.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
