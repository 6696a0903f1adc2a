/**
 * SQLite's integrity check on a closed file, run on a worker thread: a full check of a large file takes
 * seconds and would otherwise block the event loop (and with it the activity's heartbeats).
 */
import { Worker } from 'node:worker_threads';

/** Runs `PRAGMA integrity_check` (full) or `quick_check` on `file` opened read-only; returns the problems found ([] = ok). */
export function integrityCheckOffThread(file: string, kind: 'full' | 'quick' = 'full'): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const Database = require(workerData.sqlite);
      let db;
      try {
        db = new Database(workerData.file, { readonly: true, fileMustExist: true });
        const rows = db.pragma(workerData.kind === 'full' ? 'integrity_check' : 'quick_check', { simple: false });
        const problems = rows.map((r) => String(Object.values(r)[0])).filter((v) => v !== 'ok');
        parentPort.postMessage({ problems });
      } catch (err) {
        parentPort.postMessage({ problems: ['cannot check ' + workerData.file + ': ' + (err && err.message)] });
      } finally {
        if (db) db.close();
      }
      `,
      { eval: true, workerData: { file, kind, sqlite: require.resolve('better-sqlite3') } },
    );
    let settled = false;
    w.once('message', (m: { problems: string[] }) => {
      settled = true;
      resolve(m.problems);
    });
    w.once('error', (err) => {
      if (!settled) reject(err);
    });
    w.once('exit', (code) => {
      if (!settled) reject(new Error(`integrity check of ${file} stopped with exit code ${code}`));
    });
  });
}
