/**
 * Named points inside the activities where the fault-injection suite (test/faults/) breaks a worker on purpose.
 * Inert unless the worker was started with one of these variables (never set in production):
 *
 *   WORKBOOKS_FAULT_KILL_AT=<point>    the process SIGKILLs itself when it reaches <point> (kill -9 mid-step)
 *   WORKBOOKS_FAULT_ENOSPC_AT=<point>  <point> throws the error a full disk gives (ENOSPC)
 *
 * Several points may be given, comma-separated. A point is `<activity>:<step>`, e.g. `storeLocal:after-upload`.
 *
 * Kill points at step boundaries (test/faults/kill-points.test.ts drives each one):
 *   freeze   storeLocal:after-fold, fileStore.put:after-bytes (bytes in the store, metadata not yet; also hit by
 *            archiveColdCopy's put), storeLocal:after-upload, storeLocal:after-scratch-restore,
 *            storeLocal:after-verify, storeLocal:after-release-record, storeLocal:after-delete-local,
 *            removeLocal:after-remove-file
 *   suspend  stopInstance:after-close
 *   resume   startInstance:after-open, recoverLocal:after-download, recoverLocal:after-rename,
 *            recoverLocal:after-replica-restore, restoreLocal:after-download, restoreLocal:after-rename
 *   clone    provision:after-copy (template copies only), provision:after-rename
 *   archive  archiveColdCopy:after-copy, archiveColdCopy:after-verify, archiveColdCopy:after-delete-cold
 *   delete   deleteStoredCopies:after-delete-copy, deleteStoredCopies:after-delete-replica
 */
import fs from 'node:fs';
import { jsonLogLine } from '../logging/json-log';

function listed(name: string, point: string): boolean {
  const raw = process.env[name];
  return !!raw && raw.split(',').some((p) => p.trim() === point);
}

/** Call at a step boundary; does nothing unless a fault is injected there. */
export function faultPoint(point: string): void {
  if (listed('WORKBOOKS_FAULT_KILL_AT', point)) {
    // Say where, synchronously (the process will not get another chance), then die without cleanup.
    try {
      fs.writeSync(2, jsonLogLine('WARN', 'fault injected: kill -9', { point }));
    } catch {
      // stderr may be closed; the kill is what matters
    }
    process.kill(process.pid, 'SIGKILL');
  }
  if (listed('WORKBOOKS_FAULT_ENOSPC_AT', point)) {
    const err = new Error(`ENOSPC: no space left on device (injected at ${point})`) as NodeJS.ErrnoException;
    err.code = 'ENOSPC';
    err.errno = -28;
    err.syscall = 'write';
    throw err;
  }
}
