#!/usr/bin/env bash
# The stages of `make test` (and so of CI), each timed:
#   0. format-check and layering (seconds)
#   1. ci:   RelWithDebInfo, warnings as errors, every test (unit + integration)
#   2. asan: AddressSanitizer + UndefinedBehaviorSanitizer, every test
#   3. tsan: ThreadSanitizer, the store concurrency tests
#   4. browser: the console in headless chromium against the release build (once, never
#      under a sanitizer): tests/browser/console_test.py, screenshots in build/browser
#   5. fuzz: the libFuzzer harnesses (fuzz/, clang, ASan + UBSan), 100 s in all
#      (FUZZ_SECONDS per harness, default 20, for 5 harnesses); any crash, leak,
#      UBSan report or violated invariant fails it
#   6. exporters: the release build of flowd against real NetFlow/IPFIX exporters
#      (softflowd and pmacctd reading a pcap, nfdump's nfcapd as a second collector), once,
#      never under the sanitizers (tests/exporters/exporters_test.py)
# STAGES="fuzz" (or "format ci", ...) runs only the named stages; unset runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${JOBS:-$(nproc)}
summary=()

stage() {
    local name=$1
    shift
    if [ -n "${STAGES:-}" ] && [[ " $STAGES " != *" $name "* ]]; then
        return 0
    fi
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

exporters_test() {
    cmake --preset release >/dev/null
    cmake --build --preset release -j "$jobs" --target flowd
    python3 tests/exporters/exporters_test.py build/release/flowd
}

browser_test() {
    cmake --preset release >/dev/null
    cmake --build --preset release -j "$jobs" --target flowd
    /usr/bin/python3 tests/browser/console_test.py build/release/flowd --out build/browser
}

total=$SECONDS
stage format make --no-print-directory format-check
stage layering make --no-print-directory layering
stage ci build_and_test ci
stage asan build_and_test asan
stage tsan build_and_test tsan --target flowd_concurrency_tests
stage browser browser_test
stage fuzz env FUZZ_SECONDS="${FUZZ_SECONDS:-20}" JOBS="$jobs" scripts/fuzz.sh
stage exporters exporters_test
echo "=== all stages passed in $((SECONDS - total))s: ${summary[*]}"
