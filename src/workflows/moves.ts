/**
 * What each legal edge does to the bytes. Each function runs activities and updates the model's
 * location fields; the caller records the state change and the ledger line.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure } from '@temporalio/workflow';
import type { State } from '../lifecycle';
import type { HostInfo, StoredCopy } from '../contract/types';
import { WorkspaceModel } from './workspace-model';
import { hostActivities, sharedActivities } from './activities';

export type WakePath = 'warm' | 'local' | 'cold';

export interface MoveOutcome {
  detail: string;
  path?: WakePath;
}

export async function performMove(m: WorkspaceModel, from: State, to: State): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  switch (`${from}->${to}`) {
    case 'created->active':
      return provisionAndStart(m);
    case 'active->suspended': {
      const host = requireHost(m);
      const r = await hostActivities(host, `stop instance of ${id}`).stopInstance({ workspaceId: id });
      m.filePath = r.filePath;
      return { detail: `instance stopped on ${host.host}; file kept (${r.bytes} bytes)` };
    }
    case 'suspended->active': {
      const host = requireHost(m);
      const r = await hostActivities(host, `resume ${id} from local disk`).startInstance({ workspaceId: id, clearTmp: true });
      m.host = r.host;
      m.filePath = r.filePath;
      return { detail: `resumed from local file on ${r.host.host}`, path: 'local' };
    }
    case 'suspended->frozen': {
      const host = requireHost(m);
      const copy = await hostActivities(host, `freeze ${id} to cold storage`).storeLocal({ workspaceId: id, target: 'cold' });
      // The copy is recorded: the host's retry bookkeeping for it can go.
      await hostActivities(host, `clean up local bookkeeping of ${id}`).removeLocal({ workspaceId: id });
      m.cold = copy;
      m.host = null;
      m.filePath = null;
      return { detail: `frozen to ${copy.url} (${copy.bytes} bytes, sha256 ${copy.sha256.slice(0, 12)}); local copy released` };
    }
    case 'frozen->active':
      return restoreAndStart(m, requireCopy(m.cold, 'cold'), 'cold copy');
    case 'archived->active':
      return restoreAndStart(m, requireCopy(m.archive, 'archive'), 'archive');
    case 'frozen->archived': {
      const cold = requireCopy(m.cold, 'cold');
      const archive = await sharedActivities(`archive ${id}`).archiveColdCopy({ workspaceId: id, cold });
      m.archive = archive;
      m.cold = null;
      await dropPrefetched(m);
      return { detail: `archived to ${archive.url} (${archive.bytes} bytes)` };
    }
    case 'active->archived': {
      const host = requireHost(m);
      await hostActivities(host, `stop instance of ${id}`).stopInstance({ workspaceId: id });
      const archive = await hostActivities(host, `archive ${id} from local disk`).storeLocal({ workspaceId: id, target: 'archive' });
      await hostActivities(host, `clean up local bookkeeping of ${id}`).removeLocal({ workspaceId: id });
      m.archive = archive;
      m.host = null;
      m.filePath = null;
      const stale = m.cold;
      if (stale) {
        await sharedActivities(`delete stale cold copy of ${id}`).deleteStoredCopies({ workspaceId: id, copies: [stale] });
        m.cold = null;
      }
      return { detail: `archived to ${archive.url} (${archive.bytes} bytes); local copy released` };
    }
    case 'archived->deleted': {
      const copies = [m.cold, m.archive].filter((c): c is StoredCopy => c !== null);
      await dropPrefetched(m);
      if (m.host) {
        await hostActivities(m.host, `remove local copy of ${id}`).removeLocal({ workspaceId: id });
        m.host = null;
        m.filePath = null;
      }
      const r = await sharedActivities(`delete stored copies of ${id}`).deleteStoredCopies({ workspaceId: id, copies });
      m.cold = null;
      m.archive = null;
      return { detail: `deleted ${r.deleted} stored cop${r.deleted === 1 ? 'y' : 'ies'} and every local copy` };
    }
    default:
      throw ApplicationFailure.nonRetryable(`no behaviour for ${from} -> ${to}`, 'IllegalTransition');
  }
}

/** Make the newest stored copy local on some live host without starting the instance. */
export async function prefetch(m: WorkspaceModel): Promise<string> {
  const copy = m.state === 'frozen' ? m.cold : m.state === 'archived' ? m.archive : null;
  if (!copy) return `nothing to prefetch: ${m.state} workspaces are already local or have no stored copy`;
  if (m.prefetched && m.prefetched.sha256 === copy.sha256) return `already prefetched on ${m.prefetched.host.host}`;
  const host = await sharedActivities('pick a host').pickHost();
  const r = await hostActivities(host, `prefetch ${m.input.workspaceId}`).restoreLocal({ workspaceId: m.input.workspaceId, copy });
  m.prefetched = { host: r.host, filePath: r.filePath, sha256: copy.sha256 };
  return `prefetched on ${r.host.host}`;
}

