/**
 * Reconcile on start: a host that starts compares the workspace files it holds with what the workflows say
 * about it, and repairs or reports every difference. Nothing is deleted: a local file no workflow wants here
 * is moved to `<dataDir>/orphans/` and reported (where it stays for the orphans grace period, orphans-sweep.ts).
 *
 * The report is logged and written to `<dataDir>/reconcile.json`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import type { Config } from '../config';
import { liveDir, liveFile, setAside } from './data-dir';
import { WORKFLOW_TYPE, WORKSPACE_KEY_PATTERN, workflowIdFor, workspaceIdFromWorkflowId } from '../contract/ids';
import { describeQuery, wakeUpdate } from '../contract/definitions';
import type { HostInfo, WorkspaceDescription } from '../contract/types';
import { HOST_KEY } from '../contract/search-attributes';
import { writeFileAtomic } from '../storage/copy';
import type { HostInstances } from './instances';
import type { ReplicationPort } from './replication-port';

export type ReconcileAction =
  | 'ok'
  | 'replication-resumed'
  | 'reopened'
  | 'closed'
  | 'orphaned'
  | 'recovery-requested'
  | 'missing-reported'
  | 'left-alone'
  | 'error';

export interface ReconcileFinding {
  workspaceId: string;
  /** What was found. */
  finding: string;
  action: ReconcileAction;
  /** Where an orphaned file was moved. */
  movedTo?: string;
}

export interface ReconcileReport {
  host: string;
  at: string;
  localFiles: number;
  claimedByWorkflows: number;
  findings: ReconcileFinding[];
}

export interface ReconcileDeps {
  cfg: Config;
  client: Client;
  instances: HostInstances;
  replication: ReplicationPort;
  hostInfo: HostInfo;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** Aborting (host shutdown) stops the pass between workspaces and cancels calls in flight. */
  signal?: AbortSignal;
}

function localIds(cfg: Config): Set<string> {
  const ids = new Set<string>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(liveDir(cfg));
  } catch {
    return ids;
  }
  for (const n of names) {
    const m = /^(.+)\.(sqlite|active)$/.exec(n);
    if (m && WORKSPACE_KEY_PATTERN.test(m[1]!)) ids.add(m[1]!);
  }
  return ids;
}

/** Every Temporal call of the pass is bounded (a workflow whose worker is gone cannot answer a query) and cancellable. */
function bounded<T>(client: Client, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
  const timeout = AbortSignal.timeout(15_000);
  return client.connection.withAbortSignal(signal ? AbortSignal.any([signal, timeout]) : timeout, fn);
}

async function claimedIds(client: Client, host: string): Promise<Set<string>> {
  const ids = new Set<string>();
  const query = `WorkflowType = '${WORKFLOW_TYPE}' AND ExecutionStatus = 'Running' AND ${HOST_KEY.name} = '${host}'`;
  for await (const wf of client.workflow.list({ query })) {
    const id = workspaceIdFromWorkflowId(wf.workflowId);
    if (id) ids.add(id);
  }
  return ids;
}

