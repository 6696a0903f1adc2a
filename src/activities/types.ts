/**
 * The activity interfaces the workflow calls. Two groups:
 * - SharedActivities run on the shared task queue (any host): they never touch a local workspace file.
 * - HostActivities run on one host's own queue (`<taskQueue>@<host>`): they touch files on that host.
 * Every input carries the workspace id; none carries workspace bytes or secrets.
 */
import type { HostInfo, StoredCopy } from '../contract/types';
import type { State } from '../lifecycle';

/** Where a template's bytes can be read from, as resolved from the template workflow. */
export type TemplateSource =
  | { kind: 'local'; templateId: string; host: HostInfo; filePath: string; open: boolean }
  | { kind: 'stored'; templateId: string; copy: StoredCopy };

export interface SharedActivities {
  /** Returns the host of whichever worker picked this task up: a live host for a new or restored file. */
  pickHost(): Promise<HostInfo>;
  /** Finds where a template workspace's file is; refuses missing, deleted or mid-move templates. */
  resolveTemplate(input: { templateId: string; forWorkspace: string }): Promise<TemplateSource>;
  /** Moves the cold copy to the archive location (copy, verify, then delete the cold object). */
  archiveColdCopy(input: { workspaceId: string; cold: StoredCopy }): Promise<StoredCopy>;
  /** Deletes stored copies (cold and archive); missing objects are fine. */
  deleteStoredCopies(input: { workspaceId: string; copies: StoredCopy[] }): Promise<{ deleted: number }>;
}

export interface HostActivities {
  /** Creates the workspace's local file: empty, or a copy of a template (tmp cleared). Idempotent. */
  provision(input: { workspaceId: string; template?: TemplateSource }): Promise<{ host: HostInfo; filePath: string; bytes: number }>;
  /** Opens the VFS on this host; `clearTmp` on every resume. Idempotent. */
  startInstance(input: { workspaceId: string; clearTmp: boolean }): Promise<{ host: HostInfo; filePath: string; bytes: number }>;
  /** Flushes and closes the VFS; the file stays on local disk. Idempotent. */
  stopInstance(input: { workspaceId: string }): Promise<{ host: HostInfo; filePath: string; bytes: number }>;
  /**
   * The last read/write the host saw (epoch ms, host clock) and how long ago that was, or nulls if it saw none
   * since it started. The workflow uses `idleMs` against its own clock.
   */
  lastAccess(input: { workspaceId: string }): Promise<{ lastAccessAt: number | null; idleMs: number | null; open: boolean }>;
  /**
   * Copies the stopped local file to cold storage or the archive: checkpoint, integrity check, copy under a
   * temporary name with sha256, rename, verify; only then releases the local copy. Idempotent.
   */
  storeLocal(input: { workspaceId: string; target: 'cold' | 'archive' }): Promise<StoredCopy>;
  /**
   * Makes a stored copy local on this host: copy under a temporary name, verify sha256, rename.
   * Skips the copy if a verified copy of the same object is already here (prefetched). Idempotent.
   */
  restoreLocal(input: { workspaceId: string; copy: StoredCopy }): Promise<{ host: HostInfo; filePath: string; bytes: number }>;
  /** Removes this host's local copy of the workspace (file, WAL, markers). Idempotent. */
  removeLocal(input: { workspaceId: string }): Promise<{ removed: boolean }>;
}

export type { State };
