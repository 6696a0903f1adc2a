import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  DEFAULT_POLICY,
  DurationError,
  MAX_DURATION_MS,
  MIN_RUNG_MS,
  Policy,
  PolicyError,
  STATES,
  State,
  autoNext,
  formatDuration,
  formatPolicy,
  idleDeadline,
  isState,
  nextStates,
  parseDuration,
  parsePolicy,
  rungFor,
  transition,
} from '../../src/lifecycle';

/** The legal edges, written out independently of EDGES. */
const LEGAL = new Set([
  'created→active',
  'active→suspended',
  'active→archived',
  'suspended→active',
  'suspended→frozen',
  'frozen→active',
  'frozen→archived',
  'archived→active',
  'archived→deleted',
]);
const ALL: State[] = ['created', 'active', 'suspended', 'frozen', 'archived', 'deleted'];

describe('states', () => {
  it('are exactly the six lifecycle states in life order', () => {
    assert.deepEqual([...STATES], ALL);
  });
  it('isState accepts the six and nothing else', () => {
    for (const s of ALL) assert.equal(isState(s), true, s);
    for (const v of ['', 'Active', 'ACTIVE', ' active', 'paused', 'toString', 'constructor', null, undefined, 1, {}, ['active']]) {
      assert.equal(isState(v), false, String(v));
    }
  });
});

describe('transition: all 36 (from, to) pairs', () => {
  it('the expected edge set has 9 edges over the 6 states', () => {
    assert.equal(LEGAL.size, 9);
    assert.equal(ALL.length * ALL.length, 36);
  });

  for (const from of ALL) {
    for (const to of ALL) {
      const legal = LEGAL.has(`${from}→${to}`);
      it(`${from} → ${to} is ${legal ? 'legal' : 'refused'}`, () => {
        const r = transition(from, to);
        if (legal) {
          assert.deepEqual(r, { ok: true, state: to });
        } else {
          assert.equal(r.ok, false);
          if (r.ok) return;
          assert.equal(r.error, 'invalid');
          assert.deepEqual(Object.keys(r).sort(), ['error', 'message', 'ok']);
          assert.ok(r.message.startsWith(`cannot move from ${from} to ${to}`), r.message);
          assert.ok(r.message.includes(from) && r.message.includes(to), r.message);
        }
      });
    }
  }

  it('counts: exactly 9 legal and 27 refused', () => {
    let ok = 0;
    let refused = 0;
    for (const from of ALL) for (const to of ALL) (transition(from, to).ok ? ok++ : refused++);
    assert.equal(ok, 9);
    assert.equal(refused, 27);
  });

  it('nextStates agrees with the literal edge set', () => {
    for (const from of ALL) {
      const expected = ALL.filter((to) => LEGAL.has(`${from}→${to}`));
      assert.deepEqual([...nextStates(from)].sort(), expected.sort(), from);
    }
    assert.deepEqual([...nextStates('deleted')], []);
  });

  it('refused messages say what is allowed, and deleted is terminal', () => {
    const r = transition('created', 'suspended');
    assert.deepEqual(r, {
      ok: false,
      error: 'invalid',
      message: 'cannot move from created to suspended: from created a workspace can only go to active',
    });
    const d = transition('deleted', 'active');
    assert.deepEqual(d, { ok: false, error: 'invalid', message: 'cannot move from deleted to active: deleted is terminal' });
  });

  it('unknown states are refused in either position', () => {
    const cases: [unknown, unknown, string][] = [
      ['paused', 'active', 'paused'],
      ['active', 'paused', 'paused'],
      ['', 'active', ''],
      ['Active', 'suspended', 'Active'],
      ['toString', 'active', 'toString'],
      ['active', 'constructor', 'constructor'],
      [undefined, 'active', 'undefined'],
      ['active', null, 'null'],
    ];
    for (const [from, to, bad] of cases) {
      const r = transition(from as State, to as State);
      assert.equal(r.ok, false);
      if (r.ok) continue;
      assert.equal(r.error, 'invalid');
      assert.ok(r.message.includes(`unknown state '${bad}'`), r.message);
    }
  });
});

