/**
 * Shared-queue placement activities (no storage): where a workspace's file goes (a live host: pickHost,
 * hostAlive) and where a new one's bytes come from (resolveTemplate, resolveRestorePoint).
 */
import { ApplicationFailure } from '@temporalio/activity';
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import type { HostInfo, WorkspaceDescription } from '../contract/types';
import { generationAt, sourcesNewestFirst } from '../contract/recovery';
import type { SharedActivities, TemplateSource } from './types';
import { checkTenant, checkWorkspaceId, InputError, keyTenant, workflowIdFor } from '../contract/ids';
import { volumesKeptOnCopy } from '../vfs/volumes';
import { mayClone } from '../contract/template-role';
import { describeQuery } from '../contract/definitions';

function invalid(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'InvalidInput');
}

export function createHostPickerActivities(deps: {
  client: Client;
  hostInfo: () => HostInfo;
}): Pick<SharedActivities, 'pickHost' | 'resolveTemplate' | 'hostAlive' | 'resolveRestorePoint'> {
  const describeWorkspace = async (id: string, what: string): Promise<WorkspaceDescription> => {
    try {
      return await deps.client.workflow.getHandle(workflowIdFor(id)).query(describeQuery);
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw ApplicationFailure.nonRetryable(`${what} workspace '${id}' does not exist`, 'TemplateUnavailable');
      throw err;
    }
  };

  return {
    async hostAlive(input) {
      if (!input || typeof input !== 'object') throw invalid('input must be { taskQueue, withinSeconds }');
      if (typeof input.taskQueue !== 'string' || !/^[A-Za-z0-9._@-]{1,300}$/.test(input.taskQueue)) throw invalid('taskQueue is invalid');
      if (typeof input.withinSeconds !== 'number' || !(input.withinSeconds > 0)) throw invalid('withinSeconds must be a positive number');
      const res = await deps.client.workflowService.describeTaskQueue({
        namespace: deps.client.options.namespace,
        taskQueue: { name: input.taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
      });
      let last: number | null = null;
      for (const p of res.pollers ?? []) {
        const t = p.lastAccessTime;
        if (!t) continue;
        const ms = Number(t.seconds ?? 0) * 1000 + Math.floor((t.nanos ?? 0) / 1e6);
        if (last === null || ms > last) last = ms;
      }
      // A live host with a free slot polls continuously and would have taken the task; one that is busy polls
      // again whenever a slot frees. A host that has not polled within the window is gone.
      const alive = last !== null && Date.now() - last <= input.withinSeconds * 1000;
      return { alive, lastPollAt: last === null ? null : new Date(last).toISOString() };
    },

    async resolveRestorePoint(input) {
      if (!input || typeof input !== 'object') throw invalid('input must be { sourceId, at?, forWorkspace }');
      try {
        checkWorkspaceId(input.sourceId, 'restore source');
        checkWorkspaceId(input.forWorkspace);
        if (input.forTenant !== undefined) checkTenant(input.forTenant);
      } catch (err) {
        throw invalid((err as InputError).message);
      }
      let at: number | null = null;
      if (input.at !== undefined && input.at !== null) {
        at = typeof input.at === 'string' ? Date.parse(input.at) : NaN;
        if (Number.isNaN(at)) throw invalid(`restore time '${String(input.at)}' is not an ISO time`);
        if (at > Date.now() + 1000) throw invalid(`restore time ${input.at} is in the future`);
      }
      const d = await describeWorkspace(input.sourceId, 'restore source');
      const keep = volumesKeptOnCopy(d.tenant, input.forTenant ?? keyTenant(input.forWorkspace));
      if (d.state === 'deleted') throw ApplicationFailure.nonRetryable(`workspace '${input.sourceId}' is deleted; nothing is left to restore`, 'TemplateUnavailable');
      if (at === null) {
        const newest = sourcesNewestFirst({ replicas: d.replicas ?? [], cold: d.cold, archive: d.archive })[0];
        if (!newest) throw ApplicationFailure.nonRetryable(`workspace '${input.sourceId}' has no replica or stored copy to restore from`, 'TemplateUnavailable');
        return newest.kind === 'replica'
          ? { kind: 'replica', templateId: input.sourceId, replicaUrl: newest.replicaUrl, keep }
          : { kind: 'stored', templateId: input.sourceId, copy: newest.copy, keep };
      }
      if (at < Date.parse(d.createdAt)) throw invalid(`restore time ${input.at} is before workspace '${input.sourceId}' was created (${d.createdAt})`);
      const g = generationAt(d.replicas ?? [], at);
      if (!g) {
        const first = d.replicas?.[0];
        throw ApplicationFailure.nonRetryable(
          `no replica of '${input.sourceId}' reaches back to ${input.at}${first ? `; the earliest remembered point is ${first.from}` : ' (it has never been replicated)'}`,
          'TemplateUnavailable',
        );
      }
      return { kind: 'replica', templateId: input.sourceId, replicaUrl: g.generation.url, ...(g.timestamp ? { at: g.timestamp } : {}), keep };
    },


    async pickHost(): Promise<HostInfo> {
      return deps.hostInfo();
    },

    async resolveTemplate(input: { templateId: string; forWorkspace: string; forTenant?: string }): Promise<TemplateSource> {
      try {
        checkWorkspaceId(input?.templateId, 'template');
        checkWorkspaceId(input?.forWorkspace);
        if (input.forTenant !== undefined) checkTenant(input.forTenant);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as InputError).message, 'InvalidInput');
      }
      const d = await describeWorkspace(input.templateId, 'template');
      const forTenant = input.forTenant ?? keyTenant(input.forWorkspace);
      // Who may clone what is decided in one place (template-role.ts): here, before any byte is read.
      if (!mayClone({ tenant: d.tenant, published: d.published ?? null }, forTenant)) {
        throw ApplicationFailure.nonRetryable(
          `workspace '${input.templateId}' is not a template shared with tenant '${forTenant ?? '(unknown)'}'`,
          'TemplateNotShared',
        );
      }
      const keep = volumesKeptOnCopy(d.tenant, forTenant);
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
            keep,
          };
        case 'frozen':
          if (!d.cold) throw ApplicationFailure.nonRetryable(`template '${input.templateId}' is frozen without a cold copy`, 'TemplateUnavailable');
          return { kind: 'stored', templateId: input.templateId, copy: d.cold, keep };
        case 'archived':
          if (!d.archive) throw ApplicationFailure.nonRetryable(`template '${input.templateId}' is archived without an archive copy`, 'TemplateUnavailable');
          return { kind: 'stored', templateId: input.templateId, copy: d.archive, keep };
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
