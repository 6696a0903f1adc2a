/** The liveness worker's one activity (see LivenessActivities): it runs on a queue and slots of its own. */
import type { HostInfo } from '../contract/types';
import type { LivenessActivities } from './types';

export function createLivenessActivities(hostInfo: () => HostInfo): LivenessActivities {
  return {
    async ping() {
      return { host: hostInfo().host, at: Date.now() };
    },
  };
}
