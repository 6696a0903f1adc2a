/**
 * A sentence for a request the schema refused. Ajv's own words for a pattern are the pattern itself
 * (`body/within must match pattern "^(?:[0-9]{1,8}s|...)$"`), which helps nobody: for the fields with a
 * documented form, say the form instead.
 */
const DURATION = "a whole number and a unit (s, m, h, d), e.g. '15m' or '24h'";
const FORMS: Record<string, string> = {
  within: DURATION,
  suspendAfter: `${DURATION}, or 'never'`,
  freezeAfter: `${DURATION}, or 'never'`,
  archiveAfter: `${DURATION}, or 'never'`,
  deleteAfter: `${DURATION}, or 'never'`,
  tenant: '1-63 lowercase letters, digits or dashes, starting with a letter or digit',
  at: 'an RFC 3339 date-time, e.g. 2026-11-24T21:30:00Z',
  '*': 'a file path of at most 1023 ASCII characters or 255 others (see /openapi.json)',
  prefix: 'a path of at most 1024 ASCII characters or 256 others (see /openapi.json)',
};

interface AjvError {
  keyword?: string;
  instancePath?: string;
}

export function validationMessage(validation: unknown, context: string | undefined, fallback: string): string {
  const first = Array.isArray(validation) ? (validation[0] as AjvError | undefined) : undefined;
  if (!first || !['pattern', 'format', 'anyOf', 'maxLength'].includes(first.keyword ?? '')) return fallback;
  const field = (first.instancePath ?? '').split('/').pop() ?? '';
  const form = FORMS[field];
  if (!form) return fallback;
  return `${context ?? 'request'}${first.instancePath} must be ${form}`;
}
