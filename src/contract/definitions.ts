/**
 * Signals, updates and queries of the `workspace` workflow: the names other services rely on
 * (see docs/contract.md). Importable from workflow code and from clients.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { State } from '../lifecycle';
import type { ReplicationReport } from './data-plane';
import type { Actor, PrefetchResult, PublishRequest, TemplateRole, TransitionRequest, TransitionResultPayload, WakeRequest, WakeResult, WorkspaceDescription } from './types';

export const wakeSignal = defineSignal<[Actor?]>('wake');
export const suspendSignal = defineSignal<[Actor?]>('suspend');
export const freezeSignal = defineSignal<[Actor?]>('freeze');
export const archiveSignal = defineSignal<[Actor?]>('archive');
export const deleteSignal = defineSignal<[Actor?]>('delete');
/** Make the file local on a host without starting the instance (frozen/archived workspaces). */
export const prefetchSignal = defineSignal<[Actor?]>('prefetch');
/** From the host holding the file: its replica's health changed (a ledger warning when it falls behind). */
export const replicationHealthSignal = defineSignal<[ReplicationReport]>('replicationHealth');

export const transitionUpdate = defineUpdate<TransitionResultPayload, [TransitionRequest]>('transition');
export const wakeUpdate = defineUpdate<WakeResult, [WakeRequest]>('wake');
/** The prefetch signal, answered once the file is local (or why not): never starts the workspace, never counts as use. */
export const prefetchUpdate = defineUpdate<PrefetchResult, [Actor]>('prefetch');

/** Publish a frozen workspace as a template (or change whom it is shared with); answers its template role. */
export const publishUpdate = defineUpdate<TemplateRole, [PublishRequest]>('publish');
/** Make a published template an ordinary frozen workspace again. */
export const unpublishUpdate = defineUpdate<{ state: State }, [Actor]>('unpublish');

export const describeQuery = defineQuery<WorkspaceDescription>('describe');

export const SIGNAL_TARGETS = {
  wake: 'active',
  suspend: 'suspended',
  freeze: 'frozen',
  archive: 'archived',
  delete: 'deleted',
} as const;
