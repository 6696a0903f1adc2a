/**
 * Teardown on Ctrl-C / SIGTERM for the bench: whatever is running registers how to stop it (hosts, servers, temp
 * dirs); on a signal everything registered is stopped, newest first, and the process exits with 130.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

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

/** Something a bench section runs and must stop (a worker host). */
interface Stoppable {
  stop(): Promise<void>;
}

/**
 * A temporary root directory for one bench section (under `baseDir`, default the OS temp dir). `close()` stops
 * what `current()` returns at that moment (the section's host, if it started one) and removes the root; Ctrl-C
 * does the same.
 */
export function benchSection(prefix: string, baseDir: string | undefined, current: () => Stoppable | undefined): { root: string; close(): Promise<void> } {
  const root = fs.mkdtempSync(path.join(baseDir ?? os.tmpdir(), prefix));
  const stop = async () => {
    await current()?.stop().catch(() => undefined);
    fs.rmSync(root, { recursive: true, force: true });
  };
  const forget = onInterrupt(stop);
  return {
    root,
    async close() {
      forget();
      await stop();
    },
  };
}
