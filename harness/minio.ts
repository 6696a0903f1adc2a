/**
 * A real S3 server for tests and benchmarks: MinIO (the binary scripts/cluster.sh pins and builds, found by
 * resolveBinary('minio')), single drive, on a free loopback port, with a fresh data dir under the system temp
 * dir and random root credentials. `env` holds what a process needs to reach it (endpoint, region,
 * credentials); `stop()` stops the server and removes its data.
 *
 * MinIO checks SigV4 signatures (Host header included), keeps objects on disk with fsync, supports multipart
 * uploads, ranged and conditional (If-Match) GETs, and accepts the storage classes STANDARD and
 * REDUCED_REDUNDANCY only (others are refused with InvalidStorageClass).
 */
import { spawn, ChildProcess } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { resolveBinary } from '../src/tools';
import { s3Client, s3SettingsFromEnv } from '../src/storage/s3-client';
import { freePorts } from './temporal';

export interface MinioServer {
  endpoint: string;
  /** The server's data directory (removed by stop()). */
  dataDir: string;
  /** Environment for this process or a child: endpoint, region, credentials. */
  env: Record<string, string>;
  /** Creates a bucket (idempotent). */
  createBucket(name: string): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and removes its data dir. */
  stop(): Promise<void>;
}

export interface StartMinioOptions {
  /** Parent of the fresh data dir (default: the system temp dir). */
  parentDir?: string;
}

export async function startMinio(opts: StartMinioOptions = {}): Promise<MinioServer> {
  const bin = resolveBinary('minio');
  const accessKey = `wb${crypto.randomBytes(8).toString('hex')}`;
  const secretKey = crypto.randomBytes(24).toString('base64url');
  for (let attempt = 1; ; attempt++) {
    const dataDir = fs.mkdtempSync(path.join(opts.parentDir ?? os.tmpdir(), 'wb-minio-'));
    const [port, consolePort] = await freePorts(2);
    const child = spawn(
      bin,
      ['server', dataDir, '--address', `127.0.0.1:${port}`, '--console-address', `127.0.0.1:${consolePort}`, '--quiet', '--anonymous'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          // Only what MinIO needs: nothing of this process's AWS_* settings leaks into it.
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: dataDir,
          MINIO_ROOT_USER: accessKey,
          MINIO_ROOT_PASSWORD: secretKey,
          MINIO_BROWSER: 'off',
          MINIO_UPDATE: 'off',
          MINIO_CI_CD: '1',
        },
      },
    );
    let output = '';
    const keep = (d: Buffer) => {
      output = (output + d.toString()).slice(-4000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await waitUntilReady(endpoint, child, () => output);
    } catch (err) {
      await stopChild(child);
      fs.rmSync(dataDir, { recursive: true, force: true });
      if (attempt < 3 && /address already in use|bind/i.test(output)) continue;
      throw err;
    }
    const env = {
      WORKBOOKS_S3_ENDPOINT: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: accessKey,
      AWS_SECRET_ACCESS_KEY: secretKey,
    };
    return {
      endpoint,
      dataDir,
      env,
      async createBucket(name) {
        const client = s3Client(s3SettingsFromEnv({ ...process.env, ...env }));
        try {
          await client.send(new CreateBucketCommand({ Bucket: name }));
        } catch (err) {
          const n = (err as Error).name;
          if (n !== 'BucketAlreadyOwnedByYou' && n !== 'BucketAlreadyExists') throw err;
        }
      },
      async stop() {
        await stopChild(child);
        fs.rmSync(dataDir, { recursive: true, force: true });
      },
    };
  }
}

/** Sets the server's environment on this process (the S3 store and the AWS SDK read it); returns the undo. */
export function useS3Env(server: { env: Record<string, string> }): () => void {
  const saved: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(server.env)) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

/** MinIO answers /minio/health/ready with 200 once it serves requests (drives formatted, IAM loaded). */
async function waitUntilReady(endpoint: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`minio exited with ${child.exitCode ?? child.signalCode}: ${output()}`);
    try {
      const r = await fetch(`${endpoint}/minio/health/ready`, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`minio did not become ready at ${endpoint}: ${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
