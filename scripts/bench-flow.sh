#!/usr/bin/env bash
# Flow exporters' figures of `make bench` (issue 18): scripts/bench.sh runs this after its own
# scenarios and appends what it prints (a BENCHMARKS.md section) to BENCHMARKS.md.
# Alone: scripts/bench-flow.sh [BUILD_DIR]   (default build/release, built by bench.sh).
#
# softflowd's IPFIX export of a pcap (tests/exporters/make_pcap.py, many flows per
# datagram) is recorded once (bench/record_softflowd.py), then bench/flow_replay.cpp sends it
# over loopback at stepped open-loop rates, pinned to core 1, to flowd (--threads 1, pinned
# to core 0) and, in the same run and the same way, to nfdump's nfcapd. A step is sustained
# when the collector counted every record sent (flowd: flowd_flow_records_total and
# flowd_flows_applied_total{source="flow"}; nfcapd: `nfdump -I` flows) and flowd's socket
# dropped nothing (flowd_flow_socket_drops_total).
#   BENCH_FLOW_SECONDS (default 3) per step; BENCH_FLOW_RATES datagrams/s (default below).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
source scripts/bench-lib.sh
bin=${1:-build/release}
secs=${BENCH_FLOW_SECONDS:-3}
read -r -a rates <<<"${BENCH_FLOW_RATES:-5000 10000 20000 40000 80000 120000}"
rcvbuf=${BENCH_FLOW_RCVBUF:-8388608}
bench_init flowd-fbench
for tool in softflowd nfcapd nfdump taskset curl python3; do
    command -v "$tool" >/dev/null || { echo "bench-flow: $tool is missing (scripts/install-deps.sh)" >&2; exit 1; }
done

python3 tests/exporters/make_pcap.py "$work/flows.pcap" "$(date +%s)" 2500 >/dev/null
recorded=$(python3 bench/record_softflowd.py "$work/flows.pcap" "$work/ipfix.bin" 10)
replay() { taskset -c "$client_cpu" "$bin/bench/flowd-flow-replay" --file "$work/ipfix.bin" "$@"; }
# Polls until `cmd` prints the same value twice 200 ms apart (the collector stopped
# counting) or 20 s pass; prints it.
settled() {
    local last="" now
    for _ in $(seq 100); do
        now=$("$@")
        if [ "$now" = "$last" ]; then
            echo "$now"
            return
        fi
        last=$now
        sleep 0.2
    done
    echo "$last"
}

