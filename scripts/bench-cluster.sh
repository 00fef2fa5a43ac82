#!/usr/bin/env bash
# Cluster-mode figures of `make bench` (docs/SCALING.md): scripts/bench.sh runs this after its
# own scenarios and appends what it prints (a BENCHMARKS.md section) to BENCHMARKS.md.
# Alone: scripts/bench-cluster.sh [BUILD_DIR]   (default build/release, built by bench.sh).
#
# Three Debian nats-servers with JetStream routed into one cluster on loopback (a 3-replica
# stream), not pinned; flowd (--threads 1) pinned to core 0 and flowd-loadgen to core 1 as in
# bench.sh. For each batch size the same load goes, interleaved round by round, to a
# local-log flowd (--data-dir, fsync interval), to a cluster-mode flowd on a 1-replica stream
# and to one on a 3-replica stream; the apply lag is sampled from the 3-replica node's
# /metrics every 100 ms during its load; then a second node started on the same stream from
# nothing catches up, and its records/s are timed.
# Last, the failover figures (issue 19): bench/failover.py kills a nats-server
# FAILOVER_KILLS times (default 20: every other one the stream's leader) under one writer
# with two cluster nodes, restarting each before the next.
#   BENCH_SECONDS (default 8) sets the length of each throughput run, BENCH_PAIRS (default 3)
#   the number of rounds.
#   FAILOVER_KILLS (default 20, at least 2) sets the number of kills; CLUSTER_SECTIONS
#   (default "throughput,failover") runs only the sections named (a short check of one).
#   FAILOVER_LOGS=DIR keeps both nodes' and the three servers' logs of the failover section.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${BENCH_SECONDS:-8}
kills=${FAILOVER_KILLS:-20}
pairs=${BENCH_PAIRS:-3}
sections=${CLUSTER_SECTIONS:-throughput,failover}
section() { [[ ",$sections," == *",$1,"* ]]; }
bin=${1:-build/release}
work=$(mktemp -d /tmp/flowd-cbench-XXXXXX)
server_cpu=0
client_cpu=1
if [ "$(nproc)" -lt 2 ]; then client_cpu=0; fi
for tool in nats-server taskset curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-cluster: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

field() { sed -n "s/^RESULT.* $1=\([^ ]*\).*/\1/p; s/^RESULT $1=\([^ ]*\).*/\1/p" | head -n1; }
loadgen() { taskset -c "$client_cpu" "$bin/bench/flowd-loadgen" "$@"; }
metric() { # PORT NAME [LABELS]: the value of one sample of flowd's /metrics
    curl -s "127.0.0.1:$1/metrics" | awk -v m="$2${3:-}" '$1 == m { print $2 }'
}
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    echo "bench-cluster: no free port" >&2
    exit 1
}

# --- the JetStream cluster
# (each with its monitoring port, where the failover section finds the stream's leader;
# servers.json holds what it needs to kill and restart each one)
ports=() cports=() mports=()
for i in 0 1 2; do ports+=("$(free_port)"); cports+=("$(free_port)"); mports+=("$(free_port)"); done
urls=""
servers_json=""
for i in 0 1 2; do
    routes=""
    for j in 0 1 2; do
        [ "$j" = "$i" ] || routes="${routes:+$routes,}nats://127.0.0.1:${cports[$j]}"
    done
    mkdir -p "$work/n$i"
    cmd=(nats-server -js -n "n$i" -a 127.0.0.1 -p "${ports[$i]}" -m "${mports[$i]}" -sd "$work/n$i"
        -cluster "nats://127.0.0.1:${cports[$i]}" --cluster_name flowdbench -routes "$routes"
        -l "$work/n$i/server.log")
    "${cmd[@]}" &
    pids+=($!)
    disown $! # the failover section kills it: no "Killed" report from this shell
    urls="${urls:+$urls,}nats://127.0.0.1:${ports[$i]}"
    args=$(printf '"%s",' "${cmd[@]}")
    servers_json="${servers_json:+$servers_json,}{\"name\":\"n$i\",\"port\":${ports[$i]},\"monitor\":${mports[$i]},\"pid\":$!,\"cmd\":[${args%,}]}"
done
echo "[$servers_json]" >"$work/servers.json"

