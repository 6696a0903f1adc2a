/**
 * The environment a child process gets: only what it needs, never the service's own secrets (API tokens, other
 * tools' credentials). The base is what any program needs to run; a caller adds the names (or name prefixes) its
 * child uses.
 */
const BASE = ['PATH', 'HOME', 'USER', 'LOGNAME', 'SHELL', 'LANG', 'LANGUAGE', 'LC_ALL', 'LC_CTYPE', 'TZ', 'TMPDIR', 'TMP', 'TEMP'];

export function childEnv(env: NodeJS.ProcessEnv, extra: { names?: readonly string[]; prefixes?: readonly string[] } = {}): NodeJS.ProcessEnv {
  const names = new Set([...BASE, ...(extra.names ?? [])]);
  const prefixes = extra.prefixes ?? [];
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) continue;
    if (names.has(k) || prefixes.some((p) => k.startsWith(p))) out[k] = v;
  }
  return out;
}
