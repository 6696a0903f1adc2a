import fs from 'node:fs';
import path from 'node:path';

/** External binaries the project drives; installed into `.tools/bin` by `npm run bootstrap`. */
export type ToolName = 'temporal' | 'temporal-test-server' | 'litestream' | 'moto_server' | 'minio' | 'temporal-server' | 'postgres';

const ENV_VARS: Record<ToolName, string> = {
  temporal: 'WORKBOOKS_TEMPORAL_BIN',
  'temporal-test-server': 'WORKBOOKS_TEMPORAL_TEST_SERVER_BIN',
  litestream: 'WORKBOOKS_LITESTREAM_BIN',
  moto_server: 'WORKBOOKS_MOTO_SERVER_BIN',
  // The production topology's (scripts/cluster.sh tools, run by `npm test` and `npm run bench`).
  minio: 'WORKBOOKS_MINIO_BIN',
  'temporal-server': 'WORKBOOKS_TEMPORAL_SERVER_BIN',
  postgres: 'WORKBOOKS_POSTGRES_BIN',
};

let cachedRoot: string | null | undefined;

function isProjectRoot(dir: string): boolean {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown };
    return pkg.name === 'workbooks';
  } catch {
    return false;
  }
}

/**
 * The directory holding the project's package.json (name "workbooks"), found by walking up from this
 * module's directory (works from src/ under ts-node-like runners and from dist/src/ after tsc).
 */
export function projectRoot(): string {
  if (cachedRoot === undefined) {
    cachedRoot = null;
    let dir = __dirname;
    for (;;) {
      if (isProjectRoot(dir)) {
        cachedRoot = dir;
        break;
      }
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  if (cachedRoot === null) throw new Error(`workbooks project root not found above ${__dirname} (no package.json named "workbooks")`);
  return cachedRoot;
}

function isExecutableFile(p: string): boolean {
  try {
    if (!fs.statSync(p).isFile()) return false; // follows symlinks; a dangling link fails here
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function searchPath(name: string, envPath: string | undefined): string | null {
  for (const dir of (envPath ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const cand = path.join(dir, name);
    if (isExecutableFile(cand)) return cand;
  }
  return null;
}

/**
 * Absolute path of a tool binary: `$WORKBOOKS_<NAME>_BIN` first, then `<project root>/.tools/bin/<name>`,
 * then `PATH`. Throws a one-line Error naming the fix when none is found.
 */
export function resolveBinary(name: ToolName, env: NodeJS.ProcessEnv = process.env): string {
  const envVar = ENV_VARS[name];
  if (!envVar) throw new Error(`unknown tool '${String(name)}'`);
  const fromEnv = env[envVar];
  if (fromEnv) {
    const p = path.resolve(fromEnv);
    if (!isExecutableFile(p)) throw new Error(`${envVar}=${fromEnv} is not an executable file: fix or unset ${envVar}`);
    return p;
  }
  let root: string | null = null;
  try {
    root = projectRoot();
  } catch {
    root = null;
  }
  if (root) {
    const local = path.join(root, '.tools', 'bin', name);
    if (isExecutableFile(local)) return local;
  }
  const onPath = searchPath(name, env.PATH);
  if (onPath) return onPath;
  throw new Error(`${name} not found: run \`npm run bootstrap\` (or set ${envVar})`);
}
