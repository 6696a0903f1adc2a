import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const STATE_KEY = defineSearchAttributeKey('WorkbookState', SearchAttributeType.KEYWORD);
export const TENANT_KEY = defineSearchAttributeKey('WorkbookTenant', SearchAttributeType.KEYWORD);
export const HOST_KEY = defineSearchAttributeKey('WorkbookHost', SearchAttributeType.KEYWORD);
/**
 * When the workspace was last used (ISO 8601 UTC, so it sorts as text), as of its last state change: for a
 * workspace that is not active this is final. `POST /v1/sessions` finds a tenant's recently used workspaces by it.
 */
export const LAST_ACTIVE_KEY = defineSearchAttributeKey('WorkbookLastActive', SearchAttributeType.KEYWORD);

/** Every search attribute the workflow writes; the dev server must have them registered. */
export const SEARCH_ATTRIBUTE_KEYS = [STATE_KEY, TENANT_KEY, HOST_KEY, LAST_ACTIVE_KEY];
