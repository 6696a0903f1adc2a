/**
 * Slows guessing of bearer tokens: after `maxFailures` failed authentications (401) from one remote address
 * within `windowMs`, that address is locked out until the oldest of those failures leaves the window. While it
 * is locked out, every request it makes to a route that needs a token answers 429 with Retry-After *before the
 * token is looked at*, a valid token too: otherwise 200-or-429 would tell a guess that was right from one that
 * was wrong as fast as 200-or-401 does. A success does not clear the failures (a tenant with a token of its own
 * could otherwise interleave its requests with guesses at other tokens). So one address gets at most
 * `maxFailures` guesses per window.
 *
 * Memory is bounded: at most `maxAddresses` addresses are tracked (the least recently failed one is dropped
 * first), each with at most `maxFailures` times.
 */

export interface AuthThrottleOptions {
  /** Failures within the window that lock an address out; 0 turns the throttle off. */
  maxFailures: number;
  windowMs: number;
  /** Addresses tracked at most (default 10,000). */
  maxAddresses?: number;
  now?: () => number;
}

export const DEFAULT_AUTH_FAILURES = 10;
export const DEFAULT_AUTH_WINDOW_SECONDS = 60;

export class AuthThrottle {
  /** address → times of its failures within the window, oldest first; Map order = least recently failed first. */
  private readonly failures = new Map<string, number[]>();
  private readonly maxAddresses: number;
  private readonly now: () => number;

  constructor(private readonly opts: AuthThrottleOptions) {
    if (!Number.isInteger(opts.maxFailures) || opts.maxFailures < 0) throw new Error('maxFailures must be a whole number, 0 or more');
    if (!(opts.windowMs > 0)) throw new Error('windowMs must be positive');
    this.maxAddresses = opts.maxAddresses ?? 10_000;
    this.now = opts.now ?? Date.now;
  }

  get tracked(): number {
    return this.failures.size;
  }

  /** Milliseconds until `address` may try again, or 0 when it is not locked out. */
  lockedFor(address: string): number {
    if (this.opts.maxFailures === 0) return 0;
    const times = this.live(address);
    if (!times || times.length < this.opts.maxFailures) return 0;
    return Math.max(1, times[0]! + this.opts.windowMs - this.now());
  }

  /** Records a failed authentication from `address`; true when this failure locks it out. */
  fail(address: string): boolean {
    if (this.opts.maxFailures === 0) return false;
    const times = this.live(address) ?? [];
    times.push(this.now());
    if (times.length > this.opts.maxFailures) times.splice(0, times.length - this.opts.maxFailures);
    // Most recently failed last: re-insert, then drop the least recently failed beyond the cap.
    this.failures.delete(address);
    this.failures.set(address, times);
    while (this.failures.size > this.maxAddresses) this.failures.delete(this.failures.keys().next().value!);
    return times.length >= this.opts.maxFailures;
  }

  /** The address's failures still within the window (expired ones dropped; the entry too when none is left). */
  private live(address: string): number[] | undefined {
    const times = this.failures.get(address);
    if (!times) return undefined;
    const since = this.now() - this.opts.windowMs;
    while (times.length > 0 && times[0]! <= since) times.shift();
    if (times.length === 0) {
      this.failures.delete(address);
      return undefined;
    }
    return times;
  }
}
