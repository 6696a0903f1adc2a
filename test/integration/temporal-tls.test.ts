/**
 * Secured Temporal, end to end: a real dev server reachable only through an mTLS-terminating proxy (certificates
 * made by openssl for this run, client certificates required). Over the proxy alone, configured by TEMPORAL_*
 * variables only: a worker host process, WorkbooksClient, the CLI and the HTTP API each create, write, suspend
 * and wake workspaces; a TOML profile (TEMPORAL_CONFIG_FILE + TEMPORAL_PROFILE) works the same. Refused: no
 * client certificate, a client certificate of another CA, a server CA that did not sign the server's
 * certificate, plain gRPC; each with one line saying so. Secrets (API key, client key) appear in no output and
 * in no child process's environment.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ChildProcess, spawn, spawnSync } from 'node:child_process';
import { startTestDevServer, TestDevServer } from '../../harness/temporal';
import { eventually, tempDir, TEST_DATA_KEY, TEST_DATA_KEY_SECRET, uniqueQueue } from '../../harness/stack';
import { kill9, spawnWorker } from '../../harness/worker-process';
import { makeTestCerts, TestCerts } from '../../harness/certs';
import { startTlsProxy, TlsProxy } from '../../harness/tls-proxy';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { WorkbooksError } from '../../src/client/errors';
import { connectClient, connectNative, loadTemporalAccess, TemporalConnectError } from '../../src/temporal-connection';

const CLI = path.resolve(__dirname, '../../src/cli/main.js');
const API_KEY = 'tls-test-api-key-5f0c1e2d3b4a';

let certs: TestCerts;
let dev: TestDevServer;
let proxy: TlsProxy;
let queue: string;
let worker: ChildProcess | null = null;
let workerOut = '';
let api: ChildProcess | null = null;
let apiOut = '';
let clientKeyBody: string;

/** What any process needs, without the test runner's own TEMPORAL_* or WORKBOOKS_* settings. */
function baseEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith('TEMPORAL_') && !k.startsWith('WORKBOOKS_')) out[k] = v;
  return { ...out, WORKBOOKS_TASK_QUEUE: queue, WORKBOOKS_DATA_KEY: TEST_DATA_KEY_SECRET, WORKBOOKS_LOG_LEVEL: 'ERROR' };
}

/** The secured profile as TEMPORAL_* variables. */
function tlsVars(extra: Record<string, string> = {}): Record<string, string> {
  return {
    TEMPORAL_ADDRESS: proxy.address,
    TEMPORAL_NAMESPACE: dev.namespace,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caCert,
    TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCert,
    TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKey,
    ...extra,
  };
}

/** The CLI as a child process; asynchronous, since the proxy it dials runs in this process. */
function wb(args: string[], vars: Record<string, string>, input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...baseEnv(), ...vars }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

