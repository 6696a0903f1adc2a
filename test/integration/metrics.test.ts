/**
 * Prometheus metrics and JSON logs of a real `workbooks worker` process: drive one workspace through
 * create → suspend → wake (local) → warm wake → suspend → freeze → wake (cold), plus one refused move, then
 * scrape its /metrics and read its stderr.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort, startTestDevServer } from '../../harness/temporal';
import { clientFor, eventually, tempDir, uniqueQueue } from '../../harness/stack';
import { kill9, spawnWorker } from '../../harness/worker-process';
import { WorkbooksClient } from '../../src/client/workbooks-client';
import { ACTIVE_INSTANCES, COPY_BYTES, COPY_DURATION, TRANSITIONS, WAKE_LATENCY } from '../../src/metrics/names';
import { chooseMetricsEndpoint, metricsPortOption } from '../../src/metrics/endpoint';
import { jsonLogLine } from '../../src/logging/json-log';
import { ConfigError } from '../../src/config';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped). */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    assert.ok(m, `unparseable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

function find(samples: Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = find(samples, name, labels);
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} series: ${JSON.stringify(found)}`);
  return found[0]?.value;
}

let server: Server;
let wb: WorkbooksClient;
let worker: ChildProcess | null = null;
let metricsPort: number;
let stdout = '';
let stderr = '';

async function scrape(): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(res.status, 200);
  return parseExposition(await res.text());
}

describe('worker metrics and logs', { concurrency: false }, () => {
  before(async () => {
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('metrics');
    const shared = tempDir('wb-metrics-shared-');
    metricsPort = await freePort();
    worker = await spawnWorker({
      host: 'metrics-host',
      dataDir: tempDir('wb-metrics-host-'),
      env: {
        TEMPORAL_ADDRESS: server.address,
        WORKBOOKS_TASK_QUEUE: taskQueue,
        WORKBOOKS_COLD_URL: `file://${path.join(shared, 'cold')}`,
        WORKBOOKS_ARCHIVE_URL: `file://${path.join(shared, 'archive')}`,
        WORKBOOKS_REPLICA_URL: 'off',
        WORKBOOKS_METRICS_PORT: String(metricsPort),
        WORKBOOKS_LOG_LEVEL: 'INFO',
      },
      onStdout: (d) => (stdout += d),
      onStderr: (d) => (stderr += d),
    });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    await kill9(worker);
    await server?.stop();
  });

  it('prints where its metrics are', () => {
    assert.match(stdout, new RegExp(` up: .*metrics http://127\\.0\\.0\\.1:${metricsPort}/metrics`));
  });

  it('exposes transitions, wake latency by path, copies, active instances and Temporal runtime series', async () => {
    await wb.create({ workspaceId: 'm1', tenant: 'acme' });
    await wb.putFile('m1', 'workspace', '/a', Buffer.alloc(64 * 1024, 1));
    await wb.transition('m1', 'suspended');
    assert.equal((await wb.wake('m1')).path, 'local');
    assert.equal((await wb.wake('m1')).path, 'warm');
    // Illegal from active: the workflow records it as refused.
    await wb.signal('m1', 'freeze');
    await eventually(async () => (await wb.describe('m1')).ledger.some((e) => e.outcome === 'refused'), 'the refused freeze in the ledger');
    await wb.transition('m1', 'suspended');
    await wb.transition('m1', 'frozen');
    assert.equal((await wb.wake('m1')).path, 'cold');
    assert.equal((await wb.getFile('m1', 'workspace', '/a')).length, 64 * 1024);

    const expected: Array<[string, string, string, number]> = [
      ['created', 'active', 'done', 1],
      ['active', 'suspended', 'done', 2],
      ['suspended', 'active', 'done', 1],
      ['active', 'frozen', 'refused', 1],
      ['suspended', 'frozen', 'done', 1],
      ['frozen', 'active', 'done', 1],
    ];
    // Workflow metrics reach the exporter after the workflow task completes: wait for the last of them.
    const samples = await eventually(async () => {
      const s = await scrape();
      return (valueOf(s, `${WAKE_LATENCY}_count`, { path: 'cold' }) ?? 0) >= 1 && (valueOf(s, ACTIVE_INSTANCES) ?? 0) === 1 ? s : null;
    }, 'the cold wake and the active instance on /metrics');

    // Transitions by edge and outcome, exactly what was done (and nothing else).
    for (const [from, to, outcome, n] of expected) {
      assert.equal(valueOf(samples, TRANSITIONS, { from, to, outcome }), n, `${from}->${to} ${outcome}`);
    }
    const all = find(samples, TRANSITIONS);
    assert.equal(all.length, expected.length, `transition series: ${JSON.stringify(all.map((s) => s.labels))}`);
    // The SDK's workflow meter adds its own labels (camelCase, unlike Temporal's own series).
    for (const s of all) assert.equal(s.labels.workflowType, 'workspace');

    // Wake latency by path: one local, one cold (after a copy), at least one warm (the warm wake, recorded as 0).
    assert.equal(valueOf(samples, `${WAKE_LATENCY}_count`, { path: 'local' }), 1);
    assert.equal(valueOf(samples, `${WAKE_LATENCY}_count`, { path: 'cold' }), 1);
    assert.ok((valueOf(samples, `${WAKE_LATENCY}_count`, { path: 'warm' }) ?? 0) >= 1, 'warm wakes are counted');
    assert.ok((valueOf(samples, `${WAKE_LATENCY}_sum`, { path: 'cold' }) ?? 0) > 0, 'a cold wake takes some workflow time');
    assert.equal(valueOf(samples, `${WAKE_LATENCY}_bucket`, { path: 'local', le: '+Inf' }), 1);

    // Copies: the freeze uploaded the file and the cold wake restored it, with durations.
    const frozenBytes = valueOf(samples, COPY_BYTES, { kind: 'freeze' }) ?? 0;
    const restoredBytes = valueOf(samples, COPY_BYTES, { kind: 'restore' }) ?? 0;
    assert.ok(frozenBytes >= 64 * 1024, `freeze copied ${frozenBytes} bytes`);
    assert.equal(restoredBytes, frozenBytes, 'the restore copied what the freeze stored');
    assert.equal(valueOf(samples, `${COPY_DURATION}_count`, { kind: 'freeze' }), 1);
    assert.equal(valueOf(samples, `${COPY_DURATION}_count`, { kind: 'restore' }), 1);
    assert.equal(find(samples, COPY_BYTES, { kind: 'freeze' })[0]!.labels.activityType, 'storeLocal');
    assert.equal(find(samples, COPY_BYTES, { kind: 'restore' })[0]!.labels.activityType, 'recoverLocal');

    // Active instances on this host.
    assert.equal(valueOf(samples, ACTIVE_INSTANCES, { host: 'metrics-host' }), 1);

    // Temporal's own series from the same endpoint.
    assert.ok(find(samples, 'temporal_request').length > 0, 'temporal_request');
    assert.ok(find(samples, 'temporal_workflow_task_execution_latency_count').length > 0, 'workflow task latency');
    assert.ok(find(samples, 'temporal_activity_execution_latency_count', { activity_type: 'storeLocal' }).length > 0, 'activity latency');
    // Durations in seconds (useSecondsForDurations): a millisecond bucket boundary would be 1, 10, 100…
    assert.ok(find(samples, 'temporal_workflow_task_execution_latency_bucket', { le: '0.001' }).length > 0, 'seconds buckets');
  });

  it('the active-instances gauge follows a suspend', async () => {
    await wb.transition('m1', 'suspended');
    await eventually(async () => valueOf(await scrape(), ACTIVE_INSTANCES, { host: 'metrics-host' }) === 0, 'the gauge to drop to 0');
  });

  it('logs one JSON object per line on stderr, the SIGTERM stop included', async () => {
    const child = worker!;
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    worker = null;
    const lines = stderr.split('\n').filter((l) => l.trim() !== '');
    assert.ok(lines.length > 0, 'the worker logged at INFO');
    for (const line of lines) {
      let o: Record<string, unknown>;
      try {
        o = JSON.parse(line) as Record<string, unknown>;
      } catch {
        assert.fail(`not a JSON line: ${line}`);
      }
      assert.equal(typeof o.message, 'string', line);
      assert.match(String(o.level), /^(TRACE|DEBUG|INFO|WARN|ERROR)$/, line);
      assert.ok(!Number.isNaN(Date.parse(String(o.time))), line);
    }
    assert.ok(
      lines.some((l) => (JSON.parse(l) as { message: string }).message === 'SIGTERM, stopping…'),
      'the stop is logged as JSON',
    );
    assert.ok(!stderr.includes('No workflows registered'), 'the expected host-queue message is filtered');
  });
});

