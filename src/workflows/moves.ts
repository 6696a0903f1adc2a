/**
 * What each legal edge does to the bytes (MOVES: one entry per edge). Each runs activities and records where
 * the bytes are through the model's intent methods; the caller records the state change and the ledger line.
 *
 * Host loss: every call to a specific host goes through `onHost` (the host holding the file) or `onPickedHost`
 * (a host just picked for a new file), which give the host `hostTimeoutSeconds` to claim each task. When a task
 * waits longer, the host is asked for a ping on its own liveness queue (served by a worker of its own, so a host
 * whose activity slots are all busy still answers). A host that does not answer within its liveness window is
 * gone: its copy is treated as lost, and the file is recovered on a live host from the newest source (a newer
 * local file on the host of the last placement, the replica or the stored copy). A busy host is waited for. The
 * liveness window is longer than the host's lease, so a host declared gone has already stopped serving.
 */
import { ActivityFailure, ActivityOptions, ApplicationFailure, TimeoutFailure, isCancellation, patched } from '@temporalio/workflow';
import { Edge, State, edgeOf } from '../lifecycle';
import type { RecoverySource, TemplateSource, UsedSource } from '../activities/types';
import type { HostInfo, PrefetchResult, StoredCopy } from '../contract/types';
import { generationsPastRetention, replicaGenerationsKept, sourcesNewestFirst } from '../contract/recovery';
import { WorkspaceModel } from './workspace-model';
import { messageOf } from './failure-text';
import { hostActivities, livenessActivity, pickHostLocally, sharedActivities, stopIfIdleLocally } from './activities';

export type WakePath = 'warm' | 'local' | 'cold';

export interface MoveOutcome {
  detail: string;
  path?: WakePath;
}

export const DEFAULT_HOST_TIMEOUT_SECONDS = 30;

/** Failure types that mean "this host's copy of the file is not usable": recover it from elsewhere. */
const FILE_LOST = ['SourceMissing', 'IntegrityError'];

/** What each legal edge does. A missing or extra edge is a compile error. */
export const MOVES: { readonly [E in Edge]: (m: WorkspaceModel) => Promise<MoveOutcome> } = {
  'created->active': provisionAndStart,
  'active->suspended': async (m) => suspended(await stopOnHost(m)),
  'suspended->active': resumeLocal,
  'suspended->frozen': async (m) => {
    const id = m.input.workspaceId;
    const { copy, host, recovered } = await storeFromHost(m, 'cold');
    // The copy is recorded: the host's retry bookkeeping for it can go.
    await cleanUpAfterStore(m, host);
    const previous = m.cold && m.cold.url !== copy.url ? m.cold : null;
    m.recordCold(copy);
    m.releaseLocal();
    await deleteUnreferenced(m, [previous], `delete previous cold copy of ${id}`);
    const pruned = await pruneGenerations(m);
    return {
      detail: `${recovered}frozen to ${copy.url} (${copy.bytes} bytes, sha256 ${copy.sha256.slice(0, 12)}, restore-verified); local copy released${pruned}`,
    };
  },
  'frozen->active': (m) => restoreAndStart(m, requireCopy(m.cold, 'cold'), 'cold copy'),
  'archived->active': (m) => restoreAndStart(m, requireCopy(m.archive, 'archive'), 'archive'),
  'frozen->archived': async (m) => {
    const id = m.input.workspaceId;
    const cold = requireCopy(m.cold, 'cold');
    const archive = await shared(m, `archive ${id}`).archiveColdCopy({ workspaceId: id, cold });
    const previous = m.archive && m.archive.url !== archive.url ? m.archive : null;
    m.recordArchive(archive);
    await removePrefetchedCopy(m);
    await deleteUnreferenced(m, [previous], `delete previous archive copy of ${id}`);
    const pruned = await pruneGenerations(m);
    return { detail: `archived to ${archive.url} (${archive.bytes} bytes)${pruned}` };
  },
  'active->archived': async (m) => {
    const id = m.input.workspaceId;
    const stopped = await stopOnHost(m);
    const { copy: archive, host, recovered } = await storeFromHost(m, 'archive');
    await cleanUpAfterStore(m, host);
    // Copies this archive supersedes: the cold copy, and an archive copy of an earlier archive.
    const superseded = [m.cold, m.archive && m.archive.url !== archive.url ? m.archive : null].filter((c): c is StoredCopy => c !== null);
    m.recordArchive(archive);
    m.releaseLocal();
    await deleteUnreferenced(m, superseded, `delete superseded copies of ${id}`);
    const pruned = await pruneGenerations(m);
    const lost = stopped.ok ? '' : `${stopped.why}; `;
    return { detail: `${lost}${recovered}archived to ${archive.url} (${archive.bytes} bytes); local copy released${pruned}` };
  },
  'archived->deleted': async (m) => {
    const id = m.input.workspaceId;
    const copies = [m.cold, m.archive].filter((c): c is StoredCopy => c !== null);
    await removePrefetchedCopy(m);
    if (m.host) {
      const host = m.host;
      await onHost(m, host, `remove local copy of ${id}`, (a) => a.removeLocal({ workspaceId: id }));
      m.releaseLocal();
    }
    const replicas = m.replicas.map((g) => g.url);
    const r = await shared(m, `delete stored copies and replicas of ${id}`).deleteStoredCopies({ workspaceId: id, copies, replicas });
    m.forgetEverything();
    // Counted from what was recorded, not from this attempt's deletions (a retried attempt finds some gone).
    return { detail: `deleted ${copies.length} stored cop${copies.length === 1 ? 'y' : 'ies'}, the replicas and every local copy${r.deleted < copies.length ? ` (${copies.length - r.deleted} already gone)` : ''}` };
  },
};

