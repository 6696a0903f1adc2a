/**
 * What each legal edge does to the bytes. Each function runs activities and updates the model's
 * location fields; the caller records the state change and the ledger line.
 *
 * Host loss: every call to the host holding a file goes through `onHost`, which gives the host
 * `hostTimeoutSeconds` to claim the task. A host that leaves it unclaimed and has not polled its queue in that
 * time is gone: its copy is treated as lost, and the file is recovered on a live host from the newest source
 * (the replica or the stored copy, whichever holds later data). A busy host that still polls is waited for.
 */
import { ActivityFailure, ApplicationFailure, TimeoutFailure, patched } from '@temporalio/workflow';
import type { State } from '../lifecycle';
import type { RecoverySource } from '../activities/types';
import type { HostInfo, StoredCopy } from '../contract/types';
import { sourcesNewestFirst } from '../contract/recovery';
import { WorkspaceModel } from './workspace-model';
import { messageOf } from './failure-text';
import { hostActivities, sharedActivities } from './activities';

export type WakePath = 'warm' | 'local' | 'cold';

export interface MoveOutcome {
  detail: string;
  path?: WakePath;
}

export const DEFAULT_HOST_TIMEOUT_SECONDS = 30;

/** Failure types that mean "this host's copy of the file is not usable": recover it from elsewhere. */
const FILE_LOST = ['SourceMissing', 'IntegrityError'];

export async function performMove(m: WorkspaceModel, from: State, to: State): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  switch (`${from}->${to}`) {
    case 'created->active':
      return provisionAndStart(m);
    case 'active->suspended': {
      const stopped = await stopOnHost(m);
      if (!stopped.ok) return { detail: `${stopped.why}; its copy is treated as lost and the next wake restores the newest data` };
      return { detail: `instance stopped on ${stopped.host}; file kept (${stopped.bytes} bytes)${stopped.synced ? '; replica flushed' : ''}` };
    }
    case 'suspended->active':
      return resumeLocal(m);
    case 'suspended->frozen': {
      const { copy, host, recovered } = await storeFromHost(m, 'cold');
      // The copy is recorded: the host's retry bookkeeping for it can go.
      await hostActivities(host, `clean up local bookkeeping of ${id}`).removeLocal({ workspaceId: id });
      const stale = m.cold && m.cold.url !== copy.url ? m.cold : null;
      m.cold = copy;
      m.host = null;
      m.filePath = null;
      if (stale) await sharedActivities(`delete previous cold copy of ${id}`).deleteStoredCopies({ workspaceId: id, copies: [stale] });
      return {
        detail: `${recovered}frozen to ${copy.url} (${copy.bytes} bytes, sha256 ${copy.sha256.slice(0, 12)}, restore-verified); local copy released`,
      };
    }
    case 'frozen->active':
      return restoreAndStart(m, requireCopy(m.cold, 'cold'), 'cold copy');
    case 'archived->active':
      return restoreAndStart(m, requireCopy(m.archive, 'archive'), 'archive');
    case 'frozen->archived': {
      const cold = requireCopy(m.cold, 'cold');
      const archive = await sharedActivities(`archive ${id}`).archiveColdCopy({ workspaceId: id, cold });
      const stale = m.archive && m.archive.url !== archive.url ? m.archive : null;
      m.archive = archive;
      m.cold = null;
      await dropPrefetched(m);
      if (stale) await sharedActivities(`delete previous archive copy of ${id}`).deleteStoredCopies({ workspaceId: id, copies: [stale] });
      return { detail: `archived to ${archive.url} (${archive.bytes} bytes)` };
    }
    case 'active->archived': {
      const stopped = await stopOnHost(m);
      const { copy: archive, host, recovered } = await storeFromHost(m, 'archive');
      await hostActivities(host, `clean up local bookkeeping of ${id}`).removeLocal({ workspaceId: id });
      // Copies this archive supersedes: the cold copy, and an archive copy of an earlier archive.
      const stale = [m.cold, m.archive && m.archive.url !== archive.url ? m.archive : null].filter((c): c is StoredCopy => c !== null);
      m.archive = archive;
      m.cold = null;
      m.host = null;
      m.filePath = null;
      if (stale.length) await sharedActivities(`delete superseded copies of ${id}`).deleteStoredCopies({ workspaceId: id, copies: stale });
      const lost = stopped.ok ? '' : `${stopped.why}; `;
      return { detail: `${lost}${recovered}archived to ${archive.url} (${archive.bytes} bytes); local copy released` };
    }
    case 'archived->deleted': {
      const copies = [m.cold, m.archive].filter((c): c is StoredCopy => c !== null);
      await dropPrefetched(m);
      if (m.host) {
        const host = m.host;
        const r = await onHost(m, host, `remove local copy of ${id}`, (a) => a.removeLocal({ workspaceId: id }));
        if (!r.ok) loseHost(m);
        m.host = null;
        m.filePath = null;
      }
      const replicas = m.replicas.map((g) => g.url);
      const r = await sharedActivities(`delete stored copies and replicas of ${id}`).deleteStoredCopies({ workspaceId: id, copies, replicas });
      m.cold = null;
      m.archive = null;
      m.replicas = [];
      // Counted from what was recorded, not from this attempt's deletions (a retried attempt finds some gone).
      return { detail: `deleted ${copies.length} stored cop${copies.length === 1 ? 'y' : 'ies'}, the replicas and every local copy${r.deleted < copies.length ? ` (${copies.length - r.deleted} already gone)` : ''}` };
    }
    default:
      throw ApplicationFailure.nonRetryable(`no behaviour for ${from} -> ${to}`, 'IllegalTransition');
  }
}

