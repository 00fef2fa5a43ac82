#!/usr/bin/env bash
# `make bench`: release build, flowd pinned to core 0 and flowd-loadgen to core 1, every
# figure beside a baseline measured in the same run; writes BENCHMARKS.md. The cluster-mode
# section comes from scripts/bench-cluster.sh, run last.
#   BENCH_SECONDS (default 8) sets the length of each throughput run.
#   BENCH_ONLY (default: every section) runs only the sections named, comma-separated:
#     post (POST B=1/100/1000 against nginx and the parse ceiling, and POST B=1000 with
#     --threads 2 sharing both cores with the generator), wal, recovery, get, memory, micro,
#     queries (range and summary queries against DuckDB, 304s, POST beside summaries),
#     cluster (scripts/bench-cluster.sh), flow (scripts/bench-flow.sh: NetFlow/IPFIX).
#     A partial run prints its tables and leaves BENCHMARKS.md alone, e.g.
#     BENCH_ONLY=post scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${BENCH_SECONDS:-8}
only=${BENCH_ONLY:-post,wal,recovery,get,memory,queries,micro,cluster,flow}
out=BENCHMARKS.md
if [ -n "${BENCH_ONLY:-}" ]; then out=/dev/null; fi
want() { [[ ",$only," == *",$1,"* ]]; }
work=$(mktemp -d /tmp/flowd-bench-XXXXXX)
server_cpu=0
client_cpu=1
if [ "$(nproc)" -lt 2 ]; then client_cpu=0; fi

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" --target flowd flowd-loadgen flowd-parse-ceiling flowd-micro flowd-querybench flowd-flow-replay >/dev/null
bin=build/release
loadgen() { taskset -c "$client_cpu" "$bin/bench/flowd-loadgen" "$@"; }
field() { sed -n "s/.*RESULT.* $1=\([^ ]*\).*/\1/p; s/^RESULT $1=\([^ ]*\).*/\1/p" | head -n1; }

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# flowd_threads and flowd_cpus (defaults: 1 thread on core $server_cpu) for one start.
start_flowd() {
    local log=$work/flowd-$RANDOM.log
    flowd_log=$log
    : >"$log"  # exists before the first sed below, even if flowd is slow to start
    taskset -c "${flowd_cpus:-$server_cpu}" "$bin/flowd" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
        --threads "${flowd_threads:-1}" "$@" 2>"$log" &
    pids+=($!)
    flowd_pid=$!
    # Up to 60 s: with a data directory, recovery comes before "ready".
    for _ in $(seq 1200); do
        flowd_port=$(sed -n 's/.*http listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -n1)
        metrics_port=$(sed -n 's/.*metrics listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -n1)
        [ -n "$flowd_port" ] && [ -n "$metrics_port" ] && grep -q '\] ready: ' "$log" && return 0
        sleep 0.05
    done
    echo "bench: flowd did not start: $(cat "$log")" >&2
    exit 1
}
stop_flowd() { kill "$flowd_pid"; wait "$flowd_pid" 2>/dev/null || true; }

# $1: the server's location block (default: answer every request 204).
start_nginx() {
    local location=${1:-'location / { return 204; }'}
    # nginx cannot listen on port 0: take a random port nothing answers on.
    for _ in $(seq 50); do
        nginx_port=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null || break
    done
    mkdir -p "$work/nginx"
    cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    client_max_body_size 20m;
    client_body_buffer_size 1m;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$nginx_port;
        $location
    }
}
NGINX
    taskset -c "$server_cpu" /usr/sbin/nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" &
    pids+=($!)
    nginx_pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$nginx_port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "bench: nginx did not start" >&2
    exit 1
}

