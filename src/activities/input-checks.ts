/**
 * Validation of activity inputs: every activity checks what it is given before touching anything, and refuses
 * bad input with a non-retryable `InvalidInput` (a stored copy's URL naming an unreachable store: StoreUnavailable).
 */
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import { InputError, checkWorkspaceId, keyTenant } from '../contract/ids';
import type { Placement, StoredCopy } from '../contract/types';
import { BlobStore, SHA256_PATTERN, keyForCopy, keyForWorkspace } from '../storage/blob-store';
import { StoreUnavailableError, storeForCopyUrl } from '../storage/open-store';
import { invalidInput } from './activity-context';
import { Volume, volumesKeptOnCopy } from '../vfs/volumes';
import type { RecoverySource, TemplateSource } from './types';

export function checkId(id: unknown, what = 'workspaceId'): string {
  try {
    return checkWorkspaceId(id, what);
  } catch (err) {
    throw invalidInput((err as InputError).message);
  }
}

export function checkObject(x: unknown, what: string): Record<string, unknown> {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) throw invalidInput(`${what} must be an object`);
  return x as Record<string, unknown>;
}

/** Validates a StoredCopy and that it is `ownerId`'s object; returns the store that holds it and its key. */
export function checkStoredCopy(raw: unknown, ownerId: string, what = 'copy'): { copy: StoredCopy; store: BlobStore; key: string } {
  const c = checkObject(raw, what);
  if (typeof c.url !== 'string' || c.url.length === 0 || c.url.length > 4096) throw invalidInput(`${what}.url must be a non-empty string`);
  if (typeof c.sha256 !== 'string' || !SHA256_PATTERN.test(c.sha256)) throw invalidInput(`${what}.sha256 must be 64 lowercase hex digits`);
  if (typeof c.bytes !== 'number' || !Number.isSafeInteger(c.bytes) || c.bytes < 0) throw invalidInput(`${what}.bytes must be a non-negative integer`);
  if (typeof c.at !== 'string' || Number.isNaN(Date.parse(c.at))) throw invalidInput(`${what}.at must be an ISO time`);
  let opened: { store: BlobStore; key: string };
  try {
    opened = storeForCopyUrl(c.url);
  } catch (err) {
    if (err instanceof StoreUnavailableError) throw ApplicationFailure.nonRetryable(`${what}.url: ${err.message}`, 'StoreUnavailable');
    throw invalidInput(`${what}.url: ${(err as Error).message}`);
  }
  if (opened.key !== keyForCopy(ownerId, c.sha256) && opened.key !== keyForWorkspace(ownerId)) {
    throw invalidInput(`${what}.url ${c.url} is not a copy of workspace '${ownerId}' with sha256 ${c.sha256.slice(0, 16)}…`);
  }
  return { copy: { url: c.url, sha256: c.sha256, bytes: c.bytes, at: c.at }, ...opened };
}

export function checkTemplate(raw: unknown, forWorkspace: string): TemplateSource {
  const t = checkObject(raw, 'template');
  const templateId = checkId(t.templateId, 'template.templateId');
  if (templateId === forWorkspace) throw invalidInput(`workspace '${forWorkspace}' cannot be its own template`);
  // Sources resolved by older builds carry no `keep`: decide from the two keys' tenant parts (the same rule).
  const keep = t.keep === undefined ? volumesKeptOnCopy(keyTenant(templateId), keyTenant(forWorkspace)) : checkKept(t.keep);
  return { ...checkTemplateSource(t, templateId), keep };
}

/** The volumes a copy keeps: `workspace`, and `memory` at most (tmp never survives a copy). */
function checkKept(raw: unknown): Volume[] {
  if (!Array.isArray(raw) || raw.length > 2 || !raw.includes('workspace') || raw.some((v) => v !== 'workspace' && v !== 'memory') || new Set(raw).size !== raw.length) {
    throw invalidInput("template.keep must be ['workspace'] or ['workspace', 'memory']");
  }
  return raw as Volume[];
}

