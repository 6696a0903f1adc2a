import { State } from './states';
import { DurationError, formatDuration, parseDuration } from './duration';

/**
 * The idle ladder as data. Every rung is a duration in milliseconds, or null for "never".
 * active --suspendAfter--> suspended --freezeAfter--> frozen --archiveAfter--> archived --deleteAfter--> deleted
 * The first two default to 15 minutes and 24 hours; the last two are off unless a policy opts in.
 */
export interface Policy {
  suspendAfterMs: number | null;
  freezeAfterMs: number | null;
  archiveAfterMs: number | null;
  deleteAfterMs: number | null;
}

/** The policy as other services send it: durations as strings (`15m`, `24h`, `3s`) or `never`. */
export interface PolicySpec {
  suspendAfter?: string | null;
  freezeAfter?: string | null;
  archiveAfter?: string | null;
  deleteAfter?: string | null;
}

export const DEFAULT_POLICY: Readonly<Policy> = Object.freeze({
  suspendAfterMs: 15 * 60_000,
  freezeAfterMs: 24 * 3_600_000,
  archiveAfterMs: null,
  deleteAfterMs: null,
});

/** The shortest rung a policy may set: shorter ones would only churn the file. */
export const MIN_RUNG_MS = 1_000;

const RUNGS = ['suspendAfter', 'freezeAfter', 'archiveAfter', 'deleteAfter'] as const;

export class PolicyError extends Error {
  override name = 'PolicyError';
}

/** Validates a policy spec and fills in the defaults. Throws PolicyError with a clear message. */
export function parsePolicy(spec: unknown): Policy {
  if (spec === undefined || spec === null) return { ...DEFAULT_POLICY };
  if (typeof spec !== 'object' || Array.isArray(spec)) throw new PolicyError('policy must be an object like { "suspendAfter": "15m", "freezeAfter": "24h" }');
  const unknownKeys = Object.keys(spec).filter((k) => !(RUNGS as readonly string[]).includes(k));
  if (unknownKeys.length) throw new PolicyError(`policy has unknown field(s) ${unknownKeys.join(', ')}; known: ${RUNGS.join(', ')}`);
  const s = spec as Record<string, unknown>;
  const rung = (name: (typeof RUNGS)[number], fallback: number | null): number | null => {
    const v = s[name];
    if (v === undefined) return fallback;
    if (v === null || v === 'never') return null;
    if (typeof v !== 'string') throw new PolicyError(`policy.${name} must be a duration string like '15m' or 'never'`);
    let ms: number;
    try {
      ms = parseDuration(v, `policy.${name}`);
    } catch (err) {
      throw new PolicyError((err as DurationError).message);
    }
    if (ms < MIN_RUNG_MS) throw new PolicyError(`policy.${name} must be at least 1s, got '${v}'`);
    return ms;
  };
  return {
    suspendAfterMs: rung('suspendAfter', DEFAULT_POLICY.suspendAfterMs),
    freezeAfterMs: rung('freezeAfter', DEFAULT_POLICY.freezeAfterMs),
    archiveAfterMs: rung('archiveAfter', DEFAULT_POLICY.archiveAfterMs),
    deleteAfterMs: rung('deleteAfter', DEFAULT_POLICY.deleteAfterMs),
  };
}

/** The policy back in its wire form, for describe output. */
export function formatPolicy(p: Policy): Required<PolicySpec> {
  const f = (ms: number | null) => (ms === null ? 'never' : formatDuration(ms));
  return {
    suspendAfter: f(p.suspendAfterMs),
    freezeAfter: f(p.freezeAfterMs),
    archiveAfter: f(p.archiveAfterMs),
    deleteAfter: f(p.deleteAfterMs),
  };
}

/** Which rung applies in a state: the idle time after which the ladder moves it, and to where. */
export function rungFor(state: State, policy: Policy): { after: number; to: State } | null {
  switch (state) {
    case 'active':
      return policy.suspendAfterMs === null ? null : { after: policy.suspendAfterMs, to: 'suspended' };
    case 'suspended':
      return policy.freezeAfterMs === null ? null : { after: policy.freezeAfterMs, to: 'frozen' };
    case 'frozen':
      return policy.archiveAfterMs === null ? null : { after: policy.archiveAfterMs, to: 'archived' };
    case 'archived':
      return policy.deleteAfterMs === null ? null : { after: policy.deleteAfterMs, to: 'deleted' };
    default:
      return null;
  }
}

/**
 * The idle ladder: given a state and how long it has been idle (seconds), the state the ladder moves it to,
 * or null to stay put. A rung fires at exactly its threshold, not a second before.
 */
export function autoNext(state: State, idleSeconds: number, policy: Policy = DEFAULT_POLICY): State | null {
  if (!Number.isFinite(idleSeconds) || idleSeconds < 0) return null;
  const rung = rungFor(state, policy);
  if (!rung) return null;
  // Compare in seconds: `idleSeconds * 1000` is not exact in floating point ((1001 / 1000) * 1000 is 1000.9999999999999),
  // so a rung of e.g. 1001 ms would not fire at its own deadline. `rung.after / 1000` is the same division the
  // caller's `(deadline - since) / 1000` performs, so the rung fires at exactly its threshold.
  return idleSeconds >= rung.after / 1000 ? rung.to : null;
}

/** When (epoch ms) the ladder would next move a state that has been idle since `idleSinceMs`, or null. */
export function idleDeadline(state: State, idleSinceMs: number, policy: Policy): number | null {
  const rung = rungFor(state, policy);
  return rung ? idleSinceMs + rung.after : null;
}