describe('autoNext under the default policy', () => {
  it('active: 899s stays, 900s and 901s suspend', () => {
    assert.equal(autoNext('active', 0), null);
    assert.equal(autoNext('active', 899), null);
    assert.equal(autoNext('active', 899.999), null);
    assert.equal(autoNext('active', 900), 'suspended');
    assert.equal(autoNext('active', 901), 'suspended');
  });
  it('suspended: 86399s stays, 86400s freezes', () => {
    assert.equal(autoNext('suspended', 86399), null);
    assert.equal(autoNext('suspended', 86400), 'frozen');
    assert.equal(autoNext('suspended', 86401), 'frozen');
  });
  it('frozen, archived, created and deleted never move, even at huge idle', () => {
    for (const s of ['frozen', 'archived', 'created', 'deleted'] as const) {
      for (const idle of [0, 900, 86400, 10 * 365 * 86400, 1e12, Number.MAX_SAFE_INTEGER]) {
        assert.equal(autoNext(s, idle), null, `${s} at ${idle}`);
        assert.equal(autoNext(s, idle, DEFAULT_POLICY), null, `${s} at ${idle}`);
      }
    }
  });
  it('negative, NaN and infinite idle never move anything', () => {
    for (const s of ALL) {
      for (const idle of [-1, -0.001, -1e9, NaN, Infinity, -Infinity]) {
        assert.equal(autoNext(s, idle), null, `${s} at ${idle}`);
      }
    }
  });
});

describe('autoNext with policies', () => {
  const full = parsePolicy({ archiveAfter: '7d', deleteAfter: '30d' });
  it('opting in archives frozen at exactly 7d and deletes archived at exactly 30d', () => {
    assert.equal(autoNext('frozen', 7 * 86400 - 1, full), null);
    assert.equal(autoNext('frozen', 7 * 86400, full), 'archived');
    assert.equal(autoNext('archived', 30 * 86400 - 1, full), null);
    assert.equal(autoNext('archived', 30 * 86400, full), 'deleted');
    // The default rungs still hold.
    assert.equal(autoNext('active', 900, full), 'suspended');
    assert.equal(autoNext('suspended', 86400, full), 'frozen');
    // Terminal and initial states still never move.
    assert.equal(autoNext('created', 1e9, full), null);
    assert.equal(autoNext('deleted', 1e9, full), null);
  });
  it("'never' disables a rung", () => {
    const p = parsePolicy({ suspendAfter: 'never', archiveAfter: '7d', deleteAfter: 'never' });
    assert.equal(p.suspendAfterMs, null);
    assert.equal(autoNext('active', 1e9, p), null);
    assert.equal(autoNext('suspended', 86400, p), 'frozen');
    assert.equal(autoNext('frozen', 7 * 86400, p), 'archived');
    assert.equal(autoNext('archived', 1e9, p), null);
    const noFreeze = parsePolicy({ freezeAfter: null });
    assert.equal(autoNext('suspended', 1e9, noFreeze), null);
    assert.equal(autoNext('active', 900, noFreeze), 'suspended');
  });
  it("a custom short policy ('3s') moves after 3 seconds", () => {
    const p = parsePolicy({ suspendAfter: '3s', freezeAfter: '3s', archiveAfter: '3s', deleteAfter: '3s' });
    assert.deepEqual(p, { suspendAfterMs: 3000, freezeAfterMs: 3000, archiveAfterMs: 3000, deleteAfterMs: 3000 });
    const expected: Record<string, State | null> = { created: null, active: 'suspended', suspended: 'frozen', frozen: 'archived', archived: 'deleted', deleted: null };
    for (const s of ALL) {
      assert.equal(autoNext(s, 2.999, p), null, s);
      assert.equal(autoNext(s, 3, p), expected[s], s);
    }
  });
  it('a rung that is not a whole number of seconds fires exactly at its threshold', () => {
    const p = parsePolicy({ suspendAfter: '1s1ms', freezeAfter: '1.001s' });
    assert.equal(p.suspendAfterMs, 1001);
    assert.equal(p.freezeAfterMs, 1001);
    assert.equal(autoNext('active', 1.001, p), 'suspended');
    assert.equal(autoNext('active', 1.0009, p), null);
    assert.equal(autoNext('suspended', 1001 / 1000, p), 'frozen');
  });
  it('rungFor and idleDeadline report the rung', () => {
    assert.deepEqual(rungFor('active', DEFAULT_POLICY), { after: 900_000, to: 'suspended' });
    assert.deepEqual(rungFor('suspended', DEFAULT_POLICY), { after: 86_400_000, to: 'frozen' });
    assert.equal(rungFor('frozen', DEFAULT_POLICY), null);
    assert.equal(rungFor('deleted', full), null);
    assert.equal(idleDeadline('active', 1_000, DEFAULT_POLICY), 901_000);
    assert.equal(idleDeadline('frozen', 1_000, DEFAULT_POLICY), null);
    assert.equal(idleDeadline('archived', 0, full), 30 * 86_400_000);
  });
});

