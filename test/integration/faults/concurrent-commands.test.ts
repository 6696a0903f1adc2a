/**
 * Fault injection: 100 concurrent, conflicting commands on one workspace (updates and signals mixed, fired at
 * once) against a real dev server and a real worker host. Whatever order they land in, the outcome must be a
 * legal sequence of moves, the ledger must match it, each caller must have been told the truth, and the
 * workspace's bytes must survive.
 *
 * Every command carries a unique `reason` (`storm-<i>`), so each ledger line is tied to the command that caused
 * it. The storm adds at most one line per command and the workspace starts with one (its creation), so the
 * whole story fits in the ledger's 100-entry tail (`LEDGER_KEEP`), even across a continue-as-new.
 *
 * Two storms: all 100 fired in the same instant; and 100 in four waves (each spread over 1.5 s; the next wave
 * starts as soon as the workflow is idle) on a workspace whose runs are kept short (`historyLimit`), so the
 * workflow continues as new between waves and the next wave's first commands race with that continue-as-new.
 * Replay a failing mix with WORKBOOKS_FAULT_SEED=<seed printed below>.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { startTestDevServer } from '../../../harness/temporal';
import { clientFor, eventually, startTestHost, TestHost, uniqueQueue } from '../../../harness/stack';
import { WorkbooksClient } from '../../../src/client/workbooks-client';
import { WorkbooksError } from '../../../src/client/errors';
import { State, transition } from '../../../src/lifecycle';
import type { LedgerEntry, WakeResult, WorkspaceDescription } from '../../../src/contract/types';
import { LEDGER_KEEP } from '../../../src/workflows/workspace-model';
import { workflowIdFor } from '../../../src/contract/ids';
import { STATE_KEY, TENANT_KEY } from '../../../src/contract/search-attributes';
import { LedgerWalk, isIllegal, prng, refusedEdge, seedFromEnv, waitIdle, walkLedger } from './ledger-check';

type Server = Awaited<ReturnType<typeof startTestDevServer>>;

const STORM = 100;

type Kind =
  | { via: 'update'; op: 'wake' }
  | { via: 'update'; op: 'transition'; to: 'suspended' | 'frozen' | 'archived' }
  | { via: 'signal'; op: 'wake' | 'suspend' | 'freeze' | 'archive' };

/**
 * The mix: every move but delete, by update and by signal, so most commands conflict with the state they meet.
 * Wakes by update use the `wake` update; `transition {to: 'active'}` has its own case at the end of this file (on
 * an active workspace it is refused whether or not it had to queue).
 */
const KINDS: Kind[] = [
  { via: 'update', op: 'wake' },
  { via: 'update', op: 'transition', to: 'suspended' },
  { via: 'update', op: 'transition', to: 'frozen' },
  { via: 'update', op: 'transition', to: 'archived' },
  { via: 'signal', op: 'wake' },
  { via: 'signal', op: 'suspend' },
  { via: 'signal', op: 'freeze' },
  { via: 'signal', op: 'archive' },
];

const SIGNAL_TO: Record<string, State> = { wake: 'active', suspend: 'suspended', freeze: 'frozen', archive: 'archived' };

function targetOf(k: Kind): State {
  if (k.op === 'transition') return k.to;
  return SIGNAL_TO[k.op]!;
}

interface Fired {
  i: number;
  kind: Kind;
  reason: string;
  outcome: PromiseSettledResult<unknown>;
}

const seed = seedFromEnv();
let server: Server;
let host: TestHost;
let wb: WorkbooksClient;

interface Storm {
  id: string;
  tenant: string;
  seed: number;
  fired: Fired[];
  settled: WorkspaceDescription;
  stormEntries: LedgerEntry[];
  walk?: LedgerWalk;
  files: Map<string, { volume: string; data: Buffer }>;
  /** When the first and the last command were sent (epoch ms). */
  window: { from: number; to: number };
}

