/**
 * Teardown on Ctrl-C / SIGTERM for the bench: whatever is running registers how to stop it (hosts, servers, temp
 * dirs); on a signal everything registered is stopped, newest first, and the process exits with 130.
 */
const active: (() => Promise<void>)[] = [];
let installed = false;

/** Registers `fn` until the returned function is called (which does not run `fn`). */
export function onInterrupt(fn: () => Promise<void>): () => void {
  active.push(fn);
  return () => {
    const i = active.lastIndexOf(fn);
    if (i >= 0) active.splice(i, 1);
  };
}

export function installInterruptCleanup(): void {
  if (installed) return;
  installed = true;
  let stopping = false;
  const handler = () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      for (const fn of active.splice(0).reverse()) await fn().catch(() => undefined);
    })().finally(() => process.exit(130));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}
