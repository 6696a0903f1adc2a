/**
 * What a tenant sees (src/api/tenant-view.ts): a table of real messages our code produces (error bodies of the
 * data server, the client and the workflow; ledger details of every edge) in, nothing of the host out, the
 * reason and the stable code kept; an admin sees them as they are.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WorkbooksError } from '../../src/client/errors';
import { ApiError } from '../../src/api/errors';
import { errorFor, errorTextFor, failureKind, ledgerFor, listedViewFor, scrub, tenantError, tenantLedgerEntry, workspaceViewFor } from '../../src/api/tenant-view';
import type { LedgerEntry, WorkspaceDescription } from '../../src/contract/types';
import { internalsIn } from '../../harness/leaks';

const HOSTS = ['worker-1', 'worker-2', 'ip-10-0-3-7.ec2.internal'];
const TENANT = { tenant: 'acme', admin: false };
const ADMIN = { tenant: null, admin: true };
const clean = (text: string, extra: string[] = []) => assert.deepEqual(internalsIn(text, { hosts: [...HOSTS, ...extra] }), [], `leaks in: ${text}`);

/** Real messages (same templates as the code that writes them), with what the tenant must still be told. */
const MESSAGES: [string, RegExp][] = [
  [`host 'worker-1' is out of disk space; nothing was changed (a file of 18874368 bytes needs about 19317063 bytes on the data dir; 16711680 are free)`, /out of disk space; nothing was changed/],
  [`host 'worker-1' is out of disk space; nothing was changed (ENOSPC: no space left on device (injected at dataServer.put))`, /out of disk space/],
  [`cannot reach host worker-2 at http://worker-2:8788: fetch failed`, /cannot reach/],
  [`cannot reach Temporal at 127.0.0.1:7233: 14 UNAVAILABLE: No connection established (is \`workbooks up\` running?)`, /cannot reach Temporal/],
  [`workspace 'notes-1' has no local file on host 'worker-1' to store (/data/live/notes-1.sqlite)`, /has no local file on its host to store/],
  [`stored copy s3://workbooks/cold/notes-1.8b55d6cc4b3af430.sqlite is a file that fails SQLite's integrity check: row 3 missing from index`, /fails SQLite's integrity check/],
  [`frozen to file:///tmp/wb-cold/notes-1.8b55d6cc4b3af430.sqlite (20480 bytes, sha256 8b55d6cc4b3a, restore-verified); local copy released`, /^frozen to .*restore-verified/],
  [`instance stopped on worker-1; file kept (20480 bytes); replica flushed`, /file kept/],
  [`GET request: host worker-1 unreachable`, /^GET request: its host unreachable$/],
  [`GET request: host answered not_here`, /^GET request: host answered not_here$/],
  [`ENOSPC: no space left on device, write '/var/lib/workbooks/live/.notes-1.sqlite.3.partial'`, /no space left on device/],
  [`EACCES: permission denied, open 'C:\\data\\live\\notes-1.sqlite'`, /permission denied/],
  [`connect ECONNREFUSED 10.0.3.7:9000`, /ECONNREFUSED/],
  [`getaddrinfo ENOTFOUND minio:9000`, /ENOTFOUND/],
  [`no source could restore 'notes-1': stored copy file:///srv/cold/notes-1.aa.sqlite: missing; replica s3://b/replicas/notes-1/e-g2: gone`, /no source could restore 'notes-1'/],
  [`Error: boom\n    at Object.<anonymous> (/app/dist/src/x.js:1:2)\n    at Module._compile (node:internal/modules/cjs/loader:1554:14)`, /^Error: boom$/],
  [`restored from replica s3://workbooks/replicas/notes-1/01a2-g3 on ip-10-0-3-7.ec2.internal; skipped: stored copy s3://workbooks/cold/x: ChecksumMismatch`, /restored from replica/],
];

describe('tenant view: scrubbing free text (the second line)', () => {
  for (const [message, keep] of MESSAGES) {
    it(`scrubs: ${message.slice(0, 70)}`, () => {
      const out = scrub(message, HOSTS);
      clean(out);
      assert.match(out, keep, `keeps the reason: ${out}`);
    });
  }

  it('keeps what is not internal: state names, ids, times, sha256 prefixes, vfs words', () => {
    const s = 'cannot move from active to frozen: from active a workspace can only go to suspended or archived';
    assert.equal(scrub(s), s);
    assert.equal(scrub("restored from notes-1 as of 2026-11-24T21:30:00Z"), 'restored from notes-1 as of 2026-11-24T21:30:00Z');
    assert.equal(scrub('idle 86400s'), 'idle 86400s');
    assert.equal(scrub('lunch'), 'lunch');
  });

  it('clips long text', () => {
    assert.ok(scrub('x'.repeat(5000)).length <= 300);
  });
});

describe('tenant view: error bodies', () => {
  const below = (message: string, code: string, status: number) => {
    const err = new WorkbooksError(message, code, status);
    return { err, e: new ApiError(status, code, message) };
  };

  /** [message, code, status, what the tenant is told] */
  const TABLE: [string, string, number, RegExp][] = [
    [MESSAGES[0]![0], 'disk_full', 507, /^the workspace's host is out of disk space; nothing was changed$/],
    [MESSAGES[2]![0], 'host_unavailable', 503, /cannot be reached right now/],
    [MESSAGES[3]![0], 'unavailable', 503, /retry shortly/],
    [`active -> suspended failed: ${MESSAGES[4]![0]}`, 'move_failed', 500, /^the move failed: an internal error/],
    [`frozen -> active failed: ${MESSAGES[14]![0]}`, 'move_failed', 500, /^the move failed: no usable copy of the data was found/],
    [`suspended -> frozen failed: ${MESSAGES[5]![0]}`, 'move_failed', 500, /^the move failed: a copy failed its integrity check/],
    [`frozen -> active failed: ${MESSAGES[10]![0]}`, 'move_failed', 500, /^the move failed: a host ran out of disk space/],
    [`restore from stored copy s3://b/cold/x.sqlite: cold copy s3://b/cold/x.sqlite reads as sha256 ab; expected cd`, 'create_failed', 422, /could not be created: a stored copy did not match its checksum/],
    [`template 'base' is on a host that is gone: host worker-2 did not take work for 30s`, 'create_failed', 422, /could not be created: its host was lost/],
    [`store URL 's3://b/cold' cannot be used: NoSuchBucket`, 'move_failed', 500, /storage or a host could not be reached/],
    [`request body is larger than 268435456 bytes`, 'too_large', 413, /^the request body is too large$/],
    [`this data server does not answer for host 'evil.example:8788'`, 'bad_host', 421, /^the request could not be served$/],
    [`grant signed with another key`, 'bad_grant', 401, /^the request could not be served$/],
    [`something odd at /app/dist/src/x.js`, 'error', 500, /^internal error/],
    [`host worker-1 lease lapsed at 05:01:02; ask again`, 'fenced', 503, /retry shortly/],
  ];
  for (const [message, code, status, want] of TABLE) {
    it(`${status} ${code}: a fixed sentence, same status and code`, () => {
      const { err, e } = below(message, code, status);
      const t = tenantError(err, e);
      assert.equal(t.statusCode, status);
      assert.equal(t.code, code);
      assert.match(t.message, want);
      clean(t.message);
    });
  }

  it('messages about the caller\'s own request pass as they are (known safe shapes), else scrubbed', () => {
    for (const [message, code, status] of [
      ["workspace 'notes-1' does not exist", 'not_found', 404],
      ["workspace 'notes-1' already exists", 'already_exists', 409],
      ['no file workspace:/notes/today.md', 'not_found', 404],
      ["template workspace 'base' does not exist", 'bad_request', 400],
      ['cannot move from active to frozen: from active a workspace can only go to suspended or archived', 'illegal_transition', 409],
      ["workspace 'notes-1' is still waking; retry shortly", 'waking', 503],
    ] as const) {
      const { err, e } = below(message, code, status);
      assert.equal(tenantError(err, e).message, message);
    }
    const { err, e } = below('bad placement on host worker-1 (/data/live/x)', 'bad_request', 400);
    clean(tenantError(err, e).message);
  });

  it('errors the API raises about the request itself are untouched (they echo only the caller\'s input)', () => {
    const e = new ApiError(400, 'bad_path', "path '/a/b/../c' must not contain '..'");
    assert.equal(tenantError(e, e), e);
    const v = new ApiError(413, 'too_large', 'request body is too large (files up to 1048576 bytes, JSON up to 65536 bytes)');
    assert.equal(tenantError(v, v), v, 'limits are not disk figures');
  });

  it('an unexpected error (a 500 the API did not raise) is a fixed sentence', () => {
    const err = new Error(`EACCES: permission denied, open '/data/live/x.sqlite'`);
    const t = tenantError(err, new ApiError(500, 'internal', err.message));
    assert.equal(t.message, 'internal error (the operator has the details)');
  });

  it('an admin sees the full message; the operator log gets the full message of every 5xx and every change', () => {
    const { err, e } = below(MESSAGES[0]![0], 'disk_full', 507);
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => {
      lines.push(String(chunk));
      return true;
    }) as typeof process.stderr.write;
    let admin: ApiError;
    let tenant: ApiError;
    let plain: ApiError;
    try {
      admin = errorFor(ADMIN, err, e, { method: 'PUT', url: '/v1/workspaces/x/files/workspace/a?x=1' });
      tenant = errorFor(TENANT, err, e, { method: 'PUT', url: '/v1/workspaces/x/files/workspace/a' });
      const own = new ApiError(404, 'not_found', "workspace 'x' does not exist");
      plain = errorFor(TENANT, own, own, { method: 'GET', url: '/v1/workspaces/x' });
    } finally {
      process.stderr.write = write;
    }
    assert.equal(admin.message, MESSAGES[0]![0]);
    assert.match(tenant.message, /^the workspace's host is out of disk space/);
    assert.equal(plain.message, "workspace 'x' does not exist");
    assert.equal(lines.length, 2, `one line per 5xx answer, none for an unchanged 4xx: ${lines.join('')}`);
    const logged = lines.map((l) => JSON.parse(l));
    assert.equal(logged[0].level, 'ERROR');
    assert.equal(logged[0].error, MESSAGES[0]![0]);
    assert.equal(logged[0].url, '/v1/workspaces/x/files/workspace/a');
    assert.equal(logged[1].error, MESSAGES[0]![0], 'the operator keeps what the tenant was not shown');
    assert.equal(logged[1].shown, tenant.message);
    assert.equal(logged[1].caller, 'acme');
  });

  it('a session\'s failed wake: the tenant gets the kind of failure, the admin the message', () => {
    const err = new WorkbooksError(`frozen -> active failed: ${MESSAGES[14]![0]}`, 'move_failed', 500);
    assert.match(errorTextFor(TENANT, err), /no usable copy/);
    clean(errorTextFor(TENANT, err));
    assert.equal(errorTextFor(ADMIN, err), err.message);
    assert.equal(errorTextFor(TENANT, new Error('boom at /x/y')), 'internal error (the operator has the details)');
  });
});

describe('tenant view: failure kinds', () => {
  it('recognises each kind, and anything else is a fixed "internal error"', () => {
    const kinds: [string, RegExp][] = [
      ['ENOSPC: no space left on device (injected at restoreLocal:after-download)', /disk space/],
      ['stored copy s3://x/y reads as sha256 aa (10 bytes); expected bb (10 bytes)', /checksum/],
      ["workspace 'w': file is not a database", /integrity/],
      ['host worker-1 did not take work for 30s (last poll 05:00:00)', /host was lost/],
      ['there is no replica or stored copy to restore w from', /no usable copy/],
      ["cannot restore s3://b/replicas/w/e-g1 at 2026-01-01T00:00:00Z: that is earlier than anything the replica retains (it reaches back to 2026-02-01T00:00:00Z, newest 2026-03-01T00:00:00Z)", /no longer kept/],
      ["no replica of 'w' reaches back to 2026-01-01T00:00:00Z; the earliest remembered point is 2026-02-01T00:00:00Z", /no longer kept/],
      ["restore time 2030-01-01T00:00:00Z is in the future", /^the restore time is in the future$/],
      ["restore time 2020-01-01T00:00:00Z is before workspace 'w' was created (2026-01-01T00:00:00Z)", /^the restore time is before the source workspace was created$/],
      ["template workspace 'base' does not exist", /template or restore source/],
      ['connect ECONNREFUSED 127.0.0.1:9000', /could not be reached/],
      ['TypeError: cannot read properties of undefined', /^an internal error/],
    ];
    for (const [text, want] of kinds) assert.match(failureKind(text), want, text);
  });
});

function description(ledger: LedgerEntry[], extra: Partial<WorkspaceDescription> = {}): WorkspaceDescription {
  return {
    workspaceId: 'notes-1',
    tenant: 'acme',
    template: null,
    state: 'active',
    createdAt: '2026-12-07T05:00:00.000Z',
    stateSince: '2026-12-07T05:00:00.000Z',
    lastActiveAt: '2026-12-07T05:00:00.000Z',
    host: 'worker-1',
    endpoint: 'http://worker-1:8788',
    placement: 3,
    filePath: '/data/live/notes-1.sqlite',
    cold: { url: 's3://workbooks/cold/notes-1.8b55.sqlite', sha256: '8b55'.padEnd(64, '0'), bytes: 20480, at: '2026-12-07T05:00:00.000Z' },
    archive: null,
    prefetched: { host: 'worker-2', filePath: '/data/live/notes-1.sqlite' },
    replicas: [{ url: 's3://workbooks/replicas/notes-1/e-g1', host: 'ip-10-0-3-7.ec2.internal', from: '2026-12-07T05:00:00.000Z', to: null }],
    restoredFrom: null,
    policy: { suspendAfter: '15m', freezeAfter: '24h', archiveAfter: 'never', deleteAfter: 'never' },
    nextAutoAt: null,
    nextAutoTo: null,
    busy: null,
    pendingCommands: 0,
    ledger,
    runs: 0,
    ...extra,
  };
}

const entry = (from: string, to: string, outcome: LedgerEntry['outcome'], detail: string, reason = 'api x', by = 'api:acme'): LedgerEntry =>
  ({ from, to, at: '2026-12-07T05:00:00.000Z', reason, by, outcome, detail }) as LedgerEntry;

describe('tenant view: ledger and views', () => {
  /** [entry, what the tenant's detail says] — details as src/workflows/moves.ts and workspace-runner.ts write them. */
  const LEDGER: [LedgerEntry, RegExp][] = [
    [entry('created', 'active', 'done', 'created on worker-1'), /^created$/],
    [entry('active', 'suspended', 'done', 'instance stopped on worker-1; file kept (20480 bytes); replica flushed'), /^stopped; its file is kept$/],
    [entry('active', 'suspended', 'done', 'host worker-1 did not take work for 30s (last poll …); its copy is treated as lost and the next wake restores the newest data'), /host was lost/],
    [entry('suspended', 'active', 'done', 'resumed from local file on worker-1'), /^resumed$/],
    [entry('suspended', 'frozen', 'done', 'frozen to s3://workbooks/cold/notes-1.8b55d6cc4b3af430.sqlite (20480 bytes, sha256 8b55d6cc4b3a, restore-verified); local copy released'), /^stored in cold storage \(verified\)/],
    [entry('frozen', 'active', 'done', 'restored from cold copy s3://workbooks/cold/notes-1.8b55.sqlite on worker-2 (sha256 verified)'), /^restored from a verified stored copy$/],
    [entry('frozen', 'active', 'done', 'restored from stored copy s3://workbooks/cold/notes-1.8b55.sqlite (sha256 verified) on worker-2'), /^restored from a verified stored copy$/],
    [entry('frozen', 'active', 'done', 'resumed from prefetched cold copy on worker-2'), /prefetched/],
    [entry('active', 'active', 'done', 'host worker-1 did not take work for 30s (last poll 05:00:00); restored from replica s3://workbooks/replicas/notes-1/e-g1 on worker-2; skipped: stored copy s3://x: stale'), /^its host was lost; restored from the continuous backup$/],
    [entry('frozen', 'archived', 'done', 'archived to s3://workbooks/archive/notes-1.8b55.sqlite (20480 bytes)'), /^archived \(verified\)$/],
    [entry('archived', 'deleted', 'done', 'deleted 1 stored copy, the replicas and every local copy'), /^deleted with every copy$/],
    [entry('suspended', 'frozen', 'failed', "suspended -> frozen failed: stored copy file:///srv/cold/notes-1.aa.sqlite is a file that fails SQLite's integrity check: x"), /^a copy failed its integrity check$/],
    [entry('frozen', 'active', 'failed', 'frozen -> active failed: ENOSPC: no space left on device (injected at recoverLocal:after-download)'), /^a host ran out of disk space$/],
    [entry('active', 'active', 'failed', 'recovering active workspace failed: weird thing at /data/x'), /^an internal error/],
    [entry('active', 'frozen', 'refused', 'cannot move from active to frozen: from active a workspace can only go to suspended or archived'), /^cannot move from active to frozen/],
  ];
  for (const [e, want] of LEDGER) {
    it(`${e.from} -> ${e.to} ${e.outcome}: ${e.detail!.slice(0, 50)}`, () => {
      const t = tenantLedgerEntry(e, description([e]));
      assert.match(t.detail ?? '', want);
      clean(JSON.stringify(t));
      assert.deepEqual({ ...t, detail: undefined }, { ...e, detail: undefined }, 'from, to, at, reason, by, outcome kept');
    });
  }

  it('a clone and a restore name their source (ids the tenant sees in the view anyway)', () => {
    const clone = entry('created', 'active', 'done', 'cloned from base on worker-1 (20480 bytes)');
    assert.equal(tenantLedgerEntry(clone, description([clone], { template: 'base' })).detail, 'cloned from base');
    const restore = entry('created', 'active', 'done', 'restored from notes-0 as of 2026-12-07T04:00:00Z (s3://workbooks/replicas/notes-0/e-g1) on worker-1 (20480 bytes)');
    assert.equal(
      tenantLedgerEntry(restore, description([restore], { restoredFrom: { workspaceId: 'notes-0', at: '2026-12-07T04:00:00Z' } })).detail,
      'restored from notes-0 as of 2026-12-07T04:00:00Z',
    );
  });

  it('the actor\'s reason is scrubbed of the hosts the workspace names', () => {
    const e = entry('active', 'active', 'done', 'x', 'GET request: host ip-10-0-3-7.ec2.internal unreachable', 'client');
    const t = tenantLedgerEntry(e, description([e]));
    assert.equal(t.reason, 'GET request: its host unreachable');
    const named = entry('active', 'active', 'done', 'x', 'moved off worker-2 for maintenance', 'ops');
    assert.equal(tenantLedgerEntry(named, description([named])).reason, 'moved off its host for maintenance');
  });

  it('an admin gets the ledger and the host as they are; a tenant no host in views and listings', () => {
    const ledger = LEDGER.map(([e]) => e);
    const d = description(ledger);
    assert.equal(ledgerFor(ADMIN, d), d.ledger);
    const t = ledgerFor(TENANT, d);
    assert.equal(t.length, ledger.length);
    clean(JSON.stringify(t));
    assert.equal(workspaceViewFor(ADMIN, d, (k) => k).host, 'worker-1');
    const tv = workspaceViewFor(TENANT, d, (k) => k);
    assert.ok(!('host' in tv));
    clean(JSON.stringify(tv));
    assert.equal(tv.cold?.bytes, 20480, "the size of the tenant's own copy is its data, not a disk figure");
    const listed = { workspaceId: 'notes-1', tenant: 'acme', state: 'active', host: 'worker-1', startedAt: 'x', lastActiveAt: null } as never;
    assert.equal((listedViewFor(ADMIN, listed, 'notes-1') as { host?: string }).host, 'worker-1');
    assert.ok(!('host' in listedViewFor(TENANT, listed, 'notes-1')));
    assert.ok(!('host' in listedViewFor(null, listed, 'notes-1')), 'no token is not an admin');
  });
});
