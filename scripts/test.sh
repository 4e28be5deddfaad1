#!/usr/bin/env bash
# The whole suite: unit, workflow (real Temporal dev server), replay (recorded histories against the
# current workflow code, no server), integration (the sandbox: real PostgreSQL, sshd, HAProxy,
# moto). Run through `npm test`, which runs scripts/setup.sh first.
#
# Four phases, each a node:test run: the integration files (each brings up its own sandbox on a net
# number no other uses, so SWITCHYARD_TEST_JOBS of them run at once, default 4 (on 2 cores a
# fresh clone took 625 s with 3, 570 s with 4; with the order kept, 558 s with 4 and 573 s with 5: at
# 4 the two cores are about 80 % busy, at 5 every file only runs slower), longest first
# (scripts/run-tests.mjs keeps the order given; `node --test` sorts its files by name);
# beside them, the unit files one at a time (some time their fakes) and
# the workflow and replay files two at a time (each workflow file has its own dev server);
# then the leak check alone, once nothing else runs. The last line sums them: "N passed, N failed".
#
#   bash scripts/test.sh                      # everything
#   bash scripts/test.sh test/unit/x.test.ts  # just these files, one at a time
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The AWS SDK warns on every client under Node 20 (bin/switchyard.js silences it the same way).
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=${AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED:-true}
shopt -s nullglob
run() {
  local times=$1 jobs=$2
  shift 2
  node --import tsx scripts/run-tests.mjs --concurrency "$jobs" --timeout 900000 --times "$times" "$@"
}
if [ $# -gt 0 ]; then
  exec node --import tsx --test --test-concurrency=1 --test-timeout=900000 "$@"
fi

jobs=${SWITCHYARD_TEST_JOBS:-4}
log=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-suite-XXXXXX")
trap 'rm -rf "$log"' EXIT
# A phase's output goes to its file; with `live` it is also shown as it comes (the phases run
# beside it are shown once it has ended: their TAP is never interleaved with it).
phase() {
  local show=$1 name=$2
  shift 2
  local t0=$SECONDS rc
  if [ "$show" = live ]; then
    run "$log/$name.times" "$@" 2>&1 | tee "$log/$name.out"
    rc=${PIPESTATUS[0]}
  else
    run "$log/$name.times" "$@" >"$log/$name.out" 2>&1
    rc=$?
  fi
  echo "$rc" >"$log/$name.rc"
  echo "# phase $name: exit $rc in $((SECONDS - t0)) s" >>"$log/$name.out"
  [ "$show" = live ] && tail -n 1 "$log/$name.out"
  return 0
}
status=0
# The workflow bundle, built once for the whole run (src/workflow-bundle.ts caches it per source
# version): every worker, check and test process after this reads it instead of running webpack.
node scripts/build-workflow-bundle.js || status=1
# Longest first (as the file times at the end of a run show), so the last files to start are short
# ones; the rest follow in name order.
slow=(backup fault-matrix failover cli-failover rejoin crash-sample-b backup-pitr watch backup-store console-browser
  switchover crash-sample watch-automatic readiness failover-resume backup-file-sets operate activities-backup-pg)
integration=()
for f in "${slow[@]}"; do integration+=("test/integration/$f.test.ts"); done
for f in test/integration/*.test.ts; do [[ " ${integration[*]} " == *" $f "* ]] || integration+=("$f"); done
# The unit, workflow and replay files need a core at most: they run beside the integration files,
# whose sandboxes leave the machine idle part of the time, and beside each other (one after the
# other they took as long as the integration files: the suite's end waited on them).
phase quiet unit 1 test/unit/*.test.ts &
unit=$!
phase quiet workflow 2 test/workflow/*.test.ts test/replay/*.test.ts &
workflow=$!
phase live integration "$jobs" "${integration[@]}"
wait "$unit" "$workflow"
cat "$log/unit.out" "$log/workflow.out"
phase live leaks 1 test/zz-leaks.test.ts
for f in "$log"/*.rc; do [ "$(cat "$f")" -eq 0 ] || status=1; done

sum() { grep -h "^# $1 " "$log"/*.out | awk '{ n += $3 } END { print n + 0 }'; }
passed=$(sum pass)
failed=$(sum fail)
skipped=$(sum skipped)
cancelled=$(sum cancelled)
[ "$failed" -gt 0 ] && status=1
[ "$cancelled" -gt 0 ] && status=1
[ "$passed" -eq 0 ] && status=1
echo "# the integration files, longest first (start and end in seconds since the phase began):"
cat "$log/integration.times" 2>/dev/null
echo "${passed} passed, ${failed} failed, ${cancelled} cancelled, ${skipped} skipped"
exit "$status"
