/**
 * Progress of long operations, fed by activity heartbeats: against a real dev server and a real worker host
 * whose copies are throttled (so a freeze takes seconds), `watchProgress` sees a copy in flight with the file's
 * size as its total; the CLI draws a bar on a terminal (run in a pseudo-terminal with util-linux `script`) and
 * prints nothing extra when stderr is not a terminal or with --no-progress. The renderer and the watcher's
 * robustness are also checked on their own.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { defaultPayloadConverter } from '@temporalio/common';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, startTestHost, TestHost, tempDir, uniqueQueue, TEST_DATA_KEY_SECRET } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { ActivityProgress, activityProgress, watchProgress } from '../../src/client/progress';
import { ProgressBar, RateMeter, formatProgressLine, progressEnabled } from '../../src/cli/progress';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const MiB = 1024 * 1024;
/** 4 MiB of data at 2 MiB/s: the upload of a freeze takes about 2 s. */
const DATA_BYTES = 4 * MiB;
const THROTTLE_BPS = 2 * MiB;
const KNOWN_PHASES = new Set(['fold', 'hash', 'copy', 'verify', 'verify-in-place', 'integrity', 'clone', 'backup', 'restore']);

let server: Server;
let host: TestHost;
let wb: WorkbooksClient;
let taskQueue: string;
let cwd: string;

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

/** A suspended workspace holding DATA_BYTES of incompressible data. */
async function suspendedWorkspace(id: string): Promise<void> {
  await wb.create({ workspaceId: id, tenant: 'acme' });
  await wb.putFile(id, 'workspace', '/a.bin', crypto.randomBytes(DATA_BYTES / 2));
  await wb.putFile(id, 'workspace', '/b.bin', crypto.randomBytes(DATA_BYTES / 2));
  await wb.transition(id, 'suspended');
}

function cliEnv(): NodeJS.ProcessEnv {
  return { ...process.env, TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: server.namespace, WORKBOOKS_TASK_QUEUE: taskQueue, TERM: 'xterm', WORKBOOKS_DATA_DIR: cwd, WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET };
}

