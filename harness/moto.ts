/**
 * A real S3-compatible server for tests: moto in server mode (`moto_server` from .tools), on a free loopback
 * port, in-memory. `env` holds what a process needs to reach it (endpoint, region, dummy credentials).
 */
import { spawn, ChildProcess } from 'node:child_process';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { resolveBinary } from '../src/tools';
import { s3Client, s3SettingsFromEnv } from '../src/storage/s3-client';
import { freePort } from './temporal';

export interface MotoServer {
  endpoint: string;
  /** Environment for this process or a child: endpoint, region, credentials. */
  env: Record<string, string>;
  /** Creates a bucket (idempotent). */
  createBucket(name: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startMoto(): Promise<MotoServer> {
  const bin = resolveBinary('moto_server');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(bin, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    const endpoint = `http://127.0.0.1:${port}`;
    try {
      await waitUntilUp(endpoint, child, () => stderr);
    } catch (err) {
      child.kill('SIGKILL');
      if (attempt < 3 && /address already in use/i.test(stderr)) continue;
      throw err;
    }
    const env = {
      WORKBOOKS_S3_ENDPOINT: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'testing',
      AWS_SECRET_ACCESS_KEY: 'testing',
    };
    return {
      endpoint,
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
      stop: () => stopChild(child),
    };
  }
}


async function waitUntilUp(endpoint: string, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${stderr()}`);
    try {
      const r = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1000) });
      if (r.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`moto_server did not come up at ${endpoint}: ${stderr()}`);
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
