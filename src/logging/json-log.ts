/**
 * Structured logs of the service processes: one JSON object per line on stderr,
 * `{"time": ISO, "level": "INFO", "message": "...", ...fields}` (the level threshold: logLevelFromEnv in config.ts).
 */

/** Values JSON cannot hold as they are: bigints become strings, errors their name and message. */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message, ...(value.stack ? { stack: value.stack } : {}) };
  return value;
}

/** One log line (with its newline). Fields never override time, level or message. */
export function jsonLogLine(level: string, message: string, fields?: Record<string, unknown>, time: Date = new Date()): string {
  const o: Record<string, unknown> = { time: time.toISOString(), level, message };
  for (const [k, v] of Object.entries(fields ?? {})) if (!(k in o)) o[k] = v;
  try {
    return JSON.stringify(o, replacer) + '\n';
  } catch {
    // A field JSON cannot hold (a cycle): keep the line, drop the fields.
    return JSON.stringify({ time: o.time, level, message, fields: String(fields) }) + '\n';
  }
}

export function writeLog(level: string, message: string, fields?: Record<string, unknown>, time?: Date): void {
  process.stderr.write(jsonLogLine(level, message, fields, time));
}
