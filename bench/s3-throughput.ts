/**
 * S3 store throughput against the raw requests it is made of, on the same server in the same session:
 *   - S3Store.put (multipart, parallel parts read from the file by offset, sha256 checked before completing)
 *     against one plain PutObject (a file stream body with its length);
 *   - S3Store.get (parallel ranged GETs written at their offsets, sha256 in order, fsync) and S3Store.rehash
 *     (the same reads, hashed, nothing written) against one plain GetObject streamed to a file, then fsynced.
 * Each run does all five, in an order that alternates between runs (store first, plain first); one warm-up
 * round first is not recorded.
 *
 * `node dist/bench/s3-throughput.js` starts a MinIO of its own (harness/minio.ts, data dir under BENCH_DIR or
 * the OS temp dir) and prints a table per size: median, min and max of every operation and its ratio to the
 * plain request. Environment:
 *   BENCH_S3_MIB   object sizes in MiB, comma-separated (default "100,1024")
 *   BENCH_RUNS     runs per size (default 5)
 *   BENCH_DIR      parent of the temporary files and of MinIO's data dir (default: the OS temp dir)
 *   BENCH_JSON     also write the raw result as JSON to this file
 *   BENCH_RENDER   print the tables of such a JSON file and exit (nothing is measured)
 *   BENCH_OTHER_STORE  a compiled s3-store.js of another build (e.g. main's): its put/get/rehash are timed too,
 *                  in the same runs against the same server, as "other build" rows (before/after on a busy machine)
 *   BENCH_OTHER_LABEL  the label of those rows (default "other build")
 *   BENCH_OTHER_PART_SIZE / BENCH_OTHER_PARALLEL  that build's settings (default: the same as this one's)
 *   WORKBOOKS_S3_PART_SIZE / WORKBOOKS_S3_PARALLEL   as for the service
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
  bytes: number;
  partSize: number;
  parallel: number;
  storePutMs: number[];
  storeGetMs: number[];
  storeRehashMs: number[];
  plainPutMs: number[];
  plainGetMs: number[];
  /** The same operations through another build's S3Store (BENCH_OTHER_STORE), when given. */
  other?: { label: string; putMs: number[]; getMs: number[]; rehashMs: number[] };
}

