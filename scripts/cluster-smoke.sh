#!/usr/bin/env bash
# A walk through the production topology of scripts/cluster.sh, checking each step (not part of .ci/run):
#   up → env → create <tenant>.<name> → put/get (CLI and API) → suspend → freeze (the object is in MinIO) →
#   kill -9 the host that had it → wake: active on the other host, same bytes → partition that host → a read
#   recovers it on the first host again → heal → up (restarts what was killed) → status.
# Usage: scripts/cluster-smoke.sh [name]   (default smoke-<time>, tenant acme; the cluster is left running)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-smoke-$(date +%s)}
KEY=acme.$NAME
C=scripts/cluster.sh
step() { printf '\n== %s\n' "$*" >&2; }
fail() { printf 'smoke: FAILED: %s\n' "$*" >&2; exit 1; }
t() { local t0; t0=$(date +%s.%N); "$@"; awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "   (%.1fs)\n", b - a }' >&2; }
field() { bin/workbooks show "$KEY" --json | node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const v=JSON.parse(s)[process.argv[1]];console.log(v===null||v===undefined?'':typeof v==='object'?JSON.stringify(v):v)})" "$1"; }

step "up"; t $C up
eval "$($C env)"

step "create $KEY, put and get through the CLI and the API"
t bin/workbooks create "$NAME" --tenant acme
echo "hello from the cluster" | bin/workbooks put "$KEY" workspace:/hello.md
[ "$(bin/workbooks get "$KEY" workspace:/hello.md)" = "hello from the cluster" ] || fail "CLI get"
got=$(curl -fsS -H "authorization: Bearer $WORKBOOKS_API_TOKEN" "$WORKBOOKS_API_URL/v1/workspaces/$NAME/files/workspace/hello.md")
[ "$got" = "hello from the cluster" ] || fail "API get: $got"
first=$(field host)
echo "   on $first ($(field endpoint))" >&2

step "suspend, freeze: the cold copy is in MinIO"
t bin/workbooks suspend "$KEY"
t bin/workbooks freeze "$KEY" --no-progress
[ "$(field state)" = frozen ] || fail "not frozen"
listing=$(curl -fsS --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
  "$WORKBOOKS_S3_ENDPOINT/workbooks?list-type=2&prefix=cold%2F$KEY.")   # the / encoded, as SigV4 signs it
grep -o "<Key>cold/$KEY\.[0-9a-f]*\.sqlite</Key>" <<<"$listing" >&2 || fail "no cold object for $KEY in MinIO"

step "kill -9 $first, then wake: it lands on the other host"
$C kill-host "$first"
t bin/workbooks wake "$KEY" --no-progress
second=$(field host)
[ -n "$second" ] && [ "$second" != "$first" ] || fail "woke on '$second' (killed: $first)"
[ "$(bin/workbooks get "$KEY" workspace:/hello.md)" = "hello from the cluster" ] || fail "get after the wake"
echo "   active on $second" >&2

step "up again: restarts $first, leaves the rest"
t $C up

if [ "$(cat "${WORKBOOKS_CLUSTER_DIR:-.cluster}/run/mode" 2>/dev/null || true)" = netns ]; then
  step "partition $second; a read recovers the workspace on $first from its replica"
  echo "written on $second" | bin/workbooks put "$KEY" workspace:/second.md
  sleep 3   # let Litestream ship it (about a second behind)
  $C partition "$second"
  # The first tries can time out: the workflow's query goes to the partitioned host's sticky queue until the
  # server stops counting that host's hung polls (about a minute).
  t0=$(date +%s); got=""
  for i in 1 2 3 4 5 6; do
    if got=$(bin/workbooks get "$KEY" workspace:/second.md); then break; fi
    echo "   try $i failed after $(( $(date +%s) - t0 ))s" >&2
  done
  [ "$got" = "written on $second" ] || { $C heal "$second"; fail "read during the partition: '$got'"; }
  echo "   read it after $(( $(date +%s) - t0 ))s" >&2
  third=$(field host)
  $C heal "$second"
  [ "$third" = "$first" ] || fail "after the partition it is on '$third', expected $first"
  echo "   active on $third" >&2
fi

step "restart-temporal; the workspace is still there"
t $C restart-temporal
[ "$(bin/workbooks get "$KEY" workspace:/hello.md)" = "hello from the cluster" ] || fail "get after restarting Temporal"

step status; $C status
printf '\nsmoke: OK (%s)\n' "$KEY" >&2