start_flowd() { # [ENV=VALUE ...] -- ARGS...: sets flowd_pid, flowd_port, flowd_log
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    flowd_log=$work/flowd-$RANDOM.log
    : >"$flowd_log" # polled below before the background start may have opened it
    env "${envs[@]}" taskset -c "$server_cpu" "$bin/flowd" --listen 127.0.0.1:0 \
        --metrics-listen 127.0.0.1:0 --threads 1 "$@" 2>"$flowd_log" &
    pids+=($!)
    flowd_pid=$!
    flowd_port=""
    for _ in $(seq 1800); do
        flowd_port=$(sed -n 's/.*http listening on [^ ]*:\([0-9]*\).*/\1/p' "$flowd_log" | head -n1)
        if [ -n "$flowd_port" ] &&
            [ "$(curl -s -o /dev/null -w '%{http_code}' "127.0.0.1:$flowd_port/readyz")" = 200 ]; then
            return 0
        fi
        sleep 0.05
    done
    echo "bench-cluster: flowd did not become ready: $(tail -n 20 "$flowd_log")" >&2
    exit 1
}
stop_flowd() { kill "$flowd_pid"; wait "$flowd_pid" 2>/dev/null || true; }

p99() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print 0; exit } i = int(NR * 0.99 + 0.999); if (i < 1) i = 1; print v[i] }'; }

stop_pid() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
# Values on stdin -> "median (min–max)", two decimals.
spread() {
    sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf "%.2f (%.2f–%.2f)", m, v[1], v[NR] }'
}
median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

rows=()
if section throughput; then
for b in 100 1000; do
    # Three flowds side by side on core 0, the generator going round them: a local-log one
    # (--data-dir, fsync interval), one on a 1-replica stream (flowd's own cost of cluster
    # mode: one server stores each message) and one on a 3-replica stream (a quorum of 2).
    echo "== B=$b: local log, 1-replica stream, 3-replica stream; $pairs rounds of ${secs}s" >&2
    start_flowd FLOWD_FSYNC=interval -- --data-dir "$work/data-$b"
    local_port=$flowd_port local_pid=$flowd_pid
    start_flowd FLOWD_NODE_NAME=one FLOWD_CLUSTER_STREAM="ONE$b" FLOWD_CLUSTER_REPLICAS=1 \
        FLOWD_MIN_SEQ_WAIT=60s -- --cluster "$urls"
    one_port=$flowd_port one_pid=$flowd_pid
    start_flowd FLOWD_NODE_NAME=bench FLOWD_CLUSTER_STREAM="BENCH$b" FLOWD_MIN_SEQ_WAIT=60s -- --cluster "$urls"
    node_port=$flowd_port node_pid=$flowd_pid
    : >"$work/lag"
    : >"$work/runs"
    for round in $(seq "$pairs"); do
        l=$(loadgen --port "$local_port" --connections 32 --duration "$secs" --batch "$b" --keys 1000 --hours 24)
        o=$(loadgen --port "$one_port" --connections 32 --duration "$secs" --batch "$b" --keys 1000 --hours 24)
        (
            while kill -0 "$node_pid" 2>/dev/null && [ ! -e "$work/lag.stop" ]; do
                curl -s "127.0.0.1:$node_port/metrics" |
                    awk '$1 == "flowd_cluster_apply_lag_seconds" { s = $2 } $1 == "flowd_cluster_apply_lag_records" { r = $2 } END { print s, r }' >>"$work/lag"
                sleep 0.1
            done
        ) &
        sampler=$!
        c=$(loadgen --port "$node_port" --connections 32 --duration "$secs" --batch "$b" --keys 1000 --hours 24)
        touch "$work/lag.stop"
        wait "$sampler" 2>/dev/null || true
        rm -f "$work/lag.stop"
        for run in l o c; do
            echo "$round $run $(echo "${!run}" | field flows_per_s) $(echo "${!run}" | field p99_ms) $(echo "${!run}" | field verify)" >>"$work/runs"
        done
        echo "  round $round: local $(echo "$l" | field flows_per_s), 1-replica $(echo "$o" | field flows_per_s), 3-replica $(echo "$c" | field flows_per_s) flows/s" >&2
    done
    col() { awk -v r="$1" -v k="$2" '$2 == r { print $k }' "$work/runs"; }
    ratios() { paste <(col "$1" 3) <(col l 3) | awk '{ print $1 / $2 }' | spread; }
    verdicts() { col "$1" 5 | sort -u | paste -sd, -; }
    lag_s=$(awk '{ print $1 }' "$work/lag" | p99)
    lag_r=$(awk '{ print $2 }' "$work/lag" | p99)
    samples=$(wc -l <"$work/lag")
    rows+=("| POST B=$b, K=1000 | $(col l 3 | median) | $(col l 4 | median) | $(col o 3 | median) | $(col o 4 | median) | $(ratios o) | $(col c 3 | median) | $(col c 4 | median) | $(ratios c) | $(verdicts l) / $(verdicts o) / $(verdicts c) | $lag_s / $lag_r ($samples samples) |")
    if [ "$b" = 1000 ]; then
        one_ratio=$(paste <(col o 3) <(col l 3) | awk '{ print $1 / $2 }' | median)
        one_goal=$(awk -v r="$one_ratio" 'BEGIN { print (r >= 0.5) ? "met" : "missed" }')
        one_spread=$(ratios o)
    fi
    messages=$(metric "$node_port" flowd_cluster_applied_seq)
    records=$(metric "$node_port" flowd_flows_applied_total '{source="stream"}')
    stop_pid "$local_pid"
    stop_pid "$one_pid"
    stop_pid "$node_pid"
