/**
 * The three volumes of a workspace file and what each promises:
 * - workspace: survives freeze/resume, leaves on export (the public part);
 * - memory:    survives freeze/resume, stripped on export and on a copy into another tenant;
 * - tmp:       cleared on resume and in every clone or restore, never exported (it is inside the file, so cold
 *              copies and replicas hold it until the next resume clears it).
 */
export const VOLUMES = ['workspace', 'memory', 'tmp'] as const;
export type Volume = (typeof VOLUMES)[number];

/**
 * The one rule of what a new workspace made from another's file (a clone, a restore) keeps: `workspace` always,
 * `memory` only when both belong to the same known tenant (memory never crosses a tenant boundary; an unknown
 * tenant counts as another), `tmp` never.
 */
export function volumesKeptOnCopy(sourceTenant: string | null | undefined, targetTenant: string | null | undefined): Volume[] {
  return sourceTenant && targetTenant && sourceTenant === targetTenant ? ['workspace', 'memory'] : ['workspace'];
}

/** Longest path accepted, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 1024;
/**
 * Code points a path must not contain, as inclusive ranges: C0 controls, DEL and C1 controls, and the backslash.
 * (The HTTP API's schema derives its path patterns from this list; see src/api/patterns.ts.)
 */
export const PATH_FORBIDDEN_RANGES: readonly (readonly [number, number])[] = [
  [0x00, 0x1f],
  [0x7f, 0x9f],
  [0x5c, 0x5c],
];
const u = (cp: number) => `\\u${cp.toString(16).padStart(4, '0')}`;
const FORBIDDEN = new RegExp(`[${PATH_FORBIDDEN_RANGES.map(([a, b]) => (a === b ? u(a) : `${u(a)}-${u(b)}`)).join('')}]`, 'u');
/** Largest single file accepted, in bytes (SQLite's own blob limit is about 1 GB). */
export const MAX_FILE_BYTES = 256 * 1024 * 1024;

export class VfsInputError extends Error {
  override name = 'VfsInputError';
  constructor(message: string, readonly code: 'bad_volume' | 'bad_path' | 'too_large') {
    super(message);
  }
}

export function checkVolume(volume: unknown): Volume {
  if (typeof volume !== 'string' || !(VOLUMES as readonly string[]).includes(volume)) {
    throw new VfsInputError(`unknown volume '${String(volume)}'; volumes are ${VOLUMES.join(', ')}`, 'bad_volume');
  }
  return volume as Volume;
}

/**
 * A path is absolute (`/notes/today.md`), has no empty, `.` or `..` segments, no trailing slash,
 * no control characters (C0, DEL, C1) or backslashes, and is at most MAX_PATH_BYTES long.
 */
export function checkPath(path: unknown): string {
  if (typeof path !== 'string') throw new VfsInputError('path must be a string', 'bad_path');
  if (!path.startsWith('/')) throw new VfsInputError(`path '${path}' must be absolute (start with '/')`, 'bad_path');
  if (path === '/') throw new VfsInputError("path '/' names no file", 'bad_path');
  if (Buffer.byteLength(path, 'utf8') > MAX_PATH_BYTES) throw new VfsInputError(`path is longer than ${MAX_PATH_BYTES} bytes`, 'bad_path');
  if (FORBIDDEN.test(path)) throw new VfsInputError('path must not contain control characters or backslashes', 'bad_path');
  if (path.endsWith('/')) throw new VfsInputError(`path '${path}' must not end with '/'`, 'bad_path');
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') throw new VfsInputError(`path '${path}' has an empty segment`, 'bad_path');
    if (segment === '.' || segment === '..') throw new VfsInputError(`path '${path}' must not contain '.' or '..' segments`, 'bad_path');
  }
  return path;
}

/** A list prefix is either '/' or a valid path; every file at or below it matches. */
export function checkPrefix(prefix: unknown): string {
  if (prefix === undefined || prefix === '' || prefix === '/') return '/';
  const p = typeof prefix === 'string' && prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  return checkPath(p);
}

/** Parses the CLI form `volume:/path`. */
export function parseVolumePath(spec: string): { volume: Volume; path: string } {
  const i = spec.indexOf(':');
  if (i <= 0) throw new VfsInputError(`'${spec}' must look like volume:/path, e.g. workspace:/notes.md`, 'bad_path');
  return { volume: checkVolume(spec.slice(0, i)), path: checkPath(spec.slice(i + 1)) };
}
