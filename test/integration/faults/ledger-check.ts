/**
 * Shared checks of the fault-injection suite: walks a workspace's ledger against the pure lifecycle rules
 * (`src/lifecycle` `transition()`), and small deterministic helpers (seeded PRNG, waiting for an idle workflow).
 */
import assert from 'node:assert/strict';
import { State, transition } from '../../../src/lifecycle';
import type { LedgerEntry, WorkspaceDescription } from '../../../src/contract/types';
import type { WorkbooksClient } from '../../../src/client/workbooks-client';
import { WorkbooksError } from '../../../src/client/errors';
import { eventually } from '../../../harness/stack';

export interface LedgerWalk {
  /** The state after the last done entry (the state the ledger says the workspace is in). */
  final: State;
  /** Every state the workspace was in, in order (the chain of done moves, starting with `start`). */
  visited: State[];
  done: LedgerEntry[];
  refused: LedgerEntry[];
}

/**
 * Checks that the done entries form a chain of legal edges starting at `start` (each `from` is the previous
 * `to`), skipping the replica's health entries (not moves), that every refused entry is an illegal edge from the state the workspace was in at that point, with the
 * lifecycle's own message, and that nothing failed (unless `allowFailed`). `where` prefixes assertion messages.
 */
export function walkLedger(ledger: LedgerEntry[], start: State, where: string, opts: { allowFailed?: boolean } = {}): LedgerWalk {
  let state = start;
  const visited: State[] = [start];
  const done: LedgerEntry[] = [];
  const refused: LedgerEntry[] = [];
  let lastAt = 0;
  ledger.forEach((e, i) => {
    const at = `${where}: ledger[${i}] ${e.from} -> ${e.to} ${e.outcome} (${e.reason}/${e.by}${e.detail ? `: ${e.detail}` : ''})`;
    const t = Date.parse(e.at);
    assert.ok(Number.isFinite(t) && t >= lastAt, `${at}: time ${e.at} goes backwards`);
    lastAt = t;
    // Not a move: the replica's health (a warning, its all-clear), which a loaded machine may see anywhere.
    if (e.by === 'replication' && e.from === 'active' && e.to === 'active' && (e.outcome === 'warning' || e.outcome === 'done')) {
      assert.equal(state, 'active', `${at}: a replica warning while not active`);
      return;
    }
    assert.equal(e.from, state, `${at}: starts from ${e.from} but the workspace was ${state} after the previous done move`);
    const legal = transition(e.from, e.to);
    if (e.outcome === 'done') {
      assert.ok(legal.ok, `${at}: a done move along an illegal edge`);
      state = e.to;
      visited.push(state);
      done.push(e);
    } else if (e.outcome === 'refused') {
      assert.ok(!legal.ok, `${at}: a legal move was refused`);
      // The workflow refuses with the lifecycle's message, or 'workspace is deleted' for commands left after a delete.
      const expected = e.from === 'deleted' ? /^(workspace is deleted|cannot move from deleted to \w+: deleted is terminal)$/ : null;
      if (expected) assert.match(e.detail ?? '', expected, `${at}: refusal reason`);
      else assert.equal(e.detail, legal.ok ? undefined : legal.message, `${at}: refusal reason`);
      refused.push(e);
    } else {
      assert.ok(opts.allowFailed, `${at}: a move failed in a healthy setup`);
    }
  });
  return { final: state, visited, done, refused };
}

/** Waits until the workflow has nothing queued and nothing running (or has ended), and returns its description. */
export async function waitIdle(wb: WorkbooksClient, id: string, timeoutMs = 90_000): Promise<WorkspaceDescription> {
  return eventually(
    async () => {
      const d = await wb.describe(id);
      return d.pendingCommands === 0 && d.busy === null ? d : null;
    },
    `workspace ${id} to be idle (nothing queued, nothing running)`,
    timeoutMs,
    200,
  );
}

/** mulberry32: a tiny seeded PRNG, so a failing storm can be replayed with the printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seed from `WORKBOOKS_FAULT_SEED` (to replay a failure), else a fresh one. */
export function seedFromEnv(): number {
  const s = process.env.WORKBOOKS_FAULT_SEED;
  if (s !== undefined && s !== '' && Number.isFinite(Number(s))) return Number(s) >>> 0;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

/** The edge named in a refusal message (`cannot move from X to Y: ...`), or null. */
export function refusedEdge(message: string): { from: State; to: State } | null {
  const m = /cannot move from (\w+) to (\w+)/.exec(message);
  return m ? { from: m[1] as State, to: m[2] as State } : null;
}

export function isIllegal(err: unknown): err is WorkbooksError {
  return err instanceof WorkbooksError && err.code === 'illegal_transition';
}
