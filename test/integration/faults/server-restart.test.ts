/**
 * Fault injection: the Temporal dev server goes away while idle-ladder timers are pending, stays down past the
 * deadlines, and comes back on the same database file and port. The transitions must fire after the restart,
 * each exactly once, by the policy, and the workspaces' bytes must be intact.
 *
 * Three outages on one server database: a clean stop (SIGTERM) and a crash (SIGKILL) while the timers are
 * pending, then a crash in the middle of a (throttled) freeze: it completes once, with one cold copy. The worker host keeps
 * its NativeConnection across the outage if the SDK reconnects on its own; if its workers end instead, the host
 * is restarted on the same data dir (what a supervisor would do), and the test says which happened.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import path from 'node:path';
import { NativeConnection } from '@temporalio/worker';
import { startDevServer, type DevServer } from '../../../src/embedded/dev-server';
import { freePorts } from '../../../harness/temporal';
import { clientFor, eventually, startTestHost, TestHost, tempDir, uniqueQueue } from '../../../harness/stack';
import { WorkbooksClient } from '../../../src/client/workbooks-client';
import type { WorkspaceDescription } from '../../../src/contract/types';
import { walkLedger } from './ledger-check';

const SUSPEND_AFTER_MS = 8_000;
const FREEZE_AFTER_MS = 6_000;
const POLICY = { suspendAfter: '8s', freezeAfter: '6s' };
const NAMESPACE = 'default';
/** Copies (freeze upload, verify, restore) at 2 MB/s: an 8 MB file keeps a freeze busy for several seconds. */
const THROTTLE_BPS = 2 * 1024 * 1024;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('Temporal dev server restarted while idle timers are pending', { concurrency: false }, () => {
  const serverDir = tempDir('wb-restart-server-');
  const hostDir = tempDir('wb-restart-host-');
  const taskQueue = uniqueQueue('restart');
  let port: number;
  let uiPort: number;
  let server: DevServer | null = null;
  let native: NativeConnection | null = null;
  let clientConn: Connection | null = null;
  let wb: WorkbooksClient;
  let host: TestHost | null = null;
  let hostEnded: string | null = null;
  const hostRestarts: string[] = [];
  const files = new Map<string, Buffer>();
  /** When each workspace was last written (the host reports it when the idle timer asks). */
  const lastWrite = new Map<string, number>();

  async function startServer(): Promise<void> {
    // Same data dir (so the same temporal.db) and the same ports every time.
    server = await startDevServer({ dataDir: serverDir, port, uiPort, headless: true, namespace: NAMESPACE, startTimeoutMs: 60_000 });
  }

  async function startHost(): Promise<void> {
    native = await NativeConnection.connect({ address: server!.address });
    hostEnded = null;
    const h = await startTestHost({ connection: native, client: wb.client, taskQueue, hostId: 'restart-host', dataDir: hostDir, copyThrottleBps: THROTTLE_BPS });
    h.host.done.then(
      () => (hostEnded ??= 'workers stopped'),
      (err: Error) => (hostEnded ??= `workers failed: ${err.message.split('\n')[0]}`),
    );
    host = h;
  }

  /** After the server is back: keep the host if its workers still run, else start it again on the same data dir. */
  async function ensureHost(what: string): Promise<void> {
    // Give a dead worker a moment to notice (its polls fail while the server is down).
    await sleep(1_000);
    if (hostEnded === null) {
      console.log(`server-restart: after the ${what}, the worker host's workers kept running on their connection`);
      return;
    }
    hostRestarts.push(`${what}: ${hostEnded}`);
    console.log(`server-restart: after the ${what}, the worker host had ended (${hostEnded}); restarting it`);
    await host!.stop().catch(() => undefined);
    await native!.close().catch(() => undefined);
    await startHost();
  }

  async function createSet(prefix: string, n: number): Promise<string[]> {
    const ids = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
    await Promise.all(
      ids.map(async (id, i) => {
        await wb.create({ workspaceId: id, tenant: 'restart', policy: POLICY });
        const data = crypto.randomBytes(256 * 1024 + i);
        files.set(id, data);
        await wb.putFile(id, 'workspace', '/data.bin', data);
        lastWrite.set(id, Date.now());
      }),
    );
    return ids;
  }

  /**
   * When each workspace is due to be suspended: its timer (`nextAutoAt`) or, if it was written after the
   * workflow last looked, its last write plus the rung (the timer then re-arms to that).
   */
  async function suspendDeadlines(ids: string[]): Promise<{ first: number; last: number }> {
    const ds = await Promise.all(ids.map((id) => wb.describe(id)));
    for (const d of ds) {
      assert.equal(d.state, 'active', `${d.workspaceId} is still active before the outage`);
      assert.equal(d.nextAutoTo, 'suspended');
    }
    const due = ds.map((d) => Math.max(Date.parse(d.nextAutoAt!), lastWrite.get(d.workspaceId)! + SUSPEND_AFTER_MS));
    return { first: Math.min(...due), last: Math.max(...due) };
  }

  async function takeDown(how: 'SIGTERM' | 'SIGKILL'): Promise<void> {
    if (how === 'SIGTERM') {
      await server!.stop();
    } else {
      const s = server!;
      process.kill(s.pid, 'SIGKILL');
      await eventually(
        async () => {
          try {
            process.kill(s.pid, 0);
            return false;
          } catch {
            return true;
          }
        },
        'the killed server to be gone',
        10_000,
        50,
      );
      await s.stop(); // observes the exit, drops its watchdog
    }
  }

  /** Takes the server down before the suspend deadlines of `ids`, keeps it down past them; returns when it restarted. */
  async function outage(ids: string[], how: 'SIGTERM' | 'SIGKILL'): Promise<number> {
    const { first, last: deadline } = await suspendDeadlines(ids);
    assert.ok(Date.now() < first - 1_000, `the server goes down before the first suspend is due (${first - Date.now()} ms left; setup too slow?)`);
    await takeDown(how);
    // Stay down until every suspend deadline has passed.
    await sleep(Math.max(0, deadline - Date.now()) + 2_000);
    for (const id of ids) assert.ok(Date.now() > deadline, `${id}'s deadline passed during the outage`);
    const restartedAt = Date.now();
    await startServer();
    await ensureHost(how === 'SIGTERM' ? 'clean stop' : 'kill -9');
    return restartedAt;
  }

  async function waitFrozen(ids: string[]): Promise<WorkspaceDescription[]> {
    return Promise.all(
      ids.map((id) =>
        eventually(
          async () => {
            const d = await wb.describe(id);
            return d.state === 'frozen' && d.busy === null && d.pendingCommands === 0 ? d : null;
          },
          `${id} to be frozen after the restart`,
          90_000,
          250,
        ),
      ),
    );
  }

  function checkLadder(d: WorkspaceDescription, restartedAt: number): void {
    const id = d.workspaceId;
    walkLedger(d.ledger, 'created', id);
    const done = d.ledger.filter((e) => e.outcome === 'done');
    const moves = done.map((e) => `${e.from}->${e.to} by ${e.by}`);
    assert.deepEqual(moves, ['created->active by workbooks', 'active->suspended by policy', 'suspended->frozen by policy'], `${id}: ${JSON.stringify(d.ledger)}`);
    assert.deepEqual(d.ledger.filter((e) => e.outcome !== 'done'), [], `${id}: refused or failed moves`);
    const [, suspended, frozen] = done;
    // The suspend fired once the server was back, not before the outage; the freeze waited its full rung after it.
    assert.ok(Date.parse(suspended!.at) > restartedAt, `${id}: suspended at ${suspended!.at}, before the server came back`);
    assert.ok(Date.parse(frozen!.at) - Date.parse(suspended!.at) >= FREEZE_AFTER_MS, `${id}: frozen ${frozen!.at} less than the freeze rung after suspended ${suspended!.at}`);
    assert.ok(d.cold, `${id}: frozen without a cold copy`);
    assert.equal(d.filePath, null);
  }

  async function checkBytes(ids: string[]): Promise<void> {
    for (const id of ids) {
      const got = await wb.getFile(id, 'workspace', '/data.bin');
      assert.ok(got.equals(files.get(id)!), `${id}: /data.bin differs after the restart`);
      assert.equal((await wb.describe(id)).state, 'active');
    }
  }

  before(async () => {
    [port, uiPort] = await freePorts(2);
    await startServer();
    clientConn = await Connection.connect({ address: server!.address });
    wb = clientFor(new Client({ connection: clientConn, namespace: NAMESPACE }), taskQueue);
    await startHost();
  });

  after(async () => {
    await host?.stop().catch(() => undefined);
    await native?.close().catch(() => undefined);
    await clientConn?.close().catch(() => undefined);
    await server?.stop();
    fs.rmSync(serverDir, { recursive: true, force: true });
    fs.rmSync(hostDir, { recursive: true, force: true });
  });

  let cleanIds: string[] = [];
  let cleanFrozen: WorkspaceDescription[] = [];

  it('clean stop (SIGTERM): every workspace is suspended then frozen once, by policy, after the restart', async () => {
    cleanIds = await createSet('calm', 3);
    const restartedAt = await outage(cleanIds, 'SIGTERM');
    cleanFrozen = await waitFrozen(cleanIds);
    for (const d of cleanFrozen) checkLadder(d, restartedAt);
  });

  it('crash (kill -9): the same, and the workspaces frozen before the crash are untouched by it', async () => {
    const ids = await createSet('crash', 3);
    const restartedAt = await outage(ids, 'SIGKILL');
    const frozen = await waitFrozen(ids);
    for (const d of frozen) checkLadder(d, restartedAt);
    // The first set sat frozen through the crash: same ledger, same cold copy.
    for (const before of cleanFrozen) {
      const now = await wb.describe(before.workspaceId);
      assert.equal(now.state, 'frozen');
      assert.deepEqual(now.ledger, before.ledger, `${before.workspaceId}: ledger changed across the crash`);
      assert.deepEqual(now.cold, before.cold);
    }
  });

  it('crash in the middle of a freeze: the freeze completes once, leaving exactly one cold copy', async () => {
    const id = 'midmove';
    await wb.create({ workspaceId: id, tenant: 'restart', policy: { suspendAfter: '1h', freezeAfter: '1h' } });
    const data = crypto.randomBytes(8 * 1024 * 1024);
    files.set(id, data);
    await wb.putFile(id, 'workspace', '/data.bin', data);
    await wb.transition(id, 'suspended', { reason: 'before the crash', by: 'test' });
    await wb.signal(id, 'freeze', { reason: 'interrupted', by: 'test' });
    await eventually(async () => (await wb.describe(id)).busy?.to === 'frozen', 'the freeze to be running', 15_000, 50);
    await sleep(1_000); // well into the copy (8 MB at 2 MB/s, then the verify)
    assert.equal((await wb.describe(id)).busy?.to, 'frozen', 'the freeze is still running when the server dies');
    await takeDown('SIGKILL');
    await sleep(4_000);
    await startServer();
    await ensureHost('kill -9 during a freeze');
    const [d] = await waitFrozen([id]);
    walkLedger(d!.ledger, 'created', id);
    assert.deepEqual(
      d!.ledger.map((e) => `${e.from}->${e.to} ${e.outcome} by ${e.by}`),
      ['created->active done by workbooks', 'active->suspended done by test', 'suspended->frozen done by test'],
      JSON.stringify(d!.ledger),
    );
    // One verified copy in cold storage, and nothing else of this workspace (no second copy, no partial file).
    const coldDir = path.join(hostDir, 'cold');
    const mine = fs.readdirSync(coldDir).filter((n) => n.includes(id)).sort();
    const copy = path.basename(new URL(d!.cold!.url).pathname);
    assert.deepEqual(mine.filter((n) => !n.endsWith('.meta.json')), [copy], `cold storage holds ${mine.join(', ')}`);
    const sum = crypto.createHash('sha256').update(fs.readFileSync(path.join(coldDir, copy))).digest('hex');
    assert.equal(sum, d!.cold!.sha256, 'the cold copy is what its checksum says');
    assert.equal(fs.existsSync(path.join(hostDir, 'live', `${id}.sqlite`)), false, 'the local copy was released');
    // What the crash did to the running activity (informational: a completion reported after the restart, or a retry).
    const history = await wb.handle(id).fetchHistory();
    const attempts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes).map((e) => e.activityTaskStartedEventAttributes!.attempt ?? 1);
    console.log(`server-restart: midmove freeze took ${Date.parse(d!.ledger.at(-1)!.at) - Date.parse(d!.ledger.at(-2)!.at)} ms after the suspend; activity attempts ${attempts.join(',')}`);
  });

  it('every workspace wakes from its cold copy with its bytes intact', async () => {
    await checkBytes([...cleanIds, 'crash-0', 'crash-1', 'crash-2', 'midmove']);
    if (hostRestarts.length) console.log(`server-restart: worker host restarted ${hostRestarts.length} time(s): ${hostRestarts.join('; ')}`);
  });
});
