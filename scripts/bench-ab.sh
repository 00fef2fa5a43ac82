#!/usr/bin/env bash
# Two flowd binaries side by side, measured interleaved (A, B, A, B ...): for a change that
# must not cost speed (a restructuring), the old binary against the new one on the same
# bodies and the same machine state. wrk on the client core, both flowds on the server core.
#   scripts/bench-ab.sh OLD_FLOWD NEW_FLOWD
#   BENCH_SECONDS (default 8) per run, BENCH_PAIRS (default 3) rounds.
# Prints one table: POST B=1 and B=1000 (memory), POST B=1000 with the log (fsync
# interval), and GET of one hour of 1,000 keys; each new/old as "median (min–max)".
set -euo pipefail
cd "$(dirname "$0")/.."
old=$(realpath "$1")
new=$(realpath "$2")
secs=${BENCH_SECONDS:-8}
pairs=${BENCH_PAIRS:-3}
bin=build/release
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bench_init flowd-bench-ab
cmake --preset release >/dev/null
nice -n 10 cmake --build --preset release -j "$(nproc)" --target flowd-loadgen >/dev/null
loadgen() { taskset -c "$client_cpu" "$bin/bench/flowd-loadgen" "$@"; }

# start NAME BINARY [ARGS...]: one flowd of BINARY; its port in port[NAME].
declare -A port=()
start() {
    local name=$1 binary=$2
    shift 2
    local saved=$bin
    mkdir -p "$work/bin-$name"
    ln -sf "$binary" "$work/bin-$name/flowd"
    bin=$work/bin-$name
    start_flowd "$@"
    bin=$saved
    port[$name]=$flowd_port
}

for b in 1 1000; do
    loadgen --dump-body "$work/body-$b.json" --batch "$b" --keys 1000 >/dev/null
    wrk_post_script "$work/body-$b.json" "$work/post-$b.lua"
done
start old "$old"
start new "$new"
start old_log "$old" --data-dir "$work/old-data"
start new_log "$new" --data-dir "$work/new-data"
start old_get "$old"
start new_get "$new"
for name in old_get new_get; do
    loadgen --port "${port[$name]}" --connections 4 --requests 1000 --batch 1000 --keys 1000 \
        --hours 1 >/dev/null
done

post() {  # post NAME B: figure = requests/s
    figure=$(wrk_run "http://127.0.0.1:${port[$1]}/flows" "$work/post-$2.lua" "$secs" | field req_per_s)
}
old_b1() { post old 1; }
new_b1() { post new 1; }
old_b1000() { post old 1000; }
new_b1000() { post new 1000; }
old_log_b1000() { post old_log 1000; }
new_log_b1000() { post new_log 1000; }
get() { figure=$(wrk_run "http://127.0.0.1:${port[$1]}/flows?hour=0" "" "$secs" | field req_per_s); }
old_get() { get old_get; }
new_get() { get new_get; }

echo "== $old (old) against $new (new), $pairs interleaved rounds of ${secs}s; load $(load_note)"
rounds "$pairs" old_b1 new_b1 old_b1000 new_b1000 old_log_b1000 new_log_b1000 old_get new_get
echo
echo "| scenario (wrk -t1 -c32, requests/s) | old | new | new / old |"
echo "| --- | --- | --- | --- |"
row() { echo "| $1 | $(median_of "old_$2") | $(median_of "new_$2") | $(ratios "new_$2" "old_$2" | spread) |"; }
row "POST B=1, K=1000" b1
row "POST B=1000, K=1000" b1000
row "POST B=1000, K=1000, --data-dir, fsync interval" log_b1000
row "GET /flows?hour=0, 1,000 keys" get
echo
echo "Load after: $(load_note)"
