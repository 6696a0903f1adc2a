/**
 * Registered, mostly frozen: N workspaces registered on one worker host (a process of its own, as in
 * bench/scale.ts) against the chosen server, each created and then frozen (every 20th left suspended), spread over
 * 100 tenants. Then, at rest: the server's database size on disk, the worker's RSS, and the latency of our client's
 * list (first page of everything, and a page filtered by tenant and state). Meant for N = 100,000 (hours); run
 * small to check it works.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clientFor, uniqueQueue, workflowBundle } from '../harness/stack';
import { onInterrupt } from './cleanup';
import { median, percentile } from './raw-ops';
import { openScaleServer, ScaleServer, ServerKind } from './scale-server';
import { ScaleWorkerProcess } from './scale-worker-process';

const MiB = 1024 * 1024;
const TENANTS = 100;
/** Every SUSPENDED_EVERY-th workspace stays suspended; the others are frozen. */
const SUSPENDED_EVERY = 20;
const LIST_REPEATS = 5;

export interface RegisteredOptions {
  server: ServerKind;
  n: number;
  concurrency: number;
  cacheSize?: number;
  baseDir?: string;
  log?(line: string): void;
}

export interface RegisteredResult {
  server: ServerKind;
  serverLabel: string;
  n: number;
  registered: number;
  frozen: number;
  failed: number;
  errors: string[];
  concurrency: number;
  /** Wall time of the registration and each workspace's create → frozen (or suspended). */
  registerMs: number;
  perWorkspaceMs: number[];
  db: { before: number; after: number; what: string };
  worker: { rssAtRest: number | null; hwm: number | null; fds: number | null };
  serverRss: number | null;
  postgresPss: number | null;
  /** Latency of one listPage (page size 100), LIST_REPEATS times each. */
  list: { firstPageMs: number[]; firstPageCount: number; filteredMs: number[]; filteredCount: number; filter: string };
  forgotten: string;
  totalMs: number;
}

async function pool<T>(items: T[], c: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(1, Math.min(c, items.length)) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        await fn(items[i]!, i);
      }
    }),
  );
}

export async function measureRegistered(opts: RegisteredOptions): Promise<RegisteredResult> {
  const log = opts.log ?? ((l: string) => console.log(l));
  if (!(Number.isInteger(opts.n) && opts.n >= 1)) throw new Error(`registered: N must be a whole number >= 1, got ${opts.n}`);
  const t00 = performance.now();
  const root = fs.mkdtempSync(path.join(opts.baseDir ?? os.tmpdir(), 'workbooks-registered-'));
  const dataDir = path.join(root, 'host');
  const taskQueue = uniqueQueue('bench-registered');
  let server: ScaleServer | undefined;
  let worker: ScaleWorkerProcess | undefined;
  let forgotten = 'not done';
  const cleanup = async () => {
    await worker?.stop().catch(() => undefined);
    worker = undefined;
    if (server) forgotten = await server.forget(taskQueue, log).catch((err: Error) => `failed: ${err.message}`);
    await server?.stop(log).catch(() => undefined);
    server = undefined;
    fs.rmSync(root, { recursive: true, force: true });
  };
  const forget = onInterrupt(cleanup);
  try {
    server = await openScaleServer(opts.server, { log });
    const srv = server;
    const bundlePath = path.join(root, 'workflow-bundle.js');
    const bundle = await workflowBundle();
    if ('codePath' in bundle) fs.copyFileSync(bundle.codePath, bundlePath);
    else fs.writeFileSync(bundlePath, bundle.code);
    const hostId = `bench-reg-${crypto.randomBytes(2).toString('hex')}`;
    worker = await ScaleWorkerProcess.start({ address: srv.address, namespace: srv.namespace, taskQueue, hostId, dataDir, cacheSize: opts.cacheSize, bundlePath }, log);
    const w = worker;
    const wb = clientFor(srv.client, taskQueue);
    const tag = crypto.randomBytes(2).toString('hex');
    const dbBefore = srv.dbBytes();
    log(`  [${srv.label}] registering ${opts.n} workspaces (create, then freeze; every ${SUSPENDED_EVERY}th left suspended), ${opts.concurrency} at a time…`);

    const ids = Array.from({ length: opts.n }, (_, i) => `rg${tag}-${String(i).padStart(6, '0')}`);
    const perWorkspaceMs: number[] = [];
    const errors: string[] = [];
    let failed = 0;
    let frozen = 0;
    const every = Math.max(1, Math.ceil(opts.n / 20));
    let done = 0;
    const t0 = performance.now();
    await pool(ids, opts.concurrency, async (id, i) => {
      const t = performance.now();
      try {
        await wb.create({ workspaceId: id, tenant: `t${String(i % TENANTS).padStart(2, '0')}` });
        await wb.transition(id, 'suspended', { reason: 'bench: registered', by: 'bench' });
        if (i % SUSPENDED_EVERY !== 0) {
          await wb.transition(id, 'frozen', { reason: 'bench: registered', by: 'bench' });
          frozen++;
        }
        perWorkspaceMs.push(performance.now() - t);
      } catch (err) {
        failed++;
        if (errors.length < 5) errors.push(`${id}: ${(err as Error).message}`);
        if (failed > Math.max(10, opts.n / 100)) throw new Error(`registered: too many failures (${failed}); first: ${errors[0]}`);
      }
      if (++done % every === 0 || done === ids.length) {
        const s = (performance.now() - t0) / 1000;
        log(`    ${done}/${ids.length} in ${s.toFixed(0)} s (${(done / s).toFixed(1)}/s; worker rss ${((w.mem().rss ?? NaN) / MiB).toFixed(0)} MiB)`);
      }
    });
    const registerMs = performance.now() - t0;

    // At rest: let the visibility store and the worker settle, then measure.
    await new Promise((r) => setTimeout(r, 5000));
    const mem = w.mem();
    const s = srv.sample();
    const dbAfter = srv.dbBytes();
    const filter = { tenant: 't42', state: 'frozen' };
    const firstPageMs: number[] = [];
    const filteredMs: number[] = [];
    let firstPageCount = 0;
    let filteredCount = 0;
    for (let i = 0; i < LIST_REPEATS; i++) {
      let t = performance.now();
      firstPageCount = (await wb.listPage({}, { pageSize: 100 })).workspaces.length;
      firstPageMs.push(performance.now() - t);
      t = performance.now();
      filteredCount = (await wb.listPage(filter, { pageSize: 100 })).workspaces.length;
      filteredMs.push(performance.now() - t);
    }
    log(`  list: first page ${median(firstPageMs).toFixed(0)} ms (${firstPageCount}), tenant t42 + frozen ${median(filteredMs).toFixed(0)} ms (${filteredCount}); db ${((dbAfter.bytes - dbBefore.bytes) / MiB).toFixed(0)} MiB more`);
    const result: RegisteredResult = {
      server: opts.server,
      serverLabel: srv.label,
      n: opts.n,
      registered: opts.n - failed,
      frozen,
      failed,
      errors,
      concurrency: opts.concurrency,
      registerMs,
      perWorkspaceMs,
      db: { before: dbBefore.bytes, after: dbAfter.bytes, what: dbAfter.what },
      worker: { rssAtRest: mem.rss, hwm: mem.hwm, fds: mem.fds },
      serverRss: s.temporalRss,
      postgresPss: s.postgresPss,
      list: { firstPageMs, firstPageCount, filteredMs, filteredCount, filter: `tenant ${filter.tenant}, state ${filter.state}` },
      forgotten,
      totalMs: 0,
    };
    forget();
    await cleanup();
    result.forgotten = forgotten;
    result.totalMs = performance.now() - t00;
    return result;
  } finally {
    forget();
    await cleanup();
  }
}

