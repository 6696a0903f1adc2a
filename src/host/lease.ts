/**
 * The host's lease: how long it may keep serving workspace data without having confirmed contact with the
 * Temporal cluster. A renewal is a cheap round trip to the cluster, made every fifth of the lease; the lease runs
 * from the moment a successful renewal *started*, on the monotonic clock (a paused process, a long GC or a cut
 * link all stop renewals, and the lease runs out on its own).
 *
 * The workflow declares a host gone only after a liveness window longer than the lease (see
 * livenessWindowSeconds in the workflow), so by the time a workspace is taken away from a host, that host has
 * stopped serving it. Every lapse is counted: instances confirmed before a lapse must be confirmed again (see
 * Fence) before the host serves them.
 */
import { performance } from 'node:perf_hooks';

export interface LeaseOptions {
  /** Lease length in ms. */
  leaseMs: number;
  /** One round trip to the cluster; rejects (or is aborted by `signal`) when the cluster is not reachable. */
  renew: (signal: AbortSignal) => Promise<void>;
  /** Monotonic now in ms (tests replace it). */
  now?: () => number;
  /** Wall-clock now in ms (tests replace it). */
  wallNow?: () => number;
  /** Called with a reason when a renewal fails (logging). */
  onError?: (err: unknown) => void;
}

export class HostLease {
  readonly leaseMs: number;
  private renewedAt = Number.NEGATIVE_INFINITY;
  private laps = 0;
  private healedWall = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private readonly now: () => number;
  private readonly wallNow: () => number;

  constructor(private readonly opts: LeaseOptions) {
    if (!(opts.leaseMs >= 100)) throw new Error('a lease must be at least 100 ms');
    this.leaseMs = opts.leaseMs;
    this.now = opts.now ?? (() => performance.now());
    this.wallNow = opts.wallNow ?? (() => Date.now());
  }

  /** Whether the host may serve now. */
  valid(): boolean {
    return this.now() - this.renewedAt < this.leaseMs;
  }

  /** How many times the lease has lapsed (the first grant counts as one: nothing is confirmed before it). */
  get lapses(): number {
    return this.laps;
  }

  /**
   * Wall-clock time (ms) at which the last lapse after the first grant was healed (-Infinity if none). Work the
   * cluster handed this host before then may have been handed out before the lapse (see Fence.admitTask).
   */
  get healedAtWallMs(): number {
    return this.healedWall;
  }

  /** One renewal now; resolves whether or not it succeeded (see valid()). */
  renewNow(): Promise<void> {
    this.inFlight ??= (async () => {
      const started = this.now();
      try {
        await this.opts.renew(AbortSignal.timeout(Math.max(100, Math.floor(this.leaseMs / 2))));
        const done = this.now();
        // Lapsed between the last good start and this answer: anything confirmed before is in doubt.
        if (done - this.renewedAt >= this.leaseMs) {
          if (this.laps > 0) this.healedWall = this.wallNow();
          this.laps += 1;
        }
        this.renewedAt = Math.max(this.renewedAt, started);
      } catch (err) {
        this.opts.onError?.(err);
      } finally {
        this.inFlight = null;
      }
    })();
    return this.inFlight;
  }

  /** Renews every fifth of the lease until stopped; resolves after the first renewal attempt. */
  async start(): Promise<void> {
    await this.renewNow();
    const every = Math.max(50, Math.floor(this.leaseMs / 5));
    this.timer = setInterval(() => void this.renewNow(), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** A lease that never lapses: for a data server used on its own, with no cluster to lose (unit tests). */
  static always(): HostLease {
    const lease = new HostLease({ leaseMs: Number.MAX_SAFE_INTEGER, renew: async () => undefined });
    lease.renewedAt = 0;
    lease.laps = 1;
    return lease;
  }
}
