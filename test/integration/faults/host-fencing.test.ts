/**
 * Hosts that misbehave, with real worker processes (`workbooks worker`), a real dev server and the real
 * litestream binary:
 * - a host paused (SIGSTOP) past its timeout while its workspace is written: the workspace moves to the other
 *   host with every acknowledged write, and the paused host, once it runs again, refuses the old placement;
 * - a host whose file-activity slots are all taken by a long (throttled) copy is waited for, not declared gone;
 * - a host killed for good and a new host started on the same data-server address: the first read recovers the
 *   workspace from its replica;
 * - one host, replication off, paused while a move waits on it: the newest write survives a suspend and freeze;
 * - cold URL = archive URL with replication off: active → archived → active keeps every byte.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Worker } from '@temporalio/worker';
import { startTestDevServer, freePort } from '../../../harness/temporal';
import { clientFor, eventually, startTestHost, tempDir, uniqueQueue, workflowBundle, TEST_DATA_KEY } from '../../../harness/stack';
import { kill9, spawnWorker } from '../../../harness/worker-process';
import { WorkbooksClient } from '../../../src/client/workbooks-client';
import { liveFile, orphansDir } from '../../../src/host/data-dir';
import { isState } from '../../../src/lifecycle';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const never = { suspendAfter: 'never', freezeAfter: 'never' };

/** A `workbooks worker` process for one test block, with shared stores. */
function hosts(getServer: () => Server, queue: () => string, shared: () => string, extraEnv: Record<string, string> = {}) {
  const procs: Record<string, ChildProcess | null> = {};
  const dirs: Record<string, string> = {};
  return {
    procs,
    dirs,
    async start(host: string, opts: { port?: number; env?: Record<string, string> } = {}): Promise<ChildProcess> {
      dirs[host] ??= tempDir(`wb-${host}-`);
      const child = await spawnWorker({
        host,
        dataDir: dirs[host]!,
        port: opts.port,
        env: {
          TEMPORAL_ADDRESS: getServer().address,
          WORKBOOKS_TASK_QUEUE: queue(),
          WORKBOOKS_COLD_URL: `file://${path.join(shared(), 'cold')}`,
          WORKBOOKS_ARCHIVE_URL: `file://${path.join(shared(), 'archive')}`,
          WORKBOOKS_REPLICA_URL: `file://${path.join(shared(), 'replicas')}`,
          ...extraEnv,
          ...opts.env,
        },
      });
      procs[host] = child;
      return child;
    },
    async stopAll(): Promise<void> {
      for (const p of Object.values(procs)) {
        if (p && p.exitCode === null && p.signalCode === null) p.kill('SIGCONT');
        await kill9(p);
      }
    },
  };
}

/** A request straight to a host's data server with a given placement. */
async function directPut(endpoint: string, id: string, p: string, body: string, placement: number): Promise<{ status: number; code?: string }> {
  try {
    const res = await fetch(`${endpoint}/workspaces/${id}/files/workspace${p}`, {
      method: 'PUT',
      body,
      headers: { 'x-workbooks-placement': String(placement), authorization: `Bearer ${TEST_DATA_KEY.grantFor(id, placement, ['write'])}` },
      signal: AbortSignal.timeout(10_000),
    });
    const j = (await res.json().catch(() => ({}))) as { error?: { code?: string } };
    return { status: res.status, code: j.error?.code };
  } catch (err) {
    return { status: 0, code: (err as Error).message };
  }
}

