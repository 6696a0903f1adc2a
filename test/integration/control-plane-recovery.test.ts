/**
 * The embedded control plane outlives its disk: `workbooks up` with replicas and cold copies on another disk, a
 * workspace written, suspended and frozen, Ctrl-C, the whole data dir gone (the Temporal database with it), and
 * `up` again on the empty data dir: it restores the Temporal database from its replica, finds the workspace
 * frozen, and a wake brings it back from its cold copy with its file intact.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { freePorts } from '../../harness/temporal';
import { tempDir } from '../../harness/stack';
import { alive } from '../../src/process-alive';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');

let root: string;
let dataDir: string;
let replicaDir: string;
let coldDir: string;
let env: NodeJS.ProcessEnv;
let up: ChildProcess | null = null;
let upLog = '';

function startUp(): Promise<ChildProcess> {
  upLog = '';
  const child = spawn(process.execPath, [CLI, 'up'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (upLog += d));
  child.stderr!.on('data', (d) => (upLog += d));
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`up did not start: ${upLog}`)), 90_000);
    const onData = () => {
      if (upLog.includes('Ctrl-C stops everything')) {
        clearTimeout(t);
        child.stdout!.off('data', onData);
        resolve(child);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`up exited ${code}: ${upLog}`));
    });
  });
}

function stopUp(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    if (child.exitCode !== null) return resolve(child.exitCode);
    child.once('exit', (code) => resolve(code));
    child.kill('SIGINT');
  });
}

function wb(args: string[], input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env, input, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(args: string[], input?: string): string {
  const r = wb(args, input);
  assert.equal(r.code, 0, `workbooks ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** The generation the banner says the Temporal database is replicated to. */
function bannerGeneration(log: string): string {
  const m = log.match(/control db +(\S+) → (\S+) \(([^)]*)\)/);
  assert.ok(m, `the banner names the control plane's replica: ${log}`);
  assert.equal(m![1], path.join(dataDir, 'temporal', 'temporal.db'));
  return m![2]!;
}

/** A Litestream daemon this test's `up` left behind (it should leave none), stopped by its pid. */
function stopStrayDaemon(): void {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'litestream', 'litestream.pid'), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1 && alive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // none
  }
}

describe('control plane recovery: `up` on an empty disk restores the Temporal database from its replica', { concurrency: false }, () => {
  before(async () => {
    root = tempDir('wb-cpr-');
    dataDir = path.join(root, 'data');
    replicaDir = path.join(root, 'other-disk', 'replicas');
    coldDir = path.join(root, 'other-disk', 'cold');
    const [temporalPort, uiPort, hostPort, httpPort] = await freePorts(4);
    env = {
      ...process.env,
      WORKBOOKS_DATA_DIR: dataDir,
      WORKBOOKS_REPLICA_URL: `file://${replicaDir}`,
      WORKBOOKS_COLD_URL: `file://${coldDir}`,
      WORKBOOKS_ARCHIVE_URL: `file://${path.join(root, 'other-disk', 'archive')}`,
      WORKBOOKS_TEMPORAL_PORT: String(temporalPort),
      WORKBOOKS_UI_PORT: String(uiPort),
      WORKBOOKS_HOST_PORT: String(hostPort),
      WORKBOOKS_HTTP_PORT: String(httpPort),
      WORKBOOKS_METRICS_PORT: 'off',
    };
    for (const k of ['WORKBOOKS_TOKENS', 'WORKBOOKS_TOKENS_FILE', 'TEMPORAL_ADDRESS', 'WORKBOOKS_S3_ENDPOINT', 'WORKBOOKS_TASK_QUEUE', 'WORKBOOKS_DATA_KEY', 'WORKBOOKS_DATA_KEY_FILE']) {
      delete env[k];
    }
  });

  after(async () => {
    if (up) await stopUp(up);
    stopStrayDaemon();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('finds a frozen workspace after the whole data dir is gone, and wakes it from its cold copy', async () => {
    // What must hold is checked first (the workspace is found and whole); how `up` says it got there, after.
    let t = Date.now();
    up = await startUp();
    const firstStartMs = Date.now() - t;
    const firstLog = upLog;

    ok(['create', 'notes', '--tenant', 'acme']);
    ok(['put', 'acme.notes', 'workspace:/hello.md', '-'], 'outlives the disk\n');
    ok(['suspend', 'acme.notes']);
    ok(['freeze', 'acme.notes']);
    const frozen = JSON.parse(ok(['show', 'acme.notes', '--json']));
    assert.equal(frozen.state, 'frozen');
    assert.ok(frozen.cold.url.startsWith(`file://${coldDir}/`), `the cold copy is on the other disk: ${frozen.cold.url}`);

    // A restart on the same disk opens the database that is there and continues its generation.
    assert.equal(await stopUp(up), 0, `up exits cleanly: ${upLog}`);
    up = await startUp();
    const restartLog = upLog;
    assert.equal(JSON.parse(ok(['show', 'acme.notes', '--json'])).state, 'frozen');
    const code = await stopUp(up);
    up = null;
    assert.equal(code, 0, `up exits cleanly: ${upLog}`);

    // The disk is gone: the Temporal database, the live files, the data key, Litestream's state, all of it.
    fs.rmSync(dataDir, { recursive: true, force: true });

    t = Date.now();
    up = await startUp();
    const recoveredStartMs = Date.now() - t;

    const shown = wb(['show', 'acme.notes', '--json']);
    assert.equal(shown.code, 0, `the workspace is known after the disk was lost: ${shown.stderr}`);
    assert.equal(JSON.parse(shown.stdout).state, 'frozen', 'in the state it was left in');
    assert.equal(JSON.parse(shown.stdout).cold.url, frozen.cold.url);
    t = Date.now();
    assert.match(ok(['wake', 'acme.notes']), /acme\.notes is active on .* \(cold wake\)/);
    const wakeMs = Date.now() - t;
    assert.equal(ok(['get', 'acme.notes', 'workspace:/hello.md']), 'outlives the disk\n');

    const first = bannerGeneration(firstLog);
    assert.ok(first.startsWith(`file://${replicaDir}/_control-plane/_temporal/`), `replicated beside the workspaces' replicas: ${first}`);
    assert.match(firstLog, /control db .*\(new generation\)/);
    assert.equal(bannerGeneration(restartLog), first, 'a restart on the same disk continues the generation');
    assert.match(restartLog, /control db .*\(continued\)/);
    assert.doesNotMatch(restartLog, /restored it from/, 'nothing is restored over a database that is there');
    assert.match(upLog, new RegExp(`restored it from ${first.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'the log says where the database came from');
    const second = bannerGeneration(upLog);
    assert.notEqual(second, first, 'the restored database starts a generation of its own');
    assert.match(upLog, /control db .*\(restored from file:\/\/\S+; new generation\)/);
    process.stdout.write(`# first start ${firstStartMs} ms, start on the empty disk (restore included) ${recoveredStartMs} ms, cold wake ${wakeMs} ms\n`);
  });
});
