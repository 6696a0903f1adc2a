/**
 * The embedded default as a user runs it: `workbooks up` in a child process (dev server + Web UI + worker +
 * data server), the README tour through the CLI, Ctrl-C, and a second start that finds the same workspaces
 * in the same states.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePorts } from '../../harness/temporal';
import { eventually, tempDir } from '../../harness/stack';
import { CLI, WorkbooksUp } from '../../harness/up';

let dataDir: string;
let env: NodeJS.ProcessEnv;
let up: WorkbooksUp;

function serverProcesses(): string[] {
  const r = spawnSync('pgrep', ['-f', `temporal server start-dev --db-filename ${dataDir}`], { encoding: 'utf8' });
  return r.stdout.split('\n').filter(Boolean);
}

describe('workbooks up (embedded default) and the CLI tour', { concurrency: false }, () => {
  before(async () => {
    dataDir = tempDir('wb-up-');
    const [temporalPort, uiPort, hostPort, httpPort] = await freePorts(4);
    env = {
      ...process.env,
      WORKBOOKS_DATA_DIR: dataDir,
      WORKBOOKS_TEMPORAL_PORT: String(temporalPort),
      WORKBOOKS_UI_PORT: String(uiPort),
      WORKBOOKS_HOST_PORT: String(hostPort),
      WORKBOOKS_HTTP_PORT: String(httpPort),
      // The tour runs its idle ladder in seconds; outside tests the CLI refuses rungs under a minute.
      WORKBOOKS_POLICY_FLOOR: '1s',
    };
    delete env.WORKBOOKS_TOKENS;
    delete env.WORKBOOKS_TOKENS_FILE;
    delete env.TEMPORAL_ADDRESS;
    delete env.WORKBOOKS_COLD_URL;
    delete env.WORKBOOKS_ARCHIVE_URL;
    delete env.WORKBOOKS_REPLICA_URL;
    delete env.WORKBOOKS_S3_ENDPOINT;
    delete env.WORKBOOKS_TASK_QUEUE;
    up = new WorkbooksUp(env);
    await up.start();
  });

  after(async () => {
    await up?.stop();
  });

  it('runs the tour: create, write, watch a short policy suspend and freeze it, wake it, find it by state', async () => {
    assert.match(up.log, /web ui http:\/\/127\.0\.0\.1:\d+/);
    const ui = up.log.match(/web ui (http:\/\/127\.0\.0\.1:\d+)/)![1];
    const page = await fetch(ui);
    assert.equal(page.status, 200, 'the Temporal Web UI answers');

    assert.match(up.ok(['create', 'notes', '--tenant', 'acme', '--suspend-after', '3s', '--freeze-after', '3s']), /acme\.notes is active/);
    up.ok(['put', 'acme.notes', 'workspace:/hello.md', '-'], 'hello, workbooks\n');
    up.ok(['put', 'acme.notes', 'memory:/learned.md', '-'], 'remember me\n');
    assert.equal(up.ok(['get', 'acme.notes', 'workspace:/hello.md']), 'hello, workbooks\n');

    await eventually(async () => JSON.parse(up.ok(['show', 'acme.notes', '--json'])).state === 'frozen', 'notes to be frozen by its policy', 60_000, 500);
    const frozen = JSON.parse(up.ok(['show', 'acme.notes', '--json']));
    assert.ok(frozen.cold.url.startsWith(`file://${dataDir}/cold/`), 'cold storage defaults to file://<data dir>/cold');
    await eventually(async () => JSON.parse(up.ok(['list', '--state', 'frozen', '--json'])).some((w: { workspaceId: string }) => w.workspaceId === 'acme.notes'), 'list --state frozen to show notes');

    assert.match(up.ok(['wake', 'acme.notes']), /acme\.notes is active on .* \(cold wake\)/);
    assert.equal(up.ok(['get', 'acme.notes', 'memory:/learned.md']), 'remember me\n');
    const history = JSON.parse(up.ok(['history', 'acme.notes', '--json'])) as { from: string; to: string; by: string }[];
    // (Its 3-second policy may already have suspended it again on a busy machine: the first four moves are the tour's.)
    assert.deepEqual(
      history.slice(0, 4).map((e) => `${e.from}>${e.to}:${e.by}`),
      ['created>active:workbooks', 'active>suspended:policy', 'suspended>frozen:policy', `frozen>active:${process.env.USER ?? 'cli'}`],
    );
    const out = path.join(dataDir, 'notes-export.sqlite');
    assert.match(up.ok(['export', 'acme.notes', out]), /exported acme\.notes/);
    assert.ok(fs.statSync(out).size > 0);
  });

  it('serves the HTTP API, with an admin token made in the data dir when none is configured', async () => {
    const m = up.log.match(/http api +(http:\/\/127\.0\.0\.1:\d+) +\(admin token in ([^;]+);/);
    assert.ok(m, `the banner names the API and its token file: ${up.log}`);
    const [, base, tokenFile] = m!;
    assert.equal(tokenFile, path.join(dataDir, 'api-token'));
    assert.equal(fs.statSync(tokenFile!).mode & 0o777, 0o600, 'the token file is private');
    const token = fs.readFileSync(tokenFile!, 'utf8').trim();
    assert.equal((await fetch(`${base}/v1/workspaces`)).status, 401);
    const auth = { authorization: `Bearer ${token}` };
    const listed = (await (await fetch(`${base}/v1/workspaces`, { headers: auth })).json()) as { workspaces: { id: string }[] };
    assert.ok(listed.workspaces.some((w) => w.id === 'acme.notes'), 'the API and the CLI see the same workspaces');
    const res = await fetch(`${base}/v1/workspaces/acme.notes/files/workspace/hello.md`, { headers: auth });
    assert.equal(await res.text(), 'hello, workbooks\n');
    assert.equal((await fetch(`${base}/openapi.json`)).status, 200);
  });

  it('needs no S3: cold copies and replicas are file:// under the data dir, and restore works from the CLI', async () => {
    assert.match(up.log, new RegExp(`replicas +file://${dataDir}/replicas`));
    up.ok(['put', 'acme.notes', 'workspace:/later.md', '-'], 'written later\n');
    const d = JSON.parse(up.ok(['show', 'acme.notes', '--json']));
    const gen = d.replicas.at(-1);
    assert.ok(gen.url.startsWith(`file://${dataDir}/replicas/acme.notes/`), `replicated to ${gen.url}`);
    // Replication ships about once a second; restore the newest data once it is there.
    await eventually(async () => {
      const r = up.wb(['restore', 'acme.notes', '--as', `notes-copy-${Date.now() % 100000}`, '--json']);
      if (r.code !== 0) return false;
      const id = JSON.parse(r.stdout).workspaceId as string;
      const got = up.wb(['get', id, 'workspace:/later.md']);
      return got.code === 0 && got.stdout === 'written later\n';
    }, 'a restored copy with the newest write', 30_000, 1500);
    const bad = up.wb(['restore', 'acme.notes', '--at', 'last tuesday']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /not a time/);
  });

  it('answers bad input with one line and a non-zero exit, changing nothing', () => {
    up.ok(['create', 'steady', '--tenant', 'acme']);
    // A file is streamed from disk (not read whole first).
    const src = path.join(dataDir, 'upload.bin');
    fs.writeFileSync(src, Buffer.alloc(3 * 1024 * 1024 + 7, 'z'));
    assert.match(up.ok(['put', 'acme.steady', 'workspace:/upload.bin', src]), /wrote 3145735 bytes/);
    const files = JSON.parse(up.ok(['ls', 'acme.steady', 'workspace:/', '--json'])) as { path: string; bytes: number }[];
    assert.deepEqual(files.map((f) => [f.path, f.bytes]), [['/upload.bin', 3145735]]);
    // Paging: one workspace a page, the cursor leads to the next, and the pages do not overlap.
    const p1 = JSON.parse(up.ok(['list', '--limit', '1', '--json'])) as { workspaces: { workspaceId: string }[]; nextCursor: string | null };
    assert.equal(p1.workspaces.length, 1);
    assert.ok(p1.nextCursor, 'a next page');
    const p2 = JSON.parse(up.ok(['list', '--limit', '1', '--cursor', p1.nextCursor!, '--json'])) as typeof p1;
    assert.equal(p2.workspaces.length, 1);
    assert.notEqual(p2.workspaces[0]!.workspaceId, p1.workspaces[0]!.workspaceId);
    assert.match(up.wb(['list', '--cursor', p1.nextCursor!.slice(0, -2) + 'xx']).stderr, /cursor is not valid/);
    const cases: [string[], RegExp][] = [
      [['create', '../etc', '--tenant', 'acme'], /workspace id '\.\.\/etc' is invalid/],
      [['create', 'x1', '--tenant', 'Acme Corp'], /tenant 'Acme Corp' is invalid/],
      [['create', 'x2', '--tenant', 'acme', '--freeze-after', 'soon'], /not a duration/],
      [['create', 'globex.x3', '--tenant', 'acme'], /belongs to tenant 'globex', not 'acme'/],
      [['put', 'acme.steady', 'scratch:/a'], /unknown volume 'scratch'/],
      [['put', 'acme.steady', 'workspace:relative.txt'], /must be absolute/],
      [['get', 'acme.steady', 'workspace:/a/../b'], /'\.' or '\.\.' segments/],
      [['show', 'ghost'], /workspace 'ghost' does not exist/],
      [['freeze', 'acme.steady'], /cannot move from active to frozen/],
      [['list', '--state', 'sleepy'], /unknown state 'sleepy'/],
      [['export', 'acme.steady', '/no/such/dir/out.sqlite'], /does not exist/],
    ];
    for (const [args, re] of cases) {
      const r = up.wb(args);
      assert.notEqual(r.code, 0, `workbooks ${args.join(' ')} should fail`);
      assert.match(r.stderr, re, `workbooks ${args.join(' ')}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line for ${args.join(' ')}: ${r.stderr}`);
    }
    // The policy floor (default 1m): a tenant's ladder cannot churn its workspace every few seconds.
    const floored = spawnSync(process.execPath, [CLI, 'create', 'x3', '--tenant', 'acme', '--suspend-after', '30s'], { env: { ...env, WORKBOOKS_POLICY_FLOOR: '1m' }, encoding: 'utf8', timeout: 60_000 });
    assert.notEqual(floored.status, 0);
    assert.match(floored.stderr, /policy\.suspendAfter '30s' is shorter than the floor of 1m/);
    assert.equal(up.wb(['show', 'acme.x3']).code, 1, 'nothing was created');
    const steady = JSON.parse(up.ok(['show', 'acme.steady', '--json']));
    assert.equal(steady.state, 'active', 'nothing changed');
    assert.deepEqual(steady.ledger.map((e: { outcome: string }) => e.outcome), ['done'], 'a refused update is not even recorded');
    const listed = JSON.parse(up.ok(['list', '--json'])).map((w: { workspaceId: string }) => w.workspaceId) as string[];
    // notes-copy-* are the restores of the test before.
    assert.deepEqual(listed.filter((id) => !id.startsWith('acme.notes-copy-')).sort(), ['acme.notes', 'acme.steady']);
  });

  it("the README's HTTP example runs as written: every request succeeds", async () => {
    // The block that defines `api()`, read from the README (so text and code cannot drift apart), run by bash
    // line by line against this `up`: its port and token file instead of the defaults, and an `api` that also
    // prints each answer's status, so a 4xx or 5xx anywhere fails the test.
    const readme = fs.readFileSync(path.resolve(__dirname, '../../../README.md'), 'utf8');
    const block = /```sh\n(export TOKEN=[\s\S]*?)```/.exec(readme)?.[1];
    assert.ok(block, 'the README has its HTTP example');
    const port = env.WORKBOOKS_HTTP_PORT!;
    const lines = block!.split('\n').filter((l) => l.startsWith('api '));
    assert.ok(lines.length >= 8, `the example's requests: ${lines.length}`);
    const script = [
      `export TOKEN=$(cat ${JSON.stringify(path.join(dataDir, 'api-token'))})`,
      'api() { curl -sS -o /dev/null -w "%{http_code}\\n" -H "authorization: Bearer $TOKEN" "$@"; }',
      ...lines.map((l) => l.replaceAll('localhost:8787', `127.0.0.1:${port}`)),
    ].join('\n');
    const r = spawnSync('bash', ['-e', '-c', script], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const codes = r.stdout.trim().split('\n');
    assert.equal(codes.length, lines.length, r.stdout);
    codes.forEach((code, i) => assert.match(code, /^2\d\d$/, `${lines[i]} answered ${code}`));
  });

  it('Ctrl-C stops everything; starting again finds the same workspaces in the same states', async () => {
    up.ok(['create', 'keeper', '--tenant', 'globex']);
    up.ok(['put', 'globex.keeper', 'workspace:/a.txt', '-'], 'kept across restarts');
    up.ok(['suspend', 'globex.keeper']);
    const before = JSON.parse(up.ok(['list', '--json'])) as { workspaceId: string; state: string }[];
    const code = await up.stop();
    assert.equal(code, 0, `up exits cleanly: ${up.log}`);
    assert.deepEqual(serverProcesses(), [], 'the dev server stopped too');

    await up.start();
    const afterRestart = JSON.parse(up.ok(['list', '--json'])) as { workspaceId: string; state: string }[];
    // `notes` (and its restored copies) run a 3-second policy and `drafts` (the HTTP example's) a 1-minute one, and
    // may move on their own; the others hold still.
    const byId = (rows: { workspaceId: string; state: string }[]) =>
      Object.fromEntries(rows.filter((r) => !r.workspaceId.startsWith('acme.notes') && r.workspaceId !== 'acme.drafts').map((r) => [r.workspaceId, r.state]));
    assert.deepEqual(byId(before), { 'globex.keeper': 'suspended', 'acme.steady': 'active' });
    assert.deepEqual(byId(afterRestart), byId(before));
    assert.ok(afterRestart.some((r) => r.workspaceId === 'acme.notes'), 'notes is still there');
    assert.equal(up.ok(['get', 'globex.keeper', 'workspace:/a.txt']), 'kept across restarts');
    // An active workspace from before the restart is served again (its host reopens it on first use).
    assert.equal(up.ok(['get', 'acme.notes', 'workspace:/hello.md']), 'hello, workbooks\n');
  });
});