function checkTemplateSource(t: Record<string, unknown>, templateId: string): TemplateSource {
  if (t.kind === 'local') {
    const h = checkObject(t.host, 'template.host');
    if (typeof h.host !== 'string' || typeof h.taskQueue !== 'string' || typeof h.endpoint !== 'string') {
      throw invalidInput('template.host must be { host, taskQueue, endpoint }');
    }
    if (typeof t.filePath !== 'string' || !path.isAbsolute(t.filePath)) throw invalidInput('template.filePath must be an absolute path');
    if (typeof t.open !== 'boolean') throw invalidInput('template.open must be a boolean');
    return { kind: 'local', templateId, host: { host: h.host, taskQueue: h.taskQueue, endpoint: h.endpoint }, filePath: t.filePath, open: t.open };
  }
  if (t.kind === 'stored') {
    const { copy } = checkStoredCopy(t.copy, templateId, 'template.copy');
    return { kind: 'stored', templateId, copy };
  }
  if (t.kind === 'replica') {
    const replicaUrl = checkReplicaUrl(t.replicaUrl, templateId, 'template.replicaUrl');
    if (t.at !== undefined && (typeof t.at !== 'string' || Number.isNaN(Date.parse(t.at)))) throw invalidInput('template.at must be an ISO time');
    return { kind: 'replica', templateId, replicaUrl, ...(t.at !== undefined ? { at: t.at as string } : {}) };
  }
  throw invalidInput(`template.kind must be 'local', 'stored' or 'replica'`);
}

/** A replica generation URL of `ownerId`: file:// or s3://, ending in `/<ownerId>/<generation>`. */
export function checkReplicaUrl(raw: unknown, ownerId: string, what = 'replicaUrl'): string {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 4096) throw invalidInput(`${what} must be a non-empty string`);
  if (!/^(file|s3):\/\//.test(raw)) throw invalidInput(`${what} '${raw}' must be a file:// or s3:// URL`);
  const parts = raw.split('/');
  const gen = parts[parts.length - 1] ?? '';
  if (parts[parts.length - 2] !== ownerId || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(gen) || raw.includes('/../') || raw.includes('/./')) {
    throw invalidInput(`${what} '${raw}' is not a replica generation of workspace '${ownerId}'`);
  }
  return raw;
}

export function checkSources(raw: unknown, ownerId: string, mayBeEmpty = false): RecoverySource[] {
  if (!Array.isArray(raw) || (raw.length === 0 && !mayBeEmpty) || raw.length > 10) {
    throw invalidInput(mayBeEmpty ? 'sources must be an array (at most 10)' : 'sources must be a non-empty array (at most 10)');
  }
  return raw.map((x, i) => {
    const s = checkObject(x, `sources[${i}]`);
    if (s.kind === 'replica') return { kind: 'replica', replicaUrl: checkReplicaUrl(s.replicaUrl, ownerId, `sources[${i}].replicaUrl`) };
    if (s.kind === 'stored') return { kind: 'stored', copy: checkStoredCopy(s.copy, ownerId, `sources[${i}].copy`).copy };
    throw invalidInput(`sources[${i}].kind must be 'replica' or 'stored'`);
  });
}

export function checkPlacement(raw: unknown): number | undefined {
  if (raw === undefined || raw === null) return undefined;
  if (typeof raw !== 'number' || !Number.isSafeInteger(raw) || raw < 1) throw invalidInput('placement must be a positive integer');
  return raw;
}

export function checkKeep(raw: unknown): Placement | null {
  if (raw === undefined || raw === null) return null;
  const k = checkObject(raw, 'keep');
  if (typeof k.host !== 'string' || k.host.length === 0 || k.host.length > 63) throw invalidInput('keep.host must be a host id');
  const placement = checkPlacement(k.placement);
  if (placement === undefined) throw invalidInput('keep.placement must be a positive integer');
  return { host: k.host, placement };
}
