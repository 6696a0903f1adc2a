/** Workspace ids: lowercase letters, digits and dashes, 1–63 characters, starting with a letter or digit. */
export const WORKSPACE_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,62}$/;
/** Tenant names follow the same shape as ids. */
export const TENANT_PATTERN = WORKSPACE_ID_PATTERN;

export const WORKFLOW_TYPE = 'workspace';
export const DEFAULT_TASK_QUEUE = 'workbooks';

export class InputError extends Error {
  override name = 'InputError';
}

export function checkWorkspaceId(id: unknown, what = 'workspace id'): string {
  if (typeof id !== 'string' || !WORKSPACE_ID_PATTERN.test(id)) {
    throw new InputError(`${what} '${String(id)}' is invalid: use 1-63 lowercase letters, digits or dashes, starting with a letter or digit`);
  }
  return id;
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
