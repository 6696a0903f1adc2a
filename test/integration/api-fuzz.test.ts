/**
 * The OpenAPI document tells the whole truth: Schemathesis (pinned in .tools by the bootstrap) reads
 * /openapi.json from a live API (real Temporal dev server, one real host, the API on a real port) and throws
 * generated requests at every operation, valid and invalid, with every check it has: no 5xx but the documented
 * 503, every status code and header and body as documented, every schema-valid request accepted and every
 * schema-violating one refused, 405 with Allow for undeclared methods. Fixed seed, one worker, bounded examples:
 * the same requests every run, a few minutes on two cores. Zero failures, or the summary is printed.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startTestDevServer } from '../../harness/temporal';
import { clientFor, startTestHost, TestHost, uniqueQueue } from '../../harness/stack';
import { ApiServer, startApiServer } from '../../src/api/server';
import { parseTokenSpec } from '../../src/api/tokens';
import { projectRoot } from '../../src/tools';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const TOKEN = 'tok-fuzz-0123456789';
const SEED = 20261207;
const MAX_EXAMPLES = 100;
/** The whole run must end well within the test's own timeout. */
const RUN_LIMIT_MS = 6 * 60_000;

/**
 * 503 (a workspace still waking, Temporal unreachable) is a documented answer with Retry-After, not a server
 * error; every other 5xx is a failure.
 */
const CONFIG = `[checks.not_a_server_error]
expected-statuses = ["2xx", "3xx", "4xx", "503"]

# Schemathesis's own list of rejections, plus 413: a JSON body over the API's 64 KiB limit is refused with a
# documented 413 too_large before it is parsed, whatever it holds (a 151 KB body of junk was once taken for accepted).
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

# The list cursor is opaque: any string fits its schema, and only one the server made is valid (anything else is
# 400 bad_cursor, documented). For this one operation a 400 to schema-valid input is the documented answer.
[[operations]]
include-name = "GET /v1/workspaces"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
`;

let server: Server;
let host: TestHost;
let api: ApiServer;

interface Run {
  code: number | null;
  out: string;
  ms: number;
}

function schemathesis(args: string[], cwd: string): Promise<Run> {
  const bin = path.join(projectRoot(), '.tools', 'bin', 'schemathesis');
  assert.ok(fs.existsSync(bin), `${bin} is missing: run npm run bootstrap`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { cwd, env: { ...process.env, NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), RUN_LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, ms: Date.now() - started });
    });
  });
}

describe('OpenAPI conformance (Schemathesis against the live API)', () => {
  before(async () => {
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('fuzz');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue });
    api = await startApiServer({
      client: clientFor(server.client, taskQueue),
      tokens: parseTokenSpec(`${TOKEN}=fuzz`, 'test'),
      waitMs: 30_000,
      port: 0,
      bind: '127.0.0.1',
      maxFileBytes: 1024 * 1024,
      // Schemathesis sends many requests without a valid token on purpose: the 401 lockout (tested elsewhere) is
      // off, or it would answer 429 to everything after the tenth.
      authFailures: 0,
      // Its generated policies take rungs down to 1s (the schema's form; the floor is a setting, default 1m).
      policyFloorMs: 1000,
      // The host's stores, so storage reports answer with real listings.
      stores: { coldUrl: host.cfg.coldUrl, archiveUrl: host.cfg.archiveUrl, replicaUrl: host.cfg.replicaUrl },
    });
    // Workspaces for the generated requests to find (ids drawn from the schema rarely exist).
    for (const id of ['w1', 'w2']) {
      const r = await fetch(`${api.url}/v1/workspaces`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id }),
      });
      assert.equal(r.status, 201, await r.text());
    }
  });

  after(async () => {
    await api?.close();
    await host?.stop();
    await server?.stop();
  });

  it('finds no failure: every answer is documented, every constraint is in the schema', { timeout: RUN_LIMIT_MS + 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-fuzz-'));
    try {
      fs.writeFileSync(path.join(dir, 'schemathesis.toml'), CONFIG);
      const run = await schemathesis(
        [
          '--config-file', path.join(dir, 'schemathesis.toml'),
          '--no-color',
          'run', `${api.url}/openapi.json`,
          '--header', `Authorization: Bearer ${TOKEN}`,
          '--checks', 'all',
          '--phases', 'coverage,fuzzing,stateful',
          '--max-examples', String(MAX_EXAMPLES),
          '--seed', String(SEED),
          // One worker: the same requests in the same order every run (and CPython 3.11's parser is not
          // thread-safe enough for Hypothesis's lambda descriptions under several workers).
          '--workers', '1',
          '--generation-database', 'none',
          '--report', 'vcr',
          '--report-dir', dir,
        ],
        dir,
      );
      const cassette = fs.readdirSync(dir).find((f) => f.startsWith('vcr-'));
      const requests = cassette ? (fs.readFileSync(path.join(dir, cassette), 'utf8').match(/^- id: /gm) ?? []).length : 0;
      const generated = /(\d+) generated/.exec(run.out)?.[1];
      console.log(`schemathesis: ${generated ?? '?'} test cases, ${requests} requests, exit ${run.code}, ${(run.ms / 1000).toFixed(1)} s`);
      // The failures and the summary come last; a very long report is cut from its start.
      // A failing request's body can be hundreds of KB on one line: each line is cut so the failure itself shows.
      const report = run.out
        .split('\n')
        .map((l) => (l.length > 2000 ? `${l.slice(0, 2000)} …(${l.length} characters)` : l))
        .join('\n');
      assert.equal(run.code, 0, `schemathesis found failures or errors:\n${run.code === 0 ? '' : report.slice(-60_000)}`);
      assert.match(run.out, /\d+ generated, \d+ passed/, 'every generated test case passed');
      assert.ok(requests > 1000, `a real run: ${requests} requests`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
