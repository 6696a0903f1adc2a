/**
 * The embedded dev server's database (SQLite in WAL mode with synchronous=FULL, src/embedded/dev-server.ts) keeps
 * every acknowledged move through a crash: creates and suspends are acknowledged, the server is killed with SIGKILL
 * right after the last acknowledgement (while more moves are in flight), and restarted on the same database file.
 * Every acknowledged create must exist and every acknowledged suspend must be recorded (state suspended, its
 * ledger entry present). An existing database in the rollback journal switches to WAL on the next start.
 *
 * A SIGKILL tests that the server acknowledges only what it committed, and that SQLite recovers from its WAL;
 * what synchronous=FULL adds (the WAL fsynced at every commit) shows only on a power loss or an OS crash.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { startDevServer, type DevServer } from '../../src/embedded/dev-server';
import { freePorts } from '../../harness/temporal';
import { clientFor, eventually, startTestHost, TestHost, tempDir, uniqueQueue } from '../../harness/stack';

const NAMESPACE = 'default';
const ACKED = 10;

function journalMode(serverDir: string): string {
  const db = new Database(path.join(serverDir, 'temporal', 'temporal.db'), { readonly: true, fileMustExist: true });
  try {
    return String(db.pragma('journal_mode', { simple: true }));
  } finally {
    db.close();
  }
}

describe('embedded dev server: acknowledged moves survive kill -9', { concurrency: false }, () => {
  const serverDir = tempDir('wb-durable-server-');
  const hostDir = tempDir('wb-durable-host-');
  const taskQueue = uniqueQueue('durable');
  let server: DevServer | null = null;
  let native: NativeConnection | null = null;
  let clientConn: Connection | null = null;
  let host: TestHost | null = null;

  async function up(port: number, uiPort: number, extraArgs?: string[]) {
    server = await startDevServer({ dataDir: serverDir, port, uiPort, headless: true, namespace: NAMESPACE, extraArgs });
    native = await NativeConnection.connect({ address: server.address });
    clientConn = await Connection.connect({ address: server.address });
    const wb = clientFor(new Client({ connection: clientConn, namespace: NAMESPACE }), taskQueue);
    host = await startTestHost({ connection: native, client: wb.client, taskQueue, hostId: 'durable-host', dataDir: hostDir, replicaUrl: 'off' });
    return wb;
  }

  async function down(kill: boolean) {
    const s = server!;
    if (kill) process.kill(s.pid, 'SIGKILL');
    // The host's workers fail their polls once the server is gone: bounded, then let go.
    await Promise.race([host?.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 8_000))]);
    await native?.close().catch(() => undefined);
    await clientConn?.close().catch(() => undefined);
    await s.stop();
    server = null;
  }

  after(async () => {
    if (server) await down(false).catch(() => undefined);
    fs.rmSync(serverDir, { recursive: true, force: true });
    fs.rmSync(hostDir, { recursive: true, force: true });
  });

  it('keeps every acknowledged create and suspend, and a rollback-journal database switches to WAL', async () => {
    const [port, uiPort] = await freePorts(2);
    // First start as the embedded server ran before (rollback journal), then the default: it must switch.
    let wb = await up(port!, uiPort!, ['--sqlite-pragma', 'journal_mode=delete']);
    await wb.create({ workspaceId: 'before-wal', tenant: 't' });
    await down(false);
    assert.equal(journalMode(serverDir), 'delete');

    wb = await up(port!, uiPort!);
    assert.equal(journalMode(serverDir), 'wal', 'the default start turns the existing database to WAL');
    const acked: string[] = [];
    const ids = Array.from({ length: ACKED }, (_, i) => `w${i}`);
    await Promise.all(
      ids.map(async (id, i) => {
        await new Promise((r) => setTimeout(r, i * 50));
        await wb.create({ workspaceId: id, tenant: 't' });
        await wb.transition(id, 'suspended', { reason: 'durability', by: 'test' });
        acked.push(id);
      }),
    );
    // More moves in flight when the server dies (on a connection of their own, kept open: the client retries them
    // after the restart): they may or may not be recorded, but must not damage the rest.
    const lateConn = await Connection.connect({ address: server!.address });
    const late = clientFor(new Client({ connection: lateConn, namespace: NAMESPACE }), taskQueue);
    const inFlight = Promise.all(Array.from({ length: 6 }, (_, i) => late.create({ workspaceId: `late${i}`, tenant: 't' }).catch(() => undefined)));
    await new Promise((r) => setTimeout(r, 30));
    await down(true);
    assert.equal(acked.length, ACKED);

    wb = await up(port!, uiPort!);
    await Promise.race([inFlight, new Promise((r) => setTimeout(r, 20_000))]);
    await lateConn.close().catch(() => undefined);
    for (const id of ['before-wal', ...acked]) {
      const d = await eventually(() => wb.describe(id), `describe ${id} after the restart`, 30_000, 250);
      if (id === 'before-wal') {
        assert.equal(d.state, 'active');
        continue;
      }
      assert.equal(d.state, 'suspended', `${id}: acknowledged suspend lost`);
      assert.ok(d.ledger.some((e) => e.from === 'active' && e.to === 'suspended' && e.outcome === 'done'), `${id}: ledger entry of the suspend missing`);
    }
    await down(false);
    assert.equal(journalMode(serverDir), 'wal');
  });
});
