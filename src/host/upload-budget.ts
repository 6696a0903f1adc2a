/**
 * The bytes of upload bodies a data server holds in memory at once. A file is written into SQLite as one blob,
 * so its body must be in memory whole; the budget bounds how many such bodies are held together. Requests wait
 * their turn in order (first come, first served) up to a deadline, then are refused (503 busy, Retry-After).
 */
export class BudgetTimeoutError extends Error {
  override name = 'BudgetTimeoutError';
}

export class UploadBudget {
  private used = 0;
  private readonly queue: { bytes: number; grant: () => void }[] = [];

  constructor(readonly capacity: number) {}

  /** Bytes held now (for tests and metrics). */
  get held(): number {
    return this.used;
  }

  /**
   * Reserves `bytes` (at most the whole capacity: one body as large as the budget always fits alone); resolves to
   * the release function. Rejects with BudgetTimeoutError after `waitMs` or when `signal` aborts (nothing held).
   */
  acquire(bytes: number, waitMs: number, signal?: AbortSignal): Promise<() => void> {
    const n = Math.max(0, Math.min(bytes, this.capacity));
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.used -= n;
      this.pump();
    };
    if (this.queue.length === 0 && this.used + n <= this.capacity) {
      this.used += n;
      return Promise.resolve(release);
    }
    return new Promise((resolve, reject) => {
      const entry = {
        bytes: n,
        grant: () => {
          clearTimeout(timer);
          signal?.removeEventListener('abort', onAbort);
          this.used += n;
          resolve(release);
        },
      };
      const drop = (why: string) => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) this.queue.splice(i, 1);
        this.pump();
        reject(new BudgetTimeoutError(why));
      };
      const onAbort = () => {
        clearTimeout(timer);
        drop('the request went away while waiting for upload room');
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        drop(`no room for ${n} more bytes of uploads within ${waitMs} ms (${this.used} of ${this.capacity} held)`);
      }, waitMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
    });
  }

  private pump(): void {
    while (this.queue.length && this.used + this.queue[0]!.bytes <= this.capacity) this.queue.shift()!.grant();
  }
}
