/**
 * Signals, updates and queries of the `workspace` workflow: the names other services rely on
 * (see docs/contract.md). Importable from workflow code and from clients.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { Actor, TransitionRequest, TransitionResultPayload, WakeRequest, WakeResult, WorkspaceDescription } from './types';

export const wakeSignal = defineSignal<[Actor?]>('wake');
export const suspendSignal = defineSignal<[Actor?]>('suspend');
export const freezeSignal = defineSignal<[Actor?]>('freeze');
export const archiveSignal = defineSignal<[Actor?]>('archive');
export const deleteSignal = defineSignal<[Actor?]>('delete');
/** Make the file local on a host without starting the instance (frozen/archived workspaces). */
export const prefetchSignal = defineSignal<[Actor?]>('prefetch');

export const transitionUpdate = defineUpdate<TransitionResultPayload, [TransitionRequest]>('transition');
export const wakeUpdate = defineUpdate<WakeResult, [WakeRequest]>('wake');

export const describeQuery = defineQuery<WorkspaceDescription>('describe');

export const SIGNAL_TARGETS = {
  wake: 'active',
  suspend: 'suspended',
  freeze: 'frozen',
  archive: 'archived',
  delete: 'deleted',
} as const;