function msText(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (Math.abs(x) >= 1000) return `${(x / 1000).toFixed(2)} s`;
  return `${Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1)} ms`;
}

function mibText(b: number | null): string {
  return b === null || !Number.isFinite(b) ? '—' : `${(b / MiB).toFixed(0)} MiB`;
}

export function registeredMarkdown(r: RegisteredResult): string {
  const rate = r.registerMs > 0 ? (r.registered / (r.registerMs / 1000)).toFixed(1) : '—';
  return [
    `Server: **${r.serverLabel}**. ${r.n.toLocaleString('en-US')} workspaces registered on one worker host (a process of its own; replication off), ` +
      `spread over ${TENANTS} tenants: ${r.frozen.toLocaleString('en-US')} frozen (file:// cold copies in the bench's temp dir), the rest suspended.`,
    '',
    '| | |',
    '|---|---|',
    `| registration (create → suspend → freeze, ${r.concurrency} at a time) | ${msText(r.registerMs)}, **${rate}/s** (per workspace p50 ${msText(median(r.perWorkspaceMs))}, p99 ${msText(percentile(r.perWorkspaceMs, 99))})${r.failed ? `; ${r.failed} failed: ${r.errors[0]}` : ''} |`,
    `| server database on disk | ${mibText(r.db.after)} (${mibText(r.db.after - r.db.before)} more than before the registration; ${r.db.what}) |`,
    `| worker RSS at rest | **${mibText(r.worker.rssAtRest)}** (high-water ${mibText(r.worker.hwm)}; ${r.worker.fds ?? '—'} open fds) |`,
    `| server memory at rest | Temporal ${mibText(r.serverRss)}${r.postgresPss !== null ? `, PostgreSQL ${mibText(r.postgresPss)} (PSS)` : ''} |`,
    `| list, first page of 100 (all) | p50 **${msText(median(r.list.firstPageMs))}**, max ${msText(Math.max(...r.list.firstPageMs))} (${r.list.firstPageCount} workspaces; ${r.list.firstPageMs.length} times) |`,
    `| list, a filtered page (${r.list.filter}) | p50 **${msText(median(r.list.filteredMs))}**, max ${msText(Math.max(...r.list.filteredMs))} (${r.list.filteredCount} workspaces) |`,
    `| the run's workflows afterwards | ${r.forgotten} |`,
    `| run time | ${msText(r.totalMs)} |`,
  ].join('\n');
}
