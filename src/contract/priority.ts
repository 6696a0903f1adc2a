/**
 * Temporal task priority keys (1 runs first, 5 last; Temporal's default is 3). A server orders a backlog of tasks
 * on one queue by these keys (test/integration/task-priority.test.ts).
 *
 * - Activities: a user-facing move's (create, wake, explicit move, prefetch) run at USER_PRIORITY, the idle
 *   ladder's at POLICY_PRIORITY (src/workflows).
 * - Workflow tasks take the workflow's priority when they are scheduled. The client starts a workspace at
 *   USER_PRIORITY and, around each update it sends, sets the workflow's priority to USER_PRIORITY and then back to
 *   POLICY_PRIORITY (UpdateWorkflowExecutionOptions): a user's wake is not queued behind a burst of idle-ladder
 *   timers of other workspaces.
 */
export const USER_PRIORITY = 2;
export const POLICY_PRIORITY = 4;
