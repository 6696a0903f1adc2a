#!/usr/bin/env node
/**
 * `workbooks`: run the service (`up`, `worker`) and drive workspaces (create, list, show, moves, files, history).
 * Every error exits non-zero with one line saying what is wrong.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { loadConfig, Config } from '../config';
import { loadDataKey } from '../grants';
import { MAX_FILE_BYTES, parseVolumePath, VfsInputError } from '../vfs/volumes';
import { checkPolicyFloor } from '../lifecycle/policy-floor';
import { WorkbooksClient, defaultRestoreId } from '../client/workbooks-client';
import { WorkbooksError } from '../client/errors';
import { ledgerArchiveAt } from '../storage/ledger-archive';
import { checkTenant, keyTenant, newKey, workspaceKey } from '../contract/ids';
import { metricsPortOption } from '../metrics/endpoint';
import { formatDescription, formatHistory, formatList, formatTenantStorage, formatWorkspaceStorage } from './format';
import { StorageReporter } from '../client/storage-report';
import { progressEnabled, withProgress } from './progress';

/**
 * The serving commands (up, worker, api) load the worker, the API server and their dependencies only when they
 * run: every other command (and --help) starts without them, about 0.3 s sooner.
 */
const loadServe = () => import('./serve');

const program = new Command();
program
  .name('workbooks')
  .description('Per-tenant SQLite workspaces, each kept by one durable Temporal workflow.')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (str, write) => write(str.split('\n')[0] + '\n') });

function config(): Config {
  return loadConfig();
}

async function withClient<T>(fn: (c: WorkbooksClient, cfg: Config) => Promise<T>): Promise<T> {
  const cfg = config();
  const c = await WorkbooksClient.connect({
    address: cfg.temporalAddress ?? `127.0.0.1:${cfg.temporalPort}`,
    namespace: cfg.namespace,
    taskQueue: cfg.taskQueue,
    dataKey: loadDataKey(cfg),
    access: cfg.temporal,
    ledgers: ledgerArchiveAt(cfg.coldUrl),
  });
  try {
    return await fn(c, cfg);
  } finally {
    await c.close().catch(() => undefined);
  }
}

/** A `--port` value: 0-65535 (0 = any free port). */
function portArg(raw: string): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new WorkbooksError(`--port must be 0-65535, got '${raw}'`, 'bad_request');
  return n;
}

function out(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : human() + '\n');
}

const actorOptions = (cmd: Command) => cmd.option('--reason <text>', 'why (recorded in the ledger)').option('--by <who>', 'who asks (recorded in the ledger)', process.env.USER ?? 'cli');

program
  .command('up')
  .description('run the whole service on its embedded default: Temporal dev server (with Web UI), worker and data server')
  .action(async () => (await loadServe()).runUp(config()));

program
  .command('api')
  .description('run the HTTP API alone against an existing Temporal server (TEMPORAL_ADDRESS); it holds no state, run as many as needed')
  .option('--port <n>', 'port (default WORKBOOKS_HTTP_PORT or 8787)')
  .action(async (o: { port?: string }) => {
    const overrides: Partial<Config> = {};
    if (o.port !== undefined) overrides.httpPort = portArg(o.port);
    await (await import('./serve-api')).runApi(loadConfig(process.env, overrides));
  });

program
  .command('worker')
  .description('run one worker host against an existing Temporal server (TEMPORAL_ADDRESS, default 127.0.0.1:7233)')
  .option('--host <id>', 'host id (default WORKBOOKS_HOST_ID or the hostname)')
  .option('--data-dir <dir>', 'this host\'s data dir (default WORKBOOKS_DATA_DIR or .data)')
  .option('--port <n>', 'data server port (default WORKBOOKS_HOST_PORT or 8788; 0 picks a free one)')
  .option('--metrics-port <n|off>', 'Prometheus metrics port (default WORKBOOKS_METRICS_PORT or 9464; 0 = any free one, off = none)')
  .action(async (o: { host?: string; dataDir?: string; port?: string; metricsPort?: string }) => {
    const overrides: Partial<Config> = {};
    if (o.host) overrides.hostId = o.host;
    if (o.dataDir) overrides.dataDir = o.dataDir;
    if (o.metricsPort !== undefined) Object.assign(overrides, metricsPortOption(o.metricsPort));
    if (o.port !== undefined) overrides.hostPort = portArg(o.port);
    await (await loadServe()).runWorker(loadConfig(process.env, overrides));
  });