/**
 * A wake with `check` on an active workspace: confirm its host still serves the file (an idempotent start);
 * recover it on a live host when the host is gone or the file is not usable there.
 */
export async function checkActive(m: WorkspaceModel): Promise<MoveOutcome | null> {
  const id = m.input.workspaceId;
  if (!m.host) return recoverAndStart(m, 'the workspace had no host');
  const host = m.host;
  try {
    const r = await onHost(m, host, `check ${id} is served`, (a) => a.startInstance({ workspaceId: id, clearTmp: false, generation: continuingGeneration(m, host) }));
    if (r.ok) {
      // The host may have restarted with its data server elsewhere (another port): take its current address.
      m.host = r.value.host;
      m.filePath = r.value.filePath;
      noteReplica(m, r.value.replicaUrl, r.value.host.host);
      return null;
    }
    loseHost(m);
    return recoverAndStart(m, r.why);
  } catch (err) {
    if (!isFileLost(err)) throw err;
    loseHost(m);
    return recoverAndStart(m, `the file on ${host.host} is not usable (${messageOf(err)})`);
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
  let what = '';
  if (m.input.template) {
    template = await sharedActivities(`resolve template ${m.input.template}`).resolveTemplate({ templateId: m.input.template, forWorkspace: id });
    what = `cloned from ${m.input.template}`;
  } else if (m.input.restoreFrom) {
    const src = m.input.restoreFrom;
    template = await sharedActivities(`find restore point of ${src.workspaceId}`).resolveRestorePoint({ sourceId: src.workspaceId, at: src.at, forWorkspace: id });
    what = `restored from ${src.workspaceId} ${src.at ? `as of ${src.at}` : 'at its newest data'} (${template.kind === 'replica' ? template.replicaUrl : template.kind === 'stored' ? template.copy.url : template.filePath})`;
  }
  // A template held open or warm on a host is cloned on that host (reflink where the filesystem can);
  // a stored template or a fresh workspace goes to whichever live host picks the task up.
  const host: HostInfo = template?.kind === 'local' ? template.host : await sharedActivities('pick a host').pickHost();
  const acts = hostActivities(host, template ? `${what.split(' (')[0]} into ${id}` : `create file for ${id}`);
  const p = await acts.provision({ workspaceId: id, template });
  const s = await acts.startInstance({ workspaceId: id, clearTmp: false, generation: m.nextGeneration() });
  m.host = s.host;
  m.filePath = s.filePath;
  noteReplica(m, s.replicaUrl, s.host.host);
  return { detail: template ? `${what} on ${s.host.host} (${p.bytes} bytes)` : `created on ${s.host.host}`, path: 'local' };
}

/** suspended → active: open the file where it is; recover it elsewhere if that host or file is gone. */
async function resumeLocal(m: WorkspaceModel): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  if (!m.host) return recoverAndStart(m, 'its last host was lost');
  const host = m.host;
  try {
    const r = await onHost(m, host, `resume ${id} from local disk`, (a) =>
      a.startInstance({ workspaceId: id, clearTmp: true, generation: continuingGeneration(m, host) ?? m.nextGeneration() }),
    );
    if (!r.ok) {
      loseHost(m);
      return recoverAndStart(m, r.why);
    }
    m.host = r.value.host;
    m.filePath = r.value.filePath;
    noteReplica(m, r.value.replicaUrl, r.value.host.host);
    return { detail: `resumed from local file on ${r.value.host.host}`, path: 'local' };
  } catch (err) {
    if (!isFileLost(err)) throw err;
    loseHost(m);
    return recoverAndStart(m, `the file on ${host.host} is not usable (${messageOf(err)})`);
  }
}

