/**
 * The embedded control plane's replica keeps WORKBOOKS_CONTROL_PLANE_GENERATIONS generations: `up` restarted again
 * and again with the Temporal database gone from the disk (each start restores it and starts a new generation)
 * leaves at most that many, deletes older ones only once the new one replicates, never touches what is no
 * generation, keeps running when a deletion fails (and deletes it at the next start), and the newest generation left
 * still restores the workspaces' record.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { eventually, tempDir } from '../../harness/stack';
import { WorkbooksUp, killLeftoverDaemon, upEnvWithOtherDisk } from '../../harness/up';

const KEEP = 2;
const GENERATION = /^\d{13}-[0-9a-f]{8}$/;
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

let root: string;
let dataDir: string;
let cpRoot: string;
let up: WorkbooksUp;

/** The control-plane generations in the replica dir, oldest first. */
function generations(): string[] {
  return fs.readdirSync(cpRoot).filter((n) => GENERATION.test(n)).sort();
}

/** The generation the banner names, by its name under the root. */
function current(): string {
  const m = up.log.match(/control db +\S+ → (\S+) \(/);
  assert.ok(m, `the banner names the control plane's replica: ${up.log}`);
  assert.ok(m![1]!.startsWith(`file://${cpRoot}/`), m![1]);
  return m![1]!.slice(`file://${cpRoot}/`.length);
}

/** Starts `up` and waits until it says what became of the old generations (it prunes after the banner). */
async function startAndPrune(): Promise<string> {
  await up.start();
  await eventually(async () => /control-plane generations: \d+ kept|old control-plane generations were not deleted/.test(up.log), 'up to prune its old control-plane generations', 60_000, 200);
  return current();
}

/** The Temporal database gone from the disk (not the rest of the data dir): the next start restores it. */
function dropTemporalDb(): void {
  for (const f of fs.readdirSync(path.join(dataDir, 'temporal'))) {
    if (f.startsWith('temporal.db')) fs.rmSync(path.join(dataDir, 'temporal', f), { force: true });
  }
}

describe(`control plane replica retention: at most ${KEEP} generations`, { concurrency: false }, () => {
  before(async () => {
    root = tempDir('wb-cpg-');
    dataDir = path.join(root, 'data');
    const replicaDir = path.join(root, 'other-disk', 'replicas');
    cpRoot = path.join(replicaDir, '_control-plane', '_temporal');
    up = new WorkbooksUp(await upEnvWithOtherDisk(dataDir, path.join(root, 'other-disk'), { WORKBOOKS_CONTROL_PLANE_GENERATIONS: String(KEEP) }));
  });

  after(async () => {
    await up?.stop();
    killLeftoverDaemon(dataDir);
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('restarts that start new generations leave the newest ones, and the newest still restores', async () => {
    // Things under the root that are no generation are never deleted.
    fs.mkdirSync(path.join(cpRoot, 'notes-keep-me'), { recursive: true });
    fs.writeFileSync(path.join(cpRoot, 'notes-keep-me', 'readme.txt'), 'not a generation');
    fs.writeFileSync(path.join(cpRoot, 'keep-me.txt'), 'not a generation either');

    const started = [await startAndPrune()];
    assert.match(up.log, /control db .*\(new generation\)/);
    up.ok(['create', 'notes', '--tenant', 'acme']);
    up.ok(['put', 'acme.notes', 'workspace:/hello.md', '-'], 'kept through every generation\n');

    // Each start on a disk without the Temporal database restores it and starts a new generation.
    for (let i = 0; i < 2; i++) {
      assert.equal(await up.stop(), 0, `up exits cleanly: ${up.log}`);
      dropTemporalDb();
      const gen = await startAndPrune();
      assert.match(up.log, new RegExp(`restored it from file://\\S+/${started.at(-1)}`), 'restored from the newest generation');
      started.push(gen);
      assert.deepEqual(generations(), started.slice(-KEEP), `the newest ${KEEP} generations are left: ${up.log}`);
    }
    assert.equal(started.length, 3);
    assert.match(up.log, new RegExp(`deleted the old control-plane generation file://${esc(cpRoot)}/${started[0]} \\(\\d+ files\\)`), 'each deletion is logged');

    // A generation that cannot be deleted (deleteReplica refuses anything that is not Litestream's): `up` runs on
    // and says so; the next start deletes it.
    const stuck = started.at(-2)!;
    fs.writeFileSync(path.join(cpRoot, stuck, 'someone-elses.txt'), 'not replica data');
    assert.equal(await up.stop(), 0, `up exits cleanly: ${up.log}`);
    dropTemporalDb();
    started.push(await startAndPrune());
    assert.match(up.log, new RegExp(`could not delete the old control-plane generation file://${esc(cpRoot)}/${stuck}: .*not Litestream replica data.*next start tries again`));
    assert.match(up.log, /control-plane generations: 3 kept, 0 deleted, 1 not deleted/);
    assert.deepEqual(generations(), [stuck, ...started.slice(-KEEP)]);
    assert.equal(up.ok(['get', 'acme.notes', 'workspace:/hello.md']), 'kept through every generation\n', 'up keeps running');
    fs.rmSync(path.join(cpRoot, stuck, 'someone-elses.txt'));
    assert.equal(await up.stop(), 0, `up exits cleanly: ${up.log}`);
    assert.equal(await startAndPrune(), started.at(-1), 'a restart on the same disk continues the generation');
    assert.match(up.log, new RegExp(`deleted the old control-plane generation file://${esc(cpRoot)}/${stuck} `));
    assert.deepEqual(generations(), started.slice(-KEEP));

    // The newest generation left restores the record of every workspace.
    assert.equal(await up.stop(), 0, `up exits cleanly: ${up.log}`);
    dropTemporalDb();
    started.push(await startAndPrune());
    assert.match(up.log, new RegExp(`restored it from file://${esc(cpRoot)}/${started.at(-2)} `));
    assert.equal(JSON.parse(up.ok(['show', 'acme.notes', '--json'])).state, 'active');
    assert.equal(up.ok(['get', 'acme.notes', 'workspace:/hello.md']), 'kept through every generation\n');
    assert.deepEqual(generations(), started.slice(-KEEP));
    assert.ok(fs.existsSync(path.join(cpRoot, 'notes-keep-me', 'readme.txt')) && fs.existsSync(path.join(cpRoot, 'keep-me.txt')), 'what is no generation stays');
  });
});
