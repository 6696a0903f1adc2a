/**
 * Moves per tenant per minute: a token bucket per tenant in this API process (each API copy counts on its own).
 * A bucket holds up to `perMinute` tokens and refills continuously at `perMinute` a minute; a move takes one.
 */
export class MoveLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    /** Moves a tenant may make per minute (also the burst); 0: no limit. */
    readonly perMinute: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Takes a token for `tenant`: 0 when granted, else the whole seconds until one is available (nothing taken). */
  take(tenant: string): number {
    if (this.perMinute <= 0) return 0;
    const now = this.now();
    const rate = this.perMinute / 60_000; // tokens per ms
    const b = this.buckets.get(tenant) ?? { tokens: this.perMinute, at: now };
    b.tokens = Math.min(this.perMinute, b.tokens + (now - b.at) * rate);
    b.at = now;
    this.buckets.set(tenant, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      this.forgetFull(now);
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / rate / 1000));
  }

  /** Buckets that have refilled completely carry no state: drop them now and then (bounded memory). */
  private forgetFull(now: number): void {
    if (this.buckets.size < 10_000) return;
    const rate = this.perMinute / 60_000;
    for (const [t, b] of this.buckets) if (b.tokens + (now - b.at) * rate >= this.perMinute) this.buckets.delete(t);
  }
}
