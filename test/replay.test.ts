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
import { quietRuntime, workflowBundle } from './helpers/stack';

const dir = path.resolve(__dirname, '../../test/fixtures/histories');
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort() : [];

describe('replay of recorded histories', () => {
  it('has recorded fixtures to replay', () => {
    assert.ok(files.length >= 3, `expected recorded histories in ${dir}, found ${files.length}`);
  });

  for (const file of files) {
    it(`replays ${file} deterministically`, async () => {
      quietRuntime();
      const history = historyFromJSON(JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8')));
      assert.ok((history.events ?? []).length > 10, 'fixture has a real history');
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, path.basename(file, '.json'));
    });
  }
});
