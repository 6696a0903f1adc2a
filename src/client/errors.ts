import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, WorkflowFailedError } from '@temporalio/client';

/** An error meant for a person: one line, says what is wrong; `code` is stable for programs. */
export class WorkbooksError extends Error {
  override name = 'WorkbooksError';
  constructor(
    message: string,
    readonly code: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/** Turns SDK and server errors into one-line WorkbooksErrors. */
export function explain(err: unknown, workspaceId?: string): WorkbooksError {
  if (err instanceof WorkbooksError) return err;
  const what = workspaceId ? `workspace '${workspaceId}'` : 'workspace';
  if (err instanceof WorkflowNotFoundError) return new WorkbooksError(`${what} does not exist`, 'not_found', 404);
  if (err instanceof WorkflowExecutionAlreadyStartedError) return new WorkbooksError(`${what} already exists`, 'already_exists', 409);
  if (err instanceof WorkflowUpdateFailedError || err instanceof WorkflowFailedError) {
    const msg = innermost(err);
    // An illegal edge (refused by the update's validator or by the workflow) changed nothing; any other
    // failure is a move that was tried and failed (its reason is in the ledger).
    if (ILLEGAL.test(msg) || failureType(err) === 'IllegalTransition') return new WorkbooksError(msg, 'illegal_transition', 409);
    if (err instanceof WorkflowFailedError) return new WorkbooksError(msg, 'workflow_failed', 409);
    return new WorkbooksError(msg, 'move_failed', 500);
  }
  const e = err as { code?: number; details?: string; message?: string };
  // gRPC: 5 NOT_FOUND, 3 INVALID_ARGUMENT, 14 UNAVAILABLE, 9 FAILED_PRECONDITION
  if (e && e.code === 5) return new WorkbooksError(`${what} does not exist`, 'not_found', 404);
  if (e && e.code === 14) return new WorkbooksError(`cannot reach Temporal: ${e.details ?? e.message}`, 'unavailable', 503);
  if (e && e.code === 9 && /no poller seen/i.test(e.details ?? e.message ?? '')) {
    return new WorkbooksError('no worker is serving workspaces right now (is `workbooks up` or `workbooks worker` running?)', 'unavailable', 503);
  }
  if (e && (e.code === 3 || e.code === 9)) return new WorkbooksError(firstLine(e.details ?? e.message ?? String(err)), 'refused', 409);
  const msg = innermost(err);
  if (/workflow execution already completed|workflow.*not found/i.test(msg)) return new WorkbooksError(`${what} does not exist (or is deleted)`, 'not_found', 404);
  return new WorkbooksError(msg, 'error', 500);
}

/** Messages of refusals: the lifecycle's own (src/lifecycle/transition.ts), the template role's (src/contract/template-role.ts) and the validators'. */
const ILLEGAL =
  /^cannot move from |cannot be woken|is not a state|transition needs|must be a boolean|^workspace is deleted|is a published template|^only a frozen workspace can be published|^workspace is not a published template|no cold copy to publish|^shareWith|^publish needs/;

/** The type of the innermost ApplicationFailure in a cause chain, if any. */
function failureType(err: unknown): string | null {
  let e: unknown = err;
  let type: string | null = null;
  while (e && typeof e === 'object') {
    const t = (e as { type?: unknown }).type;
    if (typeof t === 'string') type = t;
    e = (e as { cause?: unknown }).cause;
  }
  return type;
}

/** The innermost cause's message (first line): what a person needs from a wrapped Temporal failure. */
export function innermost(err: unknown): string {
  let e: unknown = err;
  let msg = err instanceof Error ? err.message : String(err);
  while (e && typeof e === 'object' && 'cause' in e && (e as { cause?: unknown }).cause) {
    e = (e as { cause: unknown }).cause;
    if (e instanceof Error && e.message) msg = e.message;
  }
  return firstLine(msg);
}

function firstLine(s: string): string {
  return s.split('\n')[0].trim();
}
