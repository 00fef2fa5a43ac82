#!/usr/bin/env bash
# `make bench`: release build, flowd pinned to core 0 and its clients to core 1, every figure
# beside a baseline measured in the same run, interleaved; writes BENCHMARKS.md. The
# cluster-mode section comes from scripts/bench-cluster.sh, the flow exporters' from
# scripts/bench-flow.sh, the live streams' and the console's from scripts/bench-live.sh, all
# run last. Helpers: scripts/bench-lib.sh.
#
# Every ratio is measured in rounds: A, B, A, B ... (BENCH_PAIRS rounds, default 3, each run
# BENCH_SECONDS long), and shown as the median of the per-round ratios with their min–max.
# The POST section first checks the generator: flowd-loadgen against wrk on nginx; where
# flowd-loadgen reaches under 0.9x wrk, the tables say "generator-bound" instead of a ratio.
#   BENCH_SECONDS (default 8) sets the length of each throughput run.
#   BENCH_PAIRS (default 3) sets the rounds of each interleaved comparison.
#   BENCH_ONLY (default: every section) runs only the sections named, comma-separated:
#     post (POST B=1/100/1000: flowd, nginx 'return 204', the Beast floor and the parse
#     ceiling, with flowd-loadgen and wrk; and POST B=1000 with --threads 2 sharing both
#     cores with the generator), wal, recovery, get, memory, micro,
#     queries (range and summary queries against DuckDB, 304s, POST beside summaries),
#     cluster (scripts/bench-cluster.sh), flow (scripts/bench-flow.sh: NetFlow/IPFIX),
#     live (scripts/bench-live.sh: streams beside POST, an idle stream's memory, the
#     console's first paint).
#     A partial run prints its tables and leaves BENCHMARKS.md alone, e.g.
#     BENCH_ONLY=post scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
secs=${BENCH_SECONDS:-8}
pairs=${BENCH_PAIRS:-3}
only=${BENCH_ONLY:-post,wal,recovery,get,memory,queries,micro,cluster,flow,live}
out=BENCHMARKS.md
if [ -n "${BENCH_ONLY:-}" ]; then out=/dev/null; fi
want() { [[ ",$only," == *",$1,"* ]]; }
bench_init flowd-bench
load_start=$(load_note)

