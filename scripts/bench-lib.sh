# shellcheck shell=bash disable=SC2034,SC2154
# (SC2034, SC2154: it sets globals for its callers, and they set `bin`.)
# The shell helpers of `make bench`, sourced by scripts/bench.sh and scripts/bench-flow.sh
# (and meant for scripts/bench-cluster.sh): cores, the temp dir and its cleanup, starting and
# stopping flowd, nginx and the Beast floor, RESULT fields, and the interleaved rounds every
# ratio is measured in.
#
#   bench_init NAME            work dir /tmp/NAME-XXXXXX, server_cpu/client_cpu, pids, trap
#   field KEY < output         the value of KEY=... on a "RESULT ..." line
#   start_flowd [ARGS...]      sets flowd_pid, flowd_port, metrics_port, flowd_log; prefix
#                              FLOWD_*=... for environment; flowd_threads, flowd_cpus
#   stop_flowd [PID]           (default $flowd_pid)
#   start_nginx [LOCATION]     sets nginx_pid, nginx_port (default: every request 204)
#   start_beast_floor          sets floor_pid, floor_port
#   stop_server PID
#   rounds N NAME...           NAME, NAME, ... N times over (see below)
#   ratios A B | spread [D]    "median (min–max)" of the per-round ratios fig[A,i] / fig[B,i]
#   median_of NAME             the median of fig[NAME,1..N]; values NAME: them, one a line
#   load_note                  the load average now, to print beside figures
# Callers set `bin` (the build dir) before starting anything; `set -euo pipefail` is theirs.

bench_init() {
    work=$(mktemp -d "/tmp/$1-XXXXXX")
    server_cpu=0
    client_cpu=1
    if [ "$(nproc)" -lt 2 ]; then client_cpu=0; fi
    pids=()
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}

field() { sed -n "s/^RESULT.* $1=\([^ ]*\).*/\1/p; s/^RESULT $1=\([^ ]*\).*/\1/p" | head -n1; }

# A port nothing answers on now (for servers that cannot listen on port 0).
free_port() {
    local p
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 40000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    echo "bench: no free port" >&2
    exit 1
}

