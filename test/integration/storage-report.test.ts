/**
 * Storage reports end to end (src/client/storage-report.ts, src/api/routes-storage.ts, `workbooks storage`): a real
 * dev server, a real worker host with Litestream, real file:// stores, the API on a real port and the CLI as a
 * child process; then the same against MinIO (s3:// cold, archive and replicas). Two workspaces of a tenant are
 * written, suspended, frozen, woken and archived, and the report's bytes are compared with what the stores hold
 * (the sizes of the files on disk; on S3, the object listing), including a planted leftover, a neighbour whose key
 * starts with the same letters (`acme.one-2`), and a deleted workspace's ledger pages. Tenant isolation: another
 * tenant's workspace is 404, another tenant's totals 403.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, startTestHost, TestHost, tempDir, uniqueQueue, TEST_DATA_KEY_SECRET } from '../../harness/stack';
import { startMinio, useS3Env, MinioServer } from '../../harness/minio';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { StorageReporter } from '../../src/client/storage-report';
import { ApiServer, startApiServer } from '../../src/api/server';
import { parseTokenSpec } from '../../src/api/tokens';
import { s3Client, s3SettingsFromEnv } from '../../src/storage/s3-client';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const TOKENS = 'tok-acme-0123456789=acme,tok-globex-0123456789=globex,tok-admin-0123456789=*';
const ACME = 'tok-acme-0123456789';
const GLOBEX = 'tok-globex-0123456789';
const ADMIN = 'tok-admin-0123456789';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

/** Sum of the sizes of the regular files under `dir` (recursively) whose top-level names pass `keep`. */
function diskBytes(dir: string, keep: (name: string) => boolean): { objects: number; bytes: number } {
  let objects = 0;
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        objects += 1;
        bytes += fs.statSync(p).size;
      }
    }
  };
  if (!fs.existsSync(dir)) return { objects, bytes };
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!keep(e.name)) continue;
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p);
    else if (e.isFile()) {
      objects += 1;
      bytes += fs.statSync(p).size;
    }
  }
  return { objects, bytes };
}

async function get(api: ApiServer, url: string, token: string): Promise<{ status: number; json: any; text: string }> {
  const res = await fetch(`${api.url}${url}`, { headers: { authorization: `Bearer ${token}` } });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null, text };
}

function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b) => (stdout += b));
    child.stderr.on('data', (b) => (stderr += b));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

/** Two workspaces of acme through the ladder, a neighbour with a longer key, and a deleted one. */
async function writeTenant(wb: WorkbooksClient): Promise<void> {
  await wb.create({ workspaceId: 'acme.one', tenant: 'acme' });
  await wb.putFile('acme.one', 'workspace', '/a.md', Buffer.alloc(50_000, 1));
  await wb.transition('acme.one', 'suspended');
  await wb.transition('acme.one', 'frozen');
  await wb.wake('acme.one'); // a cold wake: a second replica generation
  await wb.putFile('acme.one', 'workspace', '/b.md', Buffer.alloc(30_000, 2));
  await wb.transition('acme.one', 'suspended');
  await wb.transition('acme.one', 'frozen');
  await wb.transition('acme.one', 'archived');

  await wb.create({ workspaceId: 'acme.two', tenant: 'acme' });
  await wb.putFile('acme.two', 'workspace', '/c.md', Buffer.alloc(20_000, 3));
  await wb.transition('acme.two', 'suspended');
  await wb.transition('acme.two', 'frozen');

  await wb.create({ workspaceId: 'acme.one-2', tenant: 'acme' });
  await wb.putFile('acme.one-2', 'workspace', '/d.md', Buffer.alloc(10_000, 4));
  await wb.transition('acme.one-2', 'suspended');

  await wb.create({ workspaceId: 'acme.gone', tenant: 'acme' });
  await wb.transition('acme.gone', 'archived');
  await wb.transition('acme.gone', 'deleted');

  await wb.create({ workspaceId: 'globex.one', tenant: 'globex' });
}

