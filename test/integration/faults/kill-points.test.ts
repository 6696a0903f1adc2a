/**
 * Fault injection: kill -9 the worker at named steps of freeze, resume, clone, archive and delete, start it again
 * (same host id, same data dir, same port, no fault), and check that the workflow converges to a legal state with
 * every acknowledged byte still readable.
 *
 * Each point gets its own little world (own task queue, host id, data dir and stores) on one shared dev server,
 * so a failure at one point cannot leak into the next. The worker is a real `workbooks worker` child process
 * started with `WORKBOOKS_FAULT_KILL_AT=<point>` (src/faults/fault-points.ts): it SIGKILLs itself when it reaches
 * the point and says so on stderr (`fault injected`). The activity attempt it was running is then only noticed
 * as dead by Temporal's heartbeat timeout (20 s for host activities, 30 s for shared ones: src/workflows/
 * activities.ts), after which the retry runs on the restarted worker. That wait dominates the run time.
 *
 * The points (`<activity>:<step>`; where each one sits, in order):
 *   move suspended -> frozen (storeLocal, then removeLocal of the release record)
 *     storeLocal:after-fold              WAL folded into the file, nothing hashed or uploaded yet
 *     fileStore.put:after-bytes          the object's bytes renamed into the cold store, its metadata not written
 *     storeLocal:after-upload            the object and its metadata are in the store, not yet verified
 *     storeLocal:after-scratch-restore   the stored bytes read back and sha256-checked (file store: in the put;
 *                                        S3: a re-hash), the integrity check of the local file not yet awaited
 *                                        (the name predates the scratch-free read-back)
 *     storeLocal:after-verify            sha256 + integrity checked; no release record yet
 *     storeLocal:after-release-record    release record written, local file not yet deleted
 *     storeLocal:after-delete-local      local file deleted, the activity has not returned
 *     removeLocal:after-remove-file      (freeze clean-up) release record and markers not yet removed
 *   move active -> suspended
 *     stopInstance:after-close           instance closed (marker gone), replica not yet flushed/stopped
 *   move suspended -> active (resume from local disk)
 *     startInstance:after-open           file opened and marked active, replication not yet started
 *   move frozen -> active (resume from the cold copy: recoverLocal, then startInstance)
 *     recoverLocal:after-download        copy downloaded to a temp name and sha256-checked, not renamed
 *     recoverLocal:after-rename          renamed into place, no `.verified.json` sidecar yet
 *   move created -> active of a clone (provision from a template)
 *     provision:after-copy               template copied to the temp name, tmp not cleared, not renamed
 *     provision:after-rename             new file renamed into place, instance not started
 *   move frozen -> archived (archiveColdCopy)
 *     archiveColdCopy:after-copy         archive object written, not yet re-hashed
 *     archiveColdCopy:after-verify       archive object verified, cold object not yet deleted
 *     archiveColdCopy:after-delete-cold  cold object deleted, the activity has not returned
 *   move archived -> deleted (deleteStoredCopies)
 *     deleteStoredCopies:after-delete-copy     the archive copy deleted, replicas still there
 *     deleteStoredCopies:after-delete-replica  the first replica root deleted
 * Also defined but not driven here: restoreLocal:after-download / restoreLocal:after-rename (prefetch and
 * prefetched wakes) and recoverLocal:after-replica-restore (recovery from a replica after host loss).
 *
 * For every point: the child really died there (SIGKILL, its stderr names the point); the workflow ends idle
 * (nothing running or queued, no pending activity, not failed) in the move's source or target state; a move left
 * in the source state failed cleanly (a `failed` ledger entry, the update told so) and succeeds when driven again;
 * the ledger is a legal chain; the update's answer agrees with the state; recorded stored copies hash to their
 * sha256 and no other object of the workspace is left in the stores; the live dir holds exactly the files the
 * state calls for (temporaries of a killed copy may stay, under dot-names no one mistakes for a workspace); no
 * file was quarantined to orphans/; and after a wake every acknowledged byte of the workspace and memory volumes
 * reads back byte-identical (tmp is cleared on resume by design). A delete must leave no copy, replica or file.
 *
 * Run time: each point waits ~20 s (host activity) or ~30 s (shared activity) for Temporal to declare the killed
 * attempt dead (the activities' heartbeat timeouts, deliberately not shortened for the test), so one after another
 * the 19 points take ~10 minutes. The worlds are independent and idle while they wait, so three run at once by
 * default (~3.5 minutes, little CPU); WORKBOOKS_KILL_POINTS_CONCURRENCY=1 runs them one at a time, and
 * WORKBOOKS_KILL_POINTS=<substring>[,<substring>] picks points.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { startTestDevServer, freePort } from '../../../harness/temporal';
import { clientFor, eventually, tempDir, uniqueQueue } from '../../../harness/stack';
import { kill9, spawnWorker } from '../../../harness/worker-process';
import { WorkbooksClient } from '../../../src/client/workbooks-client';
import { WorkbooksError } from '../../../src/client/errors';
import type { State } from '../../../src/lifecycle';
import type { StoredCopy, WorkspaceDescription } from '../../../src/contract/types';
import { walkLedger } from './ledger-check';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

let server: Server;
let root: string;
/** A failed point keeps the worlds' directories for a look. */
let keepRoot = false;