done

echo "== catch-up: a new node applies stream BENCH1000 from its start" >&2
t0=$(date +%s.%N)
start_flowd FLOWD_NODE_NAME=late FLOWD_CLUSTER_STREAM=BENCH1000 -- --cluster "$urls"
t1=$(date +%s.%N)
late_records=$(metric "$flowd_port" flowd_flows_applied_total '{source="stream"}')
catch_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b - a}')
catch_rate=$(awk -v r="$late_records" -v s="$catch_s" 'BEGIN{printf "%.0f", r / s}')
stop_flowd
fi

if section failover; then
    echo "== failover: $kills nats-server kills (every other one the stream's leader) under one writer, 2 nodes" >&2
    start_flowd FLOWD_NODE_NAME=fa FLOWD_CLUSTER_STREAM=FAILOVER FLOWD_CLUSTER_PUBLISH_TIMEOUT=10s -- --cluster "$urls"
    fa_port=$flowd_port
    fa_log=$flowd_log
    start_flowd FLOWD_NODE_NAME=fb FLOWD_CLUSTER_STREAM=FAILOVER FLOWD_CLUSTER_PUBLISH_TIMEOUT=10s -- --cluster "$urls"
    fb_port=$flowd_port
    fb_log=$flowd_log
    f=$(taskset -c "$client_cpu" python3 bench/failover.py "$work/servers.json" "$fa_port" "$fb_port" FAILOVER 30 "$kills" "$fa_log" "$fb_log")
    if [ -n "${FAILOVER_LOGS:-}" ]; then
        mkdir -p "$FAILOVER_LOGS"
        cp "$fa_log" "$FAILOVER_LOGS/flowd-a.log"
        cp "$fb_log" "$FAILOVER_LOGS/flowd-b.log"
        for i in 0 1 2; do cp "$work/n$i/server.log" "$FAILOVER_LOGS/nats-n$i.log" 2>/dev/null || true; done
    fi
    echo "$f" >&2
fi

if section throughput; then
cat <<EOF
## Cluster mode (NATS JetStream)

