/** Checks of what callers hand the workspace workflow: its input and the actor of a message. */
import { ApplicationFailure, patched } from '@temporalio/workflow';
import { Policy, PolicyError, isState, parsePolicy } from '../lifecycle';
import { InputError, checkKeyTenant, checkTenant, checkWorkspaceId, checkWorkspaceName, keyTenant } from '../contract/ids';
import type { Actor, WorkspaceInput } from '../contract/types';
import { prefetchKeepMs } from '../contract/recovery';

/** Checks the workflow input and returns its parsed policy; a bad input fails the execution (InvalidInput). */
export function validateInput(input: WorkspaceInput): Policy {
  try {
    if (!input || typeof input !== 'object') throw new InputError('workflow input must be { workspaceId, tenant, template?, policy? }');
    checkKey(input.workspaceId, 'workspace id');
    checkTenant(input.tenant);
    if (keyTenant(input.workspaceId) !== null) checkKeyTenant(input.workspaceId, input.tenant);
    if (input.template !== undefined && input.template !== null) {
      checkKey(input.template, 'template');
      if (input.template === input.workspaceId) throw new InputError('a workspace cannot be its own template');
    }
    if (input.restoreFrom !== undefined && input.restoreFrom !== null) {
      const r = input.restoreFrom;
      if (typeof r !== 'object') throw new InputError('restoreFrom must be { workspaceId, at? }');
      checkKey(r.workspaceId, 'restoreFrom.workspaceId');
      if (r.workspaceId === input.workspaceId) throw new InputError('a workspace cannot be restored into itself; restore into a new id');
      if (input.template) throw new InputError('give either template or restoreFrom, not both');
      if (r.at !== undefined && (typeof r.at !== 'string' || Number.isNaN(Date.parse(r.at)))) {
        throw new InputError(`restoreFrom.at '${String(r.at)}' is not an ISO time`);
      }
    }
    if (input.hostTimeoutSeconds !== undefined && (typeof input.hostTimeoutSeconds !== 'number' || !(input.hostTimeoutSeconds >= 1))) {
      throw new InputError('hostTimeoutSeconds must be a number of seconds, at least 1');
    }
    if (input.replicaGenerations !== undefined && !(Number.isInteger(input.replicaGenerations) && input.replicaGenerations >= 1 && input.replicaGenerations <= 20)) {
      throw new InputError('replicaGenerations must be a whole number from 1 to 20');
    }
    if (input.prefetchKeep !== undefined) {
      try {
        prefetchKeepMs(input.prefetchKeep);
      } catch (err) {
        throw new InputError((err as Error).message);
      }
    }
    if (input.carried && !isState(input.carried.state)) throw new InputError('carried state is malformed');
    return parsePolicy(input.policy);
  } catch (err) {
    if (err instanceof InputError || err instanceof PolicyError) throw ApplicationFailure.nonRetryable(err.message, 'InvalidInput');
    throw err;
  }
}

/**
 * A workspace key in the input. Keys with a tenant part (`acme.notes`) are accepted from the build that made
 * them (marker `tenant-scoped-keys`); a history of an earlier build, which refused them at once, replays that
 * refusal. A bare key is checked as before and records no marker.
 */
function checkKey(id: unknown, what: string): void {
  if (typeof id === 'string' && id.includes('.') && patched('tenant-scoped-keys')) checkWorkspaceId(id, what);
  else checkWorkspaceName(id, what);
}

/** Update validators: the actor fields of a request. */
export function checkActor(a: Actor): void {
  if (typeof a !== 'object') throw new Error('reason/by must be given as an object { reason?, by? }');
  if (a.reason !== undefined && typeof a.reason !== 'string') throw new Error('reason must be a string');
  if (a.by !== undefined && typeof a.by !== 'string') throw new Error('by must be a string');
  if (typeof a.reason === 'string' && a.reason.length > 500) throw new Error('reason is longer than 500 characters');
  if (typeof a.by === 'string' && a.by.length > 100) throw new Error('by is longer than 100 characters');
}
