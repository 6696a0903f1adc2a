/**
 * The fence: the one place a host decides whether it may serve a data request for a workspace.
 *
 * A host serves a workspace only while all of these hold:
 * - its lease is valid (HostLease: recent confirmed contact with the cluster). A host paused, stalled or cut off
 *   for longer than its lease refuses everything (`fenced`) from the moment it runs again;
 * - the workspace is open here under the placement the request carries (`x-workbooks-placement`): the workflow
 *   gives each opening a new placement number, so a client holding an old one is told `not_here` and asks the
 *   workflow again;
 * - the instance was confirmed since the lease last lapsed: by the workflow itself (a start of the instance) or
 *   by asking the workflow whether this host still holds this placement. An instance the workflow has given to
 *   another host (or placement) is closed here and its file set aside in orphans/, never served again.
 *
 * The check runs twice per request: before the operation (waiting for a confirmation if one is due) and right
 * after it. A lease that lapsed during the operation means its result is not acknowledged.
 *
 * Host activities pass admitTask first: a paused process resumes holding tasks its polls received before the
 * pause, and such a task (a startInstance of the old placement) must not act, or confirm a placement, after the
 * lapse. A task is refused while the lease is not valid, and when the cluster scheduled it before the last lapse
 * healed; its next attempt, scheduled later, runs. This compares the cluster's clock with the host's: they must
 * agree to within about four fifths of the lease.
 */
import type { HostInstances } from './instances';
import type { HostLease } from './lease';

/** What the workflow says about where a workspace is served. */
export interface PlacementTruth {
  state: string;
  host: string | null;
  placement: number | null;
}

/** The host does not hold this workspace open (under this placement): ask the workflow where it is. */
export class NotHereError extends Error {
  override name = 'NotHereError';
  readonly code = 'not_here';
  constructor(
    readonly workspaceId: string,
    why: string,
  ) {
    super(`workspace '${workspaceId}' is not served here (${why}); ask for it again (wake with check)`);
  }
}

/** The host cannot confirm it still holds anything (lease lapsed, or the workflow could not be asked). */
export class FencedError extends Error {
  override name = 'FencedError';
  readonly code = 'fenced';
}

/** A request without the placement of a workspace that is served under one. */
export class PlacementRequiredError extends Error {
  override name = 'PlacementRequiredError';
  readonly code = 'placement_required';
}

