/**
 * HostActivities (see ./types.ts): everything that touches a workspace's local file on this host, composed from
 * one file per concern: provision.ts, instance.ts, freeze.ts, restore.ts (the shared context: local-files.ts).
 *
 * Every method validates its input (non-retryable `InvalidInput`, see input-checks.ts), is idempotent, and
 * leaves no half file under a real name after a crash at any point. Non-retryable failure types: InvalidInput,
 * NotStopped, SourceMissing, IntegrityError, ChecksumMismatch, TemplateUnavailable, StoreUnavailable,
 * VerifyFailed, NoUsableSource, RestorePointUnavailable.
 */
import { freezeActivities } from './freeze';
import { instanceActivities } from './instance';
import { HostActivityContext, hostFiles } from './local-files';
import { provisionActivities } from './provision';
import { restoreActivities } from './restore';
import type { HostActivities } from './types';

export type { HostActivityContext } from './local-files';
/** Heartbeat details of long copies (defined in ./types.ts, read by the CLI's progress bar). */
export type { CopyHeartbeat } from './types';

export function createHostActivities(ctx: HostActivityContext): HostActivities {
  const f = hostFiles(ctx);
  return {
    ...provisionActivities(f),
    ...instanceActivities(f),
    ...freezeActivities(f),
    ...restoreActivities(f),
  };
}
