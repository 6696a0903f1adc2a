/**
 * The floor on policy rungs at the input layer (API, CLI): a tenant cannot ask for a ladder that churns its
 * workspace (suspend, freeze, wake again) every few seconds. The workflow itself accepts any rung from 1 s
 * (MIN_RUNG_MS), which tests use; this check stands in front of it for people and services.
 */
import { formatDuration, parseDuration } from './duration';
import { PolicyError, PolicySpec, parsePolicy } from './policy';

/** Throws PolicyError when the spec is invalid or a rung it sets is shorter than `floorMs`. */
export function checkPolicyFloor(spec: PolicySpec | null | undefined, floorMs: number): void {
  parsePolicy(spec);
  if (!spec) return;
  for (const [name, v] of Object.entries(spec)) {
    if (typeof v !== 'string' || v === 'never') continue;
    const ms = parseDuration(v, `policy.${name}`);
    if (ms < floorMs) {
      throw new PolicyError(`policy.${name} '${v}' is shorter than the floor of ${formatDuration(floorMs)} (WORKBOOKS_POLICY_FLOOR); use at least ${formatDuration(floorMs)} or "never"`);
    }
  }
}
