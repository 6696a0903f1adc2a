/**
 * Crafted or tampered SQLite files (a trigger on `files`, a recursive trigger, a view, another column), on a real
 * dev server and host: placed as a live file while the host is down, as a stored copy, and as a clone template.
 * Each is refused before any statement of ours runs on it; the file is set aside or the move fails with the
 * reason in the ledger; the host keeps serving other workspaces.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { startTestDevServer } from '../../../harness/temporal';
import { clientFor, startTestHost, TestHost, tempDir, uniqueQueue } from '../../../harness/stack';
import type { WorkbooksClient } from '../../../src/client/workbooks-client';
import { liveFile, orphansDir } from '../../../src/host/data-dir';
import { Vfs } from '../../../src/vfs/vfs';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;
const never = { suspendAfter: 'never', freezeAfter: 'never' };

/** Adds `sql` to a closed workspace file (what someone with access to the disk or the store could do). */
function tamper(file: string, sql: string): void {
  const db = new Database(file);
  db.exec(sql);
  db.close();
}

describe('crafted workspace files are refused', { concurrency: false }, () => {
  let server: Server;
  let host: TestHost;
  let wb: WorkbooksClient;
  let queue: string;
  let dataDir: string;
  let stores: string;

  async function startHost(): Promise<void> {
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue: queue, hostId: 'crafted-host', dataDir, coldUrl: `file://${stores}/cold`, archiveUrl: `file://${stores}/archive`, replicaUrl: `file://${stores}/replicas` });
  }

  before(async () => {
    server = await startTestDevServer();
    queue = uniqueQueue('crafted');
    dataDir = tempDir('wb-crafted-host-');
    stores = tempDir('wb-crafted-stores-');
    wb = clientFor(server.client, queue);
    await startHost();
  });
  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  it('a trigger added to a suspended workspace\'s file while the host was down never runs; the file is set aside', { timeout: 180_000 }, async () => {
    await wb.create({ workspaceId: 'victim', tenant: 'acme', policy: never });
    await wb.create({ workspaceId: 'neighbour', tenant: 'globex', policy: never });
    await wb.putFile('victim', 'workspace', '/a', Buffer.from('kept'));
    await wb.putFile('victim', 'tmp', '/t', Buffer.from('scratch'));
    await wb.putFile('neighbour', 'workspace', '/n', Buffer.from('n'));
    await new Promise((r) => setTimeout(r, 2000)); // replicated
    await wb.transition('victim', 'suspended');
    await host.stop();
    // The wake clears tmp: a trigger on that delete would rewrite the workspace.
    tamper(liveFile({ dataDir }, 'victim'), "CREATE TRIGGER evil AFTER DELETE ON files BEGIN UPDATE files SET data = x'00'; END;");
    await startHost();

    await wb.wake('victim');
    assert.equal((await wb.getFile('victim', 'workspace', '/a')).toString(), 'kept', 'restored from the replica; the trigger never ran');
    const d = await wb.describe('victim');
    assert.match(d.ledger.at(-1)!.detail ?? '', /its schema is not ours \(unexpected trigger 'evil'\)/);
    const aside = fs.readdirSync(orphansDir({ dataDir })).filter((n) => n.startsWith('victim.') && n.endsWith('.sqlite'));
    assert.equal(aside.length, 1, 'the crafted file is kept aside for an operator');
    assert.equal((await wb.getFile('neighbour', 'workspace', '/n')).toString(), 'n', 'the host keeps serving other tenants');
  });

  it('a tampered stored copy is refused: the wake restores the replica, and the ledger says why the copy was skipped', { timeout: 180_000 }, async () => {
    await wb.create({ workspaceId: 'stored', tenant: 'acme', policy: never });
    await wb.putFile('stored', 'workspace', '/a', Buffer.from('kept'));
    await wb.transition('stored', 'suspended');
    await wb.transition('stored', 'frozen');
    const cold = (await wb.describe('stored')).cold!;
    // Tampered in place: sha256 no longer matches, so the copy is refused before it is ever opened.
    tamper(fileURLToPath(cold.url), 'CREATE VIEW v AS SELECT * FROM files;');
    await wb.wake('stored');
    assert.equal((await wb.getFile('stored', 'workspace', '/a')).toString(), 'kept');
    assert.match((await wb.describe('stored')).ledger.at(-1)!.detail ?? '', /skipped: stored copy .* read as/);
  });

  it('a crafted clone template is refused: the clone fails with the reason and nothing is created', { timeout: 120_000 }, async () => {
    await wb.create({ workspaceId: 'tpl', tenant: 'acme', policy: never });
    await wb.putFile('tpl', 'workspace', '/a', Buffer.from('a'));
    await wb.transition('tpl', 'suspended');
    // A template suspended on this host is cloned from its closed file.
    tamper(liveFile({ dataDir }, 'tpl'), 'ALTER TABLE files ADD COLUMN owner TEXT;');
    await assert.rejects(wb.create({ workspaceId: 'from-tpl', tenant: 'acme', template: 'tpl', policy: never }), /schema is not ours \(table 'files' is defined differently\)/);
    assert.equal(fs.existsSync(liveFile({ dataDir }, 'from-tpl')), false, 'no file was placed');
    assert.throws(() => Vfs.open(liveFile({ dataDir }, 'tpl'), { create: false }), /schema is not ours/);
  });
});
