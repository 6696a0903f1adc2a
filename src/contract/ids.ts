/**
 * Workspace names and keys. A tenant names its workspaces with *names* (`notes`): lowercase letters, digits and
 * dashes, 1–63 characters, starting with a letter or digit; two tenants may each have a `notes`. Inside the
 * service a workspace is known by its *key*, `<tenant>.<name>` (`acme.notes`): the workflow id is
 * `workspace:<key>`, and files, stored copies and grants are named by the key. Workspaces made before keys
 * carried the tenant keep their bare key (`notes`, tenant in the workflow) and stay reachable by it.
 */
export const WORKSPACE_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Tenant names follow the same shape as workspace names. */
export const TENANT_PATTERN = WORKSPACE_NAME_PATTERN;
/** A key: `<tenant>.<name>`, or a bare `<name>` of a workspace made before keys carried the tenant. */
export const WORKSPACE_KEY_PATTERN = /^(?:[a-z0-9][a-z0-9-]{0,62}\.)?[a-z0-9][a-z0-9-]{0,62}$/;

export const WORKFLOW_TYPE = 'workspace';
export const DEFAULT_TASK_QUEUE = 'workbooks';

export class InputError extends Error {
  override name = 'InputError';
}

/** A tenant-facing workspace name (no tenant part). */
export function checkWorkspaceName(name: unknown, what = 'workspace id'): string {
  if (typeof name !== 'string' || !WORKSPACE_NAME_PATTERN.test(name)) {
    throw new InputError(`${what} '${String(name)}' is invalid: use 1-63 lowercase letters, digits or dashes, starting with a letter or digit`);
  }
  return name;
}

/** A workspace key: `<tenant>.<name>` or a bare `<name>` (see above). */
export function checkWorkspaceId(id: unknown, what = 'workspace id'): string {
  if (typeof id !== 'string' || !WORKSPACE_KEY_PATTERN.test(id)) {
    throw new InputError(
      `${what} '${String(id)}' is invalid: use <tenant>.<name> or <name>, each 1-63 lowercase letters, digits or dashes, starting with a letter or digit`,
    );
  }
  return id;
}

/** The key of a tenant's workspace name. */
export function workspaceKey(tenant: string, name: string): string {
  return `${tenant}.${name}`;
}

/** The tenant part of a key (`acme` of `acme.notes`), or null for a bare key. */
export function keyTenant(key: string): string | null {
  const dot = key.indexOf('.');
  return dot < 0 ? null : key.slice(0, dot);
}

/** The name part of a key (`notes` of `acme.notes` and of `notes`). */
export function keyName(key: string): string {
  return key.slice(key.indexOf('.') + 1);
}

/**
 * The one rule of who a key may belong to: a key with a tenant part belongs to that tenant only. (A bare key may
 * belong to any tenant: the workflow records it.)
 */
export function checkKeyTenant(key: string, tenant: string): void {
  const t = keyTenant(key);
  if (t !== null && t !== tenant) throw new InputError(`workspace key '${key}' belongs to tenant '${t}', not '${tenant}'`);
}

/**
 * The key and tenant of a new workspace as an operator names it: `acme.notes` (the tenant is in the key; a given
 * tenant must agree), or a name with the tenant given (`notes` + `acme` → `acme.notes`).
 */
export function newKey(id: string, tenant: string | undefined): { key: string; tenant: string } {
  if (id.includes('.')) {
    const key = checkWorkspaceId(id);
    const t = keyTenant(key)!;
    if (tenant !== undefined) checkKeyTenant(key, checkTenant(tenant));
    return { key, tenant: t };
  }
  if (tenant === undefined) throw new InputError(`give the tenant: --tenant T, or the id as <tenant>.${id}`);
  return { key: workspaceKey(checkTenant(tenant), checkWorkspaceName(id)), tenant };
}

/**
 * The other form of a tenant's workspace: `notes` for `acme.notes` and `acme.notes` for a bare `notes`. One tenant
 * must not hold both (a name would then mean two workspaces), so a create checks this one is not taken.
 */
export function otherFormOf(key: string, tenant: string): string {
  return keyTenant(key) === null ? workspaceKey(tenant, key) : keyName(key);
}

export function checkTenant(tenant: unknown): string {
  if (typeof tenant !== 'string' || !TENANT_PATTERN.test(tenant)) {
    throw new InputError(`tenant '${String(tenant)}' is invalid: use 1-63 lowercase letters, digits or dashes, starting with a letter or digit`);
  }
  return tenant;
}

export function workflowIdFor(workspaceId: string): string {
  return `workspace:${workspaceId}`;
}

export function workspaceIdFromWorkflowId(workflowId: string): string | null {
  return workflowId.startsWith('workspace:') ? workflowId.slice('workspace:'.length) : null;
}

/** The task queue a host's file activities run on. */
export function hostTaskQueue(taskQueue: string, host: string): string {
  return `${taskQueue}@${host}`;
}

/**
 * The queue of a host's liveness worker (`<host queue>@live`; host ids have no `@`): a worker of its own with
 * free slots, so a host whose file activities are all busy still answers a ping.
 */
export function livenessTaskQueue(hostQueue: string): string {
  return `${hostQueue}@live`;
}

/** Host ids: like workspace ids, but dots and underscores are allowed (hostnames). */
export const HOST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
export function checkHostId(host: unknown): string {
  if (typeof host !== 'string' || !HOST_ID_PATTERN.test(host)) {
    throw new InputError(`host id '${String(host)}' is invalid: use 1-63 letters, digits, dots, dashes or underscores`);
  }
  return host;
}