/**
 * The idle ladder's active → suspended: the host checks its last data request and stops the instance in one task,
 * unless it was used less than `idleForMs` ago; then nothing moves and the answer is null (the use is recorded).
 */
export async function suspendIfIdle(m: WorkspaceModel, idleForMs: number): Promise<MoveOutcome | null> {
  const stopped = await stopOnHost(m, idleForMs);
  return stopped.ok === 'busy' ? null : suspended(stopped);
}

function suspended(stopped: Exclude<Stopped, { ok: 'busy' }>): MoveOutcome {
  if (!stopped.ok) return { detail: `${stopped.why}; its copy is treated as lost and the next wake restores the newest data` };
  return { detail: `instance stopped on ${stopped.host}; file kept (${stopped.bytes} bytes)${stopped.synced ? '; replica flushed' : ''}` };
}

/** Runs the behaviour of the edge `from -> to`; the caller records the state change and the ledger line. */
export async function performMove(m: WorkspaceModel, from: State, to: State): Promise<MoveOutcome> {
  const edge = edgeOf(from, to);
  if (!edge) throw ApplicationFailure.nonRetryable(`no behaviour for ${from} -> ${to}`, 'IllegalTransition');
  return MOVES[edge](m);
}

/**
 * A wake with `check` on an active workspace: confirm its host still serves the file (an idempotent start);
 * recover it on a live host when the host is gone or the file is not usable there.
 */
export async function checkActive(m: WorkspaceModel): Promise<MoveOutcome | null> {
  const id = m.input.workspaceId;
  if (!m.host) return recoverAndStart(m, 'the workspace had no host');
  const host = m.host;
  const placement = m.placementFor(host);
  try {
    const r = await onHost(m, host, `check ${id} is served`, (a) =>
      a.startInstance({ workspaceId: id, clearTmp: false, generation: continuingGeneration(m, host), placement }),
    );
    if (r.ok) {
      // The host may have restarted with its data server elsewhere (another port): take its current address.
      m.placeOn(r.value.host, r.value.filePath, placement);
      noteReplica(m, r.value.replicaUrl, r.value.host.host);
      return null;
    }
    m.loseHost();
    return recoverAndStart(m, r.why);
  } catch (err) {
    if (!isFileLost(err)) throw err;
    m.loseHost();
    return recoverAndStart(m, `the file on ${host.host} is not usable (${messageOf(err)})`);
  }
}

/**
 * Make the newest stored copy local on some live host without starting the instance (frozen, archived); active and
 * suspended workspaces are local already. Never counts as use: lastActiveAt and the idle ladder do not move.
 */