async function ok(args: string[], vars: Record<string, string>, input?: string): Promise<string> {
  const r = await wb(args, vars, input);
  assert.equal(r.code, 0, `workbooks ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A refusal: non-zero exit, one line on stderr matching `re`. */
async function refused(args: string[], vars: Record<string, string>, re: RegExp): Promise<string> {
  const r = await wb(args, vars);
  assert.notEqual(r.code, 0, `workbooks ${args.join(' ')} should fail: ${r.stdout}`);
  assert.match(r.stderr.trim(), re);
  assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
  return r.stderr.trim();
}

describe('Temporal behind mTLS: worker, client, CLI and API configured by TEMPORAL_* only', { concurrency: false }, () => {
  before(async () => {
    certs = makeTestCerts();
    clientKeyBody = fs.readFileSync(certs.clientKey, 'utf8').split('\n')[1]!;
    dev = await startTestDevServer();
    proxy = await startTlsProxy({ cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert, backend: dev.address });
    queue = uniqueQueue('tls');
  });

  after(async () => {
    await kill9(api);
    await kill9(worker);
    await proxy?.close();
    await dev?.stop();
    if (certs) fs.rmSync(certs.dir, { recursive: true, force: true });
  });

  it('a worker host process connects through the proxy (client key given inline, plus an API key)', async () => {
    const dataDir = tempDir('wb-tls-host-');
    worker = await spawnWorker({
      host: 'tls-host',
      dataDir,
      env: {
        ...baseEnv(),
        ...tlsVars({ TEMPORAL_TLS_CLIENT_KEY_DATA: fs.readFileSync(certs.clientKey, 'utf8'), TEMPORAL_API_KEY: API_KEY }),
        TEMPORAL_TLS_CLIENT_KEY_PATH: '',
        WORKBOOKS_LOG_LEVEL: 'INFO',
      },
      onStdout: (d) => (workerOut += d),
      onStderr: (d) => (workerOut += d),
    });
    assert.match(workerOut, new RegExp(`temporal ${proxy.address.replace(/\./g, '\\.')} \\(mTLS \\+ API key, TEMPORAL_\\* variables\\)`));
    assert.ok(proxy.accepted > 0, 'the worker came in through the proxy');
  });

  it('WorkbooksClient over mTLS: create, write, suspend, wake, read', async () => {
    const c = await WorkbooksClient.connect({ address: proxy.address, namespace: dev.namespace, taskQueue: queue, dataKey: TEST_DATA_KEY, access: loadTemporalAccess(tlsVars()) });
    try {
      const r = await c.create({ workspaceId: 'tls-a', tenant: 'acme' });
      assert.equal(r.host, 'tls-host');
      await c.putFile('tls-a', 'workspace', '/hello.txt', Buffer.from('over mTLS\n'));
      assert.deepEqual(await c.transition('tls-a', 'suspended'), { from: 'active', state: 'suspended' });
      const woken = await c.wake('tls-a');
      assert.equal(woken.path, 'local');
      assert.equal((await c.getFile('tls-a', 'workspace', '/hello.txt')).toString(), 'over mTLS\n');
    } finally {
      await c.close();
    }
  });

  it('the CLI over mTLS, configured by TEMPORAL_* variables only', async () => {
    const vars = tlsVars();
    assert.match(await ok(['create', 'tls-b', '--tenant', 'acme'], vars), /acme\.tls-b is active on tls-host/);
    await ok(['put', 'acme.tls-b', 'workspace:/note.md', '-'], vars, 'written by the CLI\n');
    assert.match(await ok(['suspend', 'acme.tls-b'], vars), /active → suspended/);
    assert.match(await ok(['wake', 'acme.tls-b'], vars), /acme\.tls-b is active on tls-host \(local wake\)/);
    assert.equal(await ok(['get', 'acme.tls-b', 'workspace:/note.md'], vars), 'written by the CLI\n');
  });

  it('a TOML profile (TEMPORAL_CONFIG_FILE + TEMPORAL_PROFILE) works the same; an unknown profile is one clear line', async () => {
    const file = path.join(certs.dir, 'temporal.toml');
    fs.writeFileSync(
      file,
      [
        '[profile.default]',
        'address = "127.0.0.1:1"',
        '',
        '[profile.secure]',
        `address = "${proxy.address}"`,
        `namespace = "${dev.namespace}"`,
        '[profile.secure.tls]',
        `server_ca_cert_path = "${certs.caCert}"`,
        `client_cert_path = "${certs.clientCert}"`,
        `client_key_path = "${certs.clientKey}"`,
        `server_name = "localhost"`,
        '',
      ].join('\n'),
    );
    const vars = { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'secure' };
    assert.equal(await ok(['get', 'acme.tls-b', 'workspace:/note.md'], vars), 'written by the CLI\n');
    // In process too (as the worker and the API read it), with TEMPORAL_NAMESPACE laid over the file.
    const access = loadTemporalAccess({ ...vars, TEMPORAL_NAMESPACE: 'other' });
    assert.deepEqual(access.toJSON(), { address: proxy.address, namespace: 'other', mode: 'mTLS', source: `profile 'secure' of ${file} + TEMPORAL_* variables` });
    const conn = await connectClient(access, proxy.address);
    await conn.close();
    // Without TEMPORAL_PROFILE, the file's default profile.
    assert.equal(loadTemporalAccess({ TEMPORAL_CONFIG_FILE: file }).address, '127.0.0.1:1');
    await refused(['list'], { TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' }, new RegExp(`^workbooks: TEMPORAL_PROFILE 'prod': no such profile in ${file.replace(/\./g, '\\.')}$`));
  });

  it('the HTTP API (`workbooks api`) answers over mTLS', async () => {
    api = spawn(process.execPath, [CLI, 'api', '--port', '0'], {
      env: { ...baseEnv(), ...tlsVars(), WORKBOOKS_TOKENS: 'tls-admin-token-0123456789=*' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    api.stdout!.on('data', (d) => (apiOut += d));
    api.stderr!.on('data', (d) => (apiOut += d));
    let exited: number | null = null;
    api.once('exit', (code) => (exited = code ?? -1));
    const base = await eventually(async () => {
      if (exited !== null) throw new Error(`workbooks api exited ${exited}: ${apiOut}`);
      return /workbooks api up: (http:\/\/127\.0\.0\.1:\d+)/.exec(apiOut)?.[1];
    }, 'the API to start', 30_000);
    assert.match(apiOut, /\(mTLS, TEMPORAL_\* variables\)/);
    const auth = { authorization: 'Bearer tls-admin-token-0123456789' };
    const listed = (await (await fetch(`${base}/v1/workspaces`, { headers: auth })).json()) as { workspaces: { id: string }[] };
    assert.deepEqual(listed.workspaces.map((w) => w.id).sort(), ['acme.tls-b', 'tls-a']);
    const res = await fetch(`${base}/v1/workspaces/tls-a/files/workspace/hello.txt`, { headers: auth });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'over mTLS\n');
  });

  it('refuses, with one clear line: no client certificate, another CA\'s client certificate, the wrong server CA, plain gRPC', async () => {
    const noCert = { TEMPORAL_ADDRESS: proxy.address, TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caCert };
    // As a CLI user sees them: one line on stderr.
    await refused(['list'], noCert, /^workbooks: cannot connect to Temporal at 127\.0\.0\.1:\d+ \(TLS, TEMPORAL_\* variables\): the server requires a client certificate \(mTLS\): set TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH$/);
    await refused(['list'], tlsVars({ TEMPORAL_TLS_CLIENT_CERT_PATH: path.join(certs.dir, 'missing.pem') }), /^workbooks: TEMPORAL_TLS_CLIENT_CERT_PATH \S+missing\.pem: no such file$/);

    // Both connection kinds (client: gRPC-js; worker: Core) refuse alike.
    const cases: [string, Record<string, string>, RegExp][] = [
      ['no client certificate', noCert, /the server requires a client certificate/],
      ['a client certificate of another CA', tlsVars({ TEMPORAL_TLS_CLIENT_CERT_PATH: certs.otherClientCert, TEMPORAL_TLS_CLIENT_KEY_PATH: certs.otherClientKey }), /the server refused the client certificate/],
      ['the wrong server CA', tlsVars({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.otherCaCert }), /the server's certificate is not trusted: TEMPORAL_TLS_SERVER_CA_CERT_PATH is not the CA that signed it/],
      ['a server name the certificate does not carry', tlsVars({ TEMPORAL_TLS_SERVER_NAME: 'temporal.example' }), /the server's certificate is not for 'temporal\.example'/],
      ['plain gRPC', { TEMPORAL_ADDRESS: proxy.address }, /\(plain, TEMPORAL_\* variables\): the server speaks TLS there: set TEMPORAL_TLS=true/],
    ];
    for (const [what, vars, re] of cases) {
      const access = loadTemporalAccess(vars);
      for (const [kind, connect] of [
        ['client', () => connectClient(access, proxy.address)],
        ['worker', () => connectNative(access, proxy.address)],
      ] as const) {
        const started = Date.now();
        await assert.rejects(connect(), (err: Error) => {
          assert.ok(err instanceof TemporalConnectError, `${kind}, ${what}: ${err}`);
          assert.match(err.message, re, `${kind}, ${what}`);
          assert.equal(err.message.split('\n').length, 1);
          return true;
        });
        assert.ok(Date.now() - started < 7_000, `${kind}, ${what}: refused in ${Date.now() - started} ms, not at the 10 s deadline`);
      }
    }

    // WorkbooksClient: a WorkbooksError (unavailable) carrying the same line.
    await assert.rejects(
      WorkbooksClient.connect({ address: proxy.address, namespace: dev.namespace, taskQueue: queue, access: loadTemporalAccess(tlsVars({ TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.otherCaCert })) }),
      (err: Error) => err instanceof WorkbooksError && err.code === 'unavailable' && /not trusted/.test(err.message),
    );
    assert.ok(proxy.refused.length >= 3, `the proxy refused the handshakes: ${proxy.refused.length}`);
  });

  it('`workbooks up` refuses TLS settings without an address instead of dropping them', async () => {
    const r = await wb(['up'], { TEMPORAL_TLS: 'true', WORKBOOKS_DATA_DIR: tempDir('wb-tls-up-'), WORKBOOKS_METRICS_PORT: 'off', WORKBOOKS_HTTP_PORT: 'off' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^workbooks: Temporal TLS\/API key settings are given \(TLS, TEMPORAL_\* variables\) but no address: set TEMPORAL_ADDRESS/);
  });

  it('secrets stay out of every output and out of Litestream\'s environment', () => {
    for (const [what, text] of [
      ['worker output', workerOut],
      ['api output', apiOut],
    ] as const) {
      assert.ok(!text.includes(API_KEY), `${what} holds no API key`);
      assert.ok(!text.includes(clientKeyBody), `${what} holds no client key`);
    }
    assert.ok(workerOut.length > 0);
    // The worker replicates its active workspaces with a Litestream daemon: it gets no TEMPORAL_* at all.
    const kids = spawnSync('pgrep', ['-P', String(worker!.pid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
    const litestream = kids.filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'litestream';
      } catch {
        return false;
      }
    });
    assert.equal(litestream.length, 1, `one Litestream daemon under the worker (children: ${kids.join(', ')})`);
    const environ = fs.readFileSync(`/proc/${litestream[0]}/environ`, 'utf8').split('\0');
    assert.deepEqual(environ.filter((kv) => kv.startsWith('TEMPORAL_')), []);
    assert.ok(!environ.some((kv) => kv.includes(API_KEY) || kv.includes(clientKeyBody)));
  });
});
