/**
 * SQLite's integrity check on a closed file, run on a worker thread: a full check of a large file takes
 * seconds and would otherwise block the event loop (and with it the activity's heartbeats).
 */
import { Worker } from 'node:worker_threads';

/**
 * Runs `PRAGMA integrity_check` (full) or `quick_check` on `file`; returns the problems found ([] = ok). Opened
 * read-only unless `readonly: false`: read-write lets closing the only connection remove the -wal/-shm files SQLite
 * creates next to a WAL-mode file.
 */
export function integrityCheckOffThread(file: string, kind: 'full' | 'quick' = 'full', opts: { readonly?: boolean } = {}): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const w = new Worker(
      `
      const { parentPort, workerData } = require('node:worker_threads');
      const Database = require(workerData.sqlite);
      let db;
      try {
        db = new Database(workerData.file, { readonly: workerData.readonly, fileMustExist: true });
        db.pragma('trusted_schema = OFF');
        const rows = db.pragma(workerData.kind === 'full' ? 'integrity_check' : 'quick_check', { simple: false });
        const problems = rows.map((r) => String(Object.values(r)[0])).filter((v) => v !== 'ok');
        parentPort.postMessage({ problems });
      } catch (err) {
        parentPort.postMessage({ problems: ['cannot check ' + workerData.file + ': ' + (err && err.message)] });
      } finally {
        if (db && db.open) db.close();
      }
      `,
      { eval: true, workerData: { file, kind, readonly: opts.readonly ?? true, sqlite: require.resolve('better-sqlite3') } },
    );
    // Answered once the thread has exited, i.e. after its connection is closed (and SQLite has removed the -wal
    // and -shm files it made): the caller may delete, rename or open the file as soon as it has the answer.
    let answer: string[] | null = null;
    let failed = false;
    w.once('message', (m: { problems: string[] }) => {
      answer = m.problems;
    });
    w.once('error', (err) => {
      failed = true;
      reject(err);
    });
    w.once('exit', (code) => {
      if (failed) return;
      if (answer) resolve(answer);
      else reject(new Error(`integrity check of ${file} stopped with exit code ${code}`));
    });
  });
}