async function restoreAndStart(m: WorkspaceModel, copy: StoredCopy, what: string): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  const pre = m.prefetched;
  if (pre && pre.sha256 === copy.sha256) {
    try {
      // The prefetching host may be gone: give it a short time to pick the task up, then restore elsewhere.
      const acts = hostActivities(pre.host, `resume ${id} from prefetched copy`, { scheduleToStartTimeout: '15s' });
      const r = await acts.restoreLocal({ workspaceId: id, copy });
      const s = await acts.startInstance({ workspaceId: id, clearTmp: true, generation: m.nextGeneration() });
      m.host = s.host;
      m.filePath = s.filePath;
      m.prefetched = null;
      noteReplica(m, s.replicaUrl, s.host.host);
      return { detail: `resumed from prefetched ${what} on ${r.host.host}`, path: 'local' };
    } catch (err) {
      // A gone host, a lost or damaged prefetched file: restore the normal way (with the replica as fallback).
      if (!isHostUnavailable(err) && !isFileLost(err) && !isFailureOfType(err, 'ChecksumMismatch')) throw err;
      m.prefetched = null;
    }
  }
  if (!patched('restore-with-fallback-sources')) {
    // Runs started before replicas existed restore from the stored copy alone (kept for replay).
    const host = await sharedActivities('pick a host').pickHost();
    const acts = hostActivities(host, `restore ${id} from ${what}`);
    const r = await acts.restoreLocal({ workspaceId: id, copy });
    const s = await acts.startInstance({ workspaceId: id, clearTmp: true });
    m.host = s.host;
    m.filePath = s.filePath;
    return { detail: `restored from ${what} ${copy.url} on ${r.host.host} (sha256 verified)`, path: 'cold' };
  }
  // The stored copy first (it is what the freeze verified); the replica if the copy is refused.
  const sources: RecoverySource[] = [{ kind: 'stored', copy }];
  const rep = m.currentReplica();
  if (rep) sources.push({ kind: 'replica', replicaUrl: rep.url });
  return startFromSources(m, sources, `restore ${id} from ${what}`, '');
}

/** Recover a lost file on a live host from the newest source, then start it. */
async function recoverAndStart(m: WorkspaceModel, why: string): Promise<MoveOutcome> {
  return startFromSources(m, sourcesNewestFirst(m), `recover ${m.input.workspaceId}`, `${why}; `);
}

async function startFromSources(m: WorkspaceModel, sources: RecoverySource[], summary: string, prefix: string): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  if (sources.length === 0) throw ApplicationFailure.nonRetryable(`${prefix}there is no replica or stored copy to restore ${id} from`, 'NoStoredCopy');
  const host = await sharedActivities('pick a host').pickHost();
  const acts = hostActivities(host, summary);
  const r = await acts.recoverLocal({ workspaceId: id, sources });
  const s = await acts.startInstance({ workspaceId: id, clearTmp: true, generation: m.nextGeneration() });
  m.host = s.host;
  m.filePath = s.filePath;
  m.prefetched = null;
  noteReplica(m, s.replicaUrl, s.host.host);
  const skipped = r.skipped.length ? `; skipped: ${r.skipped.join('; ')}` : '';
  return { detail: `${prefix}restored from ${describeSource(r.used)} on ${r.host.host}${skipped}`, path: 'cold' };
}

/**
 * Stores the stopped local file to cold storage or the archive from the host holding it. A host that is gone
 * or a file that is missing or broken there is recovered on a live host first (once), then stored from there.
 */
async function storeFromHost(m: WorkspaceModel, target: 'cold' | 'archive'): Promise<{ copy: StoredCopy; host: HostInfo; recovered: string }> {
  const id = m.input.workspaceId;
  let recovered = '';
  for (let attempt = 1; ; attempt++) {
    const r = await ensureLocal(m);
    if (r) recovered += `${r}; `;
    const host = requireHost(m);
    let why: string;
    try {
      const stored = await onHost(m, host, target === 'cold' ? `freeze ${id} to cold storage` : `archive ${id} from local disk`, (a) =>
        a.storeLocal({ workspaceId: id, target }),
      );
      if (stored.ok) return { copy: stored.value, host, recovered };
      why = stored.why;
    } catch (err) {
      if (!isFileLost(err)) throw err;
      why = `the file on ${host.host} is not usable (${messageOf(err)})`;
    }
    loseHost(m);
    recovered += `${why}; `;
    if (attempt >= 2) throw ApplicationFailure.nonRetryable(`${recovered}giving up for now; the next attempt recovers the file again`, 'HostLost');
  }
}

/**
 * A suspended (or just-stopped) workspace whose host was lost: restore its newest data on a live host without
 * starting it, so it can be stored. Returns what was done, or '' when the file was already local.
 */
