/** Shared-queue activities that need no storage: picking a live host and locating a template's bytes. */
import { ApplicationFailure } from '@temporalio/activity';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import type { HostInfo } from '../contract/types';
import type { SharedActivities, TemplateSource } from './types';
import { checkWorkspaceId, InputError, workflowIdFor } from '../contract/ids';
import { describeQuery } from '../contract/definitions';

export function createHostPickerActivities(deps: { client: Client; hostInfo: () => HostInfo }): Pick<SharedActivities, 'pickHost' | 'resolveTemplate'> {
  return {
    async pickHost(): Promise<HostInfo> {
      return deps.hostInfo();
    },

    async resolveTemplate(input: { templateId: string; forWorkspace: string }): Promise<TemplateSource> {
      try {
        checkWorkspaceId(input?.templateId, 'template');
        checkWorkspaceId(input?.forWorkspace);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as InputError).message, 'InvalidInput');
      }
      const handle = deps.client.workflow.getHandle(workflowIdFor(input.templateId));
      let d;
      try {
        d = await handle.query(describeQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) {
          throw ApplicationFailure.nonRetryable(`template workspace '${input.templateId}' does not exist`, 'TemplateUnavailable');
        }
        throw err;
      }
      if (d.busy) throw ApplicationFailure.retryable(`template '${input.templateId}' is moving to ${d.busy.to}; will retry`, 'TemplateBusy');
      switch (d.state) {
        case 'active':
        case 'suspended':
          if (!d.host || !d.endpoint || !d.filePath) throw ApplicationFailure.retryable(`template '${input.templateId}' has no host yet`, 'TemplateBusy');
          return {
            kind: 'local',
            templateId: input.templateId,
            host: { host: d.host, endpoint: d.endpoint, taskQueue: hostQueueOf(deps.hostInfo(), d.host) },
            filePath: d.filePath,
            open: d.state === 'active',
          };
        case 'frozen':
          if (!d.cold) throw ApplicationFailure.nonRetryable(`template '${input.templateId}' is frozen without a cold copy`, 'TemplateUnavailable');
          return { kind: 'stored', templateId: input.templateId, copy: d.cold };
        case 'archived':
          if (!d.archive) throw ApplicationFailure.nonRetryable(`template '${input.templateId}' is archived without an archive copy`, 'TemplateUnavailable');
          return { kind: 'stored', templateId: input.templateId, copy: d.archive };
        default:
          throw ApplicationFailure.nonRetryable(`template '${input.templateId}' is ${d.state}; it cannot be cloned`, 'TemplateUnavailable');
      }
    },
  };
}

/** The host queue of another host, derived from this host's naming (`<shared queue>@<host>`). */
function hostQueueOf(self: HostInfo, host: string): string {
  const at = self.taskQueue.lastIndexOf('@');
  return `${self.taskQueue.slice(0, at)}@${host}`;
}