# flowd_threads and flowd_cpus (defaults: 1 thread on core $server_cpu) for one start.
start_flowd() {
    local log=$work/flowd-$RANDOM$RANDOM.log
    flowd_log=$log
    : >"$log"  # exists before the first sed below, even if flowd is slow to start
    taskset -c "${flowd_cpus:-$server_cpu}" "$bin/flowd" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
        --threads "${flowd_threads:-1}" "$@" 2>"$log" &
    pids+=($!)
    flowd_pid=$!
    # Up to 90 s: with a data directory, recovery comes before "ready".
    for _ in $(seq 1800); do
        flowd_port=$(sed -n 's/.*http listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -n1)
        metrics_port=$(sed -n 's/.*metrics listening on [^ ]*:\([0-9]*\).*/\1/p' "$log" | head -n1)
        [ -n "$flowd_port" ] && [ -n "$metrics_port" ] && grep -q '\] ready: ' "$log" && return 0
        kill -0 "$flowd_pid" 2>/dev/null || break
        sleep 0.05
    done
    echo "bench: flowd did not start: $(tail -n 20 "$log")" >&2
    exit 1
}
stop_server() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
stop_flowd() { stop_server "${1:-$flowd_pid}"; }

# $1: the server's location block (default: answer every request 204).
start_nginx() {
    local location=${1:-'location / { return 204; }'}
    nginx_port=$(free_port)
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

start_beast_floor() {
    local log=$work/floor-$RANDOM.log
    : >"$log"
    taskset -c "$server_cpu" "$bin/bench/flowd-beast-floor" 0 >"$log" &
    pids+=($!)
    floor_pid=$!
    for _ in $(seq 100); do
        floor_port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$log")
        [ -n "$floor_port" ] && return 0
        sleep 0.05
    done
    echo "bench: flowd-beast-floor did not start" >&2
    exit 1
}

# wrk's requests/s, one thread and 32 connections on the client core. $1: URL, $2: a Lua
# script or "" (GET), $3: seconds. Prints "RESULT req_per_s=... non2xx=... socket_errors=..."
# for `field`; wrk's own lines about errors go to stderr.
wrk_run() {
    local url=$1 script=$2 secs=$3 out
    out=$(taskset -c "$client_cpu" wrk -t1 -c32 -d"${secs}s" ${script:+-s "$script"} "$url")
    echo "$out" | grep -E 'Socket errors|Non-2xx' >&2 || true
    echo "RESULT req_per_s=$(echo "$out" | awk '/^Requests\/sec:/ { printf "%.0f", $2 }')" \
        "non2xx=$(echo "$out" | awk '/Non-2xx/ { n = $NF } END { print n + 0 }')" \
        "socket_errors=$(echo "$out" | awk '/Socket errors/ { gsub(",", ""); n = $4 + $6 + $8 + $10 } END { print n + 0 }')"
}

# A wrk script POSTing one file's bytes as application/json. $1: body file, $2: script path.
wrk_post_script() {
    cat >"$2" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open("$1", "rb"))
wrk.body = f:read("*a")
f:close()
LUA
}

# rounds N NAME...: runs the functions NAME in turn, N times over (A, B, C, A, B, C ...), so
# that every two figures compared were measured side by side on the same machine state.
# Each function sets `figure` (and may keep more in fig[NAME.what,$round]); figures land in
# fig[NAME,i], i = 1..N.
declare -gA fig=()
rounds() {
    local n=$1 f
    shift
    rounds_n=$n
    for ((round = 1; round <= n; round++)); do
        for f in "$@"; do
            figure=
            "$f"
            fig[$f,$round]=$figure
        done
    done
}

# The ratio of each round, fig[A,i] / fig[B,i], one a line.
ratios() {
    local i
    for ((i = 1; i <= rounds_n; i++)); do
        awk -v a="${fig[$1,$i]}" -v b="${fig[$2,$i]}" 'BEGIN { printf "%.6f\n", (b > 0 ? a / b : 0) }'
    done
}

# Numbers on stdin as "median (min–max)"; $1 decimals (default 2, and 3 below 0.1). When the
# largest is over 1.5x the smallest, " noisy" follows: the rounds disagree too much for the
# median to mean much (something else used these cores).
spread() {
    sort -g | awk -v d="${1:-}" '
        function f(x) { return d != "" ? sprintf("%." d "f", x) : x < 0.1 ? sprintf("%.3f", x) : sprintf("%.2f", x) }
        { r[NR] = $1 }
        END {
            if (NR == 0) { print "n/a"; exit }
            m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
            printf "%s (%s–%s)%s", f(m), f(r[1]), f(r[NR]), (r[1] > 0 && r[NR] > 1.5 * r[1]) || (r[1] <= 0 && r[NR] > 0) ? " noisy" : ""
        }'
}

# fig[NAME,1..N] one a line (for spread and median).
values() { local i; for ((i = 1; i <= rounds_n; i++)); do echo "${fig[$1,$i]}"; done; }

# The 1-minute load average and how many cores there are, e.g. "0.52 on 2 cores".
load_note() { echo "$(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores"; }

# The median (plain number) of numbers on stdin.
median() {
    sort -g | awk '{ r[NR] = $1 } END { if (NR == 0) { print 0; exit } m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2; printf "%.15g\n", m }'
}

# The median of fig[NAME,1..N], or of fig[NAME.what,1..N].
median_of() {
    local i
    for ((i = 1; i <= rounds_n; i++)); do echo "${fig[$1,$i]}"; done | median
}

# The median ratio alone (a plain number), for goals and thresholds.
median_ratio() { ratios "$1" "$2" | median; }

# Integer flows/s and requests/s print without exponent.
num() { awk -v x="$1" 'BEGIN { printf "%.0f", x }'; }