\`scripts/bench-cluster.sh\`, run by \`make bench\` after the scenarios above, in the same run:
three Debian \`nats-server\` processes with JetStream routed into one cluster on loopback
(not pinned: they share both cores with flowd and the generator). Three flowds (--threads 1,
all on core 0) run side by side: a local-log one (\`--data-dir\`, fsync interval), the
baseline; a cluster-mode one on a 1-replica stream (one server stores each message: what
cluster mode itself costs flowd); and one on a 3-replica stream (a POST is answered once a
quorum of 2 of 3 replicas stored it). flowd-loadgen (32 connections, core 1, ${secs} s a run)
goes round them $pairs times; each ratio is the median of the rounds' ratios to the local log
in the same round, with min–max. "verify" reads with \`min_seq\` at the highest acknowledged
sequence. The apply lag is the 3-replica node's \`flowd_cluster_apply_lag_seconds\` /
\`_records\` sampled every 100 ms during its runs.

| scenario | local-log flows/s | p99 ms | 1-replica flows/s | p99 ms | 1-replica / local log | 3-replica flows/s | p99 ms | 3-replica / local log | verify (local / 1 / 3) | apply lag p99 s / records |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
$(printf '%s\n' "${rows[@]}")

Issue 17's goal, POST B=1000 on a 1-replica stream / the local log >= 0.5: **$one_spread,
$one_goal**.

Catch-up: a node started from nothing on the B=1000 stream ($messages messages, $records
records) was ready (applied all of it) after $catch_s s: **$catch_rate records/s** (from
process start, connecting included). On these 2 shared cores the three nats-servers compete
with flowd for CPU, so these ratios are a floor for a deployment with the servers on their
own machines.
EOF
fi

if section failover; then
    ff() { echo "$f" | field "$1"; }
    cat <<EOF

### Failover: a broker killed under load (issue 19)

\`bench/failover.py\`, same run, same three servers: two cluster-mode flowd nodes (--threads 1,
both on core 0, \`cluster_publish_timeout\` 10s) on a new 3-replica stream, one writer (core 1)
POSTing one-record batches back to back, alternately to both nodes, each with its own
Idempotency-Key and no retry. $(ff kills) SIGKILLs of a nats-server, every other one the
stream's leader (read from the server's monitoring endpoint \`/jsz?accounts=true&streams=true\`),
the others a server that is not; the killed server is restarted 4 s after the kill (or 2 s
after the first acknowledgement, if later), and the next kill waits until the stream has a
leader and two current replicas. Each node's \`flowd_cluster_applied_seq\` is polled every
10 ms. "First acknowledged POST": the first POST sent after the kill answered 200; "every
node applied": its sequence seen applied on both nodes.

| leader kills | kill -> first acknowledged POST, median / max s | kill -> every node applied, median / max s | POSTs while the leader was down | their latency p50 / p99 / max ms |
| --- | --- | --- | --- | --- |
| $(ff leader_kills) | $(ff first_ack_median) / $(ff first_ack_max) | $(ff applied_median) / $(ff applied_max) | $(ff post_n) | $(ff post_p50_ms) / $(ff post_p99_ms) / $(ff post_max_ms) |

Issue 19's item-2 goal (after a broker SIGKILL, every node applies each newly acknowledged
batch within \`min_seq_wait\`, 2 s, at p99 over 20 kills, leader or not), measured over all
$(ff kills) kills: for every batch acknowledged while the killed server was down (the POST in
flight at the kill included), its acknowledgement to the moment both nodes had applied it.

| kills | batches acknowledged while a server was down | refused | ack -> applied on both, p50 / p99 / max ms | within 2 s |
| --- | --- | --- | --- | --- |
| $(ff kills) | $(ff batches) | $(ff refused) | $(ff delay_p50_ms) / $(ff delay_p99_ms) / $(ff delay_max_ms) | $(ff within_2s) of $(ff batches) |

Where the slow ones went: each batch a node had not applied 2 s after its acknowledgement,
charged to that node's state at the 2 s mark (bench/failover.py's docstring): its connection
down (reconnect), the stream without a leader in the servers' \`/jsz\` (polled every 100 ms),
its consumer failed or stalled and not yet back (recreating, from its log), or none of these
(silent: a consumer flowd still thought alive). The broker's own share: the time the stream
had no leader after each leader kill, and JetStream's meta group (which creates consumers)
none after each kill.

| slow (node, batch) | no leader | recreating | reconnect | silent | no stream leader per leader kill, median / max s | no meta leader per kill, median / max s |
| --- | --- | --- | --- | --- | --- | --- |
| $(( $(ff slow_no_leader) + $(ff slow_recreating) + $(ff slow_reconnect) + $(ff slow_silent) )) | $(ff slow_no_leader) | $(ff slow_recreating) | $(ff slow_reconnect) | $(ff slow_silent) | $(ff no_leader_median) / $(ff no_leader_max) | $(ff no_meta_median) / $(ff no_meta_max) |
EOF
fi
