/**
 * The whole single-machine product against a real Temporal dev server, with real files:
 * freeze/resume receipt, clone isolation, warm/cold wakes, delete, and replay fixtures recorded here.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, startTestHost, TestHost, tempDir, uniqueQueue, workflowBundle } from '../../harness/stack';
import { activityCounts, localActivityType } from '../../harness/history';
import { Worker } from '@temporalio/worker';
import { createHostPickerActivities } from '../../src/activities/placement';
import { createStorageActivities } from '../../src/activities/stored-copies';
import { createLocalStopActivities } from '../../src/activities/local-stop';
import { restoreReplica } from '../../src/replication/restore';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { workflowIdFor } from '../../src/contract/ids';
import { Vfs } from '../../src/vfs/vfs';
import { corruptBtreePage } from '../../harness/sqlite-damage';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

let server: Server;
let host: TestHost;
let wb: WorkbooksClient;

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Worker options for the prebuilt workflow bundle (or one bundled now). */
async function workflowBundleOption(): Promise<{ workflowBundle: Awaited<ReturnType<typeof workflowBundle>> }> {
  return { workflowBundle: await workflowBundle() };
}

async function activityCount(id: string): Promise<number> {
  const h = await server.client.workflow.getHandle(workflowIdFor(id)).fetchHistory();
  return (h.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length;
}

function listFilesRecursive(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.join(d.parentPath ?? (d as unknown as { path: string }).path, d.name));
}