describe('parseDuration', () => {
  const good: [string | number, number][] = [
    ['15m', 900_000],
    ['24h', 86_400_000],
    ['3s', 3_000],
    ['1h30m', 5_400_000],
    ['500ms', 500],
    ['7d', 604_800_000],
    ['90', 90_000],
    ['0', 0],
    ['1.5h', 5_400_000],
    ['2d3h4m5s6ms', 2 * 86_400_000 + 3 * 3_600_000 + 4 * 60_000 + 5_000 + 6],
    [' 15m ', 900_000],
    ['3650d', MAX_DURATION_MS],
    [90, 90_000],
    [1.5, 1_500],
    [0, 0],
  ];
  for (const [input, ms] of good) {
    it(`${JSON.stringify(input)} → ${ms} ms`, () => {
      assert.equal(parseDuration(input), ms);
    });
  }

  const bad: [unknown, RegExp][] = [
    ['', /empty/],
    ['   ', /empty/],
    ['abc', /is not a duration/],
    ['-5m', /is not a duration/],
    ['15x', /is not a duration/],
    // Documented forms have no spaces between parts: '1h 30m' is refused.
    ['1h 30m', /is not a duration/],
    ['m', /is not a duration/],
    ['1.h', /is not a duration/],
    ['3651d', /10-year maximum/],
    ['87601h', /10-year maximum/],
    [String(MAX_DURATION_MS / 1000 + 1), /10-year maximum/],
    ['99999999999999999999999d', /10-year maximum/],
    [-5, /non-negative/],
    [NaN, /non-negative/],
    [Infinity, /non-negative/],
    [null, /must be a string/],
    [{}, /must be a string/],
  ];
  for (const [input, re] of bad) {
    it(`${typeof input === 'string' ? JSON.stringify(input) : String(input)} is refused`, () => {
      assert.throws(
        () => parseDuration(input as string, 'policy.x'),
        (err: unknown) => {
          assert.ok(err instanceof DurationError);
          assert.equal(err.name, 'DurationError');
          assert.match(err.message, re);
          assert.match(err.message, /policy\.x/);
          return true;
        },
      );
    });
  }

  it('formatDuration is the inverse on whole milliseconds', () => {
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(5_400_000), '1h30m');
    assert.equal(formatDuration(900_000), '15m');
    assert.equal(formatDuration(1001), '1s1ms');
    assert.equal(formatDuration(604_800_000 + 1), '7d1ms');
    fc.assert(
      fc.property(fc.integer({ min: 0, max: MAX_DURATION_MS }), (ms) => {
        assert.equal(parseDuration(formatDuration(ms)), ms);
      }),
    );
  });
});

