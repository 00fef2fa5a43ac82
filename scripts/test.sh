#!/usr/bin/env bash
# The stages of `make test` (and so of CI), each timed:
#   0. format-check and layering (seconds)
#   1. ci:   RelWithDebInfo, warnings as errors, every test (unit + integration)
#   2. asan: AddressSanitizer + UndefinedBehaviorSanitizer, every test
#   3. tsan: ThreadSanitizer, the store concurrency tests
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
summary=()

stage() {
    local name=$1
    shift
    local start=$SECONDS
    echo "=== stage $name: $*"
    "$@"
    local took=$((SECONDS - start))
    summary+=("$name ${took}s")
    echo "=== stage $name passed in ${took}s"
}

build_and_test() {
    local preset=$1
    shift
    cmake --preset "$preset" >/dev/null
    cmake --build --preset "$preset" -j "$jobs" "$@"
    ctest --preset "$preset" -j "$jobs"
}

total=$SECONDS
stage format make --no-print-directory format-check
stage layering make --no-print-directory layering
stage ci build_and_test ci
stage asan build_and_test asan
stage tsan build_and_test tsan --target flowd_concurrency_tests
echo "=== all stages passed in $((SECONDS - total))s: ${summary[*]}"
