#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/, clang, ASan + UBSan with every report fatal) and
# runs each for a bounded time. `make fuzz` and a stage of `make test` call it.
#   FUZZ_SECONDS    seconds per harness (default 60)
#   FUZZ_HARNESSES  which ones (default: flow_json gzip query framing flow_packet)
#   FUZZ_BUILD_DIR  build folder (default build/fuzz)
# Seeds are read from fuzz/corpus/<harness>/ and tests/fuzz_regressions/<harness>/ and never
# written; what the fuzzer learns goes to $FUZZ_BUILD_DIR/corpus/<harness>/. A crash, leak,
# UBSan report, timeout or violated invariant fails the script and leaves the input in
# $FUZZ_BUILD_DIR/artifacts/<harness>/: copy it to tests/fuzz_regressions/<harness>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
build=${FUZZ_BUILD_DIR:-build/fuzz}
jobs=${JOBS:-$(nproc)}
read -r -a harnesses <<<"${FUZZ_HARNESSES:-flow_json gzip query framing flow_packet}"

cmake -S fuzz -B "$build" -DCMAKE_CXX_COMPILER=clang++ >/dev/null
cmake --build "$build" -j "$jobs" --target "${harnesses[@]/#/fuzz_}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
summary=()
for h in "${harnesses[@]}"; do
    case $h in
        flow_json) opts=(-dict=fuzz/dict/flow_json.dict -max_len=16384) ;;
        gzip) opts=(-dict=fuzz/dict/flow_json.dict -max_len=16384) ;;
        query) opts=(-dict=fuzz/dict/query.dict -max_len=1024) ;;
        framing) opts=(-dict=fuzz/dict/framing.dict -max_len=4200) ;;
        flow_packet) opts=(-max_len=8192) ;;
        *) echo "fuzz: unknown harness $h" >&2; exit 2 ;;
    esac
    seeds=(fuzz/corpus/"$h")
    if [ -d tests/fuzz_regressions/"$h" ]; then
        seeds+=(tests/fuzz_regressions/"$h")
    fi
    mkdir -p "$build/corpus/$h" "$build/artifacts/$h"
    log="$build/$h.log"
    echo "=== fuzz $h for ${seconds}s (log: $log)"
    status=0
    "$build/fuzz_$h" "${opts[@]}" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$build/artifacts/$h/" "$build/corpus/$h" "${seeds[@]}" >"$log" 2>&1 \
        || status=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)
    summary+=("$h: ${execs:-?} execs (${rate:-?}/s), ${cov:-cov: ?}")
    if [ "$status" -ne 0 ]; then
        failed+=("$h")
        echo "=== fuzz $h FAILED (exit $status); the last lines of $log:"
        tail -n 40 "$log"
        ls "$build/artifacts/$h/" || true
    fi
done
printf '=== fuzz: %s\n' "${summary[@]}"
if [ ${#failed[@]} -ne 0 ]; then
    echo "=== fuzz failed: ${failed[*]}" >&2
    exit 1
fi
