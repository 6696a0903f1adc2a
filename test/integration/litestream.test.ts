/**
 * Continuous replication with one real Litestream 0.5 daemon (src/replication): file:// replicas in a temp dir,
 * s3:// replicas on MinIO. The databases are written the way Vfs writes them (WAL, busy_timeout 5000,
 * synchronous NORMAL).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { Replicator } from '../../src/replication/replicator';
import { RestorePointError, deleteReplica, replicaInfo, restoreReplica } from '../../src/replication/restore';
import { ReplicaMissingError, ReplicationError } from '../../src/replication/errors';
import { localStateDir } from '../../src/replication/urls';
import { resolveBinary } from '../../src/tools';
import { s3Client, s3SettingsFromEnv } from '../../src/storage/s3-client';
import { MinioServer, startMinio } from '../../harness/minio';

let root: string;
let minio: MinioServer;
let env: NodeJS.ProcessEnv;
let rep: Replicator;
let counter = 0;
const daemonLog: string[] = [];

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const fresh = (name: string) => path.join(root, `${name}-${++counter}`);
const fileUrl = (name: string) => `file://${fresh(`replica-${name}`)}`;

/** A database written like Vfs writes its workspace files. */
function newDb(name = 'ws'): { file: string; db: Database.Database } {
  const file = `${fresh(name)}.db`;
  const db = new Database(file);
  db.pragma('busy_timeout = 5000');
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
  return { file, db };
}

function insert(db: Database.Database, values: string[]): void {
  const stmt = db.prepare('INSERT INTO t (v) VALUES (?)');
  db.transaction(() => {
    for (const v of values) stmt.run(v);
  })();
}

const batch = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** Restores `url` (optionally at `at`) into a new file and returns the values in `t`. */
async function restoredValues(url: string, at?: string): Promise<string[]> {
  const out = `${fresh('restored')}.db`;
  const { bytes } = await restoreReplica({ replicaUrl: url, outFile: out, at, env });
  assert.equal(bytes, fs.statSync(out).size);
  for (const side of ['-wal', '-shm']) assert.equal(fs.existsSync(out + side), false, `restore left ${out}${side} behind`);
  const db = new Database(out, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT v FROM t ORDER BY id').pluck().all() as string[]).slice();
  } finally {
    db.close();
  }
}

/** Whether a process runs (a zombie waiting for its reaper does not). */
function running(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

function rejectsWith(cls: new (...a: never[]) => Error, message?: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    if (message) assert.match((err as Error).message, message);
    return true;
  };
}

before(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'workbooks-litestream-test-'));
  minio = await startMinio();
  env = { ...process.env, ...minio.env };
  rep = await Replicator.start({ stateDir: path.join(root, 'state'), env, log: (l) => daemonLog.push(l) });
});