program
  .command('create <id>')
  .description('create a workspace (or clone one with --from) and wait until it is active; its key is <tenant>.<name>')
  .option('--tenant <tenant>', 'owning tenant (or give the id as <tenant>.<name>)')
  .option('--from <template>', 'clone the file of this template workspace (the template is never written)')
  .option('--suspend-after <duration>', 'idle time before active → suspended (default 15m; "never" to disable)')
  .option('--freeze-after <duration>', 'time suspended before → frozen (default 24h; "never" to disable)')
  .option('--archive-after <duration>', 'time frozen before → archived (default never)')
  .option('--delete-after <duration>', 'time archived before → deleted (default never)')
  .option('--json', 'print JSON')
  .action(async (id: string, o: { tenant?: string; from?: string; suspendAfter?: string; freezeAfter?: string; archiveAfter?: string; deleteAfter?: string; json?: boolean }) => {
    const policy = Object.fromEntries(
      Object.entries({ suspendAfter: o.suspendAfter, freezeAfter: o.freezeAfter, archiveAfter: o.archiveAfter, deleteAfter: o.deleteAfter }).filter(([, v]) => v !== undefined),
    );
    const { key, tenant } = newKey(id, o.tenant);
    await withClient(async (c, cfg) => {
      try {
        checkPolicyFloor(policy, cfg.policyFloorMs);
      } catch (err) {
        throw new WorkbooksError((err as Error).message, 'bad_request');
      }
      const r = await c.create({ workspaceId: key, tenant, template: o.from, policy: Object.keys(policy).length ? policy : undefined });
      out(!!o.json, { workspaceId: key, ...r }, () => `${key} is active on ${r.host} (${r.filePath})`);
    });
  });

program
  .command('list')
  .description('list workspaces (running ones; --state deleted lists deleted ones)')
  .option('--state <state>', 'only this state')
  .option('--tenant <tenant>', 'only this tenant')
  .option('--limit <n>', 'one page of at most n (1-1000); prints the cursor of the next page')
  .option('--cursor <cursor>', 'the page after the one that printed this cursor')
  .option('--json', 'print JSON')
  .action(async (o: { state?: string; tenant?: string; limit?: string; cursor?: string; json?: boolean }) =>
    withClient(async (c) => {
      if (o.limit === undefined && o.cursor === undefined) {
        const rows = await c.list({ state: o.state, tenant: o.tenant });
        return out(!!o.json, rows, () => formatList(rows));
      }
      const n = Number(o.limit ?? 100);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new WorkbooksError(`--limit must be 1-1000, got '${o.limit}'`, 'bad_request');
      const page = await c.listPage({ state: o.state, tenant: o.tenant }, { pageSize: n, cursor: o.cursor });
      out(!!o.json, page, () => formatList(page.workspaces) + (page.nextCursor ? `\nmore: --cursor ${page.nextCursor}` : ''));
    }),
  );

program
  .command('show <id>')
  .description('describe a workspace: state, tenant, host, file, replication health, cold copy, policy, recent ledger')
  .option('--json', 'print JSON')
  .action(async (id: string, o: { json?: boolean }) =>
    withClient(async (c) => {
      const d = await c.describeWithReplication(id);
      out(!!o.json, d, () => formatDescription(d));
    }),
  );

