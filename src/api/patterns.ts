/**
 * JSON-Schema forms of the rules the API enforces, derived from the constants of the checkers themselves
 * (ids: src/contract/ids.ts; paths: src/vfs/volumes.ts; durations: src/lifecycle), so the OpenAPI document and
 * the server agree exactly: whatever the schema admits, the checkers accept. Patterns use only syntax that
 * both ECMAScript (`u` flag, as ajv compiles them) and Python's `re` (as schema-driven clients and fuzzers read
 * them) understand: no `\u{...}` escapes, no lookarounds.
 */
import { TENANT_PATTERN, WORKSPACE_KEY_PATTERN, WORKSPACE_NAME_PATTERN } from '../contract/ids';
import { MAX_DURATION_MS } from '../lifecycle/duration';
import { MAX_PATH_BYTES, PATH_FORBIDDEN_RANGES } from '../vfs/volumes';

/** A tenant's name for a workspace (create `id`, restore `as`). */
export const WORKSPACE_ID = WORKSPACE_NAME_PATTERN.source;
/** A workspace in a URL or as a template: a name, or a key `<tenant>.<name>` (an admin's; a tenant's own). */
export const WORKSPACE_REF = WORKSPACE_KEY_PATTERN.source;
export const TENANT = TENANT_PATTERN.source;

type Range = readonly [number, number];

const char = (cp: number) => `\\u${cp.toString(16).padStart(4, '0')}`;
/** Ranges (all within the BMP) as a class body. */
const cls = (ranges: Range[]) => ranges.map(([a, b]) => (a === b ? char(a) : `${char(a)}-${char(b)}`)).join('');

const SLASH: Range = [0x2f, 0x2f];
const DOT: Range = [0x2e, 0x2e];

/** [0, max] less the given ranges, as sorted disjoint ranges. */
function allowedUpTo(max: number, less: Range[]): Range[] {
  const cut = [...less].sort((x, y) => x[0] - y[0]);
  const out: Range[] = [];
  let from = 0;
  for (const [a, b] of cut) {
    if (a > from) out.push([from, Math.min(a - 1, max)]);
    from = Math.max(from, b + 1);
    if (from > max) break;
  }
  if (from <= max) out.push([from, max]);
  return out.filter(([a, b]) => a <= b && a <= max);
}

/**
 * One path segment whose characters are all at most `maxCodePoint` (null: any): not empty, not `.` or `..`,
 * no `/`, no forbidden character.
 */
function segment(maxCodePoint: number | null): string {
  const forbidden: Range[] = [...PATH_FORBIDDEN_RANGES, SLASH];
  // The widest tier is a negated class: cheap for generators to draw from, and it needs no escape beyond the BMP.
  const any = maxCodePoint === null ? `[^${cls(forbidden)}]` : `[${cls(allowedUpTo(maxCodePoint, forbidden))}]`;
  const notDot = maxCodePoint === null ? `[^${cls([...forbidden, DOT])}]` : `[${cls(allowedUpTo(maxCodePoint, [...forbidden, DOT]))}]`;
  return `(?:${notDot}${any}*|\\.${notDot}${any}*|\\.\\.${any}+)`;
}

/**
 * UTF-8 width tiers: ASCII takes 1 byte a character, anything else at most 4. JSON Schema counts characters, not
 * bytes, so the byte limit is said as "at most 1023 ASCII characters, or at most 255 of any": a path that fits
 * a tier is always within MAX_PATH_BYTES. (Finer 2- and 3-byte tiers would say a little more, but their large
 * character classes make the schema far slower for schema-driven generators, a fuzzer's, to draw from.)
 */
const TIERS: [number | null, number][] = [
  [0x7f, 1],
  [null, 4],
];

/** Characters of the path after its leading '/', at most (for the narrowest width). */
const pathChars = (bytesPerChar: number) => Math.floor((MAX_PATH_BYTES - 1) / bytesPerChar);

/** A file path as the URL tail after `/files/{volume}/` (no leading '/'): what checkPath('/' + it) accepts. */
export function filePathSchema(description: string) {
  return {
    type: 'string',
    description,
    anyOf: TIERS.map(([max, width]) => {
      const seg = segment(max);
      return { pattern: `^${seg}(?:/${seg})*$`, maxLength: pathChars(width) };
    }),
  } as const;
}

/** A list prefix: empty, '/', or '/' + a path, with an optional trailing '/': what checkPrefix accepts. */
export function prefixSchema(description: string) {
  return {
    type: 'string',
    description,
    anyOf: TIERS.map(([max, width]) => {
      const seg = segment(max);
      return { pattern: `^(?:/?|/${seg}(?:/${seg})*/?)$`, maxLength: 1 + pathChars(width) };
    }),
  } as const;
}

const UNITS: [string, number][] = [
  ['s', 1_000],
  ['m', 60_000],
  ['h', 3_600_000],
  ['d', 86_400_000],
];

/** Digits a count of `unitMs` may have so that any such count stays within MAX_DURATION_MS. */
const digitsFor = (unitMs: number) => String(Math.floor(MAX_DURATION_MS / unitMs)).length - 1;

/**
 * A policy rung: `never`, or a whole positive number of seconds, minutes, hours or days (`15m`, `24h`, `30d`);
 * at least 1s and well within the 10-year maximum by construction.
 */
export const POLICY_DURATION = `^(?:never|${UNITS.map(([u, ms]) => `[1-9][0-9]{0,${digitsFor(ms) - 1}}${u}`).join('|')})$`;

/** A look-back window (`7d`, `1h`, `0s`): a whole number of seconds, minutes, hours or days. */
export const WINDOW_DURATION = `^(?:${UNITS.map(([u, ms]) => `[0-9]{1,${digitsFor(ms)}}${u}`).join('|')})$`;

/**
 * The instant of an RFC 3339 date-time as the schema's `format: date-time` admits it (ajv-formats, full mode):
 * a space or lowercase `t`/`z` is allowed, and so is a leap second (`23:59:60`, read as `23:59:59.999`).
 * Returns NaN for anything else.
 */
export function parseDateTime(text: string): number {
  const m = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.exec(text);
  if (!m) return NaN;
  const [, date, hm, sec, frac, zone] = m;
  const leap = sec === '60';
  return Date.parse(`${date}T${hm}:${leap ? '59' : sec}${leap ? '.999' : (frac ?? '')}${zone!.toUpperCase()}`);
}
