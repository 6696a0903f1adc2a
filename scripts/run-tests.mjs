#!/usr/bin/env node
// Runs every compiled test file (dist/test/**/*.test.js) with node's test runner, one file at a time: the unit
// tests (test/unit: no servers) and the integration tests (test/integration: real Temporal, Litestream, S3
// servers and worker processes). A compiled file whose source test/**/*.test.ts is gone (a stale build) is not
// run. Node 20's `--test` takes no globs, so the files are found here. Usage:
//   node scripts/run-tests.mjs [filter ...]   (a filter is a substring of the file path; any match runs)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const testDir = path.join(root, 'dist', 'test');

function findTests(dir) {
  let out = [];
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (err.code === 'ENOENT') return out;
    throw err;
  }
  for (const e of entries) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out = out.concat(findTests(p));
    else if (e.isFile() && e.name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const sourceOf = (compiled) => path.join(root, path.relative(path.join(root, 'dist'), compiled)).replace(/\.js$/, '.ts');
const all = findTests(testDir)
  .filter((p) => fs.existsSync(sourceOf(p)))
  .map((p) => path.relative(root, p))
  .sort();
const files = filters.length === 0 ? all : all.filter((f) => filters.some((s) => f.includes(s)));

if (all.length === 0) {
  console.error(`run-tests: no dist/test/**/*.test.js files; build first (npm run bootstrap)`);
  process.exit(1);
}
if (files.length === 0) {
  console.error(`run-tests: no test file matches ${filters.map((f) => `'${f}'`).join(', ')}`);
  process.exit(1);
}

console.log(`run-tests: ${files.length} file(s)${filters.length ? ` matching ${filters.join(', ')}` : ''}:`);
for (const f of files) console.log(`  ${f}`);

// Every test and suite is bounded (the longest suite, the kill-point faults, takes about 3.5 min): a test stuck on
// a dead worker or server fails after 15 min instead of holding CI until its own limit.
const TEST_TIMEOUT_MS = 15 * 60 * 1000;
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', `--test-timeout=${TEST_TIMEOUT_MS}`, ...files], { cwd: root, stdio: 'inherit' });
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => child.kill(sig));
child.on('exit', (code, signal) => {
  if (signal) {
    console.error(`run-tests: test runner killed by ${signal}`);
    process.exit(1);
  }
  process.exit(code ?? 1);
});