program
  .command('storage [id]')
  .description('bytes and objects in the cold store, the archive and the replica store: of one workspace, or of a tenant (--tenant); referenced by the workflow vs left over; ledger pages')
  .option('--tenant <tenant>', "a tenant's report: every running workspace, what its workspaces that are not running left, and the totals")
  .option('--json', 'print JSON')
  .action(async (id: string | undefined, o: { tenant?: string; json?: boolean }) => {
    if ((id === undefined) === (o.tenant === undefined)) throw new WorkbooksError('give either a workspace id or --tenant <tenant>', 'bad_request');
    await withClient(async (c, cfg) => {
      const reporter = new StorageReporter(c, { coldUrl: cfg.coldUrl, archiveUrl: cfg.archiveUrl, replicaUrl: cfg.replicaUrl });
      if (id !== undefined) {
        const r = await reporter.workspace(await c.describe(id));
        return out(!!o.json, r, () => formatWorkspaceStorage(r));
      }
      const r = await reporter.tenant(checkTenantArg(o.tenant!));
      out(!!o.json, r, () => formatTenantStorage(r));
    });
  });

program
  .command('history <id>')
  .description('the ledger: every move attempted, done, refused or failed (the recent ones; --all: every one, also of a deleted workspace)')
  .option('--all', 'every entry since the workspace was made, read from the cold store (WORKBOOKS_COLD_URL) and the workflow')
  .option('--json', 'print JSON')
  .action(async (id: string, o: { json?: boolean; all?: boolean }) =>
    withClient(async (c) => {
      if (!o.all) {
        const h = await c.history(id);
        out(!!o.json, h, () => formatHistory(h));
        return;
      }
      const h = await c.fullHistory(id);
      const note = `${h.entries.length} entries (${h.pages} page${h.pages === 1 ? '' : 's'} from the cold store${h.live ? ' + the workflow' : '; its workflow is gone'})${h.complete ? '' : '; entries from before the complete ledger are missing'}`;
      out(!!o.json, h, () => `${formatHistory(h.entries)}\n${note}`);
    }),
  );

actorOptions(
  program
    .command('wake <id>')
    .description('make the workspace active and wait; prints where it lives')
    .option('--check', 'also confirm the host of an active workspace still serves it (recovers it elsewhere if not)')
    .option('--json', 'print JSON')
    .option('--no-progress', 'no progress bar on stderr (it is only drawn on a terminal)'),
).action(async (id: string, o: { reason?: string; by?: string; check?: boolean; json?: boolean; progress: boolean }) =>
  withClient(async (c) => {
    const r = await withProgress(c, id, 'wake', progressEnabled(o), () => c.wake(id, { reason: o.reason ?? 'cli wake', by: o.by }, { check: !!o.check }));
    out(!!o.json, r, () => `${id} is active on ${r.host} (${r.path} wake)`);
  }),
);

program
  .command('restore <id>')
  .description('restore a workspace as it was at a point in time into a NEW workspace (the original is not touched)')
  .option('--at <time>', 'ISO time to restore to, e.g. 2026-11-24T21:30:00Z (default: the newest data)')
  .option('--as <newId>', 'name or key of the new workspace, of the same tenant (default <id>-restored-<time>)')
  .option('--json', 'print JSON')
  .option('--no-progress', 'no progress bar on stderr (it is only drawn on a terminal)')
  .action(async (id: string, o: { at?: string; as?: string; json?: boolean; progress: boolean }) =>
    withClient(async (c) => {
      const bar = progressEnabled(o);
      // A name given with --as is of the source's tenant (acme.notes --as then → acme.then). The bar follows the
      // new workspace, so its key must be known before it exists.
      const tenant = keyTenant(id);
      const named = o.as !== undefined && !o.as.includes('.') && tenant !== null ? workspaceKey(tenant, o.as) : o.as;
      const as = named ?? (bar ? defaultRestoreId(id) : undefined);
      const r = await withProgress(c, as ?? id, 'restore', bar, () => c.restore(id, { at: o.at, as }));
      out(!!o.json, r, () => `restored ${id}${o.at ? ` as of ${o.at}` : ''} into ${r.workspaceId} (active on ${r.host})`);
    }),
  );

