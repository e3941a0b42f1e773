#!/usr/bin/env bash
# Crash consistency, the long version (issue #8): kill -9 the daemon at
# random moments while clients stream messages, ROUNDS times, on SQLite and
# on PostgreSQL, then once more with PostgreSQL restarted under the running
# daemon. Every message that got a 250 must be filed exactly once, nothing
# filed twice, at most one acknowledgement per incident. CI runs the short
# version of the same test (go test ./cmd/madoguchi -run KillNine).
#
#   scripts/crash-test.sh [ROUNDS] [MESSAGES]     (default 20 and 5000)
#
# The PostgreSQL restart takes the local cluster down for a moment: do not
# run it beside other work on the same cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
export MADOGUCHI_CRASH_ROUNDS="${1:-20}" MADOGUCHI_CRASH_MESSAGES="${2:-5000}" MADOGUCHI_CRASH_CLIENTS=8
export MADOGUCHI_TEST_POSTGRES="${MADOGUCHI_TEST_POSTGRES:-1}"
run() {
  echo "== $*"
  env "$@" go test -count=1 -timeout 60m -run '^TestKillNineLosesNothing$' -v ./cmd/madoguchi | grep -E '^(---|ok|FAIL)|serve_test'
}
run MADOGUCHI_CRASH_DRIVER=sqlite
run MADOGUCHI_CRASH_DRIVER=postgres
run MADOGUCHI_CRASH_DRIVER=postgres MADOGUCHI_CRASH_PG_RESTART=1