export async function prefetch(m: WorkspaceModel): Promise<{ result: Omit<PrefetchResult, 'state'>; detail: string }> {
  const copy = m.state === 'frozen' ? m.cold : m.state === 'archived' ? m.archive : null;
  if (!copy) {
    const local = (m.state === 'active' || m.state === 'suspended') && m.host !== null;
    return {
      result: { outcome: local ? 'local' : 'none', host: local ? m.host!.host : null, bytes: null },
      detail: `nothing to prefetch: ${m.state} workspaces are already local or have no stored copy`,
    };
  }
  if (m.prefetched && m.prefetched.sha256 === copy.sha256) {
    // Asked for again (another login): its keep starts over.
    m.prefetchedOn(m.prefetched.host, m.prefetched.filePath, m.prefetched.sha256, Date.now());
    return { result: { outcome: 'already', host: m.prefetched.host.host, bytes: copy.bytes }, detail: `already prefetched on ${m.prefetched.host.host}` };
  }
  const r = await onPickedHost(m, `prefetch ${m.input.workspaceId}`, (a) => a.restoreLocal({ workspaceId: m.input.workspaceId, copy }));
  m.prefetchedOn(r.host, r.filePath, copy.sha256, Date.now());
  return { result: { outcome: 'prefetched', host: r.host.host, bytes: copy.bytes }, detail: `prefetched on ${r.host.host}` };
}

async function provisionAndStart(m: WorkspaceModel): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  let template: TemplateSource | undefined;
  let what = '';
  let version = '';
  if (m.input.template) {
    template = await shared(m, `resolve template ${m.input.template}`).resolveTemplate({ templateId: m.input.template, forWorkspace: id, forTenant: m.input.tenant });
    // A frozen template (a published one always is) is cloned from its cold copy: that copy's sha256 is the version.
    what = `cloned from ${m.input.template}`;
    if (template.kind === 'stored') version = ` version sha256 ${template.copy.sha256}`;
  } else if (m.input.restoreFrom) {
    const src = m.input.restoreFrom;
    template = await shared(m, `find restore point of ${src.workspaceId}`).resolveRestorePoint({ sourceId: src.workspaceId, at: src.at, forWorkspace: id, forTenant: m.input.tenant });
    what = `restored from ${src.workspaceId} ${src.at ? `as of ${src.at}` : 'at its newest data'} (${template.kind === 'replica' ? template.replicaUrl : template.kind === 'stored' ? template.copy.url : template.filePath})`;
  }
  const summary = template ? `${what.split(' (')[0]} into ${id}` : `create file for ${id}`;
  const generation = once(() => m.nextGeneration());
  const placement = once(() => m.nextPlacement());
  const create = async (acts: HostActs) => {
    const p = await acts.provision({ workspaceId: id, template });
    const s = await acts.startInstance({ workspaceId: id, clearTmp: false, generation: generation(), placement: placement() });
    return { p, s };
  };
  // A template held open or warm on a host is cloned on that host (reflink where the filesystem can);
  // a stored template or a fresh workspace goes to whichever live host picks the task up.
  let made;
  if (template?.kind === 'local') {
    const r = await onHost(m, template.host, summary, create);
    if (!r.ok) throw ApplicationFailure.nonRetryable(`template ${m.input.template} is on a host that is gone: ${r.why}`, 'TemplateUnavailable');
    made = r.value;
  } else {
    made = await onPickedHost(m, summary, create);
  }
  const { p, s } = made;
  m.placeOn(s.host, s.filePath, placement());
  noteReplica(m, s.replicaUrl, s.host.host);
  // Memory never crosses tenants (volumesKeptOnCopy, decided by the resolving activity): the ledger says so.
  const stripped = template?.keep && !template.keep.includes('memory') ? '; memory not carried: another tenant' : '';
  return { detail: template ? `${what}${version} on ${s.host.host} (${p.bytes} bytes${stripped})` : `created on ${s.host.host}`, path: 'local' };
}