export interface FenceOptions {
  hostId: string;
  lease: HostLease;
  instances: HostInstances;
  /** Asks the workflow where the workspace is served (null: no running workflow). Rejects if it cannot. */
  truth: (workspaceId: string) => Promise<PlacementTruth | null>;
  /** Closes the instance, stops its replication and sets its file aside; returns where the file went. */
  setAside: (workspaceId: string, why: string) => Promise<string | undefined>;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export class Fence {
  /** Per workspace: the lease lapse count at which it was last confirmed. */
  private readonly confirmed = new Map<string, number>();
  private readonly checking = new Map<string, Promise<void>>();

  constructor(private readonly opts: FenceOptions) {}

  get lease(): HostLease {
    return this.opts.lease;
  }

  /** The workflow (re)opened the instance here: confirmed for the current lease. */
  confirm(workspaceId: string): void {
    this.confirmed.set(workspaceId, this.opts.lease.lapses);
  }

  /** The instance was closed or removed here. */
  forget(workspaceId: string): void {
    this.confirmed.delete(workspaceId);
  }

  /**
   * Before a data request: throws FencedError, NotHereError or PlacementRequiredError, or resolves when the
   * request may go ahead (asking the workflow first when the instance needs a confirmation).
   */
  async admit(workspaceId: string, placement: number | null): Promise<void> {
    this.check(workspaceId, placement, false);
    if (this.isConfirmed(workspaceId)) return;
    let p = this.checking.get(workspaceId);
    if (!p) {
      p = this.reconfirm(workspaceId).finally(() => this.checking.delete(workspaceId));
      this.checking.set(workspaceId, p);
    }
    await p;
    this.check(workspaceId, placement, true);
  }

  /**
   * Before a host activity: throws FencedError if the lease is not valid, or if the cluster scheduled this attempt
   * (wall-clock ms, from the activity's info; null when unknown) before the lease last lapsed and healed.
   */
  admitTask(what: string, scheduledAtWallMs: number | null): void {
    const { lease, hostId } = this.opts;
    if (!lease.valid()) {
      throw new FencedError(`host '${hostId}' has not confirmed contact with the cluster within its ${lease.leaseMs} ms lease; ${what} is not run now`);
    }
    if (scheduledAtWallMs !== null && scheduledAtWallMs < lease.healedAtWallMs) {
      throw new FencedError(`host '${hostId}' lost its lease after ${what} was handed out (scheduled ${new Date(scheduledAtWallMs).toISOString()}, lease healed ${new Date(lease.healedAtWallMs).toISOString()}); a later attempt runs it`);
    }
  }

  /** Whether a request under `placement` would be served now, without asking the workflow (check, as a boolean). */
  holds(workspaceId: string, placement: number | null): boolean {
    try {
      this.check(workspaceId, placement, true);
      return true;
    } catch {
      return false;
    }
  }

  /** The synchronous rule, run again right before the operation. */
  check(workspaceId: string, placement: number | null, needConfirmed = true): void {
    const { lease, instances, hostId } = this.opts;
    if (!lease.valid()) {
      throw new FencedError(`host '${hostId}' has not confirmed contact with the cluster within its ${lease.leaseMs} ms lease; it serves nothing until it has`);
    }
    if (!instances.isOpen(workspaceId)) throw new NotHereError(workspaceId, `not open on host '${hostId}'`);
    const held = instances.servedPlacement(workspaceId);
    if (held !== null) {
      if (placement === null) throw new PlacementRequiredError(`requests for workspace '${workspaceId}' must carry its placement (x-workbooks-placement; wake returns it)`);
      if (placement !== held) throw new NotHereError(workspaceId, `placement ${placement} is not the one served here`);
    }
    if (needConfirmed && !this.isConfirmed(workspaceId)) {
      throw new FencedError(`host '${hostId}' lost its lease since workspace '${workspaceId}' was last confirmed; retry shortly`);
    }
  }

  /** After the operation: its result is acknowledged only if the lease held throughout. */
  after(): void {
    const { lease, hostId } = this.opts;
    if (!lease.valid()) throw new FencedError(`host '${hostId}' lost its lease during the request; its outcome is not acknowledged`);
  }

  private isConfirmed(workspaceId: string): boolean {
    return this.confirmed.get(workspaceId) === this.opts.lease.lapses;
  }

  private async reconfirm(workspaceId: string): Promise<void> {
    const { instances, hostId } = this.opts;
    const lapses = this.opts.lease.lapses;
    let truth: PlacementTruth | null;
    try {
      truth = await this.opts.truth(workspaceId);
    } catch (err) {
      throw new FencedError(`host '${hostId}' could not confirm it still holds workspace '${workspaceId}': ${(err as Error).message}`);
    }
    const held = instances.servedPlacement(workspaceId);
    const mine = !!truth && truth.state === 'active' && truth.host === hostId && (held === null || truth.placement === null || truth.placement === held);
    if (mine) {
      this.confirmed.set(workspaceId, lapses);
      return;
    }
    const why = !truth
      ? 'no running workflow holds it'
      : `the workflow says ${truth.state}${truth.host ? ` on host '${truth.host}'` : ''}${truth.placement !== null ? ` under placement ${truth.placement}` : ''}, not placement ${held ?? '?'} here`;
    // Re-read before acting: the workflow may have (re)opened it here meanwhile.
    if (this.isConfirmed(workspaceId)) return;
    const movedTo = await this.opts.setAside(workspaceId, why);
    this.forget(workspaceId);
    this.opts.log?.('instance fenced: set aside', { workspaceId, why, movedTo });
    throw new NotHereError(workspaceId, why);
  }
}