for (const [name, to] of [
  ['suspend', 'suspended'],
  ['freeze', 'frozen'],
  ['archive', 'archived'],
  ['delete', 'deleted'],
] as const) {
  const cmd = actorOptions(
    program
      .command(`${name} <id>`)
      .description(`move the workspace to ${to} and wait (illegal moves are refused and change nothing)`)
      .option('--no-wait', 'send the signal and return at once')
      .option('--json', 'print JSON'),
  );
  // Freezing and archiving copy the whole file: they show a progress bar on a terminal.
  const copies = name === 'freeze' || name === 'archive';
  if (copies) cmd.option('--no-progress', 'no progress bar on stderr (it is only drawn on a terminal)');
  cmd.action(async (id: string, o: { reason?: string; by?: string; wait: boolean; json?: boolean; progress?: boolean }) =>
    withClient(async (c) => {
      const actor = { reason: o.reason ?? `cli ${name}`, by: o.by };
      if (!o.wait) {
        await c.signal(id, name, actor);
        out(!!o.json, { workspaceId: id, signal: name }, () => `sent ${name} to ${id}`);
        return;
      }
      const r = await withProgress(c, id, name, copies && progressEnabled(o), () => c.transition(id, to, actor));
      out(!!o.json, { workspaceId: id, ...r }, () => `${id}: ${r.from} → ${r.state}`);
    }),
  );
}

actorOptions(
  program
    .command('publish <id>')
    .description("publish a workspace as a template (suspended and frozen first if needed; then read-only and off the idle ladder); again: changes whom it is shared with")
    .option('--share-with <tenants>', 'comma-separated tenants that may clone it besides its own')
    .option('--all', 'every tenant may clone it')
    .option('--json', 'print JSON'),
).action(async (id: string, o: { reason?: string; by?: string; shareWith?: string; all?: boolean; json?: boolean }) =>
  withClient(async (c) => {
    if (o.all && o.shareWith) throw new WorkbooksError('give either --all or --share-with, not both', 'bad_request', 400);
    const shareWith = o.all ? '*' : o.shareWith ? o.shareWith.split(',').map((t) => t.trim()).filter(Boolean) : [];
    const r = await c.publish(id, shareWith, { reason: o.reason ?? 'cli publish', by: o.by });
    const whom = r.shareWith === '*' ? 'every tenant' : r.shareWith.length ? `its tenant and ${r.shareWith.join(', ')}` : 'its own tenant';
    out(!!o.json, { workspaceId: id, ...r }, () => `${id} is a published template, version sha256 ${r.version}, clonable by ${whom}`);
  }),
);

actorOptions(program.command('unpublish <id>').description('make a published template an ordinary frozen workspace again').option('--json', 'print JSON')).action(
  async (id: string, o: { reason?: string; by?: string; json?: boolean }) =>
    withClient(async (c) => {
      const r = await c.unpublish(id, { reason: o.reason ?? 'cli unpublish', by: o.by });
      out(!!o.json, { workspaceId: id, ...r }, () => `${id} is no longer a template (${r.state})`);
    }),
);

actorOptions(
  program
    .command('prefetch <id>')
    .description("make a frozen or archived workspace's file local without starting it (not counted as use), and wait")
    .option('--no-wait', 'send the signal and return at once')
    .option('--json', 'print JSON'),
).action(async (id: string, o: { reason?: string; by?: string; wait: boolean; json?: boolean }) =>
  withClient(async (c) => {
    const actor = { reason: o.reason ?? 'cli prefetch', by: o.by };
    if (!o.wait) {
      await c.signal(id, 'prefetch', actor);
      out(!!o.json, { workspaceId: id, signal: 'prefetch' }, () => `sent prefetch to ${id}`);
      return;
    }
    const r = await c.prefetch(id, actor);
    const said = {
      prefetched: `${id}: ${r.bytes} bytes made local on ${r.host} (verified; not started)`,
      already: `${id}: already local on ${r.host}; nothing downloaded`,
      local: `${id} is ${r.state}: its file is on ${r.host} already`,
      none: `${id} is ${r.state}: nothing to prefetch`,
    }[r.outcome];
    out(!!o.json, { workspaceId: id, ...r }, () => said);
  }),
);

