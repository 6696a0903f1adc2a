/**
 * Templates as a role (src/contract/template-role.ts), end to end on a real dev server, a real worker host, the
 * HTTP API and the CLI: an admin publishes a template to every tenant; two tenants clone it; neither sees the
 * other's writes nor the template's memory; every clone is of the one published version, recorded in its ledger;
 * the template cannot be written, woken, archived or deleted through the API, the CLI or a raw workflow update or
 * signal, and its idle ladder does not move it. A template shared with one tenant reads as missing to another.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, startTestHost, TestHost, tempDir, uniqueQueue, TEST_DATA_KEY_SECRET } from '../../harness/stack';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { ApiServer, startApiServer } from '../../src/api/server';
import { parseTokenSpec } from '../../src/api/tokens';
import { transitionUpdate, wakeUpdate } from '../../src/contract/definitions';
import { innermost } from '../../src/client/errors';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const TOKENS = 'tok-acme-0123456789=acme,tok-globex-0123456789=globex,tok-initech-0123456789=initech,tok-admin-0123456789=*';
const ACME = 'tok-acme-0123456789';
const GLOBEX = 'tok-globex-0123456789';
const INITECH = 'tok-initech-0123456789';
const ADMIN = 'tok-admin-0123456789';

let server: Awaited<ReturnType<typeof startTestDevServer>>;
let host: TestHost;
let wb: WorkbooksClient;
let api: ApiServer;
let taskQueue: string;

async function call(method: string, url: string, token: string, opts: { json?: unknown; body?: string } = {}) {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    headers['content-type'] = 'application/json';
  }
  const res = await fetch(`${api.url}${url}`, { method, headers, body });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    // a file body
  }
  return { status: res.status, text, json };
}

/** The CLI in a child process, asynchronously: the worker host runs in this process and must keep serving. */
function cli(args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = { ...process.env, TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: server.namespace, WORKBOOKS_TASK_QUEUE: taskQueue, WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET, WORKBOOKS_DATA_DIR: tempDir('wb-tpl-cli-') };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

describe('templates: one template, many tenants', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    taskQueue = uniqueQueue('tpl');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue });
    wb = clientFor(server.client, taskQueue);
    api = await startApiServer({ client: wb, tokens: parseTokenSpec(TOKENS, 'test'), waitMs: 30_000, port: 0, bind: '127.0.0.1', policyFloorMs: 1000 });
  });

  after(async () => {
    await api?.close();
    await host?.stop();
    await server?.stop();
  });

  it('an admin-published template is cloned by two tenants: each clone is the one version, without memory or tmp, and isolated', async () => {
    // acme's base notebook, with a short archive rung: once published, the ladder must not move it.
    const made = await call('POST', '/v1/workspaces', ADMIN, { json: { id: 'base', tenant: 'acme', policy: { archiveAfter: '2s' } } });
    assert.equal(made.status, 201, made.text);
    for (const [vol, p, body] of [['workspace', 'readme.md', 'start here'], ['memory', 'secret.md', "acme's notes"], ['tmp', 'scratch', 'x']]) {
      assert.equal((await call('PUT', `/v1/workspaces/acme.base/files/${vol}/${p}`, ADMIN, { body })).status, 200);
    }
    // A tenant may not publish to everyone; the admin may. Publishing an active workspace suspends and freezes it.
    assert.equal((await call('POST', '/v1/workspaces/base/publish', ACME, { json: { shareWith: '*' } })).status, 403);
    const pub = await call('POST', '/v1/workspaces/acme.base/publish', ADMIN, { json: { shareWith: '*', reason: 'the starter notebook' } });
    assert.equal(pub.status, 200, pub.text);
    assert.equal(pub.json.state, 'frozen');
    assert.equal(pub.json.published.version, pub.json.cold.sha256, 'the version is the verified cold copy');
    assert.equal(pub.json.published.shareWith, '*');
    const version = pub.json.published.version as string;

    // Two tenants clone it by its key.
    for (const token of [GLOBEX, INITECH]) {
      const c = await call('POST', '/v1/workspaces', token, { json: { id: 'mine', from: 'acme.base' } });
      assert.equal(c.status, 201, c.text);
      assert.equal(c.json.template, 'acme.base');
    }
    for (const token of [GLOBEX, INITECH]) {
      assert.equal((await call('GET', '/v1/workspaces/mine/files/workspace/readme.md', token)).text, 'start here');
      assert.equal((await call('GET', '/v1/workspaces/mine/files/memory/secret.md', token)).status, 404, "the template's memory never crosses tenants");
      assert.deepEqual((await call('GET', '/v1/workspaces/mine/files/memory', token)).json.files, []);
      assert.deepEqual((await call('GET', '/v1/workspaces/mine/files/tmp', token)).json.files, []);
      const h = await call('GET', '/v1/workspaces/mine/history', token);
      const first = h.json.ledger[0];
      assert.equal(first.detail, `cloned from acme.base version sha256 ${version}; memory not carried: another tenant`, h.text);
    }
    await call('PUT', '/v1/workspaces/mine/files/workspace/readme.md', GLOBEX, { body: "globex's edit" });
    assert.equal((await call('GET', '/v1/workspaces/mine/files/workspace/readme.md', INITECH)).text, 'start here', "initech does not see globex's write");
    // acme's own clone keeps memory (same tenant).
    const own = await call('POST', '/v1/workspaces', ACME, { json: { id: 'own-copy', from: 'base' } });
    assert.equal(own.status, 201, own.text);
    assert.equal((await call('GET', '/v1/workspaces/own-copy/files/memory/secret.md', ACME)).text, "acme's notes");

    // The template itself: unchanged, still frozen, and its ladder did not archive it.
    await new Promise((r) => setTimeout(r, 3000));
    const d = await wb.describe('acme.base');
    assert.equal(d.state, 'frozen');
    assert.equal(d.nextAutoAt, null, 'off the idle ladder');
    assert.equal(d.cold!.sha256, version);
  });

  it('the template cannot be written, woken, archived or deleted: API, CLI, raw update or signal', async () => {
    const before = await wb.describe('acme.base');
    for (const token of [ACME, ADMIN]) {
      const id = token === ADMIN ? 'acme.base' : 'base';
      const put = await call('PUT', `/v1/workspaces/${id}/files/workspace/readme.md`, token, { body: 'overwritten' });
      assert.equal(put.status, 409, put.text);
      assert.match(put.json.error.message, /published template/);
      for (const [method, route] of [['POST', 'wake'], ['POST', 'archive'], ['POST', 'suspend']] as const) {
        const r = await call(method, `/v1/workspaces/${id}/${route}`, token);
        assert.equal(r.status, 409, `${route}: ${r.text}`);
      }
      assert.equal((await call('DELETE', `/v1/workspaces/${id}`, token)).status, 409);
    }
    const put = await cli(['put', 'acme.base', 'workspace:/readme.md', '-'], 'via the CLI');
    assert.notEqual(put.code, 0);
    assert.match(put.stderr, /published template/);
    const archive = await cli(['archive', 'acme.base']);
    assert.notEqual(archive.code, 0);
    assert.match(archive.stderr, /published template/);
    // Raw updates are refused by their validators; a raw signal is recorded as refused.
    const handle = server.client.workflow.getHandle('workspace:acme.base');
    const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (e: unknown) => innermost(e));
    assert.match(await refusal(handle.executeUpdate(transitionUpdate, { args: [{ to: 'archived' }] })), /published template/);
    assert.match(await refusal(handle.executeUpdate(wakeUpdate, { args: [{}] })), /published template/);
    await handle.signal('archive', { reason: 'sneaky', by: 'raw' });
    await eventually(async () => (await wb.describe('acme.base')).ledger.some((e) => e.reason === 'sneaky' && e.outcome === 'refused'), 'the signal refused in the ledger');
    const after = await wb.describe('acme.base');
    assert.equal(after.state, 'frozen');
    assert.equal(after.cold!.sha256, before.cold!.sha256, 'the version did not change');
    assert.equal(after.host, null, 'never opened on a host');
    // The CLI shows the role; a clone through the CLI into a third tenant works too.
    assert.match((await cli(['show', 'acme.base'])).stdout, /published +template version sha256/);
    const c = await cli(['create', 'hooli.copy', '--from', 'acme.base']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal((await wb.getFile('hooli.copy', 'workspace', '/readme.md')).toString(), 'start here');
  });

  it('a template shared with one tenant reads as missing to another; unpublished, it is an ordinary workspace again', async () => {
    assert.equal((await call('POST', '/v1/workspaces', ACME, { json: { id: 'private' } })).status, 201);
    await call('PUT', '/v1/workspaces/private/files/workspace/plan.md', ACME, { body: 'for globex' });
    const pub = await call('POST', '/v1/workspaces/private/publish', ACME, { json: { shareWith: ['globex'] } });
    assert.equal(pub.status, 200, pub.text);
    assert.deepEqual(pub.json.published.shareWith, ['globex']);
    assert.equal((await call('POST', '/v1/workspaces', GLOBEX, { json: { id: 'plan', from: 'acme.private' } })).status, 201);
    const refused = await call('POST', '/v1/workspaces', INITECH, { json: { id: 'plan', from: 'acme.private' } });
    assert.deepEqual([refused.status, refused.json.error.message], [404, "template workspace 'acme.private' does not exist"]);
    const unshared = await call('POST', '/v1/workspaces', INITECH, { json: { id: 'steal', from: 'acme.own-copy' } });
    assert.equal(unshared.status, 404, 'an ordinary workspace of another tenant is never clonable');
    // The client refuses it, and so does the workflow itself (another service starting it directly): nothing is made.
    await assert.rejects(wb.create({ workspaceId: 'initech.direct', tenant: 'initech', template: 'acme.private' }), /not a template shared with tenant 'initech'/);
    const direct = await server.client.workflow.start('workspace', {
      workflowId: 'workspace:initech.direct',
      taskQueue,
      args: [{ workspaceId: 'initech.direct', tenant: 'initech', template: 'acme.private' }],
    });
    const why = await direct.result().then(() => 'created', (e: unknown) => innermost(e));
    assert.match(why, /not a template shared with tenant 'initech'/);

    const un = await call('POST', '/v1/workspaces/private/unpublish', ACME);
    assert.equal(un.status, 200, un.text);
    assert.equal(un.json.published, null);
    assert.equal((await call('POST', '/v1/workspaces', GLOBEX, { json: { id: 'plan-2', from: 'acme.private' } })).status, 404, 'no longer shared');
    const woke = await call('PUT', '/v1/workspaces/private/files/workspace/plan.md', ACME, { body: 'mine again' });
    assert.equal(woke.status, 200, woke.text);
  });
});