function label(s: Storm, f: Fired): string {
  const k = f.kind;
  return `${s.id} ${f.reason} (${k.via} ${k.op === 'transition' ? `transition to ${k.to}` : k.op}; seed ${s.seed})`;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Creates workspace `id`, writes some files, then sends STORM random commands: all at once, or in `waves`
 * (default 1), each command of a wave after a random delay of up to `spreadMs`, the next wave once the workflow
 * is idle again. Waits for every caller to have its answer and the workflow to be idle.
 */
async function runStorm(id: string, stormSeed: number, opts: { spreadMs?: number; waves?: number; historyLimit?: number } = {}): Promise<Storm> {
  const tenant = `${id}-tenant`;
  if (opts.historyLimit !== undefined) {
    // Internal tuning knob (not in the client): short runs, so the storm crosses continue-as-new.
    await server.client.workflow.start('workspace', {
      workflowId: workflowIdFor(id),
      taskQueue: wb.taskQueue,
      args: [{ workspaceId: id, tenant, historyLimit: opts.historyLimit }],
      typedSearchAttributes: [
        { key: STATE_KEY, value: 'created' },
        { key: TENANT_KEY, value: tenant },
      ],
    });
    await wb.wake(id);
  } else {
    await wb.create({ workspaceId: id, tenant });
  }
  const files = new Map<string, { volume: string; data: Buffer }>();
  files.set('/book.md', { volume: 'workspace', data: crypto.randomBytes(64 * 1024) });
  files.set('/nested/dir/notes.bin', { volume: 'workspace', data: crypto.randomBytes(3 * 1024 * 1024 + 17) });
  files.set('/learned.txt', { volume: 'memory', data: Buffer.from('what the agent learned, byte for byte \u00e9\u4e2d') });
  for (const [p, f] of files) await wb.putFile(id, f.volume, p, f.data);
  const start = await wb.describe(id);
  assert.equal(start.state, 'active');
  assert.equal(start.ledger.length, 1, 'a new workspace has one ledger entry (its creation)');

  const rnd = prng(stormSeed);
  const plan = Array.from({ length: STORM }, (_, i) => ({
    i,
    kind: KINDS[Math.floor(rnd() * KINDS.length)]!,
    reason: `storm-${i}`,
    delay: opts.spreadMs ? Math.floor(rnd() * opts.spreadMs) : 0,
  }));
  const send = ({ kind, reason }: (typeof plan)[number]): Promise<unknown> => {
    const actor = { reason, by: kind.via };
    if (kind.via === 'signal') return wb.signal(id, kind.op, actor);
    if (kind.op === 'wake') return wb.wake(id, actor);
    return wb.transition(id, kind.to, actor);
  };
  // Fire everything before awaiting anything.
  const sentAt: number[] = [];
  const timed = (c: (typeof plan)[number]) => {
    sentAt.push(Date.now());
    return send(c);
  };
  const waves = opts.waves ?? 1;
  const perWave = Math.ceil(STORM / waves);
  const outcomes: PromiseSettledResult<unknown>[] = [];
  for (let w = 0; w < waves; w++) {
    const wave = plan.slice(w * perWave, (w + 1) * perWave);
    const promises: Promise<unknown>[] = wave.map((c) => (c.delay ? sleep(c.delay).then(() => timed(c)) : timed(c)));
    outcomes.push(...(await Promise.allSettled(promises)));
    if (w < waves - 1) {
      await waitIdle(wb, id, 120_000);
      await sleep(Math.floor(rnd() * 200));
    }
  }
  const fired = plan.map((p, i) => ({ i: p.i, kind: p.kind, reason: p.reason, outcome: outcomes[i]! }));
  const settled = await waitIdle(wb, id, 120_000);
  const stormEntries = settled.ledger.filter((e) => e.reason.startsWith('storm-'));
  const tally = (o: string) => settled.ledger.filter((e) => e.outcome === o).length;
  const updates = fired.filter((f) => f.kind.via === 'update');
  console.log(
    `concurrent-commands ${id}: final ${settled.state} after ${settled.runs} continue-as-new; ledger ${settled.ledger.length} ` +
      `(done ${tally('done')}, refused ${tally('refused')}, failed ${tally('failed')}); ` +
      `updates ok ${updates.filter((f) => f.outcome.status === 'fulfilled').length}, rejected ${updates.filter((f) => f.outcome.status === 'rejected').length}`,
  );
  return { id, tenant, seed: stormSeed, fired, settled, stormEntries, files, window: { from: Math.min(...sentAt), to: Math.max(...sentAt) } };
}

/** The checks every storm must pass. */
function stormChecks(get: () => Storm): void {
  it('every signal was delivered and every update answered with a result or a refusal', () => {
    const s = get();
    for (const f of s.fired) {
      if (f.outcome.status === 'fulfilled') continue;
      const err = f.outcome.reason as Error;
      assert.ok(f.kind.via === 'update', `${label(s, f)}: the signal was not delivered: ${err.message}`);
      assert.ok(isIllegal(err), `${label(s, f)}: failed with something other than a refusal: ${(err as WorkbooksError).code ?? ''} ${err.message}`);
    }
  });

  it('the ledger is a chain of legal moves from created, refusals are illegal edges, and it ends in the final state', () => {
    const s = get();
    const ledger = s.settled.ledger;
    // Creation plus at most one line per command: nothing may have been cut from the 100-entry tail except creation.
    assert.ok(ledger.length <= LEDGER_KEEP, `ledger holds ${ledger.length} entries`);
    const first = ledger[0]!;
    const startsWithCreation = first.from === 'created';
    if (startsWithCreation) {
      assert.deepEqual([first.from, first.to, first.outcome, first.by], ['created', 'active', 'done', 'workbooks']);
    } else {
      assert.equal(ledger.length, LEDGER_KEEP, 'the creation entry is only gone when the tail is full');
    }
    const walk = walkLedger(ledger, startsWithCreation ? 'created' : 'active', `${s.id} seed ${s.seed}`);
    s.walk = walk;
    assert.equal(s.settled.state, walk.final, 'the state is where the chain of done moves ends');
    assert.equal(s.settled.state, walk.done.at(-1)!.to, 'final state equals the last done entry');
    // Every line after creation comes from one storm command; no idle-policy move or anything else slipped in.
    const others = ledger.filter((e) => !e.reason.startsWith('storm-') && e.from !== 'created');
    assert.deepEqual(others, [], 'only storm commands moved the workspace');
    // The storm really conflicted: a run with no moves or no refusals would prove nothing.
    assert.ok(walk.done.length - (startsWithCreation ? 1 : 0) >= 5, `only ${walk.done.length} moves were done`);
    assert.ok(walk.refused.length >= 1, 'no command was refused');
  });

  it('no command was carried out twice, and each ledger line is a move toward what its command asked for', () => {
    const s = get();
    const byReason = new Map<string, LedgerEntry[]>();
    for (const e of s.stormEntries) byReason.set(e.reason, [...(byReason.get(e.reason) ?? []), e]);
    for (const f of s.fired) {
      const lines = byReason.get(f.reason) ?? [];
      assert.ok(lines.length <= 1, `${label(s, f)}: recorded ${lines.length} times: ${JSON.stringify(lines)}`);
      const e = lines[0];
      if (!e) continue;
      assert.equal(e.to, targetOf(f.kind), `${label(s, f)}: recorded as a move to ${e.to}`);
      assert.equal(e.by, f.kind.via, `${label(s, f)}: recorded with by=${e.by}`);
    }
    assert.ok([...byReason.keys()].every((r) => s.fired.some((f) => f.reason === r)), 'every storm line belongs to a command that was sent');
  });

  it('each update was told the truth: success exactly when its move is done in the ledger, refusal otherwise', () => {
    const s = get();
    const entryOf = new Map(s.stormEntries.map((e) => [e.reason, e]));
    const visited = s.walk?.visited ?? walkLedger(s.settled.ledger, s.settled.ledger[0]!.from, s.id).visited;
    for (const f of s.fired) {
      if (f.kind.via !== 'update') continue;
      const e = entryOf.get(f.reason);
      if (f.outcome.status === 'fulfilled') {
        if (f.kind.op === 'wake') {
          const w = f.outcome.value as WakeResult;
          assert.equal(w.state, 'active', `${label(s, f)}`);
          if (w.path === 'warm') {
            // Already active: not a move, nothing recorded.
            assert.equal(e, undefined, `${label(s, f)}: a warm wake left a ledger line ${JSON.stringify(e)}`);
          } else {
            assert.ok(e && e.outcome === 'done', `${label(s, f)}: answered ${w.path} but the ledger has ${JSON.stringify(e)}`);
            assert.equal(e.to, 'active');
            // A wake from local disk is from suspended; from frozen or archived the file comes from a stored copy.
            assert.equal(w.path, e.from === 'suspended' ? 'local' : 'cold', `${label(s, f)}: path ${w.path} for a wake from ${e.from}`);
          }
        } else {
          const r = f.outcome.value as { from: State; state: State };
          assert.ok(e && e.outcome === 'done', `${label(s, f)}: answered ${r.from} -> ${r.state} but the ledger has ${JSON.stringify(e)}`);
          assert.deepEqual([r.from, r.state], [e.from, e.to], `${label(s, f)}: answer differs from the ledger`);
        }
      } else {
        const err = f.outcome.reason as WorkbooksError;
        assert.ok(isIllegal(err), `${label(s, f)}: ${err.message}`);
        assert.notEqual(f.kind.op, 'wake', `${label(s, f)}: a wake of a live workspace was refused: ${err.message}`);
        if (e) {
          // Accepted, then refused when its turn came: the answer is the ledger's reason.
          assert.equal(e.outcome, 'refused', `${label(s, f)}: refused to the caller but ${e.outcome} in the ledger`);
          assert.equal(err.message, e.detail, `${label(s, f)}: refusal message`);
        } else {
          // Refused by the validator, before anything was recorded: the edge it names must really be illegal,
          // from a state the workspace was actually in (or moving into).
          const edge = refusedEdge(err.message);
          assert.ok(edge, `${label(s, f)}: refusal does not name an edge: ${err.message}`);
          assert.equal(edge.to, targetOf(f.kind), `${label(s, f)}: ${err.message}`);
          assert.ok(!transition(edge.from, edge.to).ok, `${label(s, f)}: refused a legal edge: ${err.message}`);
          assert.ok(visited.includes(edge.from), `${label(s, f)}: refused from ${edge.from}, a state the workspace was never in`);
        }
      }
    }
    // And the other way round: every done move an update asked for was reported to it as a success.
    for (const e of s.stormEntries.filter((x) => x.by === 'update' && x.outcome === 'done')) {
      const f = s.fired.find((x) => x.reason === e.reason)!;
      assert.equal(f.outcome.status, 'fulfilled', `${label(s, f)}: done in the ledger but the caller was told it failed`);
    }
  });

  it('every move signal left exactly one line; a wake signal left one only when it moved the workspace', () => {
    const s = get();
    const entryOf = new Map(s.stormEntries.map((e) => [e.reason, e]));
    for (const f of s.fired) {
      if (f.kind.via !== 'signal') continue;
      const e = entryOf.get(f.reason);
      if (f.kind.op === 'wake') {
        // A wake on an active workspace only counts as use; any other wake of a live workspace is a move.
        if (e) assert.deepEqual([e.to, e.outcome], ['active', 'done'], `${label(s, f)}: ${JSON.stringify(e)}`);
      } else {
        assert.ok(e, `${label(s, f)}: no ledger line (signals are never dropped silently)`);
        assert.ok(e.outcome === 'done' || e.outcome === 'refused', `${label(s, f)}: ${e.outcome}`);
      }
    }
  });

  it('the search attribute WorkbookState agrees with the final state', async () => {
    const s = get();
    await eventually(
      async () => (await wb.list({ tenant: s.tenant })).find((r) => r.workspaceId === s.id)?.state === s.settled.state,
      `WorkbookState of ${s.id} to be ${s.settled.state}`,
      30_000,
      250,
    );
  });

  it('the data written before the storm is byte-identical after a final wake', async () => {
    const s = get();
    const w = await wb.wake(s.id, { reason: 'after the storm', by: 'test' });
    assert.equal(w.state, 'active');
    for (const [p, f] of s.files) {
      const got = await wb.getFile(s.id, f.volume, p);
      assert.equal(got.length, f.data.length, `${f.volume}${p} size`);
      assert.ok(got.equals(f.data), `${f.volume}${p} differs after the storm`);
    }
    const d = await wb.describe(s.id);
    assert.equal(d.state, 'active');
    assert.deepEqual(d.ledger.filter((e) => e.outcome === 'failed'), []);
    await eventually(async () => (await wb.list({ tenant: s.tenant })).find((r) => r.workspaceId === s.id)?.state === 'active', 'WorkbookState active after the wake', 30_000, 250);
  });
}

describe('100 concurrent conflicting commands on one workspace', { concurrency: false }, () => {
  before(async () => {
    console.log(`concurrent-commands: seed ${seed} (replay with WORKBOOKS_FAULT_SEED=${seed})`);
    server = await startTestDevServer();
    const taskQueue = uniqueQueue('storm');
    host = await startTestHost({ connection: server.connection, client: server.client, taskQueue, hostId: 'storm-host' });
    wb = clientFor(server.client, taskQueue);
  });

  after(async () => {
    await host?.stop();
    await server?.stop();
  });

  describe('all fired in the same instant', { concurrency: false }, () => {
    let storm: Storm;
    before(async () => {
      storm = await runStorm('storm', seed);
    });
    stormChecks(() => storm);
  });

  describe('in four waves while the workflow keeps continuing as new', { concurrency: false }, () => {
    let storm: Storm;
    before(async () => {
      storm = await runStorm('storm-can', (seed + 1) >>> 0, { waves: 4, spreadMs: 1_500, historyLimit: 50 });
    });
    it('the workflow continued as new while commands were arriving', async () => {
      assert.ok(storm.settled.runs >= 1, `no continue-as-new happened (runs ${storm.settled.runs})`);
      // The runs of this workflow id whose lifetime overlaps the time the commands were being sent.
      const overlapping = await eventually(
        async () => {
          const runs: { start: number; close: number | null }[] = [];
          for await (const r of server.client.workflow.list({ query: `WorkflowId = '${workflowIdFor(storm.id)}'` })) {
            runs.push({ start: r.startTime.getTime(), close: r.closeTime?.getTime() ?? null });
          }
          if (runs.length !== storm.settled.runs + 1) return null; // visibility not caught up yet
          return runs.filter((r) => r.start <= storm.window.to && (r.close === null || r.close >= storm.window.from));
        },
        'every run of the workflow to be visible',
        30_000,
        250,
      );
      assert.ok(overlapping.length >= 2, `the commands all arrived within one run (${storm.settled.runs} continue-as-new in total)`);
    });
    stormChecks(() => storm);
  });

  it(
    'a transition to active on an active workspace gets the same answer whether or not it had to queue',
    async () => {
      const id = 'queued-active';
      await wb.create({ workspaceId: id, tenant: 'storm-extra' });
      // Nothing queued: the validator refuses active -> active (not a legal edge).
      const idle = await wb.transition(id, 'active', { reason: 'idle', by: 'update' }).then(
        (r) => ({ ok: true as const, r }),
        (e: Error) => ({ ok: false as const, e }),
      );
      assert.ok(!idle.ok && isIllegal(idle.e), `with nothing queued: ${JSON.stringify(idle)}`);
      // Queued behind a suspend and a wake: when its turn comes, the workspace is active again.
      await wb.signal(id, 'suspend', { reason: 'ahead-1', by: 'signal' });
      await wb.signal(id, 'wake', { reason: 'ahead-2', by: 'signal' });
      const queued = await wb.transition(id, 'active', { reason: 'queued', by: 'update' }).then(
        (r) => ({ ok: true as const, r }),
        (e: Error) => ({ ok: false as const, e }),
      );
      const d = await waitIdle(wb, id);
      // Precondition: the second request really was accepted into the queue (a validator refusal leaves no event).
      const history = await wb.handle(id).fetchHistory();
      const accepted = (history.events ?? []).filter((e) => e.workflowExecutionUpdateAcceptedEventAttributes?.acceptedRequest?.input?.name === 'transition');
      assert.equal(accepted.length, 1, 'the queued transition was accepted (it arrived while the suspend ran)');
      assert.deepEqual(
        d.ledger.map((e) => `${e.from}->${e.to} ${e.outcome}`),
        ['created->active done', 'active->suspended done', 'suspended->active done', ...(queued.ok ? [] : ['active->active refused'])],
      );
      // Same request, same state when it runs: same answer (a refusal, recorded like any queued illegal update).
      assert.ok(!queued.ok, `queued behind other commands it answered ${JSON.stringify(queued.ok ? queued.r : null)} with no ledger line`);
      assert.ok(isIllegal(queued.e) && queued.e.message === (idle.ok ? '' : idle.e.message), queued.e.message);
    },
  );
});