after(async () => {
  await rep?.stop();
  await minio?.stop();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe('one daemon, many databases', () => {
  it('replicates two databases to independent file:// replicas', async () => {
    const a = newDb('a');
    const b = newDb('b');
    const urlA = fileUrl('a');
    const urlB = fileUrl('b');
    try {
      await rep.register(a.file, urlA);
      await rep.register(b.file, urlB);
      await rep.register(a.file, urlA); // idempotent
      insert(a.db, batch('a', 50));
      insert(b.db, batch('b', 7));
      await rep.sync(a.file);
      await rep.sync(b.file);
      assert.deepEqual(await restoredValues(urlA), batch('a', 50));
      assert.deepEqual(await restoredValues(urlB), batch('b', 7));
      const regs = await rep.registered();
      assert.ok(regs.some((r) => r.dbPath === a.file && r.replicaUrl === urlA));
      assert.ok(regs.some((r) => r.dbPath === b.file && r.replicaUrl === urlB));
      // A different replica for a registered database is refused until it is unregistered.
      await assert.rejects(rep.register(a.file, fileUrl('other')), rejectsWith(ReplicationError, /already replicated to/));
      // Litestream keeps local state next to the file.
      assert.ok(fs.existsSync(localStateDir(a.file)));
    } finally {
      a.db.close();
      b.db.close();
      assert.equal(await rep.unregister(a.file), true);
      assert.equal(await rep.unregister(b.file), true);
    }
    assert.equal(await rep.unregister(a.file), false, 'unregister is idempotent');
    assert.equal(rep.replicaUrlOf(a.file), null);
  });

  it('ships a commit to the replica within about a second without sync()', async () => {
    const { file, db } = newDb('lag');
    const url = fileUrl('lag');
    await rep.register(file, url);
    insert(db, ['first']);
    await rep.sync(file);
    const lags: number[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        const before = (await replicaInfo(url, { env }))!.maxTxid;
        const value = `row-${i}`;
        insert(db, [value]);
        const t0 = Date.now();
        for (;;) {
          const info = await replicaInfo(url, { env });
          const seenAt = Date.now();
          if (info && info.maxTxid > before && (await restoredValues(url)).includes(value)) {
            lags.push(seenAt - t0);
            break;
          }
          assert.ok(Date.now() - t0 < 10_000, `row ${value} did not reach the replica within 10 s`);
          await sleep(20);
        }
        await sleep(Math.floor(Math.random() * 1000)); // do not sample in step with the daemon's 1 s cycle
      }
    } finally {
      db.close();
      await rep.unregister(file);
    }
    const sorted = [...lags].sort((x, y) => x - y);
    const median = (sorted[4]! + sorted[5]!) / 2;
    console.log(`# replication lag: median ${median} ms, min ${sorted[0]} ms, max ${sorted[9]} ms over ${lags.length} commits (poll step ~20 ms + a litestream ltx run)`);
    assert.ok(median < 2500, `median replication lag ${median} ms`);
  });

  it('unregister flushes the last writes before it returns', async () => {
    const { file, db } = newDb('flush');
    const url = fileUrl('flush');
    await rep.register(file, url);
    insert(db, batch('x', 200));
    db.close();
    assert.equal(await rep.unregister(file), true);
    assert.deepEqual(await restoredValues(url), batch('x', 200));
  });

  it('restores a point in time: batch A at T, not batch B written later', async () => {
    const { file, db } = newDb('pitr');
    const url = fileUrl('pitr');
    await rep.register(file, url);
    await rep.sync(file); // the first shipment (the empty table) is the earliest restorable point
    try {
      insert(db, batch('A', 20));
      // A point in time covers what had reached the replica by then (Litestream stamps shipment, not commit).
      await rep.sync(file);
      await sleep(50);
      const t = new Date().toISOString();
      await sleep(1200);
      insert(db, batch('B', 20));
      await rep.sync(file);
      assert.deepEqual(await restoredValues(url, t), batch('A', 20));
      assert.deepEqual(await restoredValues(url), [...batch('A', 20), ...batch('B', 20)]);
      const info = (await replicaInfo(url, { env }))!;
      assert.ok(info.earliestAt < t && t < info.latestAt, JSON.stringify(info));
      // Any time after the newest change is the newest state; the earliest point itself works too.
      assert.deepEqual(await restoredValues(url, new Date(Date.now() + 60_000).toISOString()), [...batch('A', 20), ...batch('B', 20)]);
      assert.deepEqual(await restoredValues(url, info.earliestAt), []);
      await assert.rejects(
        restoreReplica({ replicaUrl: url, outFile: `${fresh('early')}.db`, at: '2001-01-01T00:00:00Z', env }),
        rejectsWith(RestorePointError, /earlier than anything the replica retains/),
      );
    } finally {
      db.close();
      await rep.unregister(file);
    }
  });

  it('starts afresh after the file was replaced (resetLocalState)', async () => {
    const { file, db } = newDb('replaced');
    const url = fileUrl('replaced');
    await rep.register(file, url);
    insert(db, batch('old', 5));
    db.close();
    await rep.unregister(file);
    // Replace the file with a restored copy (as a resume from the replica does), then reset and register again.
    const copy = `${fresh('copy')}.db`;
    await restoreReplica({ replicaUrl: url, outFile: copy, env });
    for (const p of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(p, { force: true });
    fs.renameSync(copy, file);
    await rep.resetLocalState(file);
    assert.equal(fs.existsSync(localStateDir(file)), false);
    await rep.register(file, url);
    const db2 = new Database(file);
    db2.pragma('busy_timeout = 5000');
    insert(db2, batch('new', 3));
    db2.close();
    await rep.unregister(file);
    assert.deepEqual(await restoredValues(url), [...batch('old', 5), ...batch('new', 3)]);
  });
});

describe('s3:// replicas (MinIO)', () => {
  it('replicates, restores and deletes every object', async () => {
    const bucket = `replicas-${crypto.randomBytes(4).toString('hex')}`;
    await minio.createBucket(bucket);
    const client = s3Client(s3SettingsFromEnv(env));
    const keys = async (prefix: string) =>
      ((await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))).Contents ?? []).map((o) => o.Key!);
    const url = `s3://${bucket}/workspaces/w1/g1`;
    const { file, db } = newDb('s3');
    await rep.register(file, url);
    try {
      insert(db, batch('s3', 30));
      await rep.sync(file);
      assert.deepEqual(await restoredValues(url), batch('s3', 30));
      const info = await replicaInfo(url, { env });
      assert.ok(info && /^[0-9a-f]{16}$/.test(info.maxTxid), JSON.stringify(info));
    } finally {
      db.close();
      await rep.unregister(file);
    }
    const stored = await keys('workspaces/w1/');
    assert.ok(stored.length > 0 && stored.every((k) => /^workspaces\/w1\/g1\/[0-9a-f]{4}\/[0-9a-f]{16}-[0-9a-f]{16}\.ltx$/.test(k)), stored.join(', '));

    // Something that is not replica data under a prefix makes deleteReplica refuse (and delete nothing).
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'workspaces/w1/notes.txt', Body: 'keep me' }));
    await assert.rejects(deleteReplica(`s3://${bucket}/workspaces/w1`, { env }), rejectsWith(ReplicationError, /not Litestream replica data/));
    assert.equal((await keys('workspaces/w1/g1/')).length, stored.length);

    const { deleted } = await deleteReplica(url, { env });
    assert.equal(deleted, stored.length);
    assert.deepEqual(await keys('workspaces/w1/g1/'), []);
    assert.deepEqual(await keys('workspaces/w1/'), ['workspaces/w1/notes.txt']);
    assert.equal(await replicaInfo(url, { env }), null);
    await assert.rejects(restoreReplica({ replicaUrl: url, outFile: `${fresh('gone')}.db`, env }), rejectsWith(ReplicaMissingError));
    assert.deepEqual(await deleteReplica(url, { env }), { deleted: 0 }, 'deleting again is fine');
  });
});