/** What the bench needs of an S3Store, from this build or another one. */
interface StoreLike {
  put(file: string, key: string, meta: { sha256: string; bytes: number }): Promise<unknown>;
  get(key: string, file: string): Promise<{ sha256: string }>;
  rehash(key: string): Promise<{ sha256: string }>;
  delete(key: string): Promise<void>;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Writes `bytes` random bytes to `file` (in 16 MiB pieces, so memory stays small for large sizes). */
export function writeRandomFile(file: string, bytes: number): string {
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
    fs.fdatasyncSync(fd);
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
 * Puts, gets and rehashes the same `bytes` random bytes `runs` times through S3Store and through single plain
 * requests, alternating which goes first. `endpointEnv` is merged over process.env to find the server and
 * credentials (and part size / parallelism); `bucket` must exist.
 */
export async function measureS3Throughput(opts: {
  bytes: number;
  runs: number;
  endpointEnv: Record<string, string>;
  bucket: string;
  dir?: string;
  log?: (line: string) => void;
  /** Another build's S3Store class and a label for it. */
  other?: { label: string; S3Store: new (url: string, settings: unknown) => StoreLike; env?: Record<string, string> };
}): Promise<S3ThroughputResult> {
  const settings = s3SettingsFromEnv({ ...process.env, ...opts.endpointEnv });
  const client = s3Client(settings);
  const store = new S3Store(`s3://${opts.bucket}/bench`, settings);
  const dir = fs.mkdtempSync(path.join(opts.dir ?? os.tmpdir(), 'wb-s3-bench-'));
  const result: S3ThroughputResult = {
    bytes: opts.bytes,
    partSize: settings.partSize,
    parallel: settings.parallel,
    storePutMs: [],
    storeGetMs: [],
    storeRehashMs: [],
    plainPutMs: [],
    plainGetMs: [],
  };
  if (opts.other) result.other = { label: opts.other.label, putMs: [], getMs: [], rehashMs: [] };
  const otherStore = opts.other ? new opts.other.S3Store(`s3://${opts.bucket}/bench-other`, s3SettingsFromEnv({ ...process.env, ...opts.endpointEnv, ...opts.other.env })) : null;
  try {
    const src = path.join(dir, 'src');
    const meta = { sha256: writeRandomFile(src, opts.bytes), bytes: opts.bytes };
    const out = path.join(dir, 'out');

    const through = async (s: StoreLike, into: { put: number[]; get: number[]; rehash: number[] }) => {
      into.put.push(await timed(() => s.put(src, 'store.bin', meta)));
      fs.rmSync(out, { force: true });
      into.get.push(
        await timed(async () => {
          const got = await s.get('store.bin', out);
          if (got.sha256 !== meta.sha256) throw new Error('store get returned different bytes');
        }),
      );
      into.rehash.push(
        await timed(async () => {
          const got = await s.rehash('store.bin');
          if (got.sha256 !== meta.sha256) throw new Error('store rehash returned different bytes');
        }),
      );
      await s.delete('store.bin');
    };
    const viaStore = async () => {
      await through(store, { put: result.storePutMs, get: result.storeGetMs, rehash: result.storeRehashMs });
      if (otherStore && result.other) await through(otherStore, { put: result.other.putMs, get: result.other.getMs, rehash: result.other.rehashMs });
    };
    const plain = async () => {
      const Key = 'bench/plain.bin';
      result.plainPutMs.push(await timed(() => plainPut(client, opts.bucket, Key, src)));
      fs.rmSync(out, { force: true });
      result.plainGetMs.push(await timed(() => plainGet(client, opts.bucket, Key, out)));
      if (fs.statSync(out).size !== opts.bytes) throw new Error('plain get returned a different size');
      await client.send(new DeleteObjectCommand({ Bucket: opts.bucket, Key }));
    };

    await viaStore(); // warm-up: connections, JIT, the server's first-request costs; not recorded
    await plain();
    for (const k of ['storePutMs', 'storeGetMs', 'storeRehashMs', 'plainPutMs', 'plainGetMs'] as const) result[k] = [];
    if (result.other) result.other = { label: result.other.label, putMs: [], getMs: [], rehashMs: [] };

    for (let i = 0; i < opts.runs; i++) {
      if (i % 2 === 0) {
        await viaStore();
        await plain();
      } else {
        await plain();
        await viaStore();
      }
      opts.log?.(
        `  run ${i + 1}/${opts.runs}: put ${result.storePutMs.at(-1)!.toFixed(0)} (plain ${result.plainPutMs.at(-1)!.toFixed(0)}), ` +
          `get ${result.storeGetMs.at(-1)!.toFixed(0)} (plain ${result.plainGetMs.at(-1)!.toFixed(0)}), rehash ${result.storeRehashMs.at(-1)!.toFixed(0)} ms` +
          (result.other ? `; ${result.other.label}: put ${result.other.putMs.at(-1)!.toFixed(0)}, get ${result.other.getMs.at(-1)!.toFixed(0)}, rehash ${result.other.rehashMs.at(-1)!.toFixed(0)}` : ''),
      );
    }
    return result;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows of one result: operation, runs, and the plain request it is compared with. */
export function throughputRows(r: S3ThroughputResult): { name: string; ms: number[]; base: number[] | null }[] {
  return [
    { name: 'plain PutObject (one stream)', ms: r.plainPutMs, base: null },
    { name: 'S3Store.put (parallel parts, sha256)', ms: r.storePutMs, base: r.plainPutMs },
    { name: 'plain GetObject + fsync (one stream)', ms: r.plainGetMs, base: null },
    { name: 'S3Store.get (parallel ranges, sha256, fsync)', ms: r.storeGetMs, base: r.plainGetMs },
    { name: 'S3Store.rehash (parallel ranges, sha256)', ms: r.storeRehashMs, base: r.plainGetMs },
    ...(r.other
      ? [
          { name: `S3Store.put, ${r.other.label}`, ms: r.other.putMs, base: r.plainPutMs },
          { name: `S3Store.get, ${r.other.label}`, ms: r.other.getMs, base: r.plainGetMs },
          { name: `S3Store.rehash, ${r.other.label}`, ms: r.other.rehashMs, base: r.plainGetMs },
        ]
      : []),
  ];
}

export function throughputTable(r: S3ThroughputResult): string {
  const mib = r.bytes / 1024 / 1024;
  const lines = [
    `| ${mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`}: operation | median ms | min–max ms | MiB/s | × plain (medians) | × plain (per run: median, min–max) |`,
    '|---|---:|---:|---:|---:|---:|',
  ];
  for (const row of throughputRows(r)) {
    const med = median(row.ms);
    // Each run's operation against the plain request of the same run: on a shared machine the pairs see the same load.
    const paired = row.base ? row.ms.map((x, i) => x / row.base![i]!) : [];
    lines.push(
      `| ${row.name} | ${med.toFixed(0)} | ${Math.min(...row.ms).toFixed(0)}–${Math.max(...row.ms).toFixed(0)} | ${(mib / (med / 1000)).toFixed(0)} | ${row.base ? (med / median(row.base)).toFixed(2) : ''} | ` +
        `${row.base ? `${median(paired).toFixed(2)} (${Math.min(...paired).toFixed(2)}–${Math.max(...paired).toFixed(2)})` : ''} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  if (process.env.BENCH_RENDER) {
    // Renders saved results (BENCH_JSON of an earlier run) again.
    for (const r of JSON.parse(fs.readFileSync(process.env.BENCH_RENDER, 'utf8')) as S3ThroughputResult[]) console.log(`\n${throughputTable(r)}\n`);
    return;
  }
  // Imported here so that importing this module for measureS3Throughput does not pull in test helpers.
  const { startMinio } = await import('../harness/minio');
  const sizes = (process.env.BENCH_S3_MIB || '100,1024').split(',').map(Number);
  const runs = Number(process.env.BENCH_RUNS ?? 5);
  if (sizes.some((n) => !(n > 0)) || !Number.isInteger(runs) || runs < 1) throw new Error('BENCH_S3_MIB must be sizes > 0 and BENCH_RUNS a positive integer');
  const dir = process.env.BENCH_DIR || os.tmpdir();
  const minio = await startMinio({ parentDir: dir });
  const results: S3ThroughputResult[] = [];
  try {
    await minio.createBucket('bench');
    const settings = s3SettingsFromEnv({ ...process.env, ...minio.env });
    console.log(`S3 throughput against MinIO at ${minio.endpoint} (data in ${minio.dataDir}): part ${settings.partSize / 1024 / 1024} MiB, parallel ${settings.parallel}, ${runs} runs`);
    const otherPath = process.env.BENCH_OTHER_STORE;
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const otherEnv: Record<string, string> = {};
    if (process.env.BENCH_OTHER_PART_SIZE) otherEnv.WORKBOOKS_S3_PART_SIZE = process.env.BENCH_OTHER_PART_SIZE;
    if (process.env.BENCH_OTHER_PARALLEL) otherEnv.WORKBOOKS_S3_PARALLEL = process.env.BENCH_OTHER_PARALLEL;
    const other = otherPath
      ? {
          label: process.env.BENCH_OTHER_LABEL || 'other build',
          S3Store: (require(path.resolve(otherPath)) as { S3Store: new (url: string, settings: unknown) => StoreLike }).S3Store,
          env: otherEnv,
        }
      : undefined;
    for (const mib of sizes) {
      const r = await measureS3Throughput({ bytes: Math.round(mib * 1024 * 1024), runs, endpointEnv: minio.env, bucket: 'bench', dir, log: (l) => console.log(l), other });
      results.push(r);
      console.log(`\n${throughputTable(r)}\n`);
    }
    if (process.env.BENCH_JSON) fs.writeFileSync(process.env.BENCH_JSON, JSON.stringify(results, null, 2));
  } finally {
    await minio.stop();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