async function describe(client: Client, id: string, signal: AbortSignal | undefined): Promise<WorkspaceDescription | null> {
  try {
    const h = client.workflow.getHandle(workflowIdFor(id));
    const d = await bounded(client, signal, () => h.describe());
    if (d.status.name !== 'RUNNING') return null;
    return await bounded(client, signal, () => h.query(describeQuery));
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

export async function reconcileHost(deps: ReconcileDeps): Promise<ReconcileReport> {
  const { cfg, client, instances, replication, hostInfo } = deps;
  const me = hostInfo.host;
  const local = localIds(cfg);
  const claimed = await bounded(client, deps.signal, () => claimedIds(client, me));
  const findings: ReconcileFinding[] = [];
  const ids = [...new Set([...local, ...claimed])].sort();

  for (const id of ids) {
    if (deps.signal?.aborted) {
      findings.push({ workspaceId: id, finding: 'host shut down before this workspace was reconciled', action: 'left-alone' });
      continue;
    }
    const hasFile = fs.existsSync(liveFile(cfg, id));
    try {
      const d = await describe(client, id, deps.signal);
      if (d && d.busy) {
        findings.push({ workspaceId: id, finding: `moving to ${d.busy.to}`, action: 'left-alone' });
        continue;
      }
      const mine = !!d && d.host === me && (d.state === 'active' || d.state === 'suspended');
      const prefetchedHere = !!d && d.prefetched?.host === me && hasFile;

      if (hasFile && !mine && !prefetchedHere) {
        // No workflow wants this copy here (gone, moved elsewhere, frozen, deleted): keep it aside, loudly.
        if (replication.current(id)) await replication.forget(id);
        instances.close(id, { checkpoint: false });
        const movedTo = setAside(cfg, id);
        const why = !d ? 'no running workflow' : `workflow says ${d.state}${d.host ? ` on host ${d.host}` : ''}`;
        findings.push({ workspaceId: id, finding: `local file not wanted here (${why})`, action: 'orphaned', movedTo });
        continue;
      }
      if (!hasFile && mine && d) {
        if (d.state === 'active') {
          // An active workspace without its file: ask the workflow to confirm and recover it (not awaited here).
          void client.workflow
            .getHandle(workflowIdFor(id))
            .executeUpdate(wakeUpdate, { args: [{ reason: `host ${me} restarted without the file`, by: 'reconcile', check: true }] })
            .catch((err) => deps.log?.('recovery after reconcile failed', { workspaceId: id, error: (err as Error).message }));
          findings.push({ workspaceId: id, finding: 'active here but the file is missing', action: 'recovery-requested' });
        } else {
          findings.push({ workspaceId: id, finding: 'suspended here but the file is missing; the next wake restores it', action: 'missing-reported' });
        }
        continue;
      }
      if (!hasFile) {
        // Only a stale marker: drop it.
        instances.close(id, { checkpoint: false });
        findings.push({ workspaceId: id, finding: 'stale active marker without a file', action: 'closed' });
        continue;
      }
      if (prefetchedHere && !mine) {
        findings.push({ workspaceId: id, finding: 'prefetched copy', action: 'ok' });
        continue;
      }
      // The file is here and the workflow agrees.
      if (d!.state === 'active') {
        let action: ReconcileAction = 'ok';
        const finding: string[] = [];
        if (!instances.isOpen(id)) {
          instances.open(id, { clearTmp: false });
          action = 'reopened';
          finding.push('active without its marker');
        }
        const gen = d!.replicas[d!.replicas.length - 1];
        if (gen && gen.host === me && gen.to === null && replication.current(id) !== gen.url) {
          await replication.start(id, gen.url);
          action = action === 'ok' ? 'replication-resumed' : action;
          finding.push(`replication to ${gen.url} resumed`);
        }
        findings.push({ workspaceId: id, finding: finding.join('; ') || 'active', action });
      } else {
        let action: ReconcileAction = 'ok';
        if (instances.isOpen(id)) {
          instances.close(id);
          action = 'closed';
        }
        if (replication.current(id)) await replication.stop(id);
        findings.push({ workspaceId: id, finding: action === 'closed' ? 'suspended but marked open' : 'suspended', action });
      }
    } catch (err) {
      findings.push({ workspaceId: id, finding: `could not reconcile: ${(err as Error).message}`, action: 'error' });
    }
  }

  const report: ReconcileReport = { host: me, at: new Date().toISOString(), localFiles: [...local].filter((id) => fs.existsSync(liveFile(cfg, id))).length, claimedByWorkflows: claimed.size, findings };
  await writeFileAtomic(path.join(cfg.dataDir, 'reconcile.json'), JSON.stringify(report, null, 2) + '\n');
  const notable = findings.filter((f) => f.action !== 'ok');
  deps.log?.(`reconciled ${findings.length} workspace(s) on host ${me}: ${notable.length} needed attention`, { findings: notable });
  return report;
}
