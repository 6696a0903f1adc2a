/**
 * Replays recorded workflow histories (test/fixtures/histories/*.json) against the current workflow code.
 * A non-deterministic change to the workflow fails here. Record new fixtures with
 * `node dist/scripts/record-histories.js` after an intended, versioned change.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Worker } from '@temporalio/worker';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils';
import { quietRuntime, workflowBundle } from '../../harness/stack';

const dir = path.resolve(__dirname, '../../../test/fixtures/histories');
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];

/**
 * 40929b1, the first complete-ledger build, also wrote a ledger page before continuing as new and before the next
 * queued command; d484819 (landed with 813ffab) writes pages only after a move, without a patch. Both kinds of run
 * start with the same markers (cheap-moves, local-stop, ledger-archive) and no later marker tells them apart, so only
 * one kind can replay: the newer, which every build since writes. A workflow stuck on a 40929b1 run is reset to before
 * its first page write at continue-as-new (`temporal workflow reset`); its ledger entries are in its carried tail.
 */
const LEDGER_PAGES_40929B1 =
  'a 40929b1 run wrote a ledger page at continue-as-new (and before a queued command); since d484819 no page is written ' +
  'there, with no marker to tell the two kinds of run apart';

/**
 * Histories that cannot replay on this code, and why. Each must still fail here with a nondeterminism error
 * (asserted below): the list says what is known, and a change that makes one replay takes it off the list.
 */
const KNOWN_INCOMPATIBLE: Record<string, string> = {
  'old-299b120-warm-wake-no-host.json':
    'a wake of an active workspace without a host answered warm before 299b120 and recovers it since; that change ' +
    'landed without a patch, and its two kinds of history differ with no marker to tell them apart, so only the newer ' +
    'kind replays (rec3-warm-wake-no-host.json); a workflow stuck on the older kind is reset to before that wake',
  'old-40929b1-ledger-pages-run1.json': LEDGER_PAGES_40929B1,
  'old-40929b1-ledger-pages-run2.json': LEDGER_PAGES_40929B1,
};

describe('replay of recorded histories', () => {
  it('has recorded fixtures to replay', () => {
    assert.ok(files.length >= 3, `expected recorded histories in ${dir}, found ${files.length}`);
  });

  for (const file of files) {
    it(`${KNOWN_INCOMPATIBLE[file] ? 'fails, as documented, to replay' : 'replays'} ${file}${KNOWN_INCOMPATIBLE[file] ? '' : ' deterministically'}`, async () => {
      quietRuntime();
      const history = historyFromJSON(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')));
      assert.ok((history.events ?? []).length >= 5, 'fixture has a real history (at least a start, a workflow task and a close)');
      const replay = Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, path.basename(file, '.json'));
      if (KNOWN_INCOMPATIBLE[file]) {
        await assert.rejects(replay, { name: 'DeterminismViolationError' }, `${file} is listed as incompatible: ${KNOWN_INCOMPATIBLE[file]}`);
      } else {
        await replay;
      }
    });
  }
});
