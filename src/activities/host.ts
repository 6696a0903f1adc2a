/**
 * HostActivities (see ./types.ts): everything that touches a workspace's local file on this host, composed from
 * one file per concern: provision.ts, instance.ts, freeze.ts, restore.ts (the shared context: local-files.ts).
 *
 * Every method validates its input (non-retryable `InvalidInput`, see input-checks.ts), is idempotent, and
 * leaves no half file under a real name after a crash at any point. Non-retryable failure types: InvalidInput,
 * NotStopped, SourceMissing, IntegrityError, ChecksumMismatch, TemplateUnavailable, StoreUnavailable,
 * VerifyFailed, NoUsableSource, RestorePointUnavailable.
 *
 * With a fence, every method first passes Fence.admitTask: a task handed out before this host's lease lapsed (a
 * paused host resuming with tasks its polls held) fails with the retryable `HostFenced` and does nothing.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { Fence, FencedError } from '../host/fence';
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
  const acts: HostActivities = {
    ...provisionActivities(f),
    ...instanceActivities(f),
    ...freezeActivities(f),
    ...restoreActivities(f),
  };
  return ctx.fence ? fenced(acts, ctx.fence) : acts;
}

/** Each activity admitted by the fence before it runs. */
function fenced(acts: HostActivities, fence: Fence): HostActivities {
  const out: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(acts) as [string, (...args: unknown[]) => Promise<unknown>][]) {
    out[name] = async (...args: unknown[]) => {
      try {
        fence.admitTask(name, scheduledAt());
      } catch (err) {
        if (err instanceof FencedError) throw ApplicationFailure.retryable(err.message, 'HostFenced');
        throw err;
      }
      return fn(...args);
    };
  }
  return out as unknown as HostActivities;
}

/** When the cluster scheduled this attempt (null outside an activity, e.g. a direct call in a test). */
function scheduledAt(): number | null {
  try {
    return Context.current().info.currentAttemptScheduledTimestampMs;
  } catch {
    return null;
  }
}