const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
/** A timer that does not keep the test process alive once everything else is done. */
const idleSleep = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());

/** A write the system acknowledged: it must read back byte-identical (tmp: or be gone, by design). */
interface Ack {
  volume: 'workspace' | 'memory' | 'tmp';
  path: string;
  sha256: string;
  bytes: number;
}

// ---------------------------------------------------------------------------------------------------------------
// One world: a host id with a fixed data dir and port, its own task queue and stores.

class World {
  readonly hostId: string;
  readonly dataDir: string;
  readonly shared: string;
  readonly queue: string;
  readonly wb: WorkbooksClient;
  port = 0;
  worker: ChildProcess | null = null;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | null = null;
  stderr = '';
  starts = 0;

  constructor(readonly slug: string) {
    this.hostId = `kp-${slug}`;
    const base = fs.mkdtempSync(path.join(root, `${slug}-`));
    this.dataDir = path.join(base, 'host');
    this.shared = path.join(base, 'shared');
    fs.mkdirSync(this.dataDir);
    fs.mkdirSync(this.shared);
    this.queue = uniqueQueue(`kp-${slug}`);
    this.wb = clientFor(server.client, this.queue);
  }

  get cold(): string {
    return path.join(this.shared, 'cold');
  }
  get archive(): string {
    return path.join(this.shared, 'archive');
  }
  get replicas(): string {
    return path.join(this.shared, 'replicas');
  }
  get live(): string {
    return path.join(this.dataDir, 'live');
  }

  async start(env: Record<string, string> = {}): Promise<void> {
    assert.equal(this.worker, null, 'one worker per world at a time');
    if (!this.port) this.port = await freePort();
    this.stderr = '';
    const child = await spawnWorker({
      host: this.hostId,
      dataDir: this.dataDir,
      port: this.port,
      env: {
        TEMPORAL_ADDRESS: server.address,
        WORKBOOKS_TASK_QUEUE: this.queue,
        WORKBOOKS_COLD_URL: `file://${this.cold}`,
        WORKBOOKS_ARCHIVE_URL: `file://${this.archive}`,
        WORKBOOKS_REPLICA_URL: `file://${this.replicas}`,
        // Inherited fault settings must not leak in: only what this start asks for.
        WORKBOOKS_FAULT_KILL_AT: '',
        WORKBOOKS_FAULT_ENOSPC_AT: '',
        ...env,
      },
      onStderr: (s) => {
        this.stderr += s;
      },
    });
    this.starts += 1;
    this.worker = child;
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  /** Waits for the worker to die on its own (the injected kill). */
  async died(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const exited = this.exited!;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        exited,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`worker ${this.hostId} did not die within ${timeoutMs} ms; stderr: ${this.stderr.slice(-2000)}`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
      this.worker = null;
      this.exited = null;
    }
  }

  /** Graceful stop (SIGTERM: the worker stops its Litestream daemon), kill -9 if it takes too long. */
  async stop(): Promise<void> {
    const child = this.worker;
    if (!child) return;
    this.worker = null;
    const exited = this.exited!;
    this.exited = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const ok = await Promise.race([exited.then(() => true), idleSleep(20_000).then(() => false)]);
    if (!ok) await kill9(child);
  }