/** suspended → active: open the file where it is; recover it elsewhere if that host or file is gone. */
async function resumeLocal(m: WorkspaceModel): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  if (!m.host) return recoverAndStart(m, 'its last host was lost');
  const host = m.host;
  const placement = m.nextPlacement();
  try {
    const r = await onHost(m, host, `resume ${id} from local disk`, (a) =>
      a.startInstance({ workspaceId: id, clearTmp: true, generation: continuingGeneration(m, host) ?? m.nextGeneration(), placement }),
    );
    if (!r.ok) {
      m.loseHost();
      return recoverAndStart(m, r.why);
    }
    m.placeOn(r.value.host, r.value.filePath, placement);
    noteReplica(m, r.value.replicaUrl, r.value.host.host);
    return { detail: `resumed from local file on ${r.value.host.host}`, path: 'local' };
  } catch (err) {
    if (!isFileLost(err)) throw err;
    m.loseHost();
    return recoverAndStart(m, `the file on ${host.host} is not usable (${messageOf(err)})`);
  }
}

async function restoreAndStart(m: WorkspaceModel, copy: StoredCopy, what: string): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  const pre = m.prefetched;
  if (pre && pre.sha256 === copy.sha256) {
    try {
      // The prefetching host may be gone: give it a short time to pick the task up, then restore elsewhere.
      const acts = hostActs(m, pre.host, `resume ${id} from prefetched copy`, { scheduleToStartTimeout: '15s' });
      const r = await acts.restoreLocal({ workspaceId: id, copy });
      const placement = m.nextPlacement();
      const s = await acts.startInstance({ workspaceId: id, clearTmp: true, generation: m.nextGeneration(), placement });
      m.placeOn(s.host, s.filePath, placement);
      m.dropPrefetch();
      noteReplica(m, s.replicaUrl, s.host.host);
      return { detail: `resumed from prefetched ${what} on ${r.host.host}`, path: 'local' };
    } catch (err) {
      // A gone host, a lost or damaged prefetched file: restore the normal way (with the replica as fallback).
      if (!isHostUnavailable(err) && !isFileLost(err) && !(isFailureOfType(err, 'ChecksumMismatch') && mismatchFallsBack())) throw err;
      m.dropPrefetch();
    }
  }
  if (!patched('restore-with-fallback-sources')) {
    // Runs started before replicas existed restore from the stored copy alone (kept for replay).
    const host = await shared(m, 'pick a host').pickHost();
    const acts = hostActs(m, host, `restore ${id} from ${what}`);
    const r = await acts.restoreLocal({ workspaceId: id, copy });
    const placement = m.nextPlacement();
    const s = await acts.startInstance({ workspaceId: id, clearTmp: true, placement });
    m.placeOn(s.host, s.filePath, placement);
    return { detail: `restored from ${what} ${copy.url} on ${r.host.host} (sha256 verified)`, path: 'cold' };
  }
  // The stored copy first (it is what the freeze verified); the replica if the copy is refused.
  const sources: RecoverySource[] = [{ kind: 'stored', copy }];
  const rep = m.currentReplica();
  if (rep) sources.push({ kind: 'replica', replicaUrl: rep.url });
  return startFromSources(m, sources, `restore ${id} from ${what}`, '');
}

/**
 * Whether a prefetched copy failing its checksum falls back to a normal restore. That rule landed without a patch:
 * histories from before it failed the move, histories since then took the fallback and, right there, recorded
 * the `restore-with-fallback-sources` marker (unless this run had recorded it already). On replay, patched()
 * sees a marker of the task being replayed, so both kinds replay; new runs record this rule's own marker.
 */
function mismatchFallsBack(): boolean {
  return patched('prefetch-mismatch-falls-back') || patched('restore-with-fallback-sources');
}

/** Recover a lost file on a live host from the newest source, then start it. */
async function recoverAndStart(m: WorkspaceModel, why: string): Promise<MoveOutcome> {
  return startFromSources(m, sourcesNewestFirst(m), `recover ${m.input.workspaceId}`, `${why}; `);
}

/**
 * Whether a recovery may go ahead with no replica or stored copy: only when the host of the last placement may
 * still hold the newest file (histories from before that rule gave up at once; kept for replay).
 */
function mayRecoverFromLocalOnly(m: WorkspaceModel, sources: RecoverySource[]): boolean {
  return sources.length === 0 && !!m.lastPlacement && patched('recover-keeps-newer-local-file');
}

