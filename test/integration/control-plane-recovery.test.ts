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
import { tempDir } from '../../harness/stack';
import { WorkbooksUp, killLeftoverDaemon, upEnvWithOtherDisk } from '../../harness/up';

let root: string;
let dataDir: string;
let replicaDir: string;
let coldDir: string;
let up: WorkbooksUp;

/** The generation the banner says the Temporal database is replicated to. */
function bannerGeneration(log: string): string {
  const m = log.match(/control db +(\S+) → (\S+) \(([^)]*)\)/);
  assert.ok(m, `the banner names the control plane's replica: ${log}`);
  assert.equal(m![1], path.join(dataDir, 'temporal', 'temporal.db'));
  return m![2]!;
}

describe('control plane recovery: `up` on an empty disk restores the Temporal database from its replica', { concurrency: false }, () => {
  before(async () => {
    root = tempDir('wb-cpr-');
    dataDir = path.join(root, 'data');
    replicaDir = path.join(root, 'other-disk', 'replicas');
    coldDir = path.join(root, 'other-disk', 'cold');
    up = new WorkbooksUp(await upEnvWithOtherDisk(dataDir, path.join(root, 'other-disk')));
  });

  after(async () => {
    await up?.stop();
    killLeftoverDaemon(dataDir);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('finds a frozen workspace after the whole data dir is gone, and wakes it from its cold copy', async () => {
    // What must hold is checked first (the workspace is found and whole); how `up` says it got there, after.
    let t = Date.now();
    await up.start();
    const firstStartMs = Date.now() - t;
    const firstLog = up.log;

    up.ok(['create', 'notes', '--tenant', 'acme']);
    up.ok(['put', 'acme.notes', 'workspace:/hello.md', '-'], 'outlives the disk\n');
    up.ok(['suspend', 'acme.notes']);
    up.ok(['freeze', 'acme.notes']);
    const frozen = JSON.parse(up.ok(['show', 'acme.notes', '--json']));
    assert.equal(frozen.state, 'frozen');
    assert.ok(frozen.cold.url.startsWith(`file://${coldDir}/`), `the cold copy is on the other disk: ${frozen.cold.url}`);

    // A restart on the same disk opens the database that is there and continues its generation.
    assert.equal(await up.stop(), 0, `up exits cleanly: ${up.log}`);
    await up.start();
    const restartLog = up.log;
    assert.equal(JSON.parse(up.ok(['show', 'acme.notes', '--json'])).state, 'frozen');
    const code = await up.stop();
    assert.equal(code, 0, `up exits cleanly: ${up.log}`);

    // The disk is gone: the Temporal database, the live files, the data key, Litestream's state, all of it.
    fs.rmSync(dataDir, { recursive: true, force: true });

    t = Date.now();
    await up.start();
    const recoveredStartMs = Date.now() - t;

    const shown = up.wb(['show', 'acme.notes', '--json']);
    assert.equal(shown.code, 0, `the workspace is known after the disk was lost: ${shown.stderr}`);
    assert.equal(JSON.parse(shown.stdout).state, 'frozen', 'in the state it was left in');
    assert.equal(JSON.parse(shown.stdout).cold.url, frozen.cold.url);
    t = Date.now();
    assert.match(up.ok(['wake', 'acme.notes']), /acme\.notes is active on .* \(cold wake\)/);
    const wakeMs = Date.now() - t;
    assert.equal(up.ok(['get', 'acme.notes', 'workspace:/hello.md']), 'outlives the disk\n');

    const first = bannerGeneration(firstLog);
    assert.ok(first.startsWith(`file://${replicaDir}/_control-plane/_temporal/`), `replicated beside the workspaces' replicas: ${first}`);
    assert.match(firstLog, /control db .*\(new generation\)/);
    assert.equal(bannerGeneration(restartLog), first, 'a restart on the same disk continues the generation');
    assert.match(restartLog, /control db .*\(continued\)/);
    assert.doesNotMatch(restartLog, /restored it from/, 'nothing is restored over a database that is there');
    assert.match(up.log, new RegExp(`restored it from ${first.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), 'the log says where the database came from');
    const second = bannerGeneration(up.log);
    assert.notEqual(second, first, 'the restored database starts a generation of its own');
    assert.match(up.log, /control db .*\(restored from file:\/\/\S+; new generation\)/);
    process.stdout.write(`# first start ${firstStartMs} ms, start on the empty disk (restore included) ${recoveredStartMs} ms, cold wake ${wakeMs} ms\n`);
  });
});