/** Runs a command without blocking this process's event loop (the worker host runs in it). */
function run(cmd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: cliEnv(), cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** The CLI in a pseudo-terminal (stdout and stderr are the terminal); returns what the terminal received. */
async function cliInTerminal(args: string[]): Promise<{ code: number | null; output: string }> {
  const command = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = await run('script', ['-qefc', `stty cols 100 2>/dev/null; ${command}`, '/dev/null']);
  return { code: r.code, output: r.stdout + r.stderr };
}

function cliPiped(args: string[]) {
  return run(process.execPath, [CLI, ...args]);
}

/** Terminal output without escape sequences, split where the cursor goes back to the line's start or down. */
function screenLines(output: string): string[] {
  return output
    .replace(/\x1b\[\d*G/g, '\n')
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\x1b[78]/g, '')
    .split(/[\r\n]+/)
    .filter((l) => l.trim() !== '');
}

const BAR = /\[[█░]{10,}\]\s+\d{1,3}%/;

describe('progress of long operations from activity heartbeats', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('progress');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: 'host-p', copyThrottleBps: THROTTLE_BPS });
    wb = clientFor(server.client, taskQueue);
    cwd = tempDir('wb-progress-cli-');
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
    if (cwd) fs.rmSync(cwd, { recursive: true, force: true });
  });

  it('watchProgress sees a freeze upload in flight, with the file size as its total', async () => {
    await suspendedWorkspace('big');
    assert.equal(await activityProgress(wb, 'big'), null, 'nothing pending while suspended');

    const seen: ActivityProgress[] = [];
    const errors: unknown[] = [];
    const watch = watchProgress(wb, 'big', (p) => p && seen.push(p), { everyMs: 100, onError: (e) => errors.push(e) });
    let moved;
    try {
      moved = await wb.transition('big', 'frozen');
    } finally {
      await watch.stop();
    }
    assert.deepEqual(moved, { from: 'suspended', state: 'frozen' });
    const cold = (await wb.describe('big')).cold!;
    assert.ok(cold.bytes >= DATA_BYTES, `the frozen copy holds the data (${cold.bytes} bytes)`);

    const store = seen.filter((p) => p.activity === 'storeLocal');
    assert.ok(store.length > 0, `storeLocal was seen pending (seen: ${[...new Set(seen.map((p) => p.activity))].join(', ')})`);
    const phases = new Set(store.map((p) => p.phase).filter((x) => x !== null));
    for (const ph of phases) assert.ok(KNOWN_PHASES.has(ph!), `known phase name: ${ph}`);
    assert.ok(phases.has('copy'), `the copy phase was seen (phases: ${[...phases].join(', ')})`);

    const copies = store.filter((p) => p.phase === 'copy');
    for (const p of copies) assert.equal(p.bytesTotal, cold.bytes, 'the upload total is the file size');
    const mid = copies.filter((p) => p.bytesCopied > 0 && p.bytesCopied < p.bytesTotal!);
    assert.ok(mid.length > 0, `an intermediate point of the upload was seen: ${copies.map((p) => p.bytesCopied).join(', ')}`);
    for (let i = 1; i < copies.length; i++) assert.ok(copies[i]!.bytesCopied >= copies[i - 1]!.bytesCopied, 'copy progress never goes back within an attempt');
    assert.ok(store.every((p) => p.attempt === 1 && p.activityId !== ''));
    assert.ok(copies.every((p) => p.heartbeatAt instanceof Date && p.state === 'started'));
    assert.deepEqual(errors, [], 'no poll failed');
    assert.equal(await activityProgress(wb, 'big'), null, 'nothing pending once frozen');
  });

  it('activityProgress is null for a workspace that does not exist (yet)', async () => {
    assert.equal(await activityProgress(wb, 'no-such-workspace'), null);
  });

  it('watchProgress keeps polling through failing describes and decodes heartbeat details', async () => {
    const hb = defaultPayloadConverter.toPayload({ bytesCopied: 512, phase: 'copy', bytesTotal: 2048 });
    const pending = [
      { activityId: '1', activityType: { name: 'lastAccess' }, state: 1, attempt: 1 },
      { activityId: '2', activityType: { name: 'restoreLocal' }, state: 2, attempt: 2, heartbeatDetails: { payloads: [hb] }, lastHeartbeatTime: { seconds: 1_700_000_000, nanos: 5e8 } },
    ];
    let calls = 0;
    const fake = {
      handle: () => ({
        describe: async () => {
          calls++;
          if (calls <= 2) throw new Error(`transient ${calls}`);
          if (calls === 3) return { raw: { pendingActivities: [] } };
          return { raw: { pendingActivities: pending } };
        },
      }),
    } as unknown as WorkbooksClient;
    const got: (ActivityProgress | null)[] = [];
    const errors: string[] = [];
    const watch = watchProgress(fake, 'x', (p) => got.push(p), { everyMs: 10, onError: (e) => errors.push((e as Error).message) });
    const until = Date.now() + 5000;
    while (got.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    await watch.stop();
    const afterStop = got.length;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, afterStop, 'no call after stop()');
    assert.deepEqual(errors, ['transient 1', 'transient 2']);
    assert.equal(got[0], null, 'no pending activity: null');
    assert.deepEqual(got[1], {
      activity: 'restoreLocal',
      activityId: '2',
      phase: 'copy',
      bytesCopied: 512,
      bytesTotal: 2048,
      attempt: 2,
      state: 'started',
      heartbeatAt: new Date(1_700_000_000_500),
      lastFailure: null,
    });
  });

  it('the line shows bar, percentage, bytes, rate and ETA; without a total, bytes and elapsed time', () => {
    const base = { label: 'freeze', step: 'storeLocal', phase: 'copy', attempt: 1, waiting: false, elapsedSec: 3 };
    const line = formatProgressLine({ ...base, done: 1.5 * MiB, total: 4 * MiB, rateBps: MiB, etaSec: 2.5 }, 100);
    assert.match(line, /^freeze · storeLocal copy \[█+░+\]  37% 1\.5\/4\.0 MiB · 1\.0 MiB\/s · ETA 3s$/);
    assert.ok(line.length <= 100);
    assert.equal(formatProgressLine({ ...base, phase: 'restore', step: 'provision', done: 0, total: null, rateBps: null, etaSec: null }, 100), 'freeze · provision restore · 3s');
    assert.match(formatProgressLine({ ...base, done: 0, total: null, rateBps: null, etaSec: null, attempt: 3, waiting: true, phase: null }, 100), /attempt 3.*waiting for a worker/);
    assert.ok(formatProgressLine({ ...base, done: 1, total: 2, rateBps: 1, etaSec: 1 }, 30).length <= 30, 'fits a narrow terminal');

    const m = new RateMeter();
    m.push('a', 0, 0);
    assert.equal(m.rate(), null);
    m.push('a', 2000, 4 * MiB);
    assert.equal(m.rate(), 2 * MiB);
    m.push('b', 3000, 100);
    assert.equal(m.rate(), null, 'a new phase starts over');
  });

  it('ProgressBar draws on a TTY stream through cli-progress and clears the line when stopped', () => {
    let written = '';
    const tty = Object.assign(
      new Writable({
        write(chunk, _enc, cb) {
          written += String(chunk);
          cb();
        },
      }),
      { isTTY: true, columns: 90, cursorTo: () => true, clearLine: () => true, moveCursor: () => true },
    );
    let now = 0;
    const bar = new ProgressBar('wake', { stream: tty, now: () => now });
    bar.showActivity(null);
    assert.equal(written, '', 'nothing is drawn before there is progress');
    const p = (bytesCopied: number, at: number): ActivityProgress => ({
      activity: 'restoreLocal',
      activityId: '7',
      phase: 'copy',
      bytesCopied,
      bytesTotal: 4 * MiB,
      attempt: 1,
      state: 'started',
      heartbeatAt: new Date(at),
      lastFailure: null,
    });
    bar.showActivity(p(0, 1000));
    now = 2000;
    bar.showActivity(p(2 * MiB, 2000));
    const v = bar.current()!;
    assert.equal(v.rateBps, 2 * MiB);
    assert.equal(v.etaSec, 1);
    bar.stop();
    assert.match(written, /wake · restoreLocal copy \[░{10,}\]\s+0% 0\.0\/4\.0 MiB · 0s/);
    assert.match(written, /wake · restoreLocal copy \[█+░+\]\s+50% 2\.0\/4\.0 MiB · 2\.0 MiB\/s · ETA 1s/);
    const len = written.length;
    bar.showActivity(p(3 * MiB, 3000));
    assert.equal(written.length, len, 'nothing is drawn after stop()');
    assert.equal(progressEnabled({}, { isTTY: true }, {}), true);
    assert.equal(progressEnabled({ json: true }, { isTTY: true }, {}), false);
    assert.equal(progressEnabled({ progress: false }, { isTTY: true }, {}), false);
    assert.equal(progressEnabled({}, { isTTY: false }, {}), false);
    assert.equal(progressEnabled({}, { isTTY: true }, { TERM: 'dumb' }), false);
  });

  it('the CLI draws a bar on a terminal for freeze, archive, wake and export', { skip: !hasScript && 'util-linux script is not installed' }, async () => {
    await suspendedWorkspace('tty');

    const freeze = await cliInTerminal(['freeze', 'tty']);
    assert.equal(freeze.code, 0, freeze.output);
    const fl = screenLines(freeze.output);
    assert.ok(fl.some((l) => /^freeze · storeLocal (fold|hash|copy|verify|integrity)/.test(l) && BAR.test(l)), `a freeze bar was drawn:\n${fl.join('\n')}`);
    assert.ok(fl.some((l) => l.includes('tty: suspended → frozen')), 'the result line follows');

    const archive = await cliInTerminal(['archive', 'tty']);
    assert.equal(archive.code, 0, archive.output);
    const al = screenLines(archive.output);
    assert.ok(al.some((l) => /^archive · archiveColdCopy (copy|verify)/.test(l) && BAR.test(l)), `an archive bar was drawn:\n${al.join('\n')}`);
    assert.ok(al.some((l) => l.includes('tty: frozen → archived')));

    const wake = await cliInTerminal(['wake', 'tty']);
    assert.equal(wake.code, 0, wake.output);
    const wl = screenLines(wake.output);
    // From the archive: restoreLocal, or recoverLocal when the workflow also has replicas to choose from.
    assert.ok(wl.some((l) => /^wake · (restoreLocal|recoverLocal) (copy|verify)/.test(l) && BAR.test(l)), `a wake bar was drawn:\n${wl.join('\n')}`);
    assert.ok(wl.some((l) => /tty is active on host-p \(cold wake\)/.test(l)));

    const out = path.join(cwd, 'tty-export.sqlite');
    const exp = await cliInTerminal(['export', 'tty', out]);
    assert.equal(exp.code, 0, exp.output);
    const el = screenLines(exp.output);
    assert.ok(el.some((l) => /^export · download \[[█░]+\]\s+\d+%/.test(l)), `an export bar was drawn:\n${el.join('\n')}`);
    assert.ok(fs.statSync(out).size > DATA_BYTES);
  });

  it('no bar with --no-progress, with --json, or when stderr is not a terminal', { skip: !hasScript && 'util-linux script is not installed' }, async () => {
    await suspendedWorkspace('quiet');
    const noProgress = await cliInTerminal(['freeze', 'quiet', '--no-progress']);
    assert.equal(noProgress.code, 0, noProgress.output);
    assert.deepEqual(screenLines(noProgress.output), ['quiet: suspended → frozen']);

    const json = await cliInTerminal(['wake', 'quiet', '--json']);
    assert.equal(json.code, 0, json.output);
    assert.doesNotMatch(json.output, /█|░|restoreLocal/);
    assert.equal(JSON.parse(screenLines(json.output).join('\n')).path, 'cold');

    await wb.transition('quiet', 'suspended');
    const piped = await cliPiped(['freeze', 'quiet']);
    assert.equal(piped.code, 0, piped.stderr);
    assert.equal(piped.stderr, '', 'nothing on stderr when it is not a terminal');
    assert.equal(piped.stdout, 'quiet: suspended → frozen\n');
  });
});
