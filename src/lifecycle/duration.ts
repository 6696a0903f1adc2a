/**
 * Durations in policies are strings like `15m`, `24h`, `3s`, `1h30m`, `500ms`, `7d`,
 * or a plain number of seconds. They parse to whole milliseconds.
 */
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/y;
/** Upper bound on any policy duration: 10 years. */
export const MAX_DURATION_MS = 10 * 365 * 86_400_000;

export class DurationError extends Error {
  override name = 'DurationError';
}

export function parseDuration(input: string | number, what = 'duration'): number {
  if (typeof input === 'number') {
    if (!Number.isFinite(input) || input < 0) throw new DurationError(`${what} must be a non-negative number of seconds, got ${input}`);
    return check(Math.round(input * 1000), what, String(input));
  }
  if (typeof input !== 'string') throw new DurationError(`${what} must be a string like '15m', '24h' or '3s'`);
  const text = input.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return check(Math.round(Number(text) * 1000), what, input);
  if (text === '') throw new DurationError(`${what} is empty; use a duration like '15m', '24h' or '3s'`);
  let total = 0;
  PART.lastIndex = 0;
  let pos = 0;
  while (pos < text.length) {
    PART.lastIndex = pos;
    const m = PART.exec(text);
    if (!m) throw new DurationError(`${what} '${input}' is not a duration; use forms like '15m', '24h', '1h30m', '3s'`);
    total += Number(m[1]) * UNIT_MS[m[2]];
    pos = PART.lastIndex;
  }
  return check(Math.round(total), what, input);
}

function check(ms: number, what: string, input: string): number {
  if (ms > MAX_DURATION_MS) throw new DurationError(`${what} '${input}' is longer than the 10-year maximum`);
  return ms;
}

/** Formats milliseconds as a compact duration string (`1h30m`, `15m`, `3s`, `250ms`). */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      parts.push(`${n}${unit}`);
      rest -= n * size;
    }
  }
  return parts.join('');
}