metric() { curl -s "127.0.0.1:$flowd_port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
rss_bytes() { awk '/VmRSS/ { print $2 * 1024 }' "/proc/$flowd_pid/status"; }

rows=()
mc_rows=()
if want post; then
echo "== POST throughput: flowd vs nginx 'return 204' vs the parse-only ceiling (${secs}s each)"
start_nginx
for b in 1 100 1000; do
    start_flowd
    f=$(loadgen --port "$flowd_port" --connections 32 --duration "$secs" --batch "$b" --keys 1000 --hours 24)
    echo "$f" | tail -n 3
    stop_flowd
    n=$(loadgen --port "$nginx_port" --connections 32 --duration "$secs" --batch "$b" --keys 1000 --hours 24 --no-verify)
    c=$(taskset -c "$server_cpu" "$bin/bench/flowd-parse-ceiling" "$b" 1000 2)
    ff=$(echo "$f" | field flows_per_s)
    nf=$(echo "$n" | field flows_per_s)
    cf=$(echo "$c" | field records_per_s)
    rows+=("| POST B=$b, K=1000 | $ff | $(echo "$f" | field p50_ms) / $(echo "$f" | field p99_ms) | $nf | $(awk -v a="$ff" -v b="$nf" 'BEGIN{printf "%.2f", a/b}') | $cf | $(awk -v a="$ff" -v b="$cf" 'BEGIN{printf "%.3f", a/b}') | $(echo "$f" | field verify) |")
done
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
one_thread=$ff  # POST B=1000, flowd --threads 1 on core $server_cpu, the generator on the other

echo "== POST B=1000 with flowd --threads 2 and the generator sharing both cores (${secs}s)"
all_cpus=$server_cpu,$client_cpu
[ "$server_cpu" = "$client_cpu" ] && all_cpus=$server_cpu
flowd_threads=2 flowd_cpus=$all_cpus start_flowd
f=$(taskset -c "$all_cpus" "$bin/bench/flowd-loadgen" --port "$flowd_port" --connections 32 \
    --duration "$secs" --batch 1000 --keys 1000 --hours 24)
echo "$f" | tail -n 3
stop_flowd
mf=$(echo "$f" | field flows_per_s)
mc_rows+=("| POST B=1000, K=1000, --threads 1 on core $server_cpu, generator on core $client_cpu | $one_thread | 1.00 | (the POST row above) |")
mc_rows+=("| POST B=1000, K=1000, --threads 2 and the generator on cores $all_cpus | $mf | $(awk -v a="$mf" -v b="$one_thread" 'BEGIN{printf "%.2f", a/b}') | $(echo "$f" | field verify) |")
printf '%s\n' "${rows[@]}" "${mc_rows[@]}"
fi

if want wal; then
echo "== POST with a write-ahead log (--data-dir) vs memory only, 32 connections (${secs}s each)"
wal_rows=()
for b in 100 1000; do
    declare -A wal_f=() wal_p99=() wal_v=()
    for mode in memory interval always; do
        rm -rf "$work/data"
        if [ "$mode" = memory ]; then
            start_flowd
        else
            FLOWD_FSYNC=$mode start_flowd --data-dir "$work/data"
        fi
        f=$(loadgen --port "$flowd_port" --connections 32 --duration "$secs" --batch "$b" --keys 1000 --hours 24)
        wal_f[$mode]=$(echo "$f" | field flows_per_s)
        wal_p99[$mode]=$(echo "$f" | field p99_ms)
        wal_v[$mode]=$(echo "$f" | field verify)
        stop_flowd
    done
    for mode in interval always; do
        wal_rows+=("| POST B=$b, K=1000, fsync $mode | ${wal_f[$mode]} | ${wal_p99[$mode]} | ${wal_f[memory]} | $(awk -v a="${wal_f[$mode]}" -v b="${wal_f[memory]}" 'BEGIN{printf "%.2f", a/b}') | ${wal_v[$mode]} |")
    done
done

printf '%s\n' "${wal_rows[@]}"
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
echo "== GET one hour of 1,000 keys as the store grows"
get_rows=()
start_flowd
loaded=0
declare -A get_p50
for target in 10000 100000 1000000; do
    n=$(((target - loaded) / 1000))
    loadgen --port "$flowd_port" --connections 8 --requests "$n" --bodies "$n" --batch 1000 --keys 1000 \
        --hours 1 --first-hour 0 --seed "$target" --no-verify >/dev/null
    loaded=$target
    g=$(loadgen --port "$flowd_port" --connections 1 --duration 3 --get-hour 0)
    get_p50[$target]=$(echo "$g" | field p50_ms)
    get_rows+=("| hour of 1,000 keys after $target records | $(echo "$g" | field p50_ms) | $(echo "$g" | field p99_ms) | $(echo "$g" | field req_per_s) |")
done
# The transport baseline: nginx serving the very same answer as a static file, to the same
# generator over the same loopback, so a GET's figures can be read against this machine's.
curl -sf "127.0.0.1:$flowd_port/flows?hour=0" -o "$work/hour.json"
stop_flowd
get_bytes=$(stat -c %s "$work/hour.json")
chmod a+x "$work" && chmod a+r "$work/hour.json"  # nginx's workers run as another user
start_nginx "location = /flows { default_type application/json; alias $work/hour.json; }"
ng=$(loadgen --port "$nginx_port" --connections 1 --duration 3 --get-hour 0)
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
get_rows+=("| nginx serving the same answer ($get_bytes bytes) as a static file | $(echo "$ng" | field p50_ms) | $(echo "$ng" | field p99_ms) | $(echo "$ng" | field req_per_s) |")
get_vs_nginx=$(awk -v a="${get_p50[1000000]}" -v b="$(echo "$ng" | field p50_ms)" 'BEGIN{printf "%.2f", a/b}')
ratio=$(awk -v a="${get_p50[1000000]}" -v b="${get_p50[10000]}" 'BEGIN{printf "%.2f", a/b}')
printf '%s\n' "${get_rows[@]}"
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
pairs=5
# The ratio of each pair (flowd's median of 3 / the anchor's median of 3), then the median
# of the pair ratios and their min-max: "median (min-max)".
ratio_summary() { sort -g | awk '{ r[NR] = $1 } END { printf "%.3f (%.3f-%.3f)", r[int((NR + 1) / 2)], r[1], r[NR] }'; }
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
    ratios=() f_ms=() d_ms=()
    for _ in $(seq "$pairs"); do
        echo "$q 3" >&"${DUCK[1]}"
        read -r d <&"${DUCK[0]}"
        f=$(qb time --port "$flowd_port" --target "${q_target[$q]}" --repeat 3)
        dm=$(echo "$d" | field median_ms)
        fm=$(echo "$f" | field median_ms)
        d_ms+=("$dm") f_ms+=("$fm")
        ratios+=("$(awk -v a="$fm" -v b="$dm" 'BEGIN{printf "%.4f", a/b}')")
    done
    q_bytes=$(echo "$f" | field bytes)
    med() { printf '%s\n' "$@" | sort -g | awk '{ r[NR] = $1 } END { printf "%s", r[int((NR + 1) / 2)] }'; }
    q_rows_md+=("| ${q_label[$q]} | $(med "${f_ms[@]}") | $q_bytes | $(med "${d_ms[@]}") | $(printf '%s\n' "${ratios[@]}" | ratio_summary) | ${q_goal[$q]} |")
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
q_304_ratios=$(for i in 0 1 2; do awk -v a="${r304[$i]}" -v b="${rh[$i]}" 'BEGIN{printf "%.4f\n", a/b}'; done | ratio_summary)
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

if [ "$out" = /dev/null ]; then
    if want cluster; then
        echo "== cluster mode (scripts/bench-cluster.sh)"
        scripts/bench-cluster.sh "$bin"
    fi
    if want flow; then
        echo "== flow exporters (scripts/bench-flow.sh)"
        scripts/bench-flow.sh "$bin"
    fi
    echo "== BENCH_ONLY=$only: BENCHMARKS.md left as it was"
    exit 0
fi

commit=$(git rev-parse --short=12 HEAD)
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n1)
{
    echo "# flowd benchmarks"
    echo
    echo "Produced by \`make bench\` (scripts/bench.sh) on $(date -u +%Y-%m-%d), commit $commit, on"
    echo "$(nproc) cores of \"$cpu\". flowd runs with --threads 1 pinned to core $server_cpu, flowd-loadgen"
    echo "(one thread, 32 keep-alive connections, closed loop) pinned to core $client_cpu; each POST figure"
    echo "lasts ${secs} s. Every baseline was measured in the same run. Workload: records drawn uniformly"
    echo "(seeded) from K keys of ~10-byte names over 24 hours (bench/workload.hpp); the same bodies go"
    echo "to flowd, to nginx and to the parse ceiling. \"verify\" is flowd-loadgen's check that the"
    echo "server's totals moved by exactly what it acknowledged."
    echo
    echo "## POST /flows"
    echo
    echo "| scenario | flowd flows/s | flowd p50 / p99 ms | nginx 'return 204' flows/s | flowd / nginx | parse-only ceiling records/s | flowd / ceiling | verify |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
    echo
    echo "## POST with two server threads on the generator's two cores"
    echo
    echo "flowd --threads 2 and flowd-loadgen (one thread, 32 connections) both on every core, beside"
    echo "the one-thread figure of the POST table (flowd and the generator on a core each)."
    echo
    echo "| scenario | flows/s | ratio to --threads 1 | verify |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${mc_rows[@]}"
    echo
    echo "## POST with the write-ahead log"
    echo
    echo "Same workload and connections (32) as above; \`--data-dir\` on this machine's disk. \`interval\`"
    echo "fsyncs once a second; \`always\` answers each batch after its fsync (group commit: the batches"
    echo "that arrive during one fsync share the next). Memory-only measured in the same run."
    echo
    echo "| scenario | flows/s | p99 ms | memory-only flows/s | ratio | verify |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${wal_rows[@]}"
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
    echo "| scenario | p50 ms | p99 ms | GETs/s |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${get_rows[@]}"
    echo "| hour of $big_keys keys (K=100,000 x 24 h, 1e6 records) | $(echo "$big" | field p50_ms) | $(echo "$big" | field p99_ms) | $(echo "$big" | field req_per_s) |"
    echo
    echo "GET p50 after 1e6 records / after 1e4 records, same 1,000-key hour: **$ratio** (the cost of a read"
    echo "follows the keys of the hour, not the records ever posted). flowd's p50 after 1e6 records /"
    echo "nginx's for the same bytes from a file: **$get_vs_nginx** (what copying the hour out of the store,"
    echo "sorting and serialising it adds to the transport; a p99 near nginx's is this machine's tail)."
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
    echo "buffer reserved up front). $pairs interleaved pairs (DuckDB x3, flowd x3); the ratio is"
    echo "flowd / DuckDB per pair, shown as the median (min-max) of the pairs."
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
    echo "body), pre-aggregate alone, store apply (prepare + commit), snapshot (copy one hour out and sort"
    echo "it) and GET serialisation, for hours of 1,000 and 34,000 keys. items_per_second is records or"
    echo "keys per second."
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
echo "== wrote $out"
cat "$out"