async function startFromSources(m: WorkspaceModel, sources: RecoverySource[], summary: string, prefix: string): Promise<MoveOutcome> {
  const id = m.input.workspaceId;
  if (sources.length === 0 && !mayRecoverFromLocalOnly(m, sources)) {
    throw ApplicationFailure.nonRetryable(`${prefix}there is no replica or stored copy to restore ${id} from`, 'NoStoredCopy');
  }
  const keep = m.lastPlacement;
  const generation = once(() => m.nextGeneration());
  const placement = once(() => m.nextPlacement());
  const { r, s } = await onPickedHost(m, summary, async (acts) => {
    const r = await acts.recoverLocal({ workspaceId: id, sources, keep, placement: placement() });
    const s = await acts.startInstance({ workspaceId: id, clearTmp: true, generation: generation(), placement: placement() });
    return { r, s };
  });
  m.placeOn(s.host, s.filePath, placement());
  m.dropPrefetch();
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
    m.loseHost();
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
  if (sources.length === 0 && !mayRecoverFromLocalOnly(m, sources)) {
    throw ApplicationFailure.nonRetryable(`workspace ${id} lost its host and has no replica or stored copy`, 'NoStoredCopy');
  }
  const keep = m.lastPlacement;
  const placement = once(() => m.nextPlacement());
  const r = await onPickedHost(m, `recover ${id}`, (a) => a.recoverLocal({ workspaceId: id, sources, keep, placement: placement() }));
  m.placeOn(r.host, r.filePath, placement());
  const skipped = r.skipped.length ? ` (skipped: ${r.skipped.join('; ')})` : '';
  return `recovered from ${describeSource(r.used)} on ${r.host.host}${skipped}`;
}

type Stopped = { ok: true; host: string; bytes: number; synced: boolean } | { ok: false; why: string } | { ok: 'busy' };

/**
 * Stops the instance on its host; a lost host (or file) leaves the workspace without a host. With `idleForMs`,
 * only if the host saw no data request for that long (else `busy`, and the last use is recorded).
 */
async function stopOnHost(m: WorkspaceModel): Promise<Exclude<Stopped, { ok: 'busy' }>>;
async function stopOnHost(m: WorkspaceModel, idleForMs: number): Promise<Stopped>;
async function stopOnHost(m: WorkspaceModel, idleForMs?: number): Promise<Stopped> {
  const id = m.input.workspaceId;
  if (!m.host) return { ok: false, why: 'the workspace had no host' };
  const host = m.host;
  try {
    const r =
      idleForMs === undefined
        ? await onHost(m, host, `stop instance of ${id}`, async (a) => ({ stopped: true as const, ...(await a.stopInstance({ workspaceId: id })) }))
        : ((await stopIfIdleHere(m, host, idleForMs)) ?? (await onHost(m, host, `stop instance of ${id} if idle`, (a) => a.stopIfIdle({ workspaceId: id, idleForMs }))));
    if (!r.ok) {
      m.loseHost();
      return r;
    }
    if (!r.value.stopped) {
      m.usedAt(Date.now() - r.value.idleMs);
      return { ok: 'busy' };
    }
    m.fileAt(r.value.filePath);
    if (r.value.replicaSynced) m.replicaStopped(Date.now());
    // The last data request the host saw is the workspace's last use (absent in results of older builds).
    if (typeof r.value.idleMs === 'number') m.usedAt(Date.now() - r.value.idleMs);
    return { ok: true, host: host.host, bytes: r.value.bytes, synced: r.value.replicaSynced };
  } catch (err) {
    if (!isFileLost(err)) throw err;
    m.loseHost();
    return { ok: false, why: `the file on ${host.host} is not usable (${messageOf(err)})` };
  }
}

/**
 * The idle stop by the holder itself, when it is the worker running this workflow task (LOCAL_STOP_PATCH); null
 * when it is not, or on any failure: then the task goes to the holder's queue, which handles lost hosts and files.
 */
async function stopIfIdleHere(m: WorkspaceModel, host: HostInfo, idleForMs: number) {
  const placement = m.lastPlacement && m.lastPlacement.host === host.host ? m.lastPlacement.placement : null;
  if (!m.localStop || placement === null) return null;
  try {
    const r = await stopIfIdleLocally()({ workspaceId: m.input.workspaceId, idleForMs, host: host.host, placement });
    return r.here ? { ok: true as const, value: r } : null;
  } catch (err) {
    // Recorded in history (replay takes the same path); cancellation is the move's, not the stop's.
    if (isCancellation(err)) throw err;
    return null;
  }
}

