/**
 * The template role (pure; shared by the workflow, the activities and every client). A workspace is *published*
 * as a template from the frozen state: its verified cold copy is the template's one version (its sha256), every
 * clone is made from those very bytes, and while it is published nothing moves it: it is read-only (it is never
 * opened), off the idle ladder, and can be neither archived nor deleted. Unpublishing makes it an ordinary frozen
 * workspace again. Who may clone a workspace is decided here too.
 */
import { TENANT_PATTERN } from './ids';
import type { State } from '../lifecycle';

/** Tenants a template is shared with: a list (its own tenant always may), or '*' for all (admin only). */
export type ShareWith = '*' | string[];

export interface TemplateRole {
  /** The sha256 of the cold copy published: every clone is a copy of these bytes. */
  version: string;
  shareWith: ShareWith;
  /** ISO time it was published (or its sharing last changed). */
  publishedAt: string;
  by: string;
}

/** Largest list of tenants a template is shared with. */
export const MAX_SHARE_WITH = 1000;

export class TemplateRoleError extends Error {
  override name = 'TemplateRoleError';
}

/** A valid `shareWith`: '*' or a list of distinct tenant names (at most MAX_SHARE_WITH). */
export function checkShareWith(raw: unknown): ShareWith {
  if (raw === '*') return '*';
  if (!Array.isArray(raw)) throw new TemplateRoleError("shareWith must be '*' (every tenant) or a list of tenant names");
  if (raw.length > MAX_SHARE_WITH) throw new TemplateRoleError(`shareWith lists at most ${MAX_SHARE_WITH} tenants`);
  for (const t of raw) {
    if (typeof t !== 'string' || !TENANT_PATTERN.test(t)) throw new TemplateRoleError(`shareWith: tenant '${String(t)}' is invalid`);
  }
  if (new Set(raw).size !== raw.length) throw new TemplateRoleError('shareWith names a tenant twice');
  return [...(raw as string[])];
}

/** Why a published template refuses a move (every move: it stays frozen until unpublished). */
export function publishedRefusal(id: string, to: State): string {
  return `workspace ${id} is a published template: it stays frozen and read-only, so it cannot move to ${to}; clone it, or unpublish it first`;
}

/** Whether a workspace can be published now: frozen, with its verified cold copy. */
export function publishable(state: State, cold: { sha256: string } | null): { ok: true; version: string } | { ok: false; message: string } {
  if (state !== 'frozen') return { ok: false, message: `only a frozen workspace can be published (it is ${state}): suspend and freeze it first` };
  if (!cold) return { ok: false, message: 'the workspace has no cold copy to publish' };
  return { ok: true, version: cold.sha256 };
}

/**
 * The one rule of who may start a workspace as a copy of `source` (clone): its own tenant, always; another tenant
 * only while `source` is a published template shared with it (or with all). A tenant that is not known (null)
 * counts as another.
 */
export function mayClone(source: { tenant: string; published: TemplateRole | null }, forTenant: string | null): boolean {
  if (forTenant !== null && source.tenant === forTenant) return true;
  const p = source.published;
  return !!p && forTenant !== null && (p.shareWith === '*' || p.shareWith.includes(forTenant));
}
