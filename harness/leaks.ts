/**
 * What must not reach a tenant: finds host internals in text a tenant sees (an error body, a view, a ledger).
 * Used by the redaction unit tests and the tenant-view integration test.
 */

export interface KnownInternals {
  /** Host ids that must not appear. */
  hosts?: readonly string[];
  /** Directories (data dir, store dirs) no part of which may appear. */
  dirs?: readonly string[];
  /** Numbers (e.g. free bytes) that must not appear. */
  figures?: readonly number[];
}

/** The internals found in `text` (empty when it is clean). */
export function internalsIn(text: string, known: KnownInternals = {}): string[] {
  const found: string[] = [];
  const check = (what: string, re: RegExp) => {
    const m = re.exec(text);
    if (m) found.push(`${what}: '${m[0]}'`);
  };
  check('URL', /\b[a-z][a-z0-9+.-]*:\/\/\S*/i);
  check('absolute path', /(?:^|[\s'"(=:,[])\/(?:[\w.@+-]+\/)+[\w.@+-]*/);
  check('Windows path', /\b[A-Za-z]:\\\S*/);
  check('IPv4 address', /\b\d{1,3}(?:\.\d{1,3}){3}\b/);
  check('host:port', /(?:^|[^\w.:-])[A-Za-z][\w.-]*:\d{2,5}\b(?!:)/);
  check('byte figure', /\b\d[\d,._]*\s*(?:bytes?|[KMGT]i?B)\b/i);
  check('free space', /\b\d+\s+(?:are\s+|bytes\s+)?(?:free|available)\b/i);
  check('stack trace', /\n\s+at |\bat [\w.<>]+ \(/);
  for (const h of known.hosts ?? []) if (new RegExp(`(^|[^\\w-])${h.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![\\w-])`).test(text)) found.push(`host id '${h}'`);
  for (const d of known.dirs ?? []) if (text.includes(d)) found.push(`directory '${d}'`);
  for (const n of known.figures ?? []) if (new RegExp(`(^|\\D)${n}(\\D|$)`).test(text)) found.push(`figure ${n}`);
  return found;
}