describe('parsePolicy', () => {
  it('undefined, null and {} give the defaults (15m, 24h, never, never)', () => {
    const expected = { suspendAfterMs: 900_000, freezeAfterMs: 86_400_000, archiveAfterMs: null, deleteAfterMs: null };
    assert.deepEqual(parsePolicy(undefined), expected);
    assert.deepEqual(parsePolicy(null), expected);
    assert.deepEqual(parsePolicy({}), expected);
    assert.deepEqual({ ...DEFAULT_POLICY }, expected);
  });
  it('returns a copy, never the frozen default itself', () => {
    const p = parsePolicy(undefined);
    assert.notEqual(p, DEFAULT_POLICY);
    p.suspendAfterMs = 1;
    assert.equal(DEFAULT_POLICY.suspendAfterMs, 900_000);
  });
  it('takes every rung', () => {
    assert.deepEqual(parsePolicy({ suspendAfter: '1m', freezeAfter: '2h', archiveAfter: '7d', deleteAfter: '30d' }), {
      suspendAfterMs: 60_000,
      freezeAfterMs: 7_200_000,
      archiveAfterMs: 604_800_000,
      deleteAfterMs: 2_592_000_000,
    });
  });
  it('refuses unknown keys, naming them', () => {
    assert.throws(() => parsePolicy({ suspendAfter: '1m', sleepAfter: '2m' }), (e: unknown) => e instanceof PolicyError && /unknown field\(s\) sleepAfter/.test(e.message));
    assert.throws(() => parsePolicy({ suspendAfterMs: 1000 }), (e: unknown) => e instanceof PolicyError && /suspendAfterMs/.test(e.message));
  });
  it('refuses non-objects', () => {
    for (const spec of ['15m', 15, true, ['15m']]) {
      assert.throws(() => parsePolicy(spec), (e: unknown) => e instanceof PolicyError && /must be an object/.test(e.message), String(spec));
    }
  });
  it('refuses non-string rungs', () => {
    for (const v of [900, true, {}, ['15m']]) {
      assert.throws(
        () => parsePolicy({ suspendAfter: v }),
        (e: unknown) => e instanceof PolicyError && e.message === "policy.suspendAfter must be a duration string like '15m' or 'never'",
        JSON.stringify(v),
      );
    }
  });
  it('refuses unparseable rungs with the duration message as a PolicyError', () => {
    assert.throws(() => parsePolicy({ freezeAfter: '1 day' }), (e: unknown) => e instanceof PolicyError && /policy\.freezeAfter '1 day' is not a duration/.test(e.message));
    assert.throws(() => parsePolicy({ deleteAfter: '3651d' }), (e: unknown) => e instanceof PolicyError && /10-year maximum/.test(e.message));
    assert.throws(() => parsePolicy({ archiveAfter: '' }), (e: unknown) => e instanceof PolicyError && /empty/.test(e.message));
  });
  it('refuses rungs below 1s, accepts exactly 1s', () => {
    assert.equal(MIN_RUNG_MS, 1000);
    for (const v of ['999ms', '500ms', '0', '0s', '0.5s']) {
      assert.throws(() => parsePolicy({ suspendAfter: v }), (e: unknown) => e instanceof PolicyError && /at least 1s/.test(e.message), v);
    }
    assert.equal(parsePolicy({ suspendAfter: '1s' }).suspendAfterMs, 1000);
    assert.equal(parsePolicy({ suspendAfter: '1000ms' }).suspendAfterMs, 1000);
  });
  it('formatPolicy gives the wire form and round-trips', () => {
    assert.deepEqual(formatPolicy(DEFAULT_POLICY), { suspendAfter: '15m', freezeAfter: '1d', archiveAfter: 'never', deleteAfter: 'never' });
    const p = parsePolicy({ suspendAfter: '1h30m', freezeAfter: 'never', archiveAfter: '7d', deleteAfter: '500s' });
    assert.deepEqual(formatPolicy(p), { suspendAfter: '1h30m', freezeAfter: 'never', archiveAfter: '7d', deleteAfter: '8m20s' });
    assert.deepEqual(parsePolicy(formatPolicy(p)), p);
  });
});