describe('storage reports on file:// stores', { concurrency: false }, () => {
  let server: Server;
  let host: TestHost;
  let wb: WorkbooksClient;
  let api: ApiServer;
  let taskQueue: string;
  const root = tempDir('wb-storage-report-');
  const cold = path.join(root, 'cold');
  const archive = path.join(root, 'archive');
  const replicas = path.join(root, 'replicas');
  const stores = { coldUrl: `file://${cold}`, archiveUrl: `file://${archive}`, replicaUrl: `file://${replicas}` };

  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('storage');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, ...stores });
    wb = clientFor(server.client, taskQueue);
    api = await startApiServer({ client: wb, tokens: parseTokenSpec(TOKENS, 'test'), waitMs: 30_000, port: 0, bind: '127.0.0.1', stores });
    await writeTenant(wb);
  });

  after(async () => {
    await api?.close();
    await host?.stop();
    await server?.stop();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it("a workspace's report is the bytes its stores hold under its exact keys, referenced and leftover", async () => {
    // A leftover: bytes of an unfinished put under one of acme.two's copy keys (no metadata).
    fs.writeFileSync(path.join(cold, 'acme.two.00000000deadbeef.sqlite'), Buffer.alloc(1234));
    const exact = (id: string) => (name: string) => name.startsWith(`${id}.`);
    for (const id of ['acme.one', 'acme.two', 'acme.one-2']) {
      const r = await get(api, `/v1/workspaces/${id.split('.')[1]}/storage`, ACME);
      assert.equal(r.status, 200, r.text);
      const d = await wb.describe(id);
      assert.equal(r.json.id, id.split('.')[1]);
      assert.equal(r.json.state, d.state);
      // Objects: each key once (a file store keeps a metadata sidecar beside an object); bytes: every file.
      const keys = new Set(fs.readdirSync(cold).filter(exact(id)).map((n) => n.replace(/\.meta\.json$/, '')));
      assert.deepEqual({ objects: r.json.cold.objects, bytes: r.json.cold.bytes }, { objects: keys.size, bytes: diskBytes(cold, exact(id)).bytes }, `${id} cold`);
      assert.equal(r.json.archive.bytes, diskBytes(archive, exact(id)).bytes, `${id} archive`);
      assert.deepEqual({ objects: r.json.replicas.objects, bytes: r.json.replicas.bytes }, diskBytes(replicas, (n) => n === id), `${id} replicas`);
      assert.equal(r.json.total.bytes, r.json.cold.bytes + r.json.archive.bytes + r.json.replicas.bytes);
      assert.equal(r.json.replicas.referenced.generations, d.replicas.length, `${id}: remembered generations`);
      assert.equal(r.json.truncated, false);
      assert.ok(!/file:\/\/|s3:\/\//.test(r.text), 'a tenant sees no store URLs');
      assert.equal(r.json.stores, undefined);
    }
    const one = (await get(api, '/v1/workspaces/one/storage', ACME)).json;
    assert.equal(one.state, 'archived');
    assert.deepEqual(one.archive.referenced.objects, 1, 'the archive copy is referenced');
    assert.equal(one.archive.referenced.bytes, diskBytes(archive, (n) => n.startsWith('acme.one.')).bytes, 'with its sidecar');
    assert.equal(one.cold.copies.objects, 0, 'archiving deleted the cold copy');
    assert.ok(one.cold.ledgerPages.objects === 0 || one.cold.ledgerPages.bytes > 0);
    assert.ok(one.replicas.generations >= 2, `cold wake started a new generation: ${one.replicas.generations}`);
    const two = (await get(api, '/v1/workspaces/two/storage', ACME)).json;
    assert.deepEqual(two.cold.leftover, { objects: 1, bytes: 1234 }, 'the planted leftover');
    assert.equal(two.cold.referenced.objects, 1);
    assert.equal(two.cold.missing, 0);
    const neighbour = (await get(api, '/v1/workspaces/one-2/storage', ACME)).json;
    assert.equal(neighbour.cold.objects, 0, 'acme.one-2 (suspended) owns nothing of acme.one');
    assert.equal(neighbour.local.kind, 'live');
    // The admin sees the leftover's URL and the stores.
    const admin = (await get(api, '/v1/workspaces/acme.two/storage', ADMIN)).json;
    assert.deepEqual(admin.leftovers, [`file://${cold}/acme.two.00000000deadbeef.sqlite`]);
    assert.equal(admin.stores.cold, `file://${cold}`);
  });

  it("a tenant's totals are everything its stores hold under its keys, deleted workspaces' ledger pages included", async () => {
    const r = await get(api, '/v1/tenants/acme/storage', ACME);
    assert.equal(r.status, 200, r.text);
    const acme = (n: string) => n.startsWith('acme.');
    assert.equal(r.json.totals.cold.bytes, diskBytes(cold, acme).bytes);
    assert.equal(r.json.totals.archive.bytes, diskBytes(archive, acme).bytes);
    assert.equal(r.json.totals.replicas.bytes, diskBytes(replicas, acme).bytes);
    assert.equal(r.json.totals.total.bytes, diskBytes(cold, acme).bytes + diskBytes(archive, acme).bytes + diskBytes(replicas, acme).bytes);
    assert.deepEqual(r.json.workspaces.map((w: { id: string }) => w.id).sort(), ['one', 'one-2', 'two']);
    const sum = r.json.workspaces.reduce((n: number, w: { total: { bytes: number } }) => n + w.total.bytes, 0) + r.json.others.total.bytes;
    assert.equal(sum, r.json.totals.total.bytes, 'rows and others add up to the totals');
    assert.deepEqual(r.json.others.ids, ['gone'], "the deleted workspace's ledger pages");
    assert.ok(r.json.others.cold.ledgerPages.objects >= 1);
    assert.equal(r.json.others.cold.copies.objects, 0, 'the delete left no copy');
    assert.equal(r.json.truncated, false);
    assert.ok(!/file:\/\//.test(r.text));
    // The admin asks for any tenant; globex's report holds only globex's.
    const g = await get(api, '/v1/tenants/globex/storage', ADMIN);
    assert.equal(g.status, 200);
    assert.deepEqual(g.json.workspaces.map((w: { id: string }) => w.id), ['globex.one']);
    assert.equal(g.json.stores.replicas, `file://${replicas}`);
  });

  it('keeps tenants apart and refuses bad input', async () => {
    // globex has a `one` of its own; acme's `two` is not globex's, by name or by key.
    assert.equal((await get(api, '/v1/workspaces/one/storage', GLOBEX)).json.tenant, 'globex');
    for (const url of ['/v1/workspaces/two/storage', '/v1/workspaces/acme.two/storage', '/v1/workspaces/acme.one/storage', '/v1/workspaces/nope/storage']) {
      const r = await get(api, url, GLOBEX);
      assert.equal(r.status, 404, `${url}: ${r.text}`);
      assert.equal(r.json.error.code, 'not_found');
    }
    const other = await get(api, '/v1/tenants/acme/storage', GLOBEX);
    assert.equal(other.status, 403);
    assert.equal(other.json.error.code, 'forbidden');
    for (const url of ['/v1/tenants/ACME/storage', '/v1/tenants/a.b/storage', '/v1/workspaces/Bad_Id/storage']) {
      const r = await get(api, url, ADMIN);
      assert.equal(r.status, 400, `${url}: ${r.text}`);
    }
    assert.equal((await get(api, '/v1/tenants/acme/storage', 'tok-nobody-0123456789')).status, 401);
    // An API without store configuration says so.
    const bare = await startApiServer({ client: wb, tokens: parseTokenSpec(TOKENS, 'test'), waitMs: 1000, port: 0, bind: '127.0.0.1' });
    try {
      assert.equal((await get(bare, '/v1/workspaces/one/storage', ACME)).status, 503);
    } finally {
      await bare.close();
    }
  });

  it('the CLI prints the same figures (table and --json)', async () => {
    const env = {
      ...process.env,
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: server.namespace,
      WORKBOOKS_TASK_QUEUE: taskQueue,
      WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET,
      WORKBOOKS_COLD_URL: stores.coldUrl,
      WORKBOOKS_ARCHIVE_URL: stores.archiveUrl,
      WORKBOOKS_REPLICA_URL: stores.replicaUrl,
      WORKBOOKS_DATA_DIR: tempDir('wb-storage-cli-'),
    };
    const api1 = (await get(api, '/v1/workspaces/acme.one/storage', ADMIN)).json;
    const json = await runCli(['storage', 'acme.one', '--json'], env);
    assert.equal(json.code, 0, json.stderr);
    const cli1 = JSON.parse(json.stdout);
    assert.deepEqual([cli1.cold, cli1.archive, cli1.replicas, cli1.total], [api1.cold, api1.archive, api1.replicas, api1.total]);
    const table = await runCli(['storage', '--tenant', 'acme'], env);
    assert.equal(table.code, 0, table.stderr);
    const apiT = (await get(api, '/v1/tenants/acme/storage', ADMIN)).json;
    const total = table.stdout.split('\n').find((l) => l.startsWith('TOTAL'));
    assert.ok(total?.includes(`${apiT.totals.total.bytes} B / ${apiT.totals.total.objects}`), table.stdout);
    assert.match(table.stdout, /acme\.one\b/);
    assert.match(table.stdout, /not running: acme\.gone/);
    const bad = await runCli(['storage'], env);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /either a workspace id or --tenant/);
    const badTenant = await runCli(['storage', '--tenant', 'Not a tenant'], env);
    assert.notEqual(badTenant.code, 0);
  });
});

describe('storage reports on s3:// stores (MinIO)', { concurrency: false }, () => {
  let server: Server;
  let minio: MinioServer;
  let restoreEnv: () => void;
  let host: TestHost;
  let wb: WorkbooksClient;
  const stores = { coldUrl: 's3://wb-rep-cold/c', archiveUrl: 's3://wb-rep-archive/a', replicaUrl: 's3://wb-rep-replicas/r' };

  async function s3Bytes(url: string, namePrefix: string): Promise<{ objects: number; bytes: number }> {
    const u = new URL(url);
    const prefix = `${u.pathname.slice(1)}/${namePrefix}`;
    let objects = 0;
    let bytes = 0;
    let token: string | undefined;
    do {
      const r = await s3Client(s3SettingsFromEnv()).send(new ListObjectsV2Command({ Bucket: u.host, Prefix: prefix, ContinuationToken: token }));
      for (const o of r.Contents ?? []) {
        objects += 1;
        bytes += o.Size ?? 0;
      }
      token = r.NextContinuationToken;
    } while (token);
    return { objects, bytes };
  }

  before(async () => {
    minio = await startMinio();
    restoreEnv = useS3Env(minio);
    for (const b of ['wb-rep-cold', 'wb-rep-archive', 'wb-rep-replicas']) await minio.createBucket(b);
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('storage-s3');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: 's3-host', ...stores });
    wb = clientFor(server.client, taskQueue);
    await writeTenant(wb);
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
    await minio?.stop();
    restoreEnv?.();
  });

  it('workspace and tenant reports match the objects the buckets hold', async () => {
    const reporter = new StorageReporter(wb, stores);
    for (const id of ['acme.one', 'acme.two', 'acme.one-2']) {
      const r = await reporter.workspace(await wb.describe(id));
      assert.deepEqual({ objects: r.cold.objects, bytes: r.cold.bytes }, await s3Bytes(stores.coldUrl, `${id}.`), `${id} cold`);
      assert.deepEqual({ objects: r.archive.objects, bytes: r.archive.bytes }, await s3Bytes(stores.archiveUrl, `${id}.`), `${id} archive`);
      assert.deepEqual({ objects: r.replicas.objects, bytes: r.replicas.bytes }, await s3Bytes(stores.replicaUrl, `${id}/`), `${id} replicas`);
      assert.equal(r.replicas.leftover.generations, 0, `${id}: every generation is remembered`);
    }
    const one = await reporter.workspace(await wb.describe('acme.one'));
    assert.equal(one.archive.referenced.objects, 1);
    assert.ok(one.replicas.generations >= 2);
    const t = await reporter.tenant('acme');
    const want = (await s3Bytes(stores.coldUrl, 'acme.')).bytes + (await s3Bytes(stores.archiveUrl, 'acme.')).bytes + (await s3Bytes(stores.replicaUrl, 'acme.')).bytes;
    assert.equal(t.totals.total.bytes, want);
    assert.deepEqual(t.others?.ids, ['acme.gone']);
    assert.equal(t.truncated, false);
  });
});