# flowd, one I/O thread on one core, as the POST figures; the pcap's three subnets named.
printf 'apps:\n  web: [10.0.1.0/24]\n  db: [10.0.2.0/24]\n  cache: [10.0.3.0/24]\n' >"$work/apps.yaml"
FLOWD_APPS_FILE=$work/apps.yaml FLOWD_FLOW_RCVBUF_BYTES=$rcvbuf start_flowd --flow-listen 127.0.0.1:0
http=$flowd_port
udp=$(sed -n 's/.*flow listening on [^ ]*:\([0-9]*\).*/\1/p' "$flowd_log" | head -n1)
rcvbuf_line=$(sed -n 's/.*flow listening on [^ ]* (\(.*\))$/\1/p' "$flowd_log" | head -n1)
metric() { curl -s "127.0.0.1:$http/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
records_now() { metric 'flowd_flow_records_total{version="10"}'; }
applied_now() { metric 'flowd_flows_applied_total{source="flow"}'; }
drops_now() { metric 'flowd_flow_socket_drops_total'; }

flowd_rows=()
flowd_best=0
for rate in "${rates[@]}"; do
    r0=$(records_now); a0=$(applied_now); d0=$(drops_now)
    out=$(replay --port "$udp" --rate "$rate" --seconds "$secs")
    sent=$(echo "$out" | field records)
    took=$(echo "$out" | field seconds)
    r1=$(settled records_now); a1=$(settled applied_now); d1=$(drops_now)
    got=$(awk -v a="$r1" -v b="$r0" 'BEGIN { printf "%d", a - b }')
    applied=$(awk -v a="$a1" -v b="$a0" 'BEGIN { printf "%d", a - b }')
    drops=$(awk -v a="$d1" -v b="$d0" 'BEGIN { printf "%d", a - b }')
    offered=$(awk -v n="$sent" -v s="$took" 'BEGIN { printf "%.0f", n / s }')
    ok=no
    if [ "$got" = "$sent" ] && [ "$applied" = "$sent" ] && [ "$drops" = 0 ]; then
        ok=yes
        flowd_best=$offered
    fi
    flowd_rows+=("| $rate | $offered | $sent | $got | $applied | $drops | $ok |")
done
stop_flowd "$flowd_pid"

nfcapd_rows=()
nfcapd_best=0
for rate in "${rates[@]}"; do
    dir=$work/nfcapd-$rate
    mkdir -p "$dir"
    port=$((udp + 1))
    taskset -c "$server_cpu" nfcapd -w "$dir" -b 127.0.0.1 -p "$port" -B "$rcvbuf" \
        >"$dir.log" 2>&1 &
    nf=$!
    for _ in $(seq 200); do grep -q "Startup" "$dir.log" && break; sleep 0.05; done
    out=$(replay --port "$port" --rate "$rate" --seconds "$secs")
    sent=$(echo "$out" | field records)
    took=$(echo "$out" | field seconds)
    hex=$(printf '%04X' "$port")
    for _ in $(seq 100); do
        queued=$(awk -v p=":$hex" '$2 ~ p"$" { split($5, q, ":"); print q[2] }' /proc/net/udp)
        [ "${queued:-0}" = "00000000" ] && break
        sleep 0.1
    done
    kill "$nf"
    wait "$nf" || true
    got=$(nfdump -R "$dir" -I 2>/dev/null | awk '/^Flows:/ { print $2; exit }')
    offered=$(awk -v n="$sent" -v s="$took" 'BEGIN { printf "%.0f", n / s }')
    ok=no
    if [ "${got:-0}" = "$sent" ]; then
        ok=yes
        nfcapd_best=$offered
    fi
    nfcapd_rows+=("| $rate | $offered | $sent | ${got:-0} | $ok |")
done

ceiling=$(replay --ceiling --seconds "$secs")
ceiling_records=$(echo "$ceiling" | field records)
ceiling_secs=$(echo "$ceiling" | field seconds)

echo "## Flow exporters (IPFIX over UDP from softflowd, replayed)"
echo
echo "softflowd's IPFIX export of $(echo "$recorded" | cut -d' ' -f1) datagrams (about 25 flow records each) replayed"
echo "over loopback at open-loop steps of $secs s by \`flowd-flow-replay\` on core $client_cpu, to flowd"
echo "(\`--threads 1\` on core $server_cpu, $rcvbuf_line) and, in the same run, to nfdump's nfcapd"
echo "(\`-B $rcvbuf\`, same core). A step is sustained when every record sent was counted and, for"
echo "flowd, applied to the store with no socket drop. **nfcapd writes records to files; flowd"
echo "decodes, maps addresses to applications and aggregates them into the store**: not the same work."
echo
echo "| datagrams/s asked | records/s offered | records sent | flowd decoded | flowd applied | socket drops | sustained |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${flowd_rows[@]}"
echo
echo "| datagrams/s asked | records/s offered | records sent | nfcapd flows | sustained |"
echo "| --- | --- | --- | --- | --- |"
printf '%s\n' "${nfcapd_rows[@]}"
echo
echo "Highest sustained: flowd $flowd_best records/s, nfcapd $nfcapd_best records/s; the replayer's"
echo "own ceiling (one thread, to a socket nobody reads):"
echo "$(awk -v n="$ceiling_records" -v s="$ceiling_secs" 'BEGIN { printf "%.0f", n / s }') records/s."
echo "Memory: an exporter costs its state (a few hundred bytes) plus its templates (about 100"
echo "bytes a template and 8 a field) and at most 64 KiB of data held before its template."
