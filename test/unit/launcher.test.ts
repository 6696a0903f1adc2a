/** bin/workbooks, the launcher of every workbooks process: what it sets before it starts node. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';

const ROOT = path.resolve(__dirname, '..', '..', '..');

test('bin/workbooks runs node with at most two malloc arenas unless MALLOC_ARENA_MAX is set', (t) => {
  // A `node` first on PATH that prints what the launcher gave it.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wb-launcher-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'node'), '#!/bin/sh\necho "arenas=${MALLOC_ARENA_MAX-unset} main=$1 args=$2"\n', { mode: 0o755 });
  const run = (extra: Record<string, string>) => {
    const env: Record<string, string> = { PATH: `${dir}:/usr/bin:/bin`, ...extra };
    return execFileSync(path.join(ROOT, 'bin', 'workbooks'), ['worker'], { env, encoding: 'utf8' }).trim();
  };
  assert.equal(run({}), `arenas=2 main=${fs.realpathSync(ROOT)}/dist/src/cli/main.js args=worker`);
  assert.match(run({ MALLOC_ARENA_MAX: '8' }), /^arenas=8 /, 'an operator value wins');
});