describe('workspace lifecycle on the dev server with real files', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('dev');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: 'host-a' });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  it('freeze then resume keeps workspace and memory; tmp is gone (the receipt)', async () => {
    await wb.create({ workspaceId: 'receipt', tenant: 'acme' });
    await wb.putFile('receipt', 'workspace', '/book.md', Buffer.from('the workbook files'));
    await wb.putFile('receipt', 'memory', '/learned.txt', Buffer.from('what the agent learned'));
    await wb.putFile('receipt', 'tmp', '/scratch', Buffer.from('scratch'));

    await wb.transition('receipt', 'suspended');
    await wb.transition('receipt', 'frozen');
    const frozen = await wb.describe('receipt');
    assert.equal(frozen.state, 'frozen');
    assert.ok(frozen.cold);
    const coldFile = new URL(frozen.cold.url).pathname;
    assert.equal(sha256(coldFile), frozen.cold.sha256, 'the cold copy is what its checksum says');
    assert.equal(fs.statSync(coldFile).size, frozen.cold.bytes);
    assert.equal(fs.existsSync(path.join(host.cfg.dataDir, 'live', 'receipt.sqlite')), false, 'local copy released');

    const woke = await wb.wake('receipt');
    assert.equal(woke.path, 'cold');
    assert.equal((await wb.getFile('receipt', 'workspace', '/book.md')).toString(), 'the workbook files');
    assert.equal((await wb.getFile('receipt', 'memory', '/learned.txt')).toString(), 'what the agent learned');
    await assert.rejects(wb.getFile('receipt', 'tmp', '/scratch'), /no file/);
  });

  it('clones: clones cannot see each other, the template stays byte-identical, and another tenant clones only a published template', async () => {
    await wb.create({ workspaceId: 'base', tenant: 'platform' });
    await wb.putFile('base', 'workspace', '/seed', Buffer.from('from the template'));
    await wb.putFile('base', 'tmp', '/junk', Buffer.from('never leaves'));
    await wb.transition('base', 'suspended');
    const baseFile = (await wb.describe('base')).filePath!;
    const before = sha256(baseFile);

    // A warm template clones on its host, for its own tenant.
    await wb.create({ workspaceId: 'book-a', tenant: 'platform', template: 'base' });
    await wb.create({ workspaceId: 'book-b', tenant: 'platform', template: 'base' });
    await wb.putFile('book-a', 'workspace', '/own', Buffer.from('a was here'));
    await wb.putFile('book-b', 'workspace', '/own', Buffer.from('b was here'));

    assert.equal((await wb.getFile('book-a', 'workspace', '/seed')).toString(), 'from the template');
    assert.equal((await wb.getFile('book-a', 'workspace', '/own')).toString(), 'a was here');
    assert.equal((await wb.getFile('book-b', 'workspace', '/own')).toString(), 'b was here');
    await assert.rejects(wb.getFile('book-a', 'tmp', '/junk'), /no file/);
    assert.equal(sha256(baseFile), before, 'template file is byte-identical');
    assert.equal((await wb.describe('base')).state, 'suspended', 'template was not woken');
    assert.notEqual((await wb.describe('book-a')).filePath, baseFile);

    // Another tenant: refused until the template is published and shared (then cloned from its cold copy).
    await assert.rejects(wb.create({ workspaceId: 'acme-book', tenant: 'acme', template: 'base' }), /not a template shared with tenant 'acme'/);
    const role = await wb.publish('base', ['acme', 'initech'], { reason: 'share it' });
    assert.equal(role.version, (await wb.describe('base')).cold!.sha256);
    await wb.create({ workspaceId: 'acme-book', tenant: 'acme', template: 'base' });
    await wb.create({ workspaceId: 'initech-book', tenant: 'initech', template: 'base' });
    await assert.rejects(wb.create({ workspaceId: 'globex-book', tenant: 'globex', template: 'base' }), /not a template shared with tenant 'globex'/);
    assert.equal((await wb.getFile('initech-book', 'workspace', '/seed')).toString(), 'from the template');
    await wb.putFile('acme-book', 'workspace', '/own', Buffer.from('acme was here'));
    // An active template clones through a consistent copy of the open file.
    await wb.create({ workspaceId: 'acme-copy', tenant: 'acme', template: 'acme-book' });
    assert.equal((await wb.getFile('acme-copy', 'workspace', '/own')).toString(), 'acme was here');
    await assert.rejects(wb.create({ workspaceId: 'orphan', tenant: 'acme', template: 'missing-template' }), /does not exist/);
  });

  it("the idle ladder's suspend is done by the holder inside the workflow task (7 history events); a user's moves run at user priority", async () => {
    const id = 'prio';
    await wb.create({ workspaceId: id, tenant: 'acme', policy: { suspendAfter: '2s' } });
    const handle = server.client.workflow.getHandle(workflowIdFor(id));
    await eventually(async () => (await wb.describe(id)).state === 'suspended', 'policy suspend', 30_000);
    await wb.wake(id, { reason: 'user' });
    const events = (await handle.fetchHistory()).events ?? [];
    const scheduled = events.filter((e) => e.activityTaskScheduledEventAttributes).map((e) => e.activityTaskScheduledEventAttributes!);
    const prio = (name: string) => scheduled.filter((a) => a.activityType?.name === name).map((a) => a.priority?.priorityKey ?? null);
    assert.deepEqual(prio('stopIfIdle'), [], 'no task on the host queue: this host runs the workflow task and holds the file');
    assert.deepEqual(prio('lastAccess'), [], 'no separate idle check');
    assert.deepEqual(prio('stopInstance'), [], 'no separate stop');
    assert.ok(prio('startInstance').length === 2 && prio('startInstance').every((p) => p === 2), `create and wake at the user priority: ${prio('startInstance')}`);
    // From the timer that fired to the timer of the next rung: fired, one workflow task, the local stop's marker,
    // search attributes, timer.
    const fired = events.findIndex((e) => e.timerFiredEventAttributes);
    const next = events.findIndex((e, i) => i > fired && e.timerStartedEventAttributes);
    const span = events.slice(fired, next + 1);
    assert.deepEqual(span.map(localActivityType).filter(Boolean), ['stopIfIdleHere'], 'one local activity: the stop');
    assert.equal(span.length, 7, `policy suspend events: ${span.map((e) => e.eventType).join(' ')}`);
    // The user's wake ran its workflow tasks at user priority, and left the workflow at the ladder's.
    const options = events.filter((e) => e.workflowExecutionOptionsUpdatedEventAttributes).map((e) => e.workflowExecutionOptionsUpdatedEventAttributes!.priority?.priorityKey);
    assert.deepEqual(options.slice(-2), [2, 4], `priority set around the wake: ${options}`);
    const info = await handle.describe();
    assert.equal(info.raw.workflowExecutionInfo?.priority?.priorityKey, 4, 'at the ladder priority between user moves');
  });

  it("the idle ladder's stop on a worker that is not the holder: the local try answers not here and the holder's queue gets the task", async () => {
    // The file's host runs no workflows; the only workflow worker is another host's (it tries the stop locally).
    const queue = uniqueQueue('dev-remote-stop');
    const files = await startTestHost({ connection: server.connection, client: server.client, taskQueue: queue, hostId: 'host-files', hostOnly: true });
    const elsewhere = await Worker.create({
      connection: server.connection,
      namespace: server.namespace,
      taskQueue: queue,
      ...(await workflowBundleOption()),
      identity: 'workflows-of-host-other',
      activities: {
        ...createHostPickerActivities({ client: server.client, hostInfo: () => files.host.hostInfo }),
        ...createStorageActivities(files.cfg),
        ...createLocalStopActivities({ hostId: 'host-other', fence: files.host.fence, stopIfIdle: async () => assert.fail('not the holder: must not stop') }),
      },
    });
    const wb2 = clientFor(server.client, queue);
    await elsewhere.runUntil(async () => {
      // A tenant of its own: the list test below describes every acme workspace, and nothing serves this queue after.
      await wb2.create({ workspaceId: 'remote-stop', tenant: 'remote', policy: { suspendAfter: '2s' } });
      assert.equal((await wb2.describe('remote-stop')).host, 'host-files');
      await eventually(async () => (await wb2.describe('remote-stop')).state === 'suspended', 'policy suspend', 30_000);
      const d = await wb2.describe('remote-stop');
      assert.match(d.ledger.at(-1)?.detail ?? '', /instance stopped on host-files/);
      const { queued, local } = activityCounts((await server.client.workflow.getHandle(workflowIdFor('remote-stop')).fetchHistory()).events ?? []);
      assert.equal(local.get('stopIfIdleHere'), 1, 'tried locally once');
      assert.equal(queued.get('stopIfIdle'), 1, "then one task on the holder's queue");
    });
    await server.client.workflow.getHandle(workflowIdFor('remote-stop')).terminate('test over: its workers stop');
    await files.stop();
  });

  it('a warm wake of an active workspace does no work', async () => {
    await wb.create({ workspaceId: 'warm', tenant: 'acme' });
    const before = await activityCount('warm');
    for (let i = 0; i < 5; i++) {
      const r = await wb.wake('warm');
      assert.equal(r.path, 'warm');
    }
    assert.equal(await activityCount('warm'), before, 'no activity ran for a warm wake');
  });

  it('wakes from suspended (local file) and from frozen (cold copy)', async () => {
    await wb.create({ workspaceId: 'sleeper', tenant: 'acme' });
    await wb.putFile('sleeper', 'workspace', '/a', Buffer.from('1'));
    await wb.transition('sleeper', 'suspended');
    const local = await wb.wake('sleeper');
    assert.equal(local.path, 'local');
    assert.equal((await wb.getFile('sleeper', 'workspace', '/a')).toString(), '1');
    await wb.transition('sleeper', 'suspended');
    await wb.transition('sleeper', 'frozen');
    const cold = await wb.wake('sleeper');
    assert.equal(cold.path, 'cold');
    assert.equal((await wb.getFile('sleeper', 'workspace', '/a')).toString(), '1');
    // A read on a suspended workspace wakes it transparently.
    await wb.transition('sleeper', 'suspended');
    assert.equal((await wb.getFile('sleeper', 'workspace', '/a')).toString(), '1');
    assert.equal((await wb.describe('sleeper')).state, 'active');
  });

  it('archive, wake from archive, and delete leaves no copy behind', async () => {
    await wb.create({ workspaceId: 'doomed', tenant: 'acme' });
    await wb.putFile('doomed', 'workspace', '/keep', Buffer.from('archived bytes'));
    await wb.transition('doomed', 'archived');
    let d = await wb.describe('doomed');
    assert.equal(d.state, 'archived');
    assert.ok(d.archive);
    assert.equal(sha256(new URL(d.archive.url).pathname), d.archive.sha256);
    await wb.wake('doomed');
    assert.equal((await wb.getFile('doomed', 'workspace', '/keep')).toString(), 'archived bytes');
    await wb.transition('doomed', 'suspended');
    await wb.transition('doomed', 'frozen');
    await wb.transition('doomed', 'archived');
    await assert.rejects(wb.transition('doomed', 'frozen'), /cannot move from archived to frozen/);
    await wb.transition('doomed', 'deleted');
    const leftovers = [
      ...listFilesRecursive(path.join(host.cfg.dataDir, 'live')),
      ...listFilesRecursive(path.join(host.cfg.dataDir, 'cold')),
      ...listFilesRecursive(path.join(host.cfg.dataDir, 'archive')),
    ].filter((f) => path.basename(f).startsWith('doomed'));
    // Its complete ledger stays (pages say who moved what, never data); no copy of its data does.
    assert.deepEqual(leftovers.filter((f) => !/\.ledger-\d{6}\.json(\.meta\.json)?$/.test(f)), [], 'no copy of the deleted workspace remains');
    // (The last page is written as the workflow ends, right after the delete's answer.)
    await eventually(async () => listFilesRecursive(path.join(host.cfg.dataDir, 'cold')).some((f) => /doomed\.ledger-000000\.json$/.test(f)), 'its ledger to be kept');
    const res = await server.client.workflow.getHandle(workflowIdFor('doomed')).result();
    assert.equal(res.state, 'deleted');
    const listed = await wb.list({ state: 'deleted' });
    assert.ok(listed.some((w) => w.workspaceId === 'doomed'));
  });

  it('list and search attributes agree with describe', async () => {
    const rows = await (async () => {
      for (let i = 0; i < 50; i++) {
        const r = await wb.list({ tenant: 'acme' });
        if (r.some((w) => w.workspaceId === 'sleeper' && w.state === 'active')) return r;
        await new Promise((res) => setTimeout(res, 200));
      }
      return wb.list({ tenant: 'acme' });
    })();
    for (const row of rows) {
      const d = await wb.describe(row.workspaceId);
      assert.equal(row.tenant, 'acme');
      assert.equal(row.state, d.state, `${row.workspaceId} listed as ${row.state}, describe says ${d.state}`);
    }
    const suspended = await wb.list({ state: 'suspended' });
    assert.ok(suspended.every((w) => w.state === 'suspended'));
  });

  it('an export holds only the workspace volume', async () => {
    await wb.putFile('warm', 'workspace', '/public.md', Buffer.from('public'));
    await wb.putFile('warm', 'memory', '/private.md', Buffer.from('private'));
    const out = path.join(tempDir(), 'export.sqlite');
    await wb.exportTo('warm', out);
    const v = Vfs.open(out, { create: false });
    try {
      assert.equal(v.get('workspace', '/public.md')?.toString(), 'public');
      assert.equal(v.list('memory').length, 0);
      assert.equal(v.list('tmp').length, 0);
    } finally {
      v.close();
    }
  });
  it('a freeze whose copy does not restore intact leaves the workspace suspended with its file, the reason in the ledger', async () => {
    await wb.create({ workspaceId: 'damaged', tenant: 'acme' });
    for (let i = 0; i < 40; i++) await wb.putFile('damaged', 'workspace', `/f${i}`, Buffer.alloc(2000, i));
    await wb.transition('damaged', 'suspended');
    const d0 = await wb.describe('damaged');
    const file = d0.filePath!;
    // Fold the WAL so the damage lands in the file itself, then damage a b-tree page (it still opens).
    const v = Vfs.open(file, { create: false });
    v.checkpoint();
    v.close();
    corruptBtreePage(file, 2);
    const damaged = sha256(file);

    await assert.rejects(wb.transition('damaged', 'frozen'), /integrity check/);
    const d = await wb.describe('damaged');
    assert.equal(d.state, 'suspended');
    assert.equal(d.filePath, file);
    assert.equal(sha256(file), damaged, 'the local file is exactly as it was');
    const last = d.ledger.at(-1)!;
    assert.deepEqual([last.from, last.to, last.outcome], ['suspended', 'frozen', 'failed']);
    assert.match(last.detail ?? '', /fails SQLite's integrity check/);
    const coldDir = path.join(host.cfg.dataDir, 'cold');
    const left = fs.existsSync(coldDir) ? fs.readdirSync(coldDir).filter((n) => n.startsWith('damaged.')) : [];
    assert.deepEqual(left, [], 'no unverified copy is left in cold storage');
  });
  it('a resume on the same host continues its replica generation, and the replica keeps the writes after it', async () => {
    await wb.create({ workspaceId: 'continued', tenant: 'acme' });
    for (let i = 0; i < 20; i++) await wb.putFile('continued', 'workspace', `/a${i}`, Buffer.alloc(5000, i));
    await wb.transition('continued', 'suspended');
    await wb.wake('continued');
    await wb.putFile('continued', 'workspace', '/after-resume', Buffer.from('B'));
    const d = await wb.describe('continued');
    assert.equal(d.replicas.length, 1, 'one generation across the resume');
    const url = d.replicas[0]!.url;
    await eventually(async () => {
      const out = path.join(tempDir('wb-replica-'), 'r.sqlite');
      await restoreReplica({ replicaUrl: url, outFile: out });
      const v = Vfs.open(out, { create: false, readonly: true });
      try {
        return v.stat('workspace', '/after-resume') !== null && v.stat('workspace', '/a19') !== null;
      } finally {
        v.close();
      }
    }, 'the write after the resume in the replica', 15_000, 500);
  });
});