// ---- properties ----

const rungMs = fc.option(fc.integer({ min: MIN_RUNG_MS, max: MAX_DURATION_MS }), { nil: null });
/** A random policy built through its wire form, so parsePolicy is exercised too. */
const policyArb = fc.tuple(rungMs, rungMs, rungMs, rungMs).map(([a, b, c, d]): Policy => {
  const spec = formatPolicy({ suspendAfterMs: a, freezeAfterMs: b, archiveAfterMs: c, deleteAfterMs: d });
  const p = parsePolicy(spec);
  assert.deepEqual(p, { suspendAfterMs: a, freezeAfterMs: b, archiveAfterMs: c, deleteAfterMs: d });
  return p;
});
const LADDER: Record<State, State | null> = { created: null, active: 'suspended', suspended: 'frozen', frozen: 'archived', archived: 'deleted', deleted: null };

describe('properties', () => {
  it('a model that only follows transition() never leaves the legal edge set', () => {
    type Cmd = { kind: 'move'; to: string } | { kind: 'idle'; seconds: number };
    const cmd: fc.Arbitrary<Cmd> = fc.oneof(
      fc.record({ kind: fc.constant('move' as const), to: fc.oneof(fc.constantFrom(...ALL), fc.constantFrom('paused', '', 'ACTIVE', 'toString')) }),
      fc.record({ kind: fc.constant('idle' as const), seconds: fc.oneof(fc.double({ min: -10, max: 4e8, noNaN: false }), fc.integer({ min: 0, max: 86400 * 40 })) }),
    );
    fc.assert(
      fc.property(policyArb, fc.array(cmd, { maxLength: 60 }), (policy, cmds) => {
        let state: State = 'created';
        for (const c of cmds) {
          const to: string | null = c.kind === 'move' ? c.to : autoNext(state, c.seconds, policy);
          if (to === null) continue;
          const r = transition(state, to as State);
          const legal: boolean = isState(to) && LEGAL.has(`${state}→${to}`);
          assert.equal(r.ok, legal, `${state}→${to}`);
          if (c.kind === 'idle') {
            // The ladder only ever proposes its own rung, and every rung is a legal edge.
            assert.equal(to, LADDER[state]);
            assert.equal(r.ok, true, `ladder ${state}→${to}`);
          }
          if (r.ok) {
            assert.ok(LEGAL.has(`${state}→${r.state}`));
            state = r.state;
          } else {
            assert.equal(r.error, 'invalid');
          }
          assert.ok(isState(state));
        }
      }),
      { numRuns: 300 },
    );
  });

  it('idleDeadline and autoNext agree to the millisecond', () => {
    fc.assert(
      fc.property(policyArb, fc.constantFrom(...ALL), fc.integer({ min: 0, max: 4_000_000_000_000 }), (policy, state, since) => {
        const deadline = idleDeadline(state, since, policy);
        const rung = rungFor(state, policy);
        if (deadline === null) {
          assert.equal(rung, null);
          assert.equal(autoNext(state, MAX_DURATION_MS / 1000 + 1, policy), null);
          return;
        }
        assert.ok(rung);
        assert.equal(rung.to, LADDER[state]);
        assert.equal(deadline - since, rung.after);
        assert.equal(autoNext(state, (deadline - since) / 1000, policy), rung.to);
        assert.equal(autoNext(state, (deadline + 1 - since) / 1000, policy), rung.to);
        assert.equal(autoNext(state, (deadline - 1 - since) / 1000, policy), null);
      }),
      { numRuns: 2000 },
    );
  });
});