describe('daemon failures', () => {
  it('restarts a daemon killed with SIGKILL and registers everything again', async () => {
    const { file, db } = newDb('killed');
    const url = fileUrl('killed');
    await rep.register(file, url);
    try {
      insert(db, batch('before', 10));
      await rep.sync(file);
      const pid0 = rep.pid()!;
      process.kill(pid0, 'SIGKILL');
      const t0 = Date.now();
      while (rep.pid() === pid0 || rep.pid() === null) {
        assert.ok(Date.now() - t0 < 10_000, 'the daemon was not restarted');
        await sleep(20);
      }
      await rep.ready();
      assert.ok(daemonLog.some((l) => l.includes(`daemon (pid ${pid0}) exited unexpectedly`)));
      assert.deepEqual(
        (await rep.registered()).filter((r) => r.dbPath === file),
        [{ dbPath: file, replicaUrl: url }],
      );
      insert(db, batch('after', 10));
      await rep.sync(file);
      assert.deepEqual(await restoredValues(url), [...batch('before', 10), ...batch('after', 10)]);
      // A command issued right as the daemon dies waits for the restarted one.
      insert(db, batch('again', 3));
      process.kill(rep.pid()!, 'SIGKILL');
      await rep.sync(file);
      assert.deepEqual(await restoredValues(url), [...batch('before', 10), ...batch('after', 10), ...batch('again', 3)]);
    } finally {
      db.close();
      await rep.unregister(file);
    }
  });

  it('registers a database again when the daemon lost it', async () => {
    const { file, db } = newDb('lost');
    const url = fileUrl('lost');
    await rep.register(file, url);
    try {
      insert(db, batch('one', 2));
      await rep.sync(file);
      // Someone unregisters it behind the replicator's back (the CLI over the same socket).
      const r = spawnSync(resolveBinary('litestream'), ['unregister', '-socket', path.join(root, 'state', 'litestream.sock'), file], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      insert(db, batch('two', 2));
      await rep.sync(file);
      assert.deepEqual(await restoredValues(url), [...batch('one', 2), ...batch('two', 2)]);
    } finally {
      db.close();
      await rep.unregister(file);
    }
  });

  it('a restarted worker stops the daemon its previous process left and re-registers its databases', async () => {
    const stateDir = fresh('state-crashed');
    const { file, db } = newDb('orphan');
    const url = fileUrl('orphan');
    // A worker process that registers a database, then dies without stopping its daemon.
    const modulePath = path.join(__dirname, '..', '..', 'src', 'replication', 'replicator.js');
    const script = `
      const { Replicator } = require(${JSON.stringify(modulePath)});
      (async () => {
        const r = await Replicator.start({ stateDir: ${JSON.stringify(stateDir)} });
        await r.register(${JSON.stringify(file)}, ${JSON.stringify(url)});
        process.stdout.write('READY ' + r.pid() + '\\n');
        setInterval(() => {}, 1000);
      })().catch((e) => { console.error(e); process.exit(1); });`;
    const worker = spawn(process.execPath, ['-e', script], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const orphanPid = await new Promise<number>((resolve, reject) => {
      let out = '';
      worker.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /READY (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      worker.once('exit', (code) => reject(new Error(`worker exited with ${code}`)));
    });
    worker.kill('SIGKILL');
    await new Promise((r) => worker.once('exit', r));
    assert.ok(running(orphanPid), 'the daemon outlived its worker');

    const again = await Replicator.start({ stateDir, env });
    try {
      assert.equal(running(orphanPid), false, 'the orphaned daemon was stopped');
      assert.notEqual(again.pid(), orphanPid);
      assert.deepEqual(await again.registered(), [{ dbPath: file, replicaUrl: url }]);
      insert(db, batch('later', 4));
      await again.sync(file);
      assert.deepEqual(await restoredValues(url), batch('later', 4));
    } finally {
      db.close();
      await again.unregister(file);
      await again.stop();
    }
  });
});

describe('input checks', () => {
  it('refuses bad database paths, replica URLs and times with clear errors', async () => {
    const { file, db } = newDb('inputs');
    db.close();
    await assert.rejects(rep.register('relative/ws.db', fileUrl('x')), rejectsWith(ReplicationError, /absolute path/));
    await assert.rejects(rep.register(`${root}/../x.db`, fileUrl('x')), rejectsWith(ReplicationError, /normalized/));
    await assert.rejects(rep.register(file, 'http://example.com/replica'), rejectsWith(ReplicationError, /unsupported scheme 'http:'/));
    await assert.rejects(rep.register(file, 'file://host/dir/x'), rejectsWith(ReplicationError, /no host/));
    await assert.rejects(rep.register(file, 'file:///replica'), rejectsWith(ReplicationError, /filesystem root/));
    await assert.rejects(rep.register(file, 's3://bucket'), rejectsWith(ReplicationError, /needs a prefix/));
    await assert.rejects(rep.register(file, 's3://Bad_Bucket/x'), rejectsWith(ReplicationError, /bucket name/));
    await assert.rejects(rep.register(file, 's3://bucket/x?endpoint=http://evil'), rejectsWith(ReplicationError, /environment/));
    await assert.rejects(rep.register(`${root}/missing.db`, fileUrl('x')), rejectsWith(ReplicationError, /no such file/));
    await assert.rejects(rep.sync(file), rejectsWith(ReplicationError, /not registered/));
    const out = `${fresh('bad-time')}.db`;
    for (const at of ['yesterday', '2026-01-02', '2026-01-02T03:04:05', '2026-13-45T99:00:00Z']) {
      await assert.rejects(restoreReplica({ replicaUrl: fileUrl('x'), outFile: out, at, env }), rejectsWith(ReplicationError, /ISO 8601|not a valid time/), at);
    }
    await assert.rejects(restoreReplica({ replicaUrl: fileUrl('none'), outFile: out, env }), rejectsWith(ReplicaMissingError, /no replica at/));
    await assert.rejects(restoreReplica({ replicaUrl: fileUrl('x'), outFile: 'rel.db', env }), rejectsWith(ReplicationError, /absolute path/));
    await assert.rejects(restoreReplica({ replicaUrl: fileUrl('x'), outFile: file, env }), rejectsWith(ReplicationError, /already exists/));
    await assert.rejects(Replicator.start({ stateDir: 'relative' }), rejectsWith(ReplicationError, /absolute path/));
    await assert.rejects(Replicator.start({ stateDir: fresh('s'), retention: '1 day' }), rejectsWith(ReplicationError, /duration/));
    await assert.rejects(Replicator.start({ stateDir: fresh('s'), binary: path.join(root, 'no-such-litestream') }), rejectsWith(ReplicationError, /cannot start/));
    // deleteReplica refuses a directory holding anything but replica data.
    const dir = fresh('not-a-replica');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'precious.txt'), 'x');
    await assert.rejects(deleteReplica(`file://${dir}`), rejectsWith(ReplicationError, /not Litestream replica data/));
    assert.ok(fs.existsSync(path.join(dir, 'precious.txt')));
    assert.deepEqual(await deleteReplica(`file://${fresh('never')}`), { deleted: 0 });
  });
});