async function ensureLocal(m: WorkspaceModel): Promise<string> {
  if (m.host) return '';
  const id = m.input.workspaceId;
  const sources = sourcesNewestFirst(m);
  if (sources.length === 0) throw ApplicationFailure.nonRetryable(`workspace ${id} lost its host and has no replica or stored copy`, 'NoStoredCopy');
  const host = await sharedActivities('pick a host').pickHost();
  const r = await hostActivities(host, `recover ${id}`).recoverLocal({ workspaceId: id, sources });
  m.host = r.host;
  m.filePath = r.filePath;
  const skipped = r.skipped.length ? ` (skipped: ${r.skipped.join('; ')})` : '';
  return `recovered from ${describeSource(r.used)} on ${r.host.host}${skipped}`;
}

type Stopped = { ok: true; host: string; bytes: number; synced: boolean } | { ok: false; why: string };

/** Stops the instance on its host; a lost host (or file) leaves the workspace without a host. */
async function stopOnHost(m: WorkspaceModel): Promise<Stopped> {
  const id = m.input.workspaceId;
  if (!m.host) return { ok: false, why: 'the workspace had no host' };
  const host = m.host;
  try {
    const r = await onHost(m, host, `stop instance of ${id}`, (a) => a.stopInstance({ workspaceId: id }));
    if (!r.ok) {
      loseHost(m);
      return r;
    }
    m.filePath = r.value.filePath;
    if (r.value.replicaSynced) m.replicaStopped(Date.now());
    // The last data request the host saw is the workspace's last use (absent in results of older builds).
    if (typeof r.value.idleMs === 'number') m.usedAt(Date.now() - r.value.idleMs);
    return { ok: true, host: host.host, bytes: r.value.bytes, synced: r.value.replicaSynced };
  } catch (err) {
    if (!isFileLost(err)) throw err;
    loseHost(m);
    return { ok: false, why: `the file on ${host.host} is not usable (${messageOf(err)})` };
  }
}

type OnHost<T> = { ok: true; value: T } | { ok: false; why: string };

/**
 * Runs `fn` with activities on `host`, giving the host `hostTimeoutSeconds` to claim each task. When a task
 * waits longer, the host's queue is checked: a host that still polls is busy and is waited for (the call is
 * retried; the activities are idempotent); one that stopped polling is reported as gone.
 */
async function onHost<T>(m: WorkspaceModel, host: HostInfo, summary: string, fn: (acts: ReturnType<typeof hostActivities>) => Promise<T>): Promise<OnHost<T>> {
  const t = hostTimeoutSeconds(m);
  for (;;) {
    try {
      return { ok: true, value: await fn(hostActivities(host, summary, { scheduleToStartTimeout: `${t}s` })) };
    } catch (err) {
      if (!isHostUnavailable(err)) throw err;
      const alive = await sharedActivities(`is host ${host.host} alive`).hostAlive({ taskQueue: host.taskQueue, withinSeconds: t });
      if (!alive.alive) {
        return { ok: false, why: `host ${host.host} did not take work for ${t}s (last poll ${alive.lastPollAt ?? 'unknown'})` };
      }
    }
  }
}

function hostTimeoutSeconds(m: WorkspaceModel): number {
  const t = m.input.hostTimeoutSeconds;
  return typeof t === 'number' && Number.isFinite(t) && t >= 1 ? Math.min(Math.floor(t), 3600) : DEFAULT_HOST_TIMEOUT_SECONDS;
}

/** The generation to keep replicating into when the file is unchanged on the host that replicated it. */
function continuingGeneration(m: WorkspaceModel, host: HostInfo): string | undefined {
  const rep = m.currentReplica();
  if (!rep || rep.host !== host.host) return undefined;
  return rep.url.slice(rep.url.lastIndexOf('/') + 1);
}

function noteReplica(m: WorkspaceModel, url: string | null, host: string): void {
  if (url) m.replicaStarted(url, host, Date.now());
}

function loseHost(m: WorkspaceModel): void {
  m.host = null;
  m.filePath = null;
}

function describeSource(s: RecoverySource): string {
  return s.kind === 'replica' ? `replica ${s.replicaUrl}` : `stored copy ${s.copy.url} (sha256 verified)`;
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
  return err instanceof ActivityFailure && err.cause instanceof TimeoutFailure && err.cause.timeoutType === 'SCHEDULE_TO_START';
}

function isFileLost(err: unknown): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && FILE_LOST.includes(err.cause.type ?? '');
}

function isFailureOfType(err: unknown, type: string): boolean {
  return err instanceof ActivityFailure && err.cause instanceof ApplicationFailure && err.cause.type === type;
}

function requireHost(m: WorkspaceModel): HostInfo {
  if (!m.host) throw ApplicationFailure.nonRetryable(`workspace ${m.input.workspaceId} has no host holding its file`, 'NoHost');
  return m.host;
}

function requireCopy(copy: StoredCopy | null, what: string): StoredCopy {
  if (!copy) throw ApplicationFailure.nonRetryable(`there is no ${what} copy to restore from`, 'NoStoredCopy');
  return copy;
}
