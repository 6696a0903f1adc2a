/** What the HTTP API shows of a workspace: its lifecycle, without internal paths, URLs or host endpoints. */
import type { ListedWorkspace, ReplicationView } from '../contract/data-plane';
import type { StoredCopy, WorkspaceDescription } from '../contract/types';

export interface WorkspaceView {
  id: string;
  tenant: string;
  state: WorkspaceDescription['state'];
  createdAt: string;
  stateSince: string;
  lastActiveAt: string;
  host: string | null;
  template: string | null;
  /** Published as a template: its version (the sha256 of the cold copy every clone is made from) and who may clone it. */
  published: { version: string; shareWith: '*' | string[]; publishedAt: string } | null;
  restoredFrom: WorkspaceDescription['restoredFrom'];
  policy: WorkspaceDescription['policy'];
  next: { to: string; at: string } | null;
  busy: WorkspaceDescription['busy'];
  cold: CopyView | null;
  archive: CopyView | null;
  replicaGenerations: number;
  /**
   * Replication health from the holding host (the show route only; admins see lag, last error and when it was
   * checked, tenants only the state word).
   */
  replication?: ReplicationView | Pick<ReplicationView, 'state'>;
}

interface CopyView {
  bytes: number;
  sha256: string;
  at: string;
}

const copyView = (c: StoredCopy | null): CopyView | null => (c ? { bytes: c.bytes, sha256: c.sha256, at: c.at } : null);

/** `show` gives the id the caller uses for a workspace key (see shownId). */
export function workspaceView(d: WorkspaceDescription, show: (key: string) => string): WorkspaceView {
  return {
    id: show(d.workspaceId),
    tenant: d.tenant,
    state: d.state,
    createdAt: d.createdAt,
    stateSince: d.stateSince,
    lastActiveAt: d.lastActiveAt,
    host: d.host,
    template: d.template && show(d.template),
    published: d.published ? { version: d.published.version, shareWith: d.published.shareWith, publishedAt: d.published.publishedAt } : null,
    restoredFrom: d.restoredFrom && { ...d.restoredFrom, workspaceId: show(d.restoredFrom.workspaceId) },
    policy: d.policy,
    next: d.nextAutoAt && d.nextAutoTo ? { to: d.nextAutoTo, at: d.nextAutoAt } : null,
    busy: d.busy,
    cold: copyView(d.cold),
    archive: copyView(d.archive),
    replicaGenerations: d.replicas.length,
  };
}

export function listedView(w: ListedWorkspace, id: string) {
  return { id, tenant: w.tenant, state: w.state, host: w.host, startedAt: w.startedAt, lastActiveAt: w.lastActiveAt };
}
