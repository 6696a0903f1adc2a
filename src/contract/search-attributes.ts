import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const STATE_KEY = defineSearchAttributeKey('WorkbookState', SearchAttributeType.KEYWORD);
export const TENANT_KEY = defineSearchAttributeKey('WorkbookTenant', SearchAttributeType.KEYWORD);
export const HOST_KEY = defineSearchAttributeKey('WorkbookHost', SearchAttributeType.KEYWORD);

/** Every search attribute the workflow writes; the dev server must have them registered. */
export const SEARCH_ATTRIBUTE_KEYS = [STATE_KEY, TENANT_KEY, HOST_KEY];
