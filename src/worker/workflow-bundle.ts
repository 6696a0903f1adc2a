/**
 * The workflow bundle built once by the build (dist/workflow-bundle.js, see build-workflow-bundle.ts), and
 * the check that it was built from the workflow code as it is now. Bundling in the worker process (webpack) costs
 * seconds of CPU at every start and leaves hundreds of MiB of RSS that are never returned; a prebuilt bundle is
 * only read.
 *
 * Freshness: a hash over every compiled module the workflow entry reaches by relative `require` (src/workflows and
 * what it imports from src/contract, src/lifecycle, …) and the @temporalio/workflow version, written next to the
 * bundle (workflow-bundle.json) and compared at start.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/** dist/ (this file compiles to dist/src/worker/workflow-bundle.js). */
const DIST_DIR = path.resolve(__dirname, '..', '..');

export const WORKFLOW_BUNDLE_PATH = path.join(DIST_DIR, 'workflow-bundle.js');
export const WORKFLOW_BUNDLE_META_PATH = path.join(DIST_DIR, 'workflow-bundle.json');

/** The compiled workflow entry (dist/src/workflows/index.js). */
export function workflowEntry(): string {
  return require.resolve('../workflows');
}

export interface WorkflowBundleMeta {
  /** workflowSourcesHash() of the code the bundle was built from. */
  sourcesHash: string;
  /** The compiled modules hashed, relative to dist/ (for a reader). */
  modules: string[];
  builtAt: string;
}

const RELATIVE_REQUIRE = /require\("(\.{1,2}\/[^"]+)"\)/g;

/** Every local compiled module the entry reaches through relative requires, sorted. */
export function workflowModules(entry = workflowEntry()): string[] {
  const seen = new Set<string>();
  const walk = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(RELATIVE_REQUIRE)) walk(require.resolve(path.resolve(path.dirname(file), m[1]!)));
  };
  walk(entry);
  return [...seen].sort();
}

function sdkVersion(): string {
  return (JSON.parse(fs.readFileSync(require.resolve('@temporalio/workflow/package.json'), 'utf8')) as { version: string }).version;
}

/** sha256 over the workflow modules (path and bytes) and the @temporalio/workflow version. */
export function workflowSourcesHash(entry = workflowEntry(), root = DIST_DIR): { hash: string; modules: string[] } {
  const h = crypto.createHash('sha256');
  h.update(`@temporalio/workflow@${sdkVersion()}\0`);
  const modules = workflowModules(entry);
  const rel = modules.map((m) => path.relative(root, m));
  modules.forEach((m, i) => {
    h.update(`${rel[i]}\0`);
    h.update(fs.readFileSync(m));
    h.update('\0');
  });
  return { hash: h.digest('hex'), modules: rel };
}

/**
 * The prebuilt bundle if it is there and was built from the current workflow code, else why not (for a warning:
 * the caller then bundles in-process).
 */
export function prebuiltWorkflowBundle(
  where: { bundlePath: string; metaPath: string; entry: string; root: string } = { bundlePath: WORKFLOW_BUNDLE_PATH, metaPath: WORKFLOW_BUNDLE_META_PATH, entry: workflowEntry(), root: DIST_DIR },
): { codePath: string } | { stale: string } {
  let meta: WorkflowBundleMeta;
  try {
    meta = JSON.parse(fs.readFileSync(where.metaPath, 'utf8')) as WorkflowBundleMeta;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { stale: code === 'ENOENT' ? `no prebuilt workflow bundle (${where.metaPath} missing; \`npm run build\` makes it)` : `${where.metaPath} unreadable: ${(err as Error).message}` };
  }
  if (!fs.existsSync(where.bundlePath)) return { stale: `${where.bundlePath} missing` };
  let now: string;
  try {
    now = workflowSourcesHash(where.entry, where.root).hash;
  } catch (err) {
    return { stale: `could not hash the workflow code: ${(err as Error).message}` };
  }
  if (meta.sourcesHash !== now) return { stale: `the prebuilt workflow bundle (${meta.builtAt}) was built from other workflow code than ${where.root} holds now (run \`npm run build\`)` };
  return { codePath: where.bundlePath };
}
