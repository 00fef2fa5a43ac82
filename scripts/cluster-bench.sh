#!/usr/bin/env bash
# Prototype of issue 6's cluster benchmark, not yet part of `make bench`: a 3-server
# JetStream cluster on loopback (fixed ports 16240-16252), one cluster-mode flowd and one
# memory-only flowd (--threads 1 each, not pinned), flowd-loadgen against each in turn.
# Usage: scripts/cluster-bench.sh [BUILD_DIR]   (default build/ci; needs flowd-loadgen)
set -u
B=$(realpath "${1:-build/ci}")
D=$(mktemp -d /tmp/cb6-XXXX)
for i in 0 1 2; do mkdir -p $D/n$i; done
R="nats://127.0.0.1:16250,nats://127.0.0.1:16251,nats://127.0.0.1:16252"
for i in 0 1 2; do
  routes=$(echo $R | tr ',' '\n' | grep -v "1625$i" | paste -sd,)
  nats-server -js -n n$i -a 127.0.0.1 -p 1624$i -sd $D/n$i -cluster nats://127.0.0.1:1625$i --cluster_name cb -routes $routes -l $D/n$i/log >/dev/null 2>&1 &
  echo $! >> $D/pids
done
FLOWD_NODE_NAME=b1 $B/flowd --cluster nats://127.0.0.1:16240,nats://127.0.0.1:16241,nats://127.0.0.1:16242 --listen 127.0.0.1:18090 --metrics-listen 127.0.0.1:0 --threads 1 > $D/flowd.log 2>&1 &
echo $! >> $D/pids
$B/flowd --listen 127.0.0.1:18091 --metrics-listen 127.0.0.1:0 --threads 1 > $D/flowd-mem.log 2>&1 &
echo $! >> $D/pids
for t in $(seq 1 60); do [ "$(curl -s -o /dev/null -w '%{http_code}' localhost:18090/readyz)" = 200 ] && break; sleep 0.5; done
echo "ready after $t tries"
for b in 100 1000; do
  echo "== cluster B=$b"; $B/bench/flowd-loadgen --port 18090 --connections 32 --duration 5 --batch $b --keys 1000 --hours 24 --no-verify
  echo "== memory B=$b"; $B/bench/flowd-loadgen --port 18091 --connections 32 --duration 5 --batch $b --keys 1000 --hours 24 --no-verify
done
echo "== cluster metrics after the run (applied = acknowledged when lag is 0)"
curl -s localhost:18090/metrics | grep -E "^flowd_cluster|applied_total"
for p in $(cat $D/pids); do kill $p; done
sleep 1; rm -rf $D