  /** Stops the worker and any Litestream daemon a killed worker left behind (only this world's, by pid file). */
  async close(): Promise<void> {
    await this.stop();
    const pidFile = path.join(this.dataDir, 'litestream', 'litestream.pid');
    try {
      const pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
      const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (Number.isInteger(pid) && pid > 1 && argv.includes('litestream')) process.kill(pid, 'SIGKILL');
    } catch {
      // no daemon left
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Data

async function writeAcked(wb: WorkbooksClient, id: string, tag: string, n = 12): Promise<Ack[]> {
  const acks: Ack[] = [];
  const put = async (volume: Ack['volume'], p: string, data: Buffer) => {
    const info = await wb.putFile(id, volume, p, data);
    assert.equal(info.bytes, data.length, `acknowledged size of ${volume}:${p}`);
    acks.push({ volume, path: p, sha256: sha(data), bytes: data.length });
  };
  for (let i = 0; i < n; i++) await put('workspace', `/${tag}/f-${i}`, crypto.randomBytes(1 + ((i * 7919) % 48) * 1024));
  // One larger file (several WAL pages, a few SQLite overflow chains).
  await put('workspace', `/${tag}/big`, crypto.randomBytes(384 * 1024));
  await put('memory', `/${tag}/note`, Buffer.from(`remember ${tag} ${crypto.randomUUID()}`));
  await put('memory', `/${tag}/blob`, crypto.randomBytes(20_000));
  await put('tmp', `/${tag}/scratch`, Buffer.from(`scratch ${tag}`));
  // An overwrite: the newest acknowledged value is what must survive.
  const last = crypto.randomBytes(3000);
  await put('workspace', `/${tag}/f-0`, last);
  const i0 = acks.findIndex((a) => a.volume === 'workspace' && a.path === `/${tag}/f-0`);
  acks.splice(i0, 1);
  return acks;
}

async function assertAcked(wb: WorkbooksClient, id: string, acks: Ack[], where: string): Promise<{ tmpKept: number; tmpCleared: number }> {
  let tmpKept = 0;
  let tmpCleared = 0;
  for (const a of acks) {
    let got: Buffer;
    try {
      got = await wb.getFile(id, a.volume, a.path);
    } catch (err) {
      if (a.volume === 'tmp' && err instanceof WorkbooksError && err.status === 404) {
        tmpCleared += 1;
        continue;
      }
      throw new Error(`${where}: acknowledged ${a.volume}:${a.path} of ${id} is not readable: ${(err as Error).message}`);
    }
    assert.equal(got.length, a.bytes, `${where}: ${id} ${a.volume}:${a.path} size`);
    assert.equal(sha(got), a.sha256, `${where}: ${id} ${a.volume}:${a.path} bytes`);
    if (a.volume === 'tmp') tmpKept += 1;
  }
  return { tmpKept, tmpCleared };
}

// ---------------------------------------------------------------------------------------------------------------
// State checks

function hashFile(p: string): { sha256: string; bytes: number } {
  const b = fs.readFileSync(p);
  return { sha256: sha(b), bytes: b.length };
}

/** Every object of workspace `id` in a file store dir (not temporaries or metadata). */
function objectsOf(dir: string, id: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(`${id}.`) && n.endsWith('.sqlite'))
    .sort();
}

function checkStored(w: World, d: WorkspaceDescription, where: string): void {
  const check = (copy: StoredCopy | null, dir: string, what: string) => {
    const want = copy ? [copy.url.slice(copy.url.lastIndexOf('/') + 1)] : [];
    assert.deepEqual(objectsOf(dir, d.workspaceId), want, `${where}: ${what} objects of ${d.workspaceId} (state ${d.state})`);
    if (!copy) return;
    assert.ok(copy.url.startsWith(`file://${dir}/`), `${where}: ${what} copy ${copy.url} is in ${dir}`);
    const file = copy.url.slice('file://'.length);
    const got = hashFile(file);
    assert.equal(got.sha256, copy.sha256, `${where}: ${what} copy ${copy.url} hashes to its recorded sha256`);
    assert.equal(got.bytes, copy.bytes, `${where}: ${what} copy ${copy.url} has its recorded size`);
    const meta = JSON.parse(fs.readFileSync(`${file}.meta.json`, 'utf8')) as { sha256: string; bytes: number };
    assert.equal(meta.sha256, copy.sha256, `${where}: ${what} copy metadata sha256`);
    assert.equal(meta.bytes, copy.bytes, `${where}: ${what} copy metadata size`);
  };
  check(d.cold, w.cold, 'cold');
  check(d.archive, w.archive, 'archive');
}

/** The live dir holds exactly what the state calls for; returns the leftover temporaries (dot-named, harmless). */
function checkLive(w: World, d: WorkspaceDescription, where: string): string[] {
  const id = d.workspaceId;
  const names = fs.existsSync(w.live) ? fs.readdirSync(w.live) : [];
  const temps = names.filter((n) => {
    // Litestream's local state of a workspace whose file is here (it stays while suspended, by design).
    const ls = /^\.(.+\.sqlite)-litestream$/.exec(n);
    return n.startsWith('.') && !(ls && names.includes(ls[1]!));
  });
  for (const t of temps) {
    // A temporary must never look like a workspace file to reconcile or to a restart (`<id>.sqlite`, `<id>.active`).
    assert.match(t, /\.partial(-wal|-shm|-journal)?$/, `${where}: unexpected hidden file ${t} in live/`);
    assert.doesNotMatch(t, /^[^.].*\.(sqlite|active)$/, `${where}: temporary ${t} looks like a workspace`);
  }
  const mine = names.filter((n) => n.startsWith(`${id}.`));
  const has = (suffix: string) => mine.includes(`${id}${suffix}`);
  const here = d.host === w.hostId;
  if (d.state === 'active' || d.state === 'suspended') {
    assert.ok(here, `${where}: ${d.state} workspace ${id} is on ${w.hostId} (host ${d.host})`);
    assert.ok(has('.sqlite'), `${where}: ${d.state} workspace ${id} has its file; live/: ${names.join(' ')}`);
    assert.equal(has('.active'), d.state === 'active', `${where}: ${id}.active marker iff active; live/: ${names.join(' ')}`);
    assert.equal(has('.released.json'), false, `${where}: no release record for a local workspace`);
    const allowed = new Set(['.sqlite', '.sqlite-wal', '.sqlite-shm', '.active', '.placement', '.verified.json'].map((s) => `${id}${s}`));
    for (const n of mine) assert.ok(allowed.has(n), `${where}: unexpected ${n} in live/ for a ${d.state} workspace`);
  } else {
    assert.ok(!d.host, `${where}: a ${d.state} workspace has no host`);
    assert.deepEqual(mine, [], `${where}: a ${d.state} workspace leaves nothing of its own in live/`);
  }
  return temps;
}

/** Files a killed step left behind outside live/ (not harmful to correctness; they only take space). */
function leftovers(w: World): string[] {
  const out: string[] = [];
  for (const [what, dir] of [
    ['scratch', path.join(w.dataDir, 'scratch')],
    ['tmp', path.join(w.dataDir, 'tmp')],
    ['cold', w.cold],
    ['archive', w.archive],
  ] as const) {
    if (!fs.existsSync(dir)) continue;
    for (const n of fs.readdirSync(dir)) if (n.includes('.partial')) out.push(`${what}/${n} (${fs.statSync(path.join(dir, n)).size} bytes)`);
  }
  return out;
}

function checkNoOrphans(w: World, id: string, where: string): void {
  const dir = path.join(w.dataDir, 'orphans');
  const moved = fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.startsWith(`${id}.`)) : [];
  assert.deepEqual(moved, [], `${where}: reconcile quarantined files of ${id}`);
}

/** Idle: nothing running or queued in the workflow, and no activity pending on the server. */
async function converge(w: World, id: string, where: string, timeoutMs = 150_000): Promise<WorkspaceDescription> {
  return eventually(
    async () => {
      const d = await w.wb.describe(id);
      if (d.busy || d.pendingCommands > 0) return null;
      const desc = await w.wb.handle(id).describe();
      const pending = desc.raw.pendingActivities ?? [];
      if (pending.length > 0) return null;
      const status = desc.status.name;
      assert.ok(status === 'RUNNING' || (status === 'COMPLETED' && d.state === 'deleted'), `${where}: workflow is ${status} in state ${d.state}`);
      return d;
    },
    `${where}: workspace ${id} to converge`,
    timeoutMs,
    250,
  );
}

async function settle<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<PromiseSettledResult<T>> {
  const r = await Promise.race([
    p.then(
      (value) => ({ status: 'fulfilled' as const, value }),
      (reason: unknown) => ({ status: 'rejected' as const, reason }),
    ),
    idleSleep(timeoutMs).then(() => null),
  ]);
  if (!r) throw new Error(`${what} did not settle within ${timeoutMs} ms`);
  return r;
}

// ---------------------------------------------------------------------------------------------------------------
// Cases

interface Ctx {
  /** The workspace whose move is interrupted. */
  id: string;
  acks: Ack[];
  /** Another workspace that must come through untouched (a clone's template), with its acks. */
  other?: { id: string; acks: Ack[] };
}

interface Case {
  point: string;
  from: State;
  to: State;
  /** The setup passes through the point itself: run it on a worker without the fault, then swap. */
  cleanSetup?: boolean;
  setup(w: World, id: string): Promise<Ctx>;
  /** Starts the move (not awaited until the end: it spans the kill); resolves to the state it reports. */
  drive(w: World, ctx: Ctx): Promise<State>;
}

const OPTS = { hostTimeoutSeconds: 3, policy: { suspendAfter: 'never', freezeAfter: 'never' } } as const;

async function created(w: World, id: string): Promise<Ctx> {
  await w.wb.create({ workspaceId: id, tenant: 'acme', ...OPTS });
  return { id, acks: await writeAcked(w.wb, id, 'a') };
}

async function suspended(w: World, id: string): Promise<Ctx> {
  const ctx = await created(w, id);
  await w.wb.transition(id, 'suspended');
  return ctx;
}

async function frozen(w: World, id: string): Promise<Ctx> {
  const ctx = await suspended(w, id);
  await w.wb.transition(id, 'frozen');
  return ctx;
}

async function archived(w: World, id: string): Promise<Ctx> {
  const ctx = await frozen(w, id);
  await w.wb.transition(id, 'archived');
  return ctx;
}

const move = (to: State) => (w: World, ctx: Ctx) => w.wb.transition(ctx.id, to, { reason: 'kill-points', by: 'test' }).then((r) => r.state);

function freezeCase(point: string): Case {
  return { point, from: 'suspended', to: 'frozen', setup: suspended, drive: move('frozen') };
}

function cloneCase(point: string, template: 'active' | 'suspended', cleanSetup: boolean): Case {
  return {
    point,
    from: 'created',
    to: 'active',
    cleanSetup,
    async setup(w, id) {
      const tpl = `${id}-tpl`;
      const t = template === 'active' ? await created(w, tpl) : await suspended(w, tpl);
      // The clone starts with the template's workspace and memory volumes; its tmp volume is never copied.
      return { id, acks: t.acks.filter((a) => a.volume !== 'tmp'), other: t };
    },
    drive: (w, ctx) => w.wb.create({ workspaceId: ctx.id, tenant: 'acme', template: ctx.other!.id, ...OPTS }).then((r) => r.state),
  };
}

const CASES: Case[] = [
  // freeze
  freezeCase('storeLocal:after-fold'),
  freezeCase('fileStore.put:after-bytes'),
  freezeCase('storeLocal:after-upload'),
  freezeCase('storeLocal:after-scratch-restore'),
  freezeCase('storeLocal:after-verify'),
  freezeCase('storeLocal:after-release-record'),
  freezeCase('storeLocal:after-delete-local'),
  freezeCase('removeLocal:after-remove-file'),
  // suspend
  { point: 'stopInstance:after-close', from: 'active', to: 'suspended', setup: created, drive: move('suspended') },
  // resume
  { point: 'startInstance:after-open', from: 'suspended', to: 'active', cleanSetup: true, setup: suspended, drive: move('active') },
  { point: 'recoverLocal:after-download', from: 'frozen', to: 'active', setup: frozen, drive: move('active') },
  { point: 'recoverLocal:after-rename', from: 'frozen', to: 'active', setup: frozen, drive: move('active') },
  // clone
  cloneCase('provision:after-copy', 'active', false),
  cloneCase('provision:after-rename', 'suspended', true),
  // archive
  { point: 'archiveColdCopy:after-copy', from: 'frozen', to: 'archived', setup: frozen, drive: move('archived') },
  { point: 'archiveColdCopy:after-verify', from: 'frozen', to: 'archived', setup: frozen, drive: move('archived') },
  { point: 'archiveColdCopy:after-delete-cold', from: 'frozen', to: 'archived', setup: frozen, drive: move('archived') },
  // delete
  { point: 'deleteStoredCopies:after-delete-copy', from: 'archived', to: 'deleted', setup: archived, drive: move('deleted') },
  { point: 'deleteStoredCopies:after-delete-replica', from: 'archived', to: 'deleted', setup: archived, drive: move('deleted') },
];

function selected(): Case[] {
  const only = (process.env.WORKBOOKS_KILL_POINTS ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  return only.length ? CASES.filter((c) => only.some((s) => c.point.includes(s))) : CASES;
}

const slugOf = (point: string) =>
  point
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '')
    .slice(0, 40);

async function runCase(c: Case): Promise<void> {
  const slug = slugOf(c.point);
  const where = c.point;
  const w = new World(slug);
  const t0 = Date.now();
  const fault = { WORKBOOKS_FAULT_KILL_AT: c.point };
  try {
    await w.start(c.cleanSetup ? {} : fault);
    const ctx = await c.setup(w, `ws-${slug}`.slice(0, 60));
    if (c.cleanSetup) {
      await w.stop();
      await w.start(fault);
    }
    assert.equal(w.worker?.exitCode, null, `${where}: the setup did not pass the point`);

    // The move, sent and left running: it spans the kill and the restart.
    const moved = c.drive(w, ctx);
    moved.catch(() => undefined);
    const exit = await w.died(90_000);
    const tKill = Date.now();
    assert.equal(exit.signal, 'SIGKILL', `${where}: the worker was killed (exit ${exit.code}/${exit.signal}); stderr: ${w.stderr.slice(-1500)}`);
    const line = w.stderr.split('\n').find((l) => l.includes('fault injected'));
    assert.ok(line, `${where}: stderr says 'fault injected'; got: ${w.stderr.slice(-1500)}`);
    assert.equal((JSON.parse(line) as { point: string }).point, c.point, `${where}: killed at the right point`);

    await w.start();
    let d = await converge(w, ctx.id, where);
    const tConverged = Date.now();
    const outcome = await settle(moved, 60_000, `${where}: the interrupted move's answer`);

    assert.ok(d.state === c.from || d.state === c.to, `${where}: converged to ${d.state}, neither ${c.from} nor ${c.to}`);
    let walk = walkLedger(d.ledger, 'created', where, { allowFailed: true });
    assert.equal(walk.final, d.state, `${where}: the ledger ends in the state the workspace is in`);
    let retried = false;
    if (d.state === c.to) {
      assert.equal(outcome.status, 'fulfilled', `${where}: the move completed, so its caller was told so: ${outcome.status === 'rejected' ? (outcome.reason as Error).message : ''}`);
      if (outcome.status === 'fulfilled') assert.equal(outcome.value, c.to);
      const last = d.ledger.at(-1)!;
      assert.equal(last.outcome, 'done');
      assert.equal(last.to, c.to);
    } else {
      // Failed cleanly: the caller was told, the ledger says why, and the move can be driven again.
      assert.equal(outcome.status, 'rejected', `${where}: the move did not complete, so its caller must not be told it did`);
      const last = d.ledger.at(-1)!;
      assert.equal(last.outcome, 'failed', `${where}: a failed entry for the interrupted move`);
      assert.ok(last.detail, `${where}: the failed entry says why`);
      console.log(`# ${c.point}: the move failed after the kill (${last.detail}); driving it again`);
      if (c.from === 'created') {
        assert.fail(`${where}: creating the clone failed after a kill: ${last.detail}`);
      }
      assert.equal(await c.drive(w, ctx), c.to, `${where}: the move succeeds when driven again`);
      d = await converge(w, ctx.id, where);
      walk = walkLedger(d.ledger, 'created', where, { allowFailed: true });
      assert.equal(walk.final, d.state);
      retried = true;
    }
    assert.equal(d.state, c.to);

    // The restarted host has the same disk: the move must finish from its own files, never by falling back to
    // a replica or another source (with replication on, such a fallback would hide a lost local file).
    const moveEntry = d.ledger.filter((e) => e.from === c.from && e.to === c.to && e.outcome === 'done').at(-1);
    assert.ok(moveEntry, `${where}: a done entry for ${c.from} -> ${c.to}`);
    assert.doesNotMatch(moveEntry.detail ?? '', /\brecovered\b|not usable|did not take work|skipped|\blost\b|from replica/i, `${where}: the move finished without a fallback`);
    if (c.from === 'frozen' && c.to === 'active') assert.match(moveEntry.detail ?? '', /^restored from stored copy /, `${where}: woken from the verified cold copy`);

    checkNoOrphans(w, ctx.id, where);
    checkStored(w, d, where);
    const temps = checkLive(w, d, where);

    let tmp = { tmpKept: 0, tmpCleared: 0 };
    if (d.state === 'deleted') {
      assert.equal(fs.existsSync(path.join(w.replicas, ctx.id)), false, `${where}: the replicas of ${ctx.id} are gone`);
    } else {
      const wake = await w.wb.wake(ctx.id, { reason: 'read back', by: 'test' });
      assert.equal(wake.state, 'active');
      tmp = await assertAcked(w.wb, ctx.id, ctx.acks, where);
      // Still writable after all that.
      await w.wb.putFile(ctx.id, 'workspace', '/after-kill', Buffer.from('ok'));
      assert.equal((await w.wb.getFile(ctx.id, 'workspace', '/after-kill')).toString(), 'ok');
    }
    if (ctx.other) {
      const od = await w.wb.describe(ctx.other.id);
      walkLedger(od.ledger, 'created', `${where} (template)`);
      await assertAcked(w.wb, ctx.other.id, ctx.other.acks, `${where} (template)`);
    }
    const left = leftovers(w);
    const detail = moveEntry.detail ?? '';
    console.log(
      `# ${c.point}: ${c.from} -> ${d.state}${retried ? ' (after driving it again)' : ''} "${detail.slice(0, 160)}"; converged ${((tConverged - tKill) / 1000).toFixed(1)} s after the kill, ` +
        `case ${((Date.now() - t0) / 1000).toFixed(1)} s; ${ctx.acks.length} acknowledged writes checked (tmp kept ${tmp.tmpKept}, cleared ${tmp.tmpCleared}); ` +
        `temporaries left in live/: ${temps.length ? temps.join(' ') : 'none'}; elsewhere: ${left.length ? left.join(' ') : 'none'}`,
    );
  } catch (err) {
    keepRoot = true;
    console.log(`# ${c.point}: failed; its host data dir is ${w.dataDir}, worker stderr tail: ${w.stderr.slice(-1000)}`);
    throw err;
  } finally {
    await w.close();
  }
}

// ---------------------------------------------------------------------------------------------------------------

const concurrency = Math.max(1, Math.min(8, Number(process.env.WORKBOOKS_KILL_POINTS_CONCURRENCY ?? '3') || 1));

describe('kill -9 at each step of freeze, resume, clone, archive and delete', { concurrency }, () => {
  before(async () => {
    server = await startTestDevServer();
    root = tempDir('wb-kill-points-');
  });

  after(async () => {
    await server?.stop();
    if (root && !keepRoot) fs.rmSync(root, { recursive: true, force: true });
    else if (root) console.log(`# kept ${root} for inspection`);
  });

  it('defines at least ten distinct points, each reached in the product code', () => {
    const points = new Set(CASES.map((c) => c.point));
    assert.equal(points.size, CASES.length, 'no point twice');
    assert.ok(points.size >= 10);
    const src = ['activities/freeze.js', 'activities/restore.js', 'activities/provision.js', 'activities/instance.js', 'activities/stored-copies.js', 'storage/file-store.js']
      .map((f) => fs.readFileSync(path.resolve(__dirname, '../../../src', f), 'utf8'))
      .join('\n');
    for (const p of points) {
      const [activity, step] = p.split(':');
      assert.ok(src.includes(`'${p}'`) || (src.includes(`:${step}\``) && src.includes(`'${activity}'`)), `faultPoint('${p}') exists`);
    }
  });

  for (const c of selected()) {
    it(`${c.point} (${c.from} -> ${c.to}) converges with every acknowledged byte`, { timeout: 300_000 }, () => runCase(c));
  }
});
