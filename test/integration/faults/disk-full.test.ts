/**
 * A full disk under a worker host's data dir, through the workflow (real Temporal dev server, real worker host in
 * this process, cold copies on a file:// store on the ordinary disk, replication off).
 *
 * Two ways, chosen at run time:
 *   - tmpfs: when this process may mount (root on Linux), the host's data dir is a small tmpfs (16 MiB) and the
 *     disk is really filled (a filler file, or a write larger than what is left); unmounted in `after`;
 *   - injected: otherwise (or with WORKBOOKS_TEST_DISK_FULL=inject), `faultPoint`s throw the error a full disk
 *     gives (ENOSPC) at the step under test (WORKBOOKS_FAULT_ENOSPC_AT, set around the step only: the worker
 *     host runs in this process and reads the variable when it gets there).
 * The suite prints which way ran.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startTestDevServer } from '../../../harness/temporal';
import { clientFor, eventually, startTestHost, tempDir, TestHost, uniqueQueue } from '../../../harness/stack';
import { WorkbooksClient } from '../../../src/client/workbooks-client';
import { WorkbooksError } from '../../../src/client/errors';
import { liveDir, liveFile } from '../../../src/host/data-dir';
import { workflowIdFor } from '../../../src/contract/ids';
import { integrityCheckOffThread } from '../../../src/storage/sqlite-check';
import type { LedgerEntry } from '../../../src/contract/types';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const MiB = 1024 * 1024;
const TMPFS_SIZE = '16m';

let server: Server;
let host: TestHost;
let wb: WorkbooksClient;
let dataDir: string;
let coldDir: string;
let mode: 'tmpfs' | 'injected' = 'injected';
let mountError = '';

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Mounts a small tmpfs on `dir` if this process may; false (and why) otherwise. */
function tryMountTmpfs(dir: string): boolean {
  if (process.env.WORKBOOKS_TEST_DISK_FULL === 'inject') {
    mountError = 'WORKBOOKS_TEST_DISK_FULL=inject';
    return false;
  }
  if (process.platform !== 'linux') {
    mountError = `platform ${process.platform}`;
    return false;
  }
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0700`, 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 });
  if (r.status === 0) return true;
  mountError = (r.error?.message ?? r.stderr ?? '').trim() || `mount exited with ${r.status}`;
  return false;
}

function unmount(dir: string): void {
  for (const args of [[dir], ['-l', dir]]) {
    if (spawnSync('umount', args, { encoding: 'utf8', timeout: 10_000 }).status === 0) return;
  }
}

function freeBytes(): number {
  const s = fs.statfsSync(dataDir);
  return s.bavail * s.bsize;
}

const FILLER = () => path.join(dataDir, 'filler.bin');

/**
 * Makes the data dir (too) full for `step`: with tmpfs, a filler file leaves `leaveBytes` free; injected, the
 * step's fault points throw ENOSPC. Returns the undo.
 */
function diskFull(step: 'put' | 'restore' | 'clone', leaveBytes = 256 * 1024): () => void {
  if (mode === 'tmpfs') {
    const fill = freeBytes() - leaveBytes;
    if (fill > 0) {
      const fd = fs.openSync(FILLER(), 'a');
      try {
        const chunk = Buffer.alloc(MiB, 0x5a);
        let left = fill;
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          fs.writeSync(fd, chunk, 0, n);
          left -= n;
        }
      } finally {
        fs.closeSync(fd);
      }
    }
    assert.ok(freeBytes() <= leaveBytes + 64 * 1024, `the tmpfs is nearly full (${freeBytes()} bytes free)`);
    return () => fs.rmSync(FILLER(), { force: true });
  }
  const points = { put: ['dataServer.put'], restore: ['recoverLocal:after-download', 'restoreLocal:after-download'], clone: ['provision:after-copy'] }[step];
  const saved = process.env.WORKBOOKS_FAULT_ENOSPC_AT;
  process.env.WORKBOOKS_FAULT_ENOSPC_AT = points.join(',');
  return () => {
    if (saved === undefined) delete process.env.WORKBOOKS_FAULT_ENOSPC_AT;
    else process.env.WORKBOOKS_FAULT_ENOSPC_AT = saved;
  };
}

/** Files left in live/ by copies of `id` that never finished. */
function partials(id: string): string[] {
  return fs.readdirSync(liveDir(host.cfg)).filter((n) => n.startsWith(`.${id}.sqlite.`) && n.includes('.partial'));
}

function liveNames(id: string): string[] {
  return fs.readdirSync(liveDir(host.cfg)).filter((n) => n === `${id}.sqlite` || n.startsWith(`${id}.sqlite-`) || n.startsWith(`.${id}.sqlite.`));
}

function lastEntry(ledger: LedgerEntry[]): LedgerEntry {
  const e = ledger.at(-1);
  assert.ok(e, 'the ledger has entries');
  return e;
}

function assertReadable(detail: string | undefined, ...mustMatch: RegExp[]): void {
  assert.ok(detail && detail.length > 0, 'the failure has a reason');
  assert.ok(!/\n\s+at /.test(detail), `no stack trace in the reason: ${detail}`);
  for (const re of mustMatch) assert.match(detail, re);
}

async function rejection(p: Promise<unknown>): Promise<WorkbooksError> {
  let caught: unknown;
  await p.then(
    () => assert.fail('expected a failure'),
    (err: unknown) => {
      caught = err;
    },
  );
  assert.ok(caught instanceof WorkbooksError, `a WorkbooksError, got ${String(caught)}`);
  return caught;
}

/** The rows of a closed or open workspace file, read through a separate read-only connection. */
function rows(file: string): { volume: string; path: string; sha: string }[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return (db.prepare('SELECT volume, path, data FROM files ORDER BY volume, path').all() as { volume: string; path: string; data: Buffer }[]).map((r) => ({
      volume: r.volume,
      path: r.path,
      sha: sha(r.data),
    }));
  } finally {
    db.close();
  }
}

describe('disk full on the data dir', { concurrency: false }, () => {
  let mountPoint: string | null = null;

  before(async () => {
    const dir = tempDir('wb-diskfull-data-');
    if (tryMountTmpfs(dir)) {
      mode = 'tmpfs';
      mountPoint = dir;
    }
    dataDir = dir;
    coldDir = tempDir('wb-diskfull-cold-');
    console.log(`disk-full mode: ${mode === 'tmpfs' ? `tmpfs (${TMPFS_SIZE}) on ${dir}` : `injected ENOSPC (cannot mount tmpfs: ${mountError})`}`);
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('diskfull');
    host = await startTestHost({
      connection: server.connection,
      client: server.client,
      taskQueue,
      hostId: 'diskfull-host',
      dataDir,
      coldUrl: `file://${coldDir}`,
      archiveUrl: `file://${path.join(coldDir, 'archive')}`,
      replicaUrl: 'off',
    });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    delete process.env.WORKBOOKS_FAULT_ENOSPC_AT;
    await host?.stop();
    await server?.stop();
    if (mountPoint) unmount(mountPoint);
    fs.rmSync(dataDir, { recursive: true, force: true });
    fs.rmSync(coldDir, { recursive: true, force: true });
  });

  it('a file bigger than the free space: a clear disk_full error; existing files intact, SQLite integrity ok', async () => {
    const id = 'full-put';
    await wb.create({ workspaceId: id, tenant: 'acme' });
    const blob = crypto.randomBytes(MiB);
    await wb.putFile(id, 'workspace', '/a.md', Buffer.from('alpha'));
    await wb.putFile(id, 'workspace', '/blob', blob);
    await wb.putFile(id, 'memory', '/m', Buffer.from('memo'));
    const file = liveFile(host.cfg, id);
    const before = rows(file);

    let undo: () => void = () => undefined;
    let big: Buffer;
    const freeBefore = mode === 'tmpfs' ? freeBytes() : 0;
    if (mode === 'tmpfs') {
      big = crypto.randomBytes(freeBefore + 2 * MiB);
    } else {
      big = crypto.randomBytes(64 * 1024);
      undo = diskFull('put');
    }
    let err: WorkbooksError;
    try {
      err = await rejection(wb.putFile(id, 'workspace', '/big', big));
    } finally {
      undo();
    }
    console.log(`put of ${big.length} bytes: ${err.status} ${err.code}: ${err.message}`);
    assert.equal(err.code, 'disk_full', `a disk_full error, not a generic one: ${err.code} ${err.message}`);
    assert.equal(err.status, 507);
    assert.match(err.message, /out of disk space/);
    assert.match(err.message, /diskfull-host/, 'says which host');
    assert.ok(!/\n\s+at /.test(err.message), 'no stack trace');

    // Nothing of the failed write, everything from before.
    assert.equal((await wb.getFile(id, 'workspace', '/a.md')).toString(), 'alpha');
    assert.equal(sha(await wb.getFile(id, 'workspace', '/blob')), sha(blob));
    assert.equal((await wb.getFile(id, 'memory', '/m')).toString(), 'memo');
    assert.deepEqual((await wb.listFiles(id, 'workspace')).map((f) => f.path), ['/a.md', '/blob']);
    assert.deepEqual(rows(file), before, 'the file holds exactly what it held before the failed write');
    assert.deepEqual(await integrityCheckOffThread(file, 'full'), [], 'SQLite integrity check passes (open file)');
    if (mode === 'tmpfs') {
      // The failed write did not eat the free space (SQLite's WAL would keep it until a checkpoint could run).
      assert.ok(freeBytes() >= freeBefore - 256 * 1024, `free space kept: ${freeBytes()} of ${freeBefore} bytes`);
    }
    // The disk is not wedged: a write that fits still works.
    await wb.putFile(id, 'workspace', '/after.md', Buffer.from('still writable'));
    assert.equal((await wb.getFile(id, 'workspace', '/after.md')).toString(), 'still writable');
    await wb.deleteFile(id, 'workspace', '/after.md');

    // Stopped and reopened, the workspace is the same.
    await wb.transition(id, 'suspended');
    assert.deepEqual(await integrityCheckOffThread(file, 'full'), [], 'SQLite integrity check passes (closed file)');
    assert.deepEqual(rows(file), before);
    await wb.wake(id);
    assert.equal(sha(await wb.getFile(id, 'workspace', '/blob')), sha(blob));
    assert.equal(lastEntry((await wb.describe(id)).ledger).outcome, 'done');
  });

  it('a resume (restore from cold) into a too-full disk fails clearly: stays frozen, cold copy intact, no temp file; works once space is freed', async () => {
    const id = 'full-wake';
    await wb.create({ workspaceId: id, tenant: 'acme' });
    const blob = crypto.randomBytes(3 * MiB);
    await wb.putFile(id, 'workspace', '/blob', blob);
    await wb.putFile(id, 'memory', '/m', Buffer.from('memo'));
    await wb.transition(id, 'suspended');
    await wb.transition(id, 'frozen');
    const frozen = await wb.describe(id);
    const cold = frozen.cold!;
    const coldFile = new URL(cold.url).pathname;
    assert.ok(cold.bytes > 2 * MiB && fs.existsSync(coldFile));

    const undo = diskFull('restore');
    let err: WorkbooksError;
    const t0 = Date.now();
    try {
      err = await rejection(wb.wake(id));
    } finally {
      undo();
    }
    console.log(`wake into a full disk failed after ${Date.now() - t0} ms: ${err.message}`);
    assert.equal(err.code, 'move_failed');
    const d = await wb.describe(id);
    assert.equal(d.state, 'frozen', 'still frozen');
    assert.deepEqual(d.cold, cold, 'the same cold copy is recorded');
    assert.equal(d.host, null);
    const last = lastEntry(d.ledger);
    assert.equal(last.from, 'frozen');
    assert.equal(last.to, 'active');
    assert.equal(last.outcome, 'failed');
    assertReadable(last.detail, /^frozen -> active failed: no source could restore 'full-wake'/, /ENOSPC|no space left|disk is full/);
    assert.equal(sha(fs.readFileSync(coldFile)), cold.sha256, 'the cold copy is intact');
    assert.deepEqual(liveNames(id), [], 'no live file and no temporary file of it in live/');

    const w = await wb.wake(id);
    assert.equal(w.path, 'cold');
    assert.equal(sha(await wb.getFile(id, 'workspace', '/blob')), sha(blob));
    assert.equal((await wb.getFile(id, 'memory', '/m')).toString(), 'memo');
    assert.deepEqual(partials(id), []);
  });

  it('a clone into a too-full disk fails clearly while nothing is half-made; completes once space is freed', async () => {
    const tpl = 'full-tpl';
    const id = 'full-clone';
    await wb.create({ workspaceId: tpl, tenant: 'acme' });
    const blob = crypto.randomBytes(3 * MiB);
    await wb.putFile(tpl, 'workspace', '/blob', blob);
    const tplRows = rows(liveFile(host.cfg, tpl));

    const undo = diskFull('clone');
    let created: Promise<unknown> | null = null;
    try {
      created = wb.create({ workspaceId: id, tenant: 'acme', template: tpl });
      created.catch(() => undefined);
      // The copy fails and is retried; each failure is a clear disk-full error (the activity's last failure).
      const handle = server.client.workflow.getHandle(workflowIdFor(id));
      const failure = await eventually(
        async () => {
          const pending = (await handle.describe()).raw.pendingActivities ?? [];
          const p = pending.find((a) => a.activityType?.name === 'provision' && (a.attempt ?? 0) >= 2);
          return p?.lastFailure?.message ?? null;
        },
        'the clone to fail at least once',
        60_000,
        200,
      );
      console.log(`clone into a full disk: provision fails with: ${failure}`);
      assert.match(failure, /ENOSPC|no space left|disk is full/);
      assert.ok(!/\n\s+at /.test(failure));
      // Nothing half-made: no file for the clone (neither its name nor a temporary), the template untouched.
      assert.deepEqual(liveNames(id), []);
      assert.deepEqual(rows(liveFile(host.cfg, tpl)), tplRows);
      const d = await wb.describe(id);
      assert.notEqual(d.state, 'active');
      assert.equal(d.host, null);
    } finally {
      undo();
    }
    // With room again, the retried copy goes through.
    await created;
    assert.equal(sha(await wb.getFile(id, 'workspace', '/blob')), sha(blob));
    assert.equal(sha(await wb.getFile(tpl, 'workspace', '/blob')), sha(blob));
    assert.deepEqual(partials(id), []);
  });

  it(
    'a clone into a disk that stays full fails once the retries run out; nothing is left; a retry after freeing space works (slow: ~95 s)',
    async () => {
      const tpl = 'full-tpl2';
      const id = 'full-clone2';
      await wb.create({ workspaceId: tpl, tenant: 'acme' });
      const blob = crypto.randomBytes(2 * MiB);
      await wb.putFile(tpl, 'workspace', '/blob', blob);
      const undo = diskFull('clone');
      const t0 = Date.now();
      let err: WorkbooksError;
      try {
        err = await rejection(wb.create({ workspaceId: id, tenant: 'acme', template: tpl }));
      } finally {
        undo();
      }
      console.log(`clone into a disk that stays full failed after ${Date.now() - t0} ms: ${err.code}: ${err.message}`);
      assert.equal(err.code, 'create_failed');
      assertReadable(err.message, /^cannot create workspace full-clone2: created -> active failed: /, /ENOSPC|no space left|disk is full/);
      assert.deepEqual(liveNames(id), [], 'nothing of the clone is left in live/');
      await wb.create({ workspaceId: id, tenant: 'acme', template: tpl });
      assert.equal(sha(await wb.getFile(id, 'workspace', '/blob')), sha(blob));
    },
  );
});