program
  .command('put <id> <target> [file]')
  .description('write a file: target is volume:/path; reads [file] or stdin (- or omitted); wakes the workspace if needed')
  .option('--json', 'print JSON')
  .action(async (id: string, target: string, file: string | undefined, o: { json?: boolean }) => {
    const { volume, path: p } = parseVolumePath(target);
    const fromStdin = !file || file === '-';
    const size = fromStdin ? null : fileSizeOrFail(file!);
    if (size !== null && size > MAX_FILE_BYTES) throw new WorkbooksError(`${file} is ${size} bytes; a file may be at most ${MAX_FILE_BYTES}`, 'too_large');
    await withClient(async (c) => {
      // Streamed, never read whole. A file can be sent again if the workspace moved while it was sent; stdin cannot.
      for (let attempt = 1; ; attempt++) {
        try {
          const r = await c.putFileStream(id, volume, p, fromStdin ? process.stdin : fs.createReadStream(file!), size);
          return out(!!o.json, r, () => `wrote ${r.bytes} bytes to ${id} ${volume}:${p}`);
        } catch (err) {
          if (fromStdin || attempt >= 5 || !(err instanceof WorkbooksError && err.code === 'moved')) throw err;
          await new Promise((r) => setTimeout(r, 1000 * attempt));
        }
      }
    });
  });

program
  .command('get <id> <target>')
  .description('print a file (volume:/path) to stdout; wakes the workspace if needed')
  .action(async (id: string, target: string) => {
    const { volume, path: p } = parseVolumePath(target);
    await withClient(async (c) => {
      const data = await c.getFile(id, volume, p);
      process.stdout.write(data);
    });
  });

program
  .command('ls <id> [target]')
  .description('list files of a volume (volume or volume:/prefix; default workspace)')
  .option('--json', 'print JSON')
  .action(async (id: string, target: string | undefined, o: { json?: boolean }) => {
    const t = target ?? 'workspace';
    const i = t.indexOf(':');
    const volume = i < 0 ? t : t.slice(0, i);
    const prefix = i < 0 ? '/' : t.slice(i + 1);
    await withClient(async (c) => {
      const files = await c.listFiles(id, volume, prefix);
      out(!!o.json, files, () => files.map((f) => `${String(f.bytes).padStart(10)}  ${new Date(f.updatedAt).toISOString()}  ${f.path}`).join('\n') || '(no files)');
    });
  });

program
  .command('export <id> <out>')
  .description('write a SQLite file holding only the workspace volume (memory stripped, tmp never leaves)')
  .option('--no-progress', 'no progress bar on stderr (it is only drawn on a terminal)')
  .action(async (id: string, outFile: string, o: { progress: boolean }) => {
    const dir = path.dirname(path.resolve(outFile));
    if (!fs.existsSync(dir)) throw new WorkbooksError(`directory ${dir} does not exist`, 'bad_request');
    await withClient(async (c) => {
      // The bar follows a wake (a frozen workspace is fetched first), then the download itself.
      const r = await withProgress(c, id, 'export', progressEnabled(o), (bytes) => c.exportTo(id, outFile, bytes && ((done, total) => bytes('download', done, total))));
      process.stdout.write(`exported ${id} to ${outFile} (${r.bytes} bytes)\n`);
    });
  });

/** A `--tenant` value, checked (a bad one is a one-line error). */
function checkTenantArg(raw: string): string {
  try {
    return checkTenant(raw);
  } catch (err) {
    throw new WorkbooksError((err as Error).message, 'bad_request');
  }
}

/** The size of a regular file to upload (refused: missing, unreadable, not a regular file). */
function fileSizeOrFail(file: string): number {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    const st = fs.statSync(file);
    if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'not a regular file' });
    return st.size;
  } catch (err) {
    throw new WorkbooksError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, 'bad_request');
  }
}

program.parseAsync(process.argv).catch((err: unknown) => {
  const msg =
    err instanceof WorkbooksError || err instanceof VfsInputError
      ? err.message
      : err instanceof Error
        ? `${err.message.split('\n')[0]}`
        : String(err);
  process.stderr.write(`workbooks: ${msg}\n`);
  process.exit(1);
});