/**
 * Runs that record this patch delete stored replica generations past the workspace's retention at each freeze and
 * archive (generationsPastRetention); runs from before kept every generation until the delete.
 */
export const REPLICA_RETENTION_PATCH = 'replica-retention';

/** Deletes the replica generations past retention and forgets them; says so for the ledger ('' when none). */
async function pruneGenerations(m: WorkspaceModel): Promise<string> {
  const drop = generationsPastRetention(m.replicas, replicaGenerationsKept(m.input.replicaGenerations));
  // Only asked when there is something to delete: histories from before the patch replay without it.
  if (drop.length === 0 || !patched(REPLICA_RETENTION_PATCH)) return '';
  const id = m.input.workspaceId;
  await shared(m, `delete ${drop.length} old replica generation${drop.length === 1 ? '' : 's'} of ${id}`).deleteReplicaGenerations({
    workspaceId: id,
    replicas: drop.map((g) => g.url),
  });
  m.forgetGenerations(drop.map((g) => g.url));
  return `; ${drop.length} old replica generation${drop.length === 1 ? '' : 's'} deleted (kept: the newest ${m.replicas.length})`;
}

/** After a verified store: the host's bookkeeping for the released file can go (skipped if the host is gone). */
async function cleanUpAfterStore(m: WorkspaceModel, host: HostInfo): Promise<void> {
  await onHost(m, host, `clean up local bookkeeping of ${m.input.workspaceId}`, (a) => a.removeLocal({ workspaceId: m.input.workspaceId }));
}

/**
 * Deletes copies a move superseded, except those the model still references (see WorkspaceModel.unreferenced).
 * Histories from before that rule deleted every superseded copy (kept for replay).
 */
async function deleteUnreferenced(m: WorkspaceModel, candidates: (StoredCopy | null)[], summary: string): Promise<void> {
  const given = candidates.filter((c): c is StoredCopy => c !== null);
  const deletable = m.unreferenced(given);
  const copies = deletable.length === given.length || !patched('delete-only-unreferenced-copies') ? given : deletable;
  if (copies.length) await shared(m, summary).deleteStoredCopies({ workspaceId: m.input.workspaceId, copies });
}

type OnHost<T> = { ok: true; value: T } | { ok: false; why: string };
type HostActs = ReturnType<typeof hostActivities>;

/** The running move's activities on the shared queue, with its task priority. */
function shared(m: WorkspaceModel, summary: string, extra: Partial<ActivityOptions> = {}) {
  return sharedActivities(summary, withPriority(m, extra));
}

/** The running move's activities on `host`'s queue, with its task priority. */
function hostActs(m: WorkspaceModel, host: HostInfo, summary: string, extra: Partial<ActivityOptions> = {}) {
  return hostActivities(host, summary, withPriority(m, extra));
}

function withPriority(m: WorkspaceModel, extra: Partial<ActivityOptions>): Partial<ActivityOptions> {
  return m.priorityKey === undefined ? extra : { ...extra, priority: { priorityKey: m.priorityKey } };
}

/**
 * Runs `fn` with activities on `host`, giving the host `hostTimeoutSeconds` to claim each task. When a task
 * waits longer, the host is asked whether it is alive: one that is busy is waited for (the call is retried;
 * the activities are idempotent); one that does not answer is reported as gone.
 */
async function onHost<T>(m: WorkspaceModel, host: HostInfo, summary: string, fn: (acts: HostActs) => Promise<T>): Promise<OnHost<T>> {
  const t = hostTimeoutSeconds(m);
  for (;;) {
    try {
      // A task handed to a host that then stops is stuck until its heartbeat timeout: keep that near the host timeout.
      const heartbeatSeconds = Math.min(20, Math.max(10, 2 * t));
      return { ok: true, value: await fn(hostActs(m, host, summary, { scheduleToStartTimeout: `${t}s`, heartbeatTimeout: `${heartbeatSeconds}s` })) };
    } catch (err) {
      if (!isHostUnavailable(err)) throw err;
      const answer = await hostAnswers(host, t);
      if (!answer.alive) return { ok: false, why: answer.why };
    }
  }
}

/**
 * Runs `fn` on a host picked from the live ones (a new or restored file can go anywhere); a picked host that
 * turns out to be gone is replaced by another pick, at most three picks in all.
 */