/** The events of a workspace's history from `since` (ms) on, one line each: seconds after `since`, type, detail. */
async function timeline(wb: WorkbooksClient, id: string, since: number): Promise<string> {
  const h = await wb.handle(id).fetchHistory();
  const lines: string[] = [];
  const scheduled = new Map<string, string>();
  for (const e of h.events ?? []) {
    const at = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    const type = String(e.eventType ?? '').replace('EVENT_TYPE_', '');
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), `${s.activityType?.name}@${s.taskQueue?.name}`);
    if (at < since) continue;
    const ref = e.activityTaskTimedOutEventAttributes?.scheduledEventId ?? e.activityTaskStartedEventAttributes?.scheduledEventId ?? e.activityTaskCompletedEventAttributes?.scheduledEventId;
    const what = s ? `${s.activityType?.name}@${s.taskQueue?.name}` : ref ? scheduled.get(String(ref)) ?? '' : '';
    const why = e.activityTaskTimedOutEventAttributes?.failure?.timeoutFailureInfo?.timeoutType ?? e.workflowTaskTimedOutEventAttributes?.timeoutType ?? '';
    lines.push(`#   +${((at - since) / 1000).toFixed(1)}s ${type} ${what} ${why ? String(why) : ''}`.trimEnd());
  }
  return lines.join('\n');
}

/** A dev server, a client and `workbooks worker` processes for one describe block (up in before, down in after). */
function cluster(name: string, extraEnv: Record<string, string> = {}, beforeStop: () => Promise<void> = async () => undefined) {
  const c = { server: undefined as unknown as Server, wb: undefined as unknown as WorkbooksClient, queue: '', shared: '' };
  const h = hosts(() => c.server, () => c.queue, () => c.shared, extraEnv);
  before(async () => {
    c.server = await startTestDevServer();
    c.queue = uniqueQueue(name);
    c.shared = tempDir(`wb-${name}-shared-`);
    c.wb = clientFor(c.server.client, c.queue);
  });
  after(async () => {
    await beforeStop();
    await h.stopAll();
    await c.server?.stop();
  });
  return Object.assign(c, { h });
}