async function provisionAndStart(m: WorkspaceModel): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  let template;
  if (m.input.template) {
    template = await sharedActivities(`resolve template ${m.input.template}`).resolveTemplate({ templateId: m.input.template, forWorkspace: id });
  }
  // A template held open or warm on a host is cloned on that host (reflink where the filesystem can);
  // a stored template or a fresh workspace goes to whichever live host picks the task up.
  const host: HostInfo = template?.kind === 'local' ? template.host : await sharedActivities('pick a host').pickHost();
  const acts = hostActivities(host, template ? `clone ${id} from ${m.input.template}` : `create file for ${id}`);
  const p = await acts.provision({ workspaceId: id, template });
  const s = await acts.startInstance({ workspaceId: id, clearTmp: false });
  m.host = s.host;
  m.filePath = s.filePath;
  return { detail: template ? `cloned from ${m.input.template} on ${s.host.host} (${p.bytes} bytes)` : `created on ${s.host.host}`, path: 'local' };
}

async function restoreAndStart(m: WorkspaceModel, copy: StoredCopy, what: string): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  const pre = m.prefetched;
  if (pre && pre.sha256 === copy.sha256) {
    try {
      // The prefetching host may be gone: give it a short time to pick the task up, then restore elsewhere.
      const acts = hostActivities(pre.host, `resume ${id} from prefetched copy`, { scheduleToStartTimeout: '15s' });
      const r = await acts.restoreLocal({ workspaceId: id, copy });
      const s = await acts.startInstance({ workspaceId: id, clearTmp: true });
      m.host = s.host;
      m.filePath = s.filePath;
      m.prefetched = null;
      return { detail: `resumed from prefetched ${what} on ${r.host.host}`, path: 'local' };
    } catch (err) {
      if (!isHostUnavailable(err)) throw err;
      m.prefetched = null;
    }
  }
  const host = await sharedActivities('pick a host').pickHost();
  const acts = hostActivities(host, `restore ${id} from ${what}`);
  const r = await acts.restoreLocal({ workspaceId: id, copy });
  const s = await acts.startInstance({ workspaceId: id, clearTmp: true });
  m.host = s.host;
  m.filePath = s.filePath;
  return { detail: `restored from ${what} ${copy.url} on ${r.host.host} (sha256 verified)`, path: 'cold' };
}

async function dropPrefetched(m: WorkspaceModel): Promise<void> {
  const pre = m.prefetched;
  if (!pre) return;
  try {
    await hostActivities(pre.host, `drop prefetched copy of ${m.input.workspaceId}`, { scheduleToStartTimeout: '15s' }).removeLocal({
      workspaceId: m.input.workspaceId,
    });
  } catch (err) {
    if (!isHostUnavailable(err)) throw err;
  }
  m.prefetched = null;
}

function isHostUnavailable(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure;
}

function requireHost(m: WorkspaceModel): HostInfo {
  if (!m.host) throw ApplicationFailure.nonRetryable(`workspace ${m.input.workspaceId} has no host holding its file`, 'NoHost');
  return m.host;
}

function requireCopy(copy: StoredCopy | null, what: string): StoredCopy {
  if (!copy) throw ApplicationFailure.nonRetryable(`there is no ${what} copy to restore from`, 'NoStoredCopy');
  return copy;
}
