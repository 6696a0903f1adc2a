/**
 * The `workspace` workflow: one per workspace, alive for the workspace's whole life. The handlers are
 * registered here, in one place; what they do and the loop that runs the queued commands are in
 * workspace-runner.ts. (The registration order is the order buffered signals and updates are delivered in.)
 */
import { setHandler } from '@temporalio/workflow';
import {
  archiveSignal,
  deleteSignal,
  describeQuery,
  freezeSignal,
  prefetchSignal,
  prefetchUpdate,
  replicationHealthSignal,
  publishUpdate,
  unpublishUpdate,
  suspendSignal,
  transitionUpdate,
  wakeSignal,
  wakeUpdate,
} from '../contract/definitions';
import type { WorkspaceDescription, WorkspaceInput } from '../contract/types';
import { Workspace } from './workspace-runner';

export async function workspace(input: WorkspaceInput): Promise<WorkspaceDescription> {
  const w = new Workspace(input);
  setHandler(wakeSignal, (raw) => w.signal('active', raw));
  setHandler(suspendSignal, (raw) => w.signal('suspended', raw));
  setHandler(freezeSignal, (raw) => w.signal('frozen', raw));
  setHandler(archiveSignal, (raw) => w.signal('archived', raw));
  setHandler(deleteSignal, (raw) => w.signal('deleted', raw));
  setHandler(prefetchSignal, (raw) => w.prefetchSignal(raw));
  setHandler(describeQuery, () => w.describe());
  setHandler(transitionUpdate, (req) => w.transition(req), { validator: (req) => w.validateTransition(req) });
  setHandler(wakeUpdate, (req) => w.wake(req), { validator: (req) => w.validateWake(req) });
  setHandler(prefetchUpdate, (raw) => w.prefetch(raw), { validator: (raw) => w.validatePrefetch(raw) });
  setHandler(publishUpdate, (req) => w.publishTemplate(req), { validator: (req) => w.validatePublish(req) });
  setHandler(unpublishUpdate, (raw) => w.unpublishTemplate(raw), { validator: (raw) => w.validateUnpublish(raw) });
  setHandler(replicationHealthSignal, (raw) => w.replicationReport(raw));
  return w.main();
}