async function onPickedHost<T>(m: WorkspaceModel, summary: string, fn: (acts: HostActs) => Promise<T>): Promise<T> {
  const gone: string[] = [];
  for (let pick = 1; pick <= 3; pick++) {
    const host = await pickHost(m);
    const r = await onHost(m, host, summary, fn);
    if (r.ok) return r.value;
    gone.push(r.why);
  }
  throw ApplicationFailure.nonRetryable(`no picked host took the work: ${gone.join('; ')}`, 'HostLost');
}

/**
 * A live host for a new or restored file: the host whose worker runs this workflow task (a local activity), or, on a
 * worker that runs workflows but is no host (nothing registered to answer), one picked on the shared queue.
 */
async function pickHost(m: WorkspaceModel): Promise<HostInfo> {
  if (m.cheapMoves) {
    try {
      return await pickHostLocally()();
    } catch (err) {
      // Whatever the local pick failed with (recorded in history, so replay takes the same path), except cancellation.
      if (isCancellation(err)) throw err;
    }
  }
  return shared(m, 'pick a host').pickHost();
}

/**
 * Whether a host that left a task unclaimed for `t` seconds is alive. Hosts with a liveness queue (they say
 * their lease) are pinged there, for longer than their lease: a ping nobody answers in that window means the
 * host is gone and has stopped serving. Older hosts are judged by when they last polled their queue.
 */
async function hostAnswers(host: HostInfo, t: number): Promise<{ alive: true } | { alive: false; why: string }> {
  if (typeof host.leaseMs === 'number' && host.leaseMs > 0 && patched('liveness-ping')) {
    const window = livenessWindowSeconds(t, host.leaseMs);
    try {
      await livenessActivity(host, window)();
      return { alive: true };
    } catch (err) {
      if (!(err instanceof ActivityFailure && err.cause instanceof TimeoutFailure)) return { alive: true };
      return { alive: false, why: `host ${host.host} did not take work for ${t}s nor answer a liveness ping for ${window}s` };
    }
  }
  const alive = await sharedActivities(`is host ${host.host} alive`).hostAlive({ taskQueue: host.taskQueue, withinSeconds: t });
  return alive.alive ? { alive: true } : { alive: false, why: `host ${host.host} did not take work for ${t}s (last poll ${alive.lastPollAt ?? 'unknown'})` };
}

/** The liveness window: the host timeout, but always a margin longer than the host's lease. */
export function livenessWindowSeconds(hostTimeoutSeconds: number, leaseMs: number): number {
  return Math.max(hostTimeoutSeconds, Math.ceil(leaseMs / 1000) + LEASE_MARGIN_SECONDS);
}

/** How much longer than a host's lease the liveness window is (scheduling, clock rate, a renewal in flight). */
export const LEASE_MARGIN_SECONDS = 5;

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

/** A value computed on first use and kept (a counter bumped once however often a call is retried). */
function once<T>(make: () => T): () => T {
  let v: { value: T } | null = null;
  return () => (v ??= { value: make() }).value;
}

function describeSource(s: UsedSource): string {
  if (s.kind === 'local') return `the newer local file of placement ${s.placement}`;
  return s.kind === 'replica' ? `replica ${s.replicaUrl}` : `stored copy ${s.copy.url} (sha256 verified)`;
}

/**
 * Removes a prefetched copy that no wake used within its keep (runs with the `prefetch-expiry` patch). A host that
 * is gone took the copy with it; any other failure leaves the copy recorded and is tried again later.
 */
export async function expirePrefetched(m: WorkspaceModel): Promise<string | null> {
  const pre = m.prefetched;
  if (!pre) return null;
  await removePrefetchedCopy(m);
  return `prefetched copy on ${pre.host.host} removed: no wake used it`;
}

/** Removes the prefetched copy from its host (skipped if that host is gone). */
async function removePrefetchedCopy(m: WorkspaceModel): Promise<void> {
  const pre = m.prefetched;
  if (!pre) return;
  try {
    await hostActs(m, pre.host, `drop prefetched copy of ${m.input.workspaceId}`, { scheduleToStartTimeout: '15s' }).removeLocal({
      workspaceId: m.input.workspaceId,
    });
  } catch (err) {
    if (!isHostUnavailable(err)) throw err;
  }
  m.dropPrefetch();
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
