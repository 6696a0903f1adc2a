/**
 * Builds the workflow bundle once, after tsc (`npm run build`, scripts/bootstrap.sh): dist/workflow-bundle.js and
 * dist/workflow-bundle.json (the hash of the compiled workflow code it was built from). Worker hosts load it
 * instead of bundling at every start (src/worker/workflow-bundle.ts). Skips the work when the bundle is current.
 *
 *   node dist/src/worker/build-workflow-bundle.js [--force]
 */
import fs from 'node:fs';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';
import { WORKFLOW_BUNDLE_META_PATH, WORKFLOW_BUNDLE_PATH, WorkflowBundleMeta, prebuiltWorkflowBundle, workflowEntry, workflowSourcesHash } from './workflow-bundle';

function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, file);
}

async function main(): Promise<void> {
  const force = process.argv.includes('--force');
  if (!force && 'codePath' in prebuiltWorkflowBundle()) return;
  const before = workflowSourcesHash();
  const t0 = performance.now();
  const { code } = await bundleWorkflowCode({ workflowsPath: workflowEntry(), logger: new DefaultLogger('WARN') });
  const after = workflowSourcesHash();
  if (after.hash !== before.hash) throw new Error('the compiled workflow code changed while it was bundled; run the build again');
  // The bundle first, its record last: a record never vouches for a bundle that is not there yet.
  fs.rmSync(WORKFLOW_BUNDLE_META_PATH, { force: true });
  writeAtomic(WORKFLOW_BUNDLE_PATH, code);
  const meta: WorkflowBundleMeta = { sourcesHash: before.hash, modules: before.modules, builtAt: new Date().toISOString() };
  writeAtomic(WORKFLOW_BUNDLE_META_PATH, `${JSON.stringify(meta, null, 2)}\n`);
  process.stderr.write(`workflow bundle: ${WORKFLOW_BUNDLE_PATH} (${(code.length / 1024).toFixed(0)} KiB, ${before.modules.length} modules, ${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
}

main().catch((err) => {
  process.stderr.write(`build-workflow-bundle: ${(err as Error).message}\n`);
  process.exit(1);
});