describe('metrics endpoint choice and log lines', () => {
  it('a busy default port falls back to a free one; a busy explicit port is an error', async () => {
    const port = await freePort();
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', () => resolve()));
    try {
      const fallback = await chooseMetricsEndpoint({ metricsPort: port, metricsPortExplicit: false, metricsBind: '127.0.0.1' });
      assert.ok(fallback && fallback.port !== port && fallback.port > 0, JSON.stringify(fallback));
      assert.equal(fallback.note, `port ${port} was busy`);
      assert.equal(fallback.url, `http://127.0.0.1:${fallback.port}/metrics`);
      await assert.rejects(chooseMetricsEndpoint({ metricsPort: port, metricsPortExplicit: true, metricsBind: '127.0.0.1' }), (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, new RegExp(`metrics port ${port} on 127\\.0\\.0\\.1 is already in use`));
        return true;
      });
    } finally {
      await new Promise((resolve) => holder.close(resolve));
    }
    const free = await chooseMetricsEndpoint({ metricsPort: port, metricsPortExplicit: true, metricsBind: '127.0.0.1' });
    assert.deepEqual(free, { bindAddress: `127.0.0.1:${port}`, url: `http://127.0.0.1:${port}/metrics`, port, note: null });
    assert.equal(await chooseMetricsEndpoint({ metricsPort: null, metricsPortExplicit: true, metricsBind: '127.0.0.1' }), null);
  });

  it('--metrics-port takes a port or off', () => {
    assert.deepEqual(metricsPortOption('9999'), { metricsPort: 9999, metricsPortExplicit: true });
    assert.deepEqual(metricsPortOption('off'), { metricsPort: null, metricsPortExplicit: true });
    assert.throws(() => metricsPortOption('99999'), /--metrics-port must be 0-65535 or off/);
  });

  it('a log line is one JSON object whatever the fields hold', () => {
    const line = jsonLogLine('WARN', 'hello', { message: 'not me', n: 5n, error: new Error('boom') }, new Date(0));
    assert.ok(line.endsWith('\n') && !line.slice(0, -1).includes('\n'));
    const o = JSON.parse(line) as Record<string, unknown>;
    assert.equal(o.time, '1970-01-01T00:00:00.000Z');
    assert.equal(o.level, 'WARN');
    assert.equal(o.message, 'hello');
    assert.equal(o.n, '5');
    assert.equal((o.error as { message: string }).message, 'boom');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.equal((JSON.parse(jsonLogLine('INFO', 'cycle', { cyclic })) as { message: string }).message, 'cycle');
  });
});
