/**
 * The idle ladder's stop as a local activity (LocalHostActivities in ./types.ts): registered on the workflow worker
 * of a host, it runs inside the workflow task when that worker's host is the one holding the file, and saves the
 * task on the host's queue and the workflow task its answer would need. Any other worker answers `here: false`.
 */
import type { Fence } from '../host/fence';
import { invalidInput } from './activity-context';
import { checkId, checkObject, checkPlacement } from './input-checks';
import type { HostActivities, LocalHostActivities } from './types';

export function createLocalStopActivities(o: { hostId: string; fence: Fence; stopIfIdle: HostActivities['stopIfIdle'] }): LocalHostActivities {
  return {
    async stopIfIdleHere(input) {
      const inp = checkObject(input, 'input');
      const id = checkId(inp.workspaceId);
      const placement = checkPlacement(inp.placement);
      if (placement === undefined) throw invalidInput('placement is required');
      if (typeof inp.host !== 'string' || !inp.host) throw invalidInput('host must be a host id');
      if (typeof inp.idleForMs !== 'number') throw invalidInput('idleForMs must be a number of milliseconds');
      if (inp.host !== o.hostId) return { here: false, why: `this worker is host '${o.hostId}', not '${inp.host}'` };
      // The same rule as a data request's: a valid lease, the instance open here under this placement, confirmed since
      // the lease last lapsed (a paused host that resumes runs nothing on an instance it may have lost).
      if (!o.fence.holds(id, placement)) return { here: false, why: `host '${o.hostId}' does not serve '${id}' under placement ${placement} now` };
      return { here: true, ...(await o.stopIfIdle({ workspaceId: id, idleForMs: inp.idleForMs })) };
    },
  };
}
