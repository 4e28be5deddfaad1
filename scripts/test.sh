#!/usr/bin/env bash
# The whole suite: unit, workflow (real Temporal dev server), replay (recorded histories against the
# current workflow code, no server), integration (the sandbox: real PostgreSQL, sshd, HAProxy,
# moto). Run through `npm test`, which runs scripts/setup.sh first.
# Files run one at a time (each integration file brings up its own sandbox); the last file checks
# that nothing was left behind.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shopt -s nullglob
files=(test/unit/*.test.ts test/workflow/*.test.ts test/replay/*.test.ts test/integration/*.test.ts test/zz-leaks.test.ts)
[ $# -gt 0 ] && files=("$@")
exec node --import tsx --test --test-concurrency=1 --test-timeout=600000 "${files[@]}"