# Only what the sections asked for is built.
targets=()
want post && targets+=(flowd flowd-loadgen flowd-parse-ceiling flowd-beast-floor)
{ want wal || want recovery || want get || want memory || want cluster; } && targets+=(flowd flowd-loadgen)
want queries && targets+=(flowd flowd-loadgen flowd-querybench)
want micro && targets+=(flowd-micro)
want flow && targets+=(flowd flowd-flow-replay)
want live && targets+=(flowd flowd-loadgen flowd-querybench flowd-stream-readers)
cmake --preset release >/dev/null
if [ ${#targets[@]} -gt 0 ]; then
    # shellcheck disable=SC2046 # one target a word
    nice -n 10 cmake --build --preset release -j "$(nproc)" --target $(printf '%s\n' "${targets[@]}" | sort -u) >/dev/null
fi
bin=build/release
loadgen() { taskset -c "$client_cpu" "$bin/bench/flowd-loadgen" "$@"; }

metric() { curl -s "127.0.0.1:$flowd_port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss_bytes() { awk '/VmRSS/ { print $2 * 1024 }' "/proc/$flowd_pid/status"; }
# "exact" when every round's verify said so, else what they said.
verdicts() { values "$1" | sort | uniq -c | awk -v n="$rounds_n" '{ v = v (v ? ", " : "") ($1 == n ? $2 : $2 " x" $1) } END { print v }'; }
# One flowd-loadgen run of POST B=$b into fig[NAME.*]: figure = flows/s.
# $1: NAME, $2: port, then more flowd-loadgen options.
lg_post() {
    local name=$1 port=$2 o
    shift 2
    o=$(loadgen --port "$port" --connections 32 --duration "$secs" --batch "$b" --keys 1000 --hours 24 "$@")
    echo "$name: $(echo "$o" | head -n 1)" >&2
    figure=$(echo "$o" | field flows_per_s)
    fig[$name.p50,$round]=$(echo "$o" | field p50_ms)
    fig[$name.p99,$round]=$(echo "$o" | field p99_ms)
    fig[$name.verify,$round]=$(echo "$o" | field verify)
    fig[$name.cpu,$round]=$(echo "$o" | field cpu_cores)
}
# One wrk run POSTing the B=$b body: figure = flows/s, fig[NAME.req] = requests/s.
wrk_post() {
    local name=$1 port=$2 o
    o=$(wrk_run "http://127.0.0.1:$port/flows" "$work/post-$b.lua" "$secs")
    echo "wrk $name: $o" >&2
    fig[$name.req,$round]=$(echo "$o" | field req_per_s)
    fig[$name.req,$round]=${fig[$name.req,$round]:-0}
    figure=$(awk -v r="${fig[$name.req,$round]}" -v b="$b" 'BEGIN { printf "%.0f", r * b }')
    if [ "${fig[$name.req,$round]:-0}" = 0 ]; then
        echo "bench: wrk completed no request against $name in ${secs}s" >&2
    fi
    if [ "$(echo "$o" | field non2xx)" != 0 ]; then
        echo "bench: wrk got answers other than 2xx from $name: $o" >&2
        exit 1
    fi
}
# A ratio cell: "median (min–max)" of A / B per round, or the reason there is none.
ratio_cell() { if [ -n "${3:-}" ]; then echo "$3"; else ratios "$1" "$2" | spread; fi; }

goals=()
# goal LABEL VALUE OP TARGET [WHY [SHOWN]]: one line of the goals table (OP: >= or <=). WHY,
# when given, says why the figure cannot be judged; SHOWN replaces VALUE in the table.
goal() {
    local met=${5:-} shown=${6:-$2}
    [ -n "$met" ] || met=$(awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN { print ((op == ">=" ? v >= t : v <= t) ? "met" : "missed") }')
    goals+=("| $1 | $shown | $3 $4 | $met |")
}
# goal_ratio LABEL A B OP TARGET [WHY]: a goal on the median of fig[A,i] / fig[B,i].
goal_ratio() { goal "$1" "$(median_ratio "$2" "$3")" "$4" "$5" "${6:-}" "$(ratios "$2" "$3" | spread)"; }

if want post; then
echo "== POST throughput, interleaved: $pairs rounds of flowd, nginx 'return 204', the Beast floor (flowd-loadgen, then wrk) and the parse-only ceiling, ${secs}s each"
start_nginx
start_beast_floor
start_flowd
f1_pid=$flowd_pid f1_port=$flowd_port
flowd_lg() { lg_post flowd_lg "$f1_port"; }
nginx_lg() { lg_post nginx_lg "$nginx_port" --no-verify; }
floor_lg() { lg_post floor_lg "$floor_port" --no-verify; }
flowd_wrk() { wrk_post flowd_wrk "$f1_port"; }
nginx_wrk() { wrk_post nginx_wrk "$nginx_port"; }
floor_wrk() { wrk_post floor_wrk "$floor_port"; }
# The same bodies, parsed and summed by simdjson alone on flowd's core, as long as a run.
ceiling() {
    local o
    o=$(taskset -c "$server_cpu" "$bin/bench/flowd-parse-ceiling" "$b" 1000 "$secs")
    figure=$(echo "$o" | field records_per_s)
    ceiling_impl=$(echo "$o" | field implementation)
}
gen_rows=() post_rows=() wrk_rows=() ceil_rows=()
for b in 1 100 1000; do
    echo "-- B=$b" >&2
    loadgen --dump-body "$work/body-$b.json" --batch "$b" --keys 1000 --hours 24
    wrk_post_script "$work/body-$b.json" "$work/post-$b.lua"
    rounds "$pairs" nginx_lg nginx_wrk flowd_lg floor_lg ceiling flowd_wrk floor_wrk
    # The generator's own ceiling at this B: flowd-loadgen against wrk on the same server.
    gen_nginx=$(median_ratio nginx_lg nginx_wrk)
    gen_floor=$(median_ratio floor_lg floor_wrk)
    bound_nginx="" bound_floor=""
    if awk -v r="$gen_nginx" 'BEGIN { exit !(r < 0.9) }'; then
        bound_nginx="generator-bound (flowd-loadgen $(ratios nginx_lg nginx_wrk | spread) x wrk on nginx)"
    fi
    if awk -v r="$gen_floor" 'BEGIN { exit !(r < 0.9) }'; then
        bound_floor="generator-bound (flowd-loadgen $(ratios floor_lg floor_wrk | spread) x wrk on the floor)"
    fi
    req() { awk -v f="$(median_of "$1")" -v b="$b" 'BEGIN { printf "%.0f", f / b }'; }
    gen_rows+=("| POST B=$b | $(req nginx_lg) | $(values nginx_lg.cpu | median) | $(req nginx_wrk) | $(ratios nginx_lg nginx_wrk | spread) | $(req floor_lg) | $(values floor_lg.cpu | median) | $(req floor_wrk) | $(ratios floor_lg floor_wrk | spread) |")
    post_rows+=("| POST B=$b, K=1000 | $(num "$(median_of flowd_lg)") | $(values flowd_lg.p50 | median) / $(values flowd_lg.p99 | median) | $(num "$(median_of nginx_lg)") | $(ratio_cell flowd_lg nginx_lg "$bound_nginx") | $(num "$(median_of floor_lg)") | $(ratio_cell flowd_lg floor_lg "$bound_floor") | $(ratio_cell floor_lg nginx_lg "$bound_nginx") | $(verdicts flowd_lg.verify) |")
    wrk_rows+=("| POST B=$b, K=1000 | $(num "$(values flowd_wrk.req | median)") | $(num "$(values nginx_wrk.req | median)") | $(num "$(values floor_wrk.req | median)") | $(ratios flowd_wrk nginx_wrk | spread) | $(ratios flowd_wrk floor_wrk | spread) | $(ratios floor_wrk nginx_wrk | spread) |")
    ceil_rows+=("| POST B=$b, K=1000 | $(num "$(median_of flowd_lg)") | $(num "$(median_of ceiling)") | $ceiling_impl | $(ratios flowd_lg ceiling | spread) |")
    if [ "$b" = 1 ]; then
        for i in $(seq "$rounds_n"); do
            fig[nginx_lg_b1,$i]=${fig[nginx_lg,$i]} fig[nginx_wrk_b1,$i]=${fig[nginx_wrk,$i]}
        done
        goal_ratio "POST B=1: flowd / Beast floor (flowd-loadgen)" flowd_lg floor_lg ">=" 0.9 "${bound_floor:+not judged: generator-bound}"
        goal_ratio "POST B=1: flowd / Beast floor (wrk)" flowd_wrk floor_wrk ">=" 0.9
        goal_ratio "POST B=1: flowd / nginx (wrk)" flowd_wrk nginx_wrk ">=" 0.75
        goal_ratio "flowd-loadgen / wrk on nginx at B=1 (the generator's own ceiling)" nginx_lg nginx_wrk ">=" 0.9
    fi
    if [ "$b" = 1000 ]; then
        goal_ratio "POST B=1000: flowd / parse-only ceiling" flowd_lg ceiling ">=" 0.6
    fi
done
stop_server "$nginx_pid"
stop_server "$floor_pid"
post_tables() {
    echo "### The generator's own ceiling"
    echo
    echo "flowd-loadgen (one thread, 32 connections, core $client_cpu) and wrk (\`-t1 -c32\`, a Lua"
    echo "script POSTing the same body, core $client_cpu) against the same servers, interleaved. Where"
    echo "flowd-loadgen reaches under 0.9x wrk, it, not the server, sets the pace: the tables below say"
    echo "\"generator-bound\" there instead of a ratio. At B=1 flowd-loadgen reaches **$(ratios nginx_lg_b1 nginx_wrk_b1 | spread)**"
    echo "x wrk on nginx. \"CPU\" is flowd-loadgen's own (user and system) over its run, in cores: near"
    echo "1.00 it is saturated."
    echo
    echo "| scenario | nginx: flowd-loadgen req/s | CPU | wrk req/s | flowd-loadgen / wrk | Beast floor: flowd-loadgen req/s | CPU | wrk req/s | flowd-loadgen / wrk |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${gen_rows[@]}"
    echo
    echo "### flowd-loadgen: flowd, nginx 'return 204' and the Beast floor"
    echo
    echo "| scenario | flowd flows/s | flowd p50 / p99 ms | nginx flows/s | flowd / nginx | Beast floor flows/s | flowd / floor | floor / nginx | verify |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${post_rows[@]}"
    echo
    echo "### wrk: the same servers and bodies (requests/s)"
    echo
    echo "| scenario | flowd | nginx | Beast floor | flowd / nginx | flowd / floor | floor / nginx |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${wrk_rows[@]}"
    echo
    echo "### The parse-only ceiling"
    echo
    echo "simdjson On-Demand alone parsing and summing the same bodies on flowd's core, no HTTP, as"
    echo "long as each flowd run and in the same rounds."
    echo
    echo "| scenario | flowd records/s | parse-only ceiling records/s | simdjson implementation | flowd / ceiling |"
    echo "| --- | --- | --- | --- | --- |"
    printf '%s\n' "${ceil_rows[@]}"
}
post_tables

echo "== POST B=1000, flowd --threads 2 and the generator sharing both cores vs --threads 1, interleaved ($pairs rounds, ${secs}s each)"
all_cpus=$server_cpu,$client_cpu
[ "$server_cpu" = "$client_cpu" ] && all_cpus=$server_cpu
flowd_threads=2 flowd_cpus=$all_cpus start_flowd
f2_port=$flowd_port
b=1000
threads1() { lg_post threads1 "$f1_port"; }
threads2() {
    local o
    o=$(taskset -c "$all_cpus" "$bin/bench/flowd-loadgen" --port "$f2_port" --connections 32 \
        --duration "$secs" --batch "$b" --keys 1000 --hours 24)
    echo "threads2: $(echo "$o" | head -n 1)" >&2
    figure=$(echo "$o" | field flows_per_s)
    fig[threads2.verify,$round]=$(echo "$o" | field verify)
}
rounds "$pairs" threads1 threads2
stop_flowd "$flowd_pid"
stop_flowd "$f1_pid"
mc_rows=("| POST B=1000, K=1000, --threads 1 on core $server_cpu, generator on core $client_cpu | $(num "$(median_of threads1)") | 1.00 | $(verdicts threads1.verify) |")
mc_rows+=("| POST B=1000, K=1000, --threads 2 and the generator on cores $all_cpus | $(num "$(median_of threads2)") | $(ratios threads2 threads1 | spread) | $(verdicts threads2.verify) |")
goal_ratio "POST B=1000: --threads 2 (both cores) / --threads 1" threads2 threads1 ">=" 1.6
mc_tables() {
    echo "| scenario | flows/s | ratio to --threads 1 | verify |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${mc_rows[@]}"
}
mc_tables
fi

if want wal; then
echo "== POST with a write-ahead log (--data-dir) vs memory only, interleaved: $pairs rounds of memory, interval, always, ${secs}s each"
start_flowd
wal_mem_port=$flowd_port wal_pids=("$flowd_pid")
FLOWD_FSYNC=interval start_flowd --data-dir "$work/data-interval"
wal_interval_port=$flowd_port wal_pids+=("$flowd_pid")
FLOWD_FSYNC=always start_flowd --data-dir "$work/data-always"
wal_always_port=$flowd_port wal_pids+=("$flowd_pid")
memory() { lg_post memory "$wal_mem_port"; }
interval() { lg_post interval "$wal_interval_port"; }
always() { lg_post always "$wal_always_port"; }
wal_rows=()
for b in 100 1000; do
    echo "-- B=$b" >&2
    rounds "$pairs" memory interval always
    for mode in interval always; do
        wal_rows+=("| POST B=$b, K=1000, fsync $mode | $(num "$(median_of $mode)") | $(values $mode.p99 | median) | $(num "$(median_of memory)") | $(ratios $mode memory | spread) | $(verdicts $mode.verify) |")
    done
    goal_ratio "WAL B=$b: fsync interval / memory-only" interval memory ">=" 0.85
    goal_ratio "WAL B=$b: fsync always / memory-only" always memory ">=" 0.6
done
for p in "${wal_pids[@]}"; do stop_flowd "$p"; done
rm -rf "$work/data-interval" "$work/data-always"
wal_tables() {
    echo "| scenario | flows/s | p99 ms | memory-only flows/s | ratio to memory-only | verify |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${wal_rows[@]}"
}
wal_tables
fi

if want recovery; then
echo "== recovery of 1,000,000 keys from a log of 10,000,000 records, then from a checkpoint"
rm -rf "$work/data"
# No checkpoint while loading: the whole history stays in the log.
FLOWD_CHECKPOINT_LOG_BYTES=1099511627776 FLOWD_CHECKPOINT_INTERVAL=1000h start_flowd --data-dir "$work/data"
loadgen --port "$flowd_port" --connections 8 --requests 10000 --bodies 10000 --batch 1000 --keys 1000000 \
    --hours 1 --first-hour 0 --seed 7 --no-verify >/dev/null
rec_keys=$(metric flowd_store_keys)
log_bytes=$(du -cb "$work"/data/wal-*.log | tail -n1 | cut -f1)
kill -9 "$flowd_pid"; wait "$flowd_pid" 2>/dev/null || true
recovery_seconds() { sed -n 's/.*recovered .* \([0-9.]*\) s$/\1/p' "$flowd_log" | head -n1; }
FLOWD_CHECKPOINT_LOG_BYTES=1099511627776 FLOWD_CHECKPOINT_INTERVAL=1000h start_flowd --data-dir "$work/data"
rec_log=$(recovery_seconds)
rec_log_keys=$(metric flowd_store_keys)
stop_flowd  # a clean stop writes the checkpoint
snap_bytes=$(du -cb "$work"/data/snapshot-*.snap | tail -n1 | cut -f1)
start_flowd --data-dir "$work/data"
rec_snap=$(recovery_seconds)
rec_snap_keys=$(metric flowd_store_keys)
stop_flowd
rm -rf "$work/data"
echo "recovery: log $rec_log s, checkpoint $rec_snap s, keys $rec_keys"
fi

if want get; then
echo "== GET one hour of 1,000 keys as the store grows; after 1e6 records interleaved with 1e4 records and nginx serving the same bytes ($pairs rounds of 3 s)"
get_rows=()
# A second flowd holding the first 1e4 records only: the small store read beside the big one.
start_flowd
small_pid=$flowd_pid small_port=$flowd_port
loadgen --port "$small_port" --connections 8 --requests 10 --bodies 10 --batch 1000 --keys 1000 \
    --hours 1 --first-hour 0 --seed 10000 --no-verify >/dev/null
start_flowd
big_port=$flowd_port
loaded=0
for target in 10000 100000 1000000; do
    n=$(((target - loaded) / 1000))
    loadgen --port "$flowd_port" --connections 8 --requests "$n" --bodies "$n" --batch 1000 --keys 1000 \
        --hours 1 --first-hour 0 --seed "$target" --no-verify >/dev/null
    loaded=$target
    [ "$target" = 1000000 ] && break
    g=$(loadgen --port "$flowd_port" --connections 1 --duration 3 --get-hour 0)
    get_rows+=("| hour of 1,000 keys after $target records | $(echo "$g" | field p50_ms) | $(echo "$g" | field p99_ms) | $(echo "$g" | field req_per_s) |")
done
# The transport baseline: nginx serving the very same answer as a static file, to the same
# generator over the same loopback, so a GET's figures can be read against this machine's.
curl -sf "127.0.0.1:$big_port/flows?hour=0" -o "$work/hour.json"
get_bytes=$(stat -c %s "$work/hour.json")
chmod a+x "$work" && chmod a+r "$work/hour.json"  # nginx's workers run as another user
start_nginx "location = /flows { default_type application/json; alias $work/hour.json; }"
# One GET run of 3 s: figure = p50 ms; p99 and GETs/s kept.
get_run() {
    local o
    o=$(loadgen --port "$2" --connections 1 --duration 3 --get-hour 0)
    figure=$(echo "$o" | field p50_ms)
    fig[$1.p99,$round]=$(echo "$o" | field p99_ms)
    fig[$1.rps,$round]=$(echo "$o" | field req_per_s)
}
get_big() { get_run get_big "$big_port"; }
get_small() { get_run get_small "$small_port"; }
get_nginx() { get_run get_nginx "$nginx_port"; }
rounds "$pairs" get_big get_small get_nginx
stop_server "$nginx_pid"
stop_flowd "$small_pid"
stop_flowd
get_row() { echo "| $1 | $(values "$2" | spread 3) | $(values "$2.p99" | spread 3) | $(num "$(values "$2.rps" | median)") |"; }
get_rows+=("$(get_row "hour of 1,000 keys after 1000000 records (interleaved)" get_big)")
get_rows+=("$(get_row "hour of 1,000 keys after 10000 records, another flowd (interleaved)" get_small)")
get_rows+=("$(get_row "nginx serving the same answer ($get_bytes bytes) as a static file (interleaved)" get_nginx)")
ratio=$(ratios get_big get_small | spread)
get_vs_nginx=$(ratios get_big get_nginx | spread)
get_p99_vs_nginx=$(ratios get_big.p99 get_nginx.p99 | spread)
get_p99=$(values get_big.p99 | median)
nginx_p99=$(values get_nginx.p99 | median)
goal "GET hour of 1,000 keys after 1e6 records: flowd p99 ms (nginx, same bytes from a file: $(values get_nginx.p99 | spread 3) ms)" \
    "$get_p99" "<=" 2 "$(awk -v n="$nginx_p99" 'BEGIN { if (n > 2) print "not judged: nginx p99 above 2 ms" }')" \
    "$(values get_big.p99 | spread 3)"
get_tables() {
    echo "| scenario | p50 ms | p99 ms | GETs/s |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${get_rows[@]}"
}
get_tables
echo "p50 1e6 / 1e4: $ratio; p50 flowd / nginx: $get_vs_nginx; p99 flowd / nginx: $get_p99_vs_nginx"
fi

if want memory; then
echo "== GET one hour of ~34,000 keys, and memory per key (K=100,000 over 24 hours)"
start_flowd
mem_rows=()
loaded=0
for target in 1000000 10000000; do
    # Every record distinct: bodies are not reused while loading.
    n=$(((target - loaded) / 1000))
    loadgen --port "$flowd_port" --connections 8 --requests "$n" --bodies "$n" --batch 1000 --keys 100000 \
        --hours 24 --seed "$target" --no-verify >/dev/null
    loaded=$target
    keys=$(metric flowd_store_keys)
    mem=$(metric flowd_store_memory_bytes)
    rss=$(rss_bytes)
    mem_rows+=("| $target records | $keys | $(awk -v a="$rss" -v k="$keys" 'BEGIN{printf "%.0f", a/k}') | $(awk -v a="$mem" -v k="$keys" 'BEGIN{printf "%.0f", a/k}') |")
    if [ "$target" = 1000000 ]; then
        big=$(loadgen --port "$flowd_port" --connections 1 --duration 3 --get-hour 5)
        big_keys=$(curl -s "127.0.0.1:$flowd_port/flows?hour=5" | grep -o '"src_app"' | wc -l)
    fi
done
stop_flowd
printf '%s\n' "${mem_rows[@]}"
fi

if want queries; then
echo "== queries: 100,000 keys x 24 hours against DuckDB (1 thread, same core), interleaved"
# The anchor, installed here only (never by make build or make test).
duck_dir=$bin/bench-npm
if [ ! -d "$duck_dir/node_modules/@duckdb/node-api" ]; then
    command -v npm >/dev/null || { echo "bench: npm is missing (apt-get install npm)" >&2; exit 1; }
    npm install --prefix "$duck_dir" --no-audit --no-fund --silent @duckdb/node-api@1.5.6-r.1 >/dev/null
fi
qb() { taskset -c "$client_cpu" "$bin/bench/flowd-querybench" "$@"; }
q_pairs=5
# The ratio of each pair (flowd's median of 3 / the anchor's median of 3), then the median
# of the pair ratios and their min–max (spread).
start_flowd
qb load --port "$flowd_port" --csv "$work/rows.csv" | tail -n1
q_rows=$(metric flowd_store_keys)
q_mem=$(metric flowd_store_memory_bytes)
# ES modules resolve packages from the script's folder (not NODE_PATH): run a copy there.
cp bench/duckdb_anchor.mjs "$duck_dir/"
coproc DUCK { taskset -c "$server_cpu" node "$duck_dir/duckdb_anchor.mjs" "$work/rows.csv" 2>&1; }
pids+=($DUCK_PID)
read -r ready <&"${DUCK[0]}"
echo "duckdb: $ready"
declare -A q_target=(
    [top_src]="/flows/summary?from=0&to=24&group_by=src_app&top=10"
    [top_key]="/flows/summary?from=0&to=24&group_by=src_app,dest_app,vpc_id&top=10"
    [hour5]="/flows?hour=5")
declare -A q_label=(
    [top_src]="top 10 by src_app over 24 h (\`/flows/summary?from=0&to=24&group_by=src_app&top=10\`)"
    [top_key]="top 10 by the full key over 24 h (\`group_by=src_app,dest_app,vpc_id\`)"
    [hour5]="one hour of 100,000 rows in key order (\`/flows?hour=5\`, JSON written)")
declare -A q_goal=([top_src]="<= 0.25" [top_key]="<= 0.25" [hour5]="<= 0.5")
q_rows_md=()
for q in top_src top_key hour5; do
    q_ratios=() f_ms=() d_ms=()
    for _ in $(seq "$q_pairs"); do
        echo "$q 3" >&"${DUCK[1]}"
        read -r d <&"${DUCK[0]}"
        f=$(qb time --port "$flowd_port" --target "${q_target[$q]}" --repeat 3)
        dm=$(echo "$d" | field median_ms)
        fm=$(echo "$f" | field median_ms)
        d_ms+=("$dm") f_ms+=("$fm")
        q_ratios+=("$(awk -v a="$fm" -v b="$dm" 'BEGIN{printf "%.4f", a/b}')")
    done
    q_bytes=$(echo "$f" | field bytes)
    med() { printf '%s\n' "$@" | median; }
    q_rows_md+=("| ${q_label[$q]} | $(med "${f_ms[@]}") | $q_bytes | $(med "${d_ms[@]}") | $(printf '%s\n' "${q_ratios[@]}" | spread) | ${q_goal[$q]} |")
done
echo "quit" >&"${DUCK[1]}" || true
kill "$DUCK_PID" 2>/dev/null || true
# The client's own ceiling: nginx serving the hour's answer as a static file, timed alike.
curl -sf "127.0.0.1:$flowd_port/flows?hour=5" -o "$work/hour5.json"
chmod a+x "$work" && chmod a+r "$work/hour5.json"
start_nginx "location = /flows { default_type application/json; alias $work/hour5.json; }"
ceil=$(qb time --port "$nginx_port" --target "/flows?hour=5" --repeat 9)
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
q_ceiling="nginx serving the same $(echo "$ceil" | field bytes) bytes as a static file to the same client: $(echo "$ceil" | field median_ms) ms (min $(echo "$ceil" | field min_ms), max $(echo "$ceil" | field max_ms))"

# A 304 revalidation against /healthz: wrk (one thread, 32 connections) on the client core.
etag=$(curl -s -D - -o /dev/null "127.0.0.1:$flowd_port${q_target[top_src]}" | sed -n 's/^[Ee][Tt]ag: *\(.*\)\r$/\1/p')
r304=() rh=()
for _ in 1 2 3; do
    a=$(taskset -c "$client_cpu" wrk -t1 -c32 -d3s -H "If-None-Match: $etag" "http://127.0.0.1:$flowd_port${q_target[top_src]}" | awk '/Requests\/sec/ { print $2 }')
    b=$(taskset -c "$client_cpu" wrk -t1 -c32 -d3s "http://127.0.0.1:$flowd_port/healthz" | awk '/Requests\/sec/ { print $2 }')
    r304+=("$a") rh+=("$b")
done
q_304_ratios=$(for i in 0 1 2; do awk -v a="${r304[$i]}" -v b="${rh[$i]}" 'BEGIN{printf "%.4f\n", a/b}'; done | spread)
q_304="304 revalidation ${r304[*]} req/s; /healthz ${rh[*]} req/s; 304 / healthz per pair: **$q_304_ratios** (goal >= 0.8)"
stop_flowd

# POST B=1000 alone and beside a client running 24-hour summaries back to back: flowd
# --threads 2 on one core, both clients on the other. The store holds the query dataset.
flowd_threads=2 start_flowd
qb load --port "$flowd_port" >/dev/null
w_rows=()
w_tp=() w_p99=()
for _ in 1 2 3; do
    for mode in alone with; do
        if [ "$mode" = with ]; then
            qb loop --port "$flowd_port" --target "${q_target[top_src]}" --duration "$((secs + 1))" >"$work/loop.out" &
            loop_pid=$!
            sleep 0.5
        fi
        f=$(loadgen --port "$flowd_port" --connections 32 --duration "$secs" --batch 1000 --keys 1000 --hours 24)
        w_tp+=("$(echo "$f" | field flows_per_s)") w_p99+=("$(echo "$f" | field p99_ms)")
        if [ "$mode" = with ]; then
            wait "$loop_pid" || true
            w_q=$(field queries <"$work/loop.out")
        fi
    done
    i=$((${#w_tp[@]} - 2))
    w_rows+=("| pair $(((i / 2) + 1)) | ${w_tp[$i]} / ${w_p99[$i]} | ${w_tp[$((i + 1))]} / ${w_p99[$((i + 1))]} | $w_q | $(awk -v a="${w_tp[$((i + 1))]}" -v b="${w_tp[$i]}" 'BEGIN{printf "%.2f", a/b}') | $(awk -v a="${w_p99[$((i + 1))]}" -v b="${w_p99[$i]}" 'BEGIN{printf "%.2f", a/b}') |")
done
stop_flowd
printf '%s\n' "${q_rows_md[@]}" "$q_ceiling" "$q_304" "${w_rows[@]}"
fi

if want micro; then
echo "== microbenchmarks of the hot path's stages"
micro=$(taskset -c "$server_cpu" "$bin/bench/flowd-micro" --benchmark_min_time=0.3 2>/dev/null |
    grep -E '^(bm_|Benchmark|-)')
echo "$micro"
fi

load_end=$(load_note)
echo "== load average: $load_start before the first run, $load_end after the last"
goal_tables() {
    echo "| goal (issue 17) | figure | target | |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${goals[@]}"
}
if [ ${#goals[@]} -gt 0 ]; then
    echo "== goals"
    goal_tables
fi

if [ "$out" = /dev/null ]; then
    if want cluster; then
        echo "== cluster mode (scripts/bench-cluster.sh)"
        scripts/bench-cluster.sh "$bin"
    fi
    if want flow; then
        echo "== flow exporters (scripts/bench-flow.sh)"
        scripts/bench-flow.sh "$bin"
    fi
    if want live; then
        echo "== live streams and the console (scripts/bench-live.sh)"
        scripts/bench-live.sh "$bin"
    fi
    echo "== BENCH_ONLY=$only: BENCHMARKS.md left as it was"
    exit 0
fi

commit=$(git rev-parse --short=12 HEAD)
if awk -v l="${load_start%% *}" 'BEGIN { exit !(l < 0.5) }'; then
    load_meaning="near 0: nothing else was running"
else
    load_meaning="well above 0: other processes shared these cores"
fi
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
{
    echo "# flowd benchmarks"
    echo
    echo "Produced by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), commit $commit, on"
    echo "$(nproc) cores of \"$cpu\". flowd runs with --threads 1 pinned to core $server_cpu; its clients"
    echo "(flowd-loadgen: one thread, 32 keep-alive connections, closed loop; wrk \`-t1 -c32\`) are pinned to"
    echo "core $client_cpu. Each throughput run lasts ${secs} s. Workload: records drawn uniformly (seeded)"
    echo "from K keys of ~10-byte names over 24 hours (bench/workload.hpp); the same bodies go to flowd,"
    echo "to nginx, to the Beast floor and to the parse ceiling (wrk sends the first of them)."
    echo "\"verify\" is flowd-loadgen's check that the server's totals moved by exactly what it"
    echo "acknowledged."
    echo
    echo "**How to read a ratio.** Everything compared is measured interleaved, in $pairs rounds (A, B,"
    echo "A, B ...; every run of a round as long as the others), the servers running side by side and"
    echo "only the client moving between them. A ratio is the median of the $pairs per-round ratios with"
    echo "their min–max: \"0.53 (0.51–0.55)\"; \"noisy\" follows when the largest is over 1.5x the"
    echo "smallest. A figure is the median of its rounds. Load average before the first run:"
    echo "$load_start ($load_meaning); after the last: $load_end."
    echo
    echo "## Goals (issue 17)"
    echo
    goal_tables
    echo
    echo "## POST /flows"
    echo
    echo "The anchors: nginx \`return 204\` (reads the body, answers nothing); the Beast floor"
    echo "(bench/beast_floor.cpp: Boost.Beast/Asio alone, one thread, reading each request with its"
    echo "body and answering \`{\"accepted\":1}\`: the framework's own limit, so flowd / floor is what"
    echo "flowd's own layers cost); the parse-only ceiling (simdjson alone, no HTTP). All pinned to"
    echo "flowd's core."
    echo
    post_tables
    echo
    echo "## POST with two server threads on the generator's two cores"
    echo
    echo "flowd --threads 2 and flowd-loadgen (one thread, 32 connections) both on every core, beside"
    echo "flowd --threads 1 on core $server_cpu with the generator on core $client_cpu; both flowd"
    echo "processes run throughout and the generator alternates between them ($pairs rounds)."
    echo
    mc_tables
    echo
    echo "## POST with the write-ahead log"
    echo
    echo "Same workload and connections (32) as above; \`--data-dir\` on this machine's disk. \`interval\`"
    echo "fsyncs once a second; \`always\` answers each batch after its fsync (group commit: the batches"
    echo "that arrive during one fsync share the next). Three flowd processes (memory only, \`interval\`,"
    echo "\`always\`) run side by side on core $server_cpu; the generator goes round them $pairs times."
    echo
    wal_tables
    echo
    echo "## Recovery"
    echo
    echo "10,000,000 records (10,000 batches of 1,000) over K=1,000,000 keys in one hour: $rec_keys"
    echo "aggregated keys. Recovery time is flowd's own figure (its \"recovered ...\" log line, also"
    echo "\`flowd_recovery_duration_seconds\`)."
    echo
    echo "| start from | on disk | keys after | seconds |"
    echo "| --- | --- | --- | --- |"
    echo "| the log alone (10,000 records of 1,000 keys, kill -9, no checkpoint) | $log_bytes bytes of log | $rec_log_keys | $rec_log |"
    echo "| a checkpoint (written by the clean stop that followed) | $snap_bytes bytes of snapshot | $rec_snap_keys | $rec_snap |"
    echo
    echo "## GET /flows?hour=N (1 connection)"
    echo
    echo "The rows after 1e4 and 1e5 records are single 3 s runs on the growing store. After 1e6"
    echo "records, that flowd, a second flowd holding the first 1e4 records only, and nginx serving the"
    echo "same answer as a file were read in $pairs interleaved rounds of 3 s: their rows show the median"
    echo "(min–max) of the rounds."
    echo
    get_tables
    echo "| hour of $big_keys keys (K=100,000 x 24 h, 1e6 records) | $(echo "$big" | field p50_ms) | $(echo "$big" | field p99_ms) | $(echo "$big" | field req_per_s) |"
    echo
    echo "GET p50 after 1e6 records / after 1e4 records, same 1,000-key hour: **$ratio** (the cost of a read"
    echo "follows the keys of the hour, not the records ever posted). flowd's p50 after 1e6 records /"
    echo "nginx's for the same bytes from a file: **$get_vs_nginx**, p99: **$get_p99_vs_nginx** (what"
    echo "copying the hour out of the store, sorting and serialising it adds to the transport; a p99"
    echo "near nginx's is this machine's tail)."
    echo
    echo "## Memory (K=100,000 keys x 24 hours)"
    echo
    echo "| loaded | aggregated keys | RSS bytes / key | flowd_store_memory_bytes / key |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${mem_rows[@]}"
    echo
    echo "RSS includes the process baseline (code, thread stacks, the parser's buffers), so it"
    echo "overstates per-key cost at small key counts."
    echo
    echo "## Queries (100,000 keys x 24 hours = 2,400,000 stored rows) against DuckDB"
    echo
    echo "Data: flowd-querybench (bench/query_bench.cpp) POSTs 100,000 keys (names from 2,000"
    echo "applications and 50 VPCs) in each of 24 hours: $q_rows rows, flowd_store_memory_bytes"
    echo "$q_mem. The anchor is DuckDB (@duckdb/node-api, installed by this script into"
    echo "build/release/bench-npm; 1 thread; an in-memory table of the same rows read from the"
    echo "loader's CSV; bench/duckdb_anchor.mjs), pinned to flowd's core and timed inside node"
    echo "(query plus reading every result row). flowd's time is time to last byte measured by"
    echo "flowd-querybench on the other core (one keep-alive connection, the answer read into a"
    echo "buffer reserved up front). $q_pairs interleaved pairs (DuckDB x3, flowd x3); the ratio is"
    echo "flowd / DuckDB per pair, shown as the median (min–max) of the pairs."
    echo
    echo "| question | flowd ms | flowd answer bytes | DuckDB ms | flowd / DuckDB | goal |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${q_rows_md[@]}"
    echo
    echo "The client's own ceiling: $q_ceiling."
    echo
    echo "$q_304."
    echo
    echo "POST B=1000 (flowd-loadgen, 32 connections, K=1000 over 24 h, ${secs} s) alone and beside"
    echo "a client running \`${q_target[top_src]}\` back to back; flowd --threads 2 pinned to core"
    echo "$server_cpu, both clients on core $client_cpu, 3 interleaved pairs (goal: throughput >= 0.6 x"
    echo "alone, p99 <= 3 x alone):"
    echo
    echo "| pair | alone flows/s / p99 ms | with summaries flows/s / p99 ms | summaries answered | throughput ratio | p99 ratio |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${w_rows[@]}"
    echo
    echo "What the query side adds per stored row: each (shard, hour) table keeps its key count"
    echo "and its two 128-bit sums (32 bytes a table; 64 shards x 24 hours = 1,536 tables here,"
    echo "49 KB for 2.4 M rows: 0.02 bytes a row); ETags are computed from those totals, so no"
    echo "per-row version is stored."
    echo
    echo "## Microbenchmarks (bench/micro.cpp, Google Benchmark, one core)"
    echo
    echo "Each stage of the hot path alone, on the same workload (K=1000 keys, 24 hours): decode+validate"
    echo "(simdjson On-Demand plus every SPEC rule plus pre-aggregation into a batch; /N = records per"
    echo "body), pre-aggregate alone, store apply (prepare + commit), store apply while a live stream"
    echo "watches (bm_store_apply_watched/B/1: every hour watched, the change journal records every"
    echo "row; /B/2: one hour of the 24 watched, a 24th recorded; against /B/0 with no stream; 256"
    echo "bodies), snapshot (copy one hour out and sort it) and GET serialisation,"
    echo "for hours of 1,000 and 34,000 keys. items_per_second is records or keys per second."
    echo
    echo '```'
    echo "$micro"
    echo '```'
} >"$out"
echo "== cluster mode (scripts/bench-cluster.sh)"
echo >>"$out"
scripts/bench-cluster.sh "$bin" >>"$out"
echo "== flow exporters (scripts/bench-flow.sh)"
echo >>"$out"
scripts/bench-flow.sh "$bin" >>"$out"
echo "== live streams and the console (scripts/bench-live.sh)"
echo >>"$out"
scripts/bench-live.sh "$bin" >>"$out"
echo "== wrote $out"
cat "$out"
