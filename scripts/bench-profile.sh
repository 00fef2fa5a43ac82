#!/usr/bin/env bash
# Where flowd's CPU goes under the load of a `make bench` goal: flowd --threads 1 on core 0,
# flowd-loadgen on core 1 (32 connections, K=1000 over 24 hours), `perf record -e cpu-clock`
# of flowd for PROFILE_SECONDS (default 6) once the load runs, then the symbols over
# PROFILE_MIN percent (default 1.0) of flowd's samples and its kernel share.
#
#   scripts/bench-profile.sh B [flowd options...]
#   scripts/bench-profile.sh 1000                       # POST B=1000, memory only
#   FLOWD_FSYNC=interval scripts/bench-profile.sh 1000 --data-dir /tmp/p   # with the log
#
# Needs perf (linux-perf) and kernel.perf_event_paranoid <= 1 (or root). Builds nothing:
# run `make bench` (or cmake --build --preset release) first.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

b=${1:?usage: scripts/bench-profile.sh B [flowd options...]}
shift
secs=${PROFILE_SECONDS:-6}
min=${PROFILE_MIN:-1.0}
bin=build/release
command -v perf >/dev/null || { echo "bench-profile: perf is not installed" >&2; exit 1; }

bench_init flowd-profile
start_flowd "$@"
taskset -c "$client_cpu" "$bin/bench/flowd-loadgen" --port "$flowd_port" --connections 32 \
    --duration "$((secs + 3))" --batch "$b" --keys 1000 --hours 24 >"$work/loadgen.out" &
loadgen_pid=$!
sleep 1.5  # past the generator's start-up, into the steady load
perf record -q -e cpu-clock -g -o "$work/perf.data" -p "$flowd_pid" -- sleep "$secs" \
    2>"$work/perf.err" || { cat "$work/perf.err" >&2; exit 1; }
wait "$loadgen_pid"
echo "== load: $(head -n1 "$work/loadgen.out")"
echo "== flowd $*, POST B=$b"
echo "== kernel (% of flowd's samples)"
perf report -i "$work/perf.data" --no-children --sort dso --stdio 2>/dev/null |
    awk '/^ +[0-9.]+%/ && /kernel/ { print "  " $0 }'
echo "== symbols over $min% (self)"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --percent-limit "$min" \
    --stdio -g none 2>/dev/null | awk '/^ +[0-9.]+%/ { print "  " $0 }'