describe('a host paused past its timeout is fenced', { concurrency: false }, () => {
  const c = cluster('fence');

  before(async () => {
    c.wb.dataTimeoutMs = 2000;
    await c.h.start('host-a');
    await c.h.start('host-b');
  });

  it('keeps every acknowledged write and refuses writes on the old host once it runs again', { timeout: 240_000 }, async () => {
    await c.wb.create({ workspaceId: 'fz', tenant: 'acme', hostTimeoutSeconds: 3, policy: never });
    const d0 = await c.wb.describe('fz');
    const paused = d0.host!;
    const other = paused === 'host-a' ? 'host-b' : 'host-a';
    assert.ok(d0.placement !== null && d0.placement >= 1, `served under a placement: ${d0.placement}`);
    const acked: string[] = [];
    for (let i = 0; i < 20; i++) {
      await c.wb.putFile('fz', 'workspace', `/w/${i}`, Buffer.from(`w${i}`));
      acked.push(`/w/${i}`);
    }

    // A writer that keeps going through the pause: only what it got an answer for counts as acknowledged.
    let stop = false;
    const failures: string[] = [];
    const writer = (async () => {
      for (let k = 0; !stop && k < 400; k++) {
        const p = `/live/${k}`;
        try {
          await c.wb.putFile('fz', 'workspace', p, Buffer.from(p));
          acked.push(p);
        } catch (err) {
          failures.push(`${p}: ${(err as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    c.h.procs[paused]!.kill('SIGSTOP');
    const moved = await eventually(async () => {
      const d = await c.wb.describe('fz');
      return d.host === other && d.state === 'active' && !d.busy ? d : null;
    }, `fz to move to ${other}`, 120_000, 250);
    console.log(`# ${paused} paused: fz active on ${other} after ${Date.now() - t0} ms (host timeout 3 s, lease 3 s)`);
    console.log(`# where the time went:\n${await timeline(c.wb, 'fz', t0)}`);
    assert.ok(moved.placement! > d0.placement!, 'a new placement');
    const before = acked.length;
    await eventually(async () => acked.length >= before + 5, 'writes to go on on the new host', 30_000, 100);
    stop = true;
    await writer;

    c.h.procs[paused]!.kill('SIGCONT');
    // At once, the old host refuses the old placement (its lease lapsed while it was stopped)...
    const first = await directPut(d0.endpoint!, 'fz', '/after-resume', 'stale', d0.placement!);
    assert.ok(first.status === 503 || first.status === 409, `refused at once, got ${first.status} ${first.code}`);
    assert.ok(first.code === 'fenced' || first.code === 'not_here', String(first.code));
    // ...and once it can ask the workflow, it learns the workspace is elsewhere: the copy is set aside.
    await eventually(async () => (await directPut(d0.endpoint!, 'fz', '/after-resume', 'stale', d0.placement!)).code === 'not_here' || null, 'the old host to answer not_here', 30_000, 250);
    await eventually(async () => !fs.existsSync(liveFile({ dataDir: c.h.dirs[paused]! }, 'fz')) || null, 'the stale copy to leave live/', 30_000, 250);
    assert.ok(fs.readdirSync(orphansDir({ dataDir: c.h.dirs[paused]! })).some((n) => n.startsWith('fz.')), 'kept aside in orphans/');

    for (const p of acked) assert.equal((await c.wb.getFile('fz', 'workspace', p)).toString(), p.startsWith('/w/') ? `w${p.slice(3)}` : p, `acknowledged ${p}`);
    await assert.rejects(c.wb.getFile('fz', 'workspace', '/after-resume'), /no file/);
    const d = await c.wb.describe('fz');
    assert.ok(isState(d.state));
    assert.equal(d.state, 'active');
    assert.equal(d.host, other);
    assert.ok(d.ledger.some((e) => /did not take work for 3s nor answer a liveness ping/.test(e.detail ?? '')), JSON.stringify(d.ledger.at(-1)));
    console.log(`# ${acked.length} acknowledged writes all readable; ${failures.length} unacknowledged during the pause`);
  });
});

describe('a busy host is waited for', { concurrency: false }, () => {
  const c = cluster('busy', { WORKBOOKS_HOST_SLOTS: '1', WORKBOOKS_COPY_THROTTLE_BPS: String(2 * 1024 * 1024) });
  // One file-activity slot, and copies at 2 MiB/s: a freeze of 12 MiB holds the slot for seconds.

  before(async () => {
    await c.h.start('host-a');
  });

  it('a host whose slots are all taken by a long copy is not declared gone', { timeout: 180_000 }, async () => {
    await c.wb.create({ workspaceId: 'big', tenant: 'acme', hostTimeoutSeconds: 2, policy: never });
    await c.wb.create({ workspaceId: 'small', tenant: 'acme', hostTimeoutSeconds: 2, policy: never });
    await c.wb.putFile('big', 'workspace', '/blob', crypto.randomBytes(12 * 1024 * 1024));
    await c.wb.putFile('small', 'workspace', '/keep', Buffer.from('kept'));
    await c.wb.transition('big', 'suspended');
    const freezing = c.wb.transition('big', 'frozen');
    await eventually(async () => (await c.wb.describe('big')).busy?.to === 'frozen' || null, 'the freeze to start');
    await new Promise((r) => setTimeout(r, 500));
    const t0 = Date.now();
    await c.wb.transition('small', 'suspended');
    const waited = Date.now() - t0;
    await freezing;
    const d = await c.wb.describe('small');
    const last = d.ledger.at(-1)!;
    assert.equal(last.outcome, 'done');
    assert.match(last.detail ?? '', /instance stopped on host-a/, `not treated as lost: ${last.detail}`);
    assert.equal(d.host, 'host-a');
    assert.ok(waited > 2000, `the stop waited past the host timeout for the busy slot (${waited} ms)`);
    const history = JSON.stringify(await c.wb.handle('small').fetchHistory());
    assert.match(history, /"ping"/, 'the host was asked on its liveness c.queue');
    assert.equal((await c.wb.getFile('small', 'workspace', '/keep')).toString(), 'kept');
    console.log(`# small's stop waited ${waited} ms behind big's freeze on the only slot; host answered its liveness ping`);
  });
});

describe('a replacement host on a dead host\'s address', { concurrency: false }, () => {
  const c = cluster('readdr');


  it('answers not_here, and the first read recovers the workspace from its replica', { timeout: 180_000 }, async () => {
    const port = await freePort();
    await c.h.start('h1', { port });
    await c.wb.create({ workspaceId: 'dr1', tenant: 'acme', hostTimeoutSeconds: 3, policy: never });
    for (let i = 0; i < 10; i++) await c.wb.putFile('dr1', 'workspace', `/f/${i}`, Buffer.from(`f${i}`));
    // Acknowledged more than the replication lag (about 1 s) before the kill.
    await new Promise((r) => setTimeout(r, 3000));
    await kill9(c.h.procs.h1);
    await c.h.start('h2', { port });
    const d0 = await c.wb.describe('dr1');
    assert.equal(d0.endpoint, `http://127.0.0.1:${port}`, 'the workflow still names the old address');

    const t0 = Date.now();
    assert.equal((await c.wb.getFile('dr1', 'workspace', '/f/9')).toString(), 'f9');
    console.log(`# first read after h1 died and h2 took its address: ${Date.now() - t0} ms`);
    for (let i = 0; i < 10; i++) assert.equal((await c.wb.getFile('dr1', 'workspace', `/f/${i}`)).toString(), `f${i}`);
    const d = await c.wb.describe('dr1');
    assert.equal(d.host, 'h2');
    assert.match(d.ledger.at(-1)!.detail ?? '', /restored from replica/);
  });
});

describe('one host, replication off, paused while a move waits on it', { concurrency: false }, () => {
  let workflows: Worker | null = null;
  let running: Promise<void> | null = null;
  const c = cluster('onehost', { WORKBOOKS_REPLICA_URL: 'off' }, async () => {
    workflows?.shutdown();
    await running;
  });

  before(async () => {
    await c.h.start('host-a');
    // Workflow tasks must go on while the only host is stopped: a worker that runs workflows and nothing else.
    workflows = await Worker.create({ connection: c.server.connection, taskQueue: c.queue, workflowBundle: await workflowBundle(), identity: 'workflows-only' });
    running = workflows.run();
  });

  it('the newest write survives: a recovery never restores an older copy over it', { timeout: 180_000 }, async () => {
    await c.wb.create({ workspaceId: 'one', tenant: 'acme', hostTimeoutSeconds: 2, policy: never });
    await c.wb.putFile('one', 'workspace', '/v', Buffer.from('v1'));
    await c.wb.transition('one', 'suspended');
    await c.wb.transition('one', 'frozen');
    await c.wb.wake('one');
    await c.wb.putFile('one', 'workspace', '/v', Buffer.from('v2 newest'));

    c.h.procs['host-a']!.kill('SIGSTOP');
    await c.wb.transition('one', 'suspended');
    const lost = (await c.wb.describe('one')).ledger.at(-1)!;
    assert.match(lost.detail ?? '', /treated as lost/, 'the move saw the host as gone');
    c.h.procs['host-a']!.kill('SIGCONT');

    await c.wb.transition('one', 'frozen');
    const frozen = await c.wb.describe('one');
    assert.match(frozen.ledger.at(-1)!.detail ?? '', /the newer local file of placement \d+/, frozen.ledger.at(-1)!.detail);
    assert.equal((await c.wb.getFile('one', 'workspace', '/v')).toString(), 'v2 newest');
  });
});

describe('cold and archive at the same URL, replication off', { concurrency: false }, () => {
  let server: Server;
  let host: Awaited<ReturnType<typeof startTestHost>>;
  let wb: WorkbooksClient;
  let store: string;

  before(async () => {
    server = await startTestDevServer();
    const queue = uniqueQueue('sameurl');
    store = tempDir('wb-sameurl-');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue: queue, coldUrl: `file://${store}`, archiveUrl: `file://${store}`, replicaUrl: 'off' });
    wb = clientFor(server.client, queue);
  });
  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  it('active → archived → active keeps every byte (the archive it writes is never deleted)', { timeout: 120_000 }, async () => {
    const data = crypto.randomBytes(200_000);
    await wb.create({ workspaceId: 'same', tenant: 'acme', policy: never });
    await wb.putFile('same', 'workspace', '/data.bin', data);
    await wb.transition('same', 'suspended');
    await wb.transition('same', 'frozen');
    await wb.wake('same');
    await wb.transition('same', 'archived'); // same bytes as the cold copy: the same content-addressed key
    const d = await wb.describe('same');
    assert.ok(d.archive && fs.existsSync(new URL(d.archive.url).pathname), `the archive object exists: ${d.archive?.url}`);
    await wb.wake('same');
    assert.ok(crypto.createHash('sha256').update(await wb.getFile('same', 'workspace', '/data.bin')).digest('hex') === crypto.createHash('sha256').update(data).digest('hex'));
    // And from frozen: the archive is the cold object itself.
    await wb.transition('same', 'suspended');
    await wb.transition('same', 'frozen');
    await wb.transition('same', 'archived');
    await wb.wake('same');
    assert.equal((await wb.getFile('same', 'workspace', '/data.bin')).length, data.length);
  });
});

describe('a host killed for good in the middle of a move, another host alive', { concurrency: false }, () => {
  const c = cluster('killed');
  // host-a copies slowly, so the kill lands inside its copy.
  const slow = { WORKBOOKS_COPY_THROTTLE_BPS: String(1024 * 1024) };


  /** Waits until the workspace's pending activity `type` has reported copy progress (the kill lands mid-copy). */
  async function copying(id: string, type: string): Promise<void> {
    await eventually(async () => {
      const d = await c.wb.handle(id).describe();
      const pending = d.raw.pendingActivities ?? [];
      return pending.some((a) => a.activityType?.name === type && a.heartbeatDetails) || null;
    }, `${id}: ${type} under way`, 60_000, 100);
  }

  it('mid-freeze: the freeze completes from the other host, every byte kept', { timeout: 240_000 }, async () => {
    await c.h.start('host-a', { env: slow });
    const blob = crypto.randomBytes(6 * 1024 * 1024);
    await c.wb.create({ workspaceId: 'kf', tenant: 'acme', hostTimeoutSeconds: 3, policy: never });
    await c.wb.putFile('kf', 'workspace', '/blob', blob);
    await new Promise((r) => setTimeout(r, 2000)); // replicated
    await c.wb.transition('kf', 'suspended');
    const freezing = c.wb.transition('kf', 'frozen');
    await copying('kf', 'storeLocal');
    const t0 = Date.now();
    await kill9(c.h.procs['host-a']);
    await c.h.start('host-b');
    await freezing;
    const took = Date.now() - t0;
    const d = await c.wb.describe('kf');
    assert.equal(d.state, 'frozen');
    assert.match(d.ledger.at(-1)!.detail ?? '', /host-a did not take work .*recovered from .* on host-b/);
    assert.equal(crypto.createHash('sha256').update(await c.wb.getFile('kf', 'workspace', '/blob')).digest('hex'), crypto.createHash('sha256').update(blob).digest('hex'));
    console.log(`# killed mid-freeze: frozen from host-b ${took} ms after the kill (bound: 10 s sticky + 10 s heartbeat + 3 s + 8 s liveness + the copy)`);
    assert.ok(took < 120_000, `within the bound: ${took} ms`);
    await kill9(c.h.procs['host-b']);
  });

  it('mid-wake: the restore moves to the other host', { timeout: 240_000 }, async () => {
    await c.h.start('host-a', { env: slow });
    const blob = crypto.randomBytes(6 * 1024 * 1024);
    await c.wb.create({ workspaceId: 'kw', tenant: 'acme', hostTimeoutSeconds: 3, policy: never });
    await c.wb.putFile('kw', 'workspace', '/blob', blob);
    await c.wb.transition('kw', 'suspended');
    await c.wb.transition('kw', 'frozen');
    const waking = c.wb.wake('kw');
    await copying('kw', 'recoverLocal');
    const t0 = Date.now();
    await kill9(c.h.procs['host-a']);
    await c.h.start('host-b');
    const w = await waking;
    const took = Date.now() - t0;
    assert.equal(w.host, 'host-b');
    assert.equal((await c.wb.getFile('kw', 'workspace', '/blob')).length, blob.length);
    console.log(`# killed mid-wake: active on host-b ${took} ms after the kill`);
    assert.ok(took < 120_000, `within the bound: ${took} ms`);
  });
});
