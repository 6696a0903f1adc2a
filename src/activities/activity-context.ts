/**
 * What every activity uses from its running context: heartbeats (CopyHeartbeat), cancellation, the activity
 * log, and the failures the workflow knows (InvalidInput, storage errors mapped to non-retryable types).
 * Usable inside a real worker, MockActivityEnvironment, or plain unit tests (then heartbeats and logs are no-ops).
 */
import fs from 'node:fs';
import { ApplicationFailure, Context, asyncLocalStorage } from '@temporalio/activity';
import { BadKeyError, ChecksumMismatchError, ObjectMissingError } from '../storage/blob-store';
import { StoreUnavailableError } from '../storage/open-store';
import { ReplicationOffError } from '../host/replication-port';
import { ReplicaCorruptError, ReplicaMissingError } from '../replication/errors';
import { RestorePointError } from '../replication/restore';
import type { CopyHeartbeat } from './types';

export function activityContext(): Context | undefined {
  return asyncLocalStorage.getStore();
}

export function heartbeat(details: CopyHeartbeat): void {
  activityContext()?.heartbeat(details);
}

/** A warning in the activity's log (nothing outside an activity). */
export function log(message: string, fields: Record<string, unknown>): void {
  activityContext()?.log.warn(message, fields);
}

export function cancellationSignal(): AbortSignal | undefined {
  return activityContext()?.cancellationSignal;
}

/** Whether `err` is the activity's own cancellation (rethrown as it is, never mapped). */
export function isAbort(err: unknown, signal: AbortSignal | undefined): boolean {
  return !!signal?.aborted && (err === signal.reason || (err as Error)?.name === 'AbortError');
}

/** A file's size for a heartbeat's `bytesTotal`, or undefined when it cannot be read. */
export function sizeForHeartbeat(file: string): number | undefined {
  try {
    return fs.statSync(file).size;
  } catch {
    return undefined;
  }
}

/** A phase's heartbeat; `bytesTotal` only when it is a known size. */
export function copyDetails(phase: string, bytesCopied: number, bytesTotal?: number): CopyHeartbeat {
  return bytesTotal !== undefined && Number.isFinite(bytesTotal) && bytesTotal >= 0 ? { bytesCopied, phase, bytesTotal } : { bytesCopied, phase };
}

/** Heartbeats every few seconds while `fn` runs (for steps that report no progress of their own). */
export async function withTicker<T>(phase: string, bytes: () => number, fn: () => Promise<T>, bytesTotal?: number): Promise<T> {
  heartbeat(copyDetails(phase, bytes(), bytesTotal));
  const t = activityContext() ? setInterval(() => heartbeat(copyDetails(phase, bytes(), bytesTotal)), 5000) : null;
  try {
    return await fn();
  } finally {
    if (t) clearInterval(t);
  }
}

/** An onProgress callback that heartbeats; stores and copy helpers pass the file's or object's size as `bytesTotal`. */
export function progress(phase: string): (bytesCopied: number, bytesTotal?: number) => void {
  return (bytesCopied, bytesTotal) => heartbeat(copyDetails(phase, bytesCopied, bytesTotal));
}

// ---------------------------------------------------------------------------------------------------------------
// Failures

export function invalidInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'InvalidInput');
}

/** Maps storage errors to the non-retryable failure types the workflow knows; anything else is rethrown. */
export function mapStoreError(err: unknown, what: string): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof ChecksumMismatchError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'ChecksumMismatch');
  if (err instanceof ObjectMissingError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'SourceMissing');
  if (err instanceof StoreUnavailableError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'StoreUnavailable');
  if (err instanceof BadKeyError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'InvalidInput');
  if (err instanceof ReplicaMissingError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'SourceMissing');
  if (err instanceof RestorePointError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'RestorePointUnavailable');
  if (err instanceof ReplicaCorruptError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'IntegrityError');
  if (err instanceof ReplicationOffError) return ApplicationFailure.nonRetryable(`${what}: ${err.message}`, 'StoreUnavailable');
  return err;
}
