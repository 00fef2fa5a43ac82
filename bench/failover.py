#!/usr/bin/env python3
"""Failover figures of `make bench` (issue 19, items 2 and 5), driven by
scripts/bench-cluster.sh: two cluster-mode flowd nodes on a 3-replica stream, one writer
POSTing back to back (alternately to both nodes, each batch with its own Idempotency-Key,
no retry), and KILLS SIGKILLs of a nats-server: the even ones the stream's leader (read from
the server's monitoring endpoint, /jsz?accounts=true&streams=true), the odd ones a server
that is not. Each killed server is restarted once the failover is over, and the next kill
waits until the stream has a leader and two current replicas again.

What is timed, from the writer's answers and from each node's `flowd_cluster_applied_seq`
polled every 10 ms (a thread per node):
  - kill -> first acknowledged POST: the first POST sent after the kill answered 200 (the
    one in flight at the kill, if any, waits through the election with it);
  - kill -> every node applied: that POST's sequence applied by both nodes;
  - POST latency during a failover: the POSTs sent while the killed server was down;
  - apply delay (item 2): for every batch acknowledged while a killed server was down, its
    acknowledgement to the moment both nodes had applied it, against min_seq_wait (2 s).

Where the slow batches' time goes (each kill, each node): a batch is slow on a node when the
node had not applied it 2 s after its acknowledgement; it is charged to the node's state at
that deadline, first match wins:
  - reconnect: the node's NATS connection was down (its log: "disconnected" .. "reconnected");
  - no leader: the stream had no leader (the servers' /jsz, polled every 100 ms: no leader,
    or the killed server still named);
  - recreating: the node's consumer had failed or stalled and was not back yet (its log:
    "consumer of .. failed" or "delivered nothing" .. "consuming the stream again");
  - silent: none of these: the consumer was up as far as flowd knew, yet delivered nothing
    (a stall not yet detected).
The kill's line also gives the time with no stream leader and no JetStream meta leader
(consumers are created through the meta leader), and each node's consumer restarts
(flowd_cluster_consumer_restarts_total) during the kill.

usage: failover.py SERVERS_JSON NODE_PORT_A NODE_PORT_B STREAM HOUR KILLS [LOG_A LOG_B]
SERVERS_JSON: [{"name": "n0", "port": P, "monitor": M, "pid": PID, "cmd": [...]}, ...]
LOG_A, LOG_B: the nodes' logs (stderr), read for the attribution.
Prints one line per kill on stderr and `RESULT key=value ...` on stdout.
"""
import datetime
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time


def now():
    return time.monotonic()


def http_get(port, target, timeout=5.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", target)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def accepting(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def gone(pid, child):
    if child is not None:
        return child.poll() is not None
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].startswith("Z")
    except OSError:
        return True


class Servers:
    def __init__(self, spec):
        self.spec = spec
        self.children = [None] * len(spec)

    def stream_info(self, stream, only=None):
        """The stream's cluster block as the first server that answers sees it (or server
        `only`), or None. Only the leader's own view says whether the replicas are current."""
        for i, s in enumerate(self.spec):
            if self.down(i) or (only is not None and i != only):
                continue
            try:
                status, body = http_get(s["monitor"], "/jsz?accounts=true&streams=true", 2.0)
            except OSError:
                continue
            if status != 200:
                continue
            for acc in json.loads(body).get("account_details") or []:
                for st in acc.get("stream_detail") or []:
                    if st.get("name") == stream:
                        return st.get("cluster") or {}
        return None

    def leader(self, stream):
        info = self.stream_info(stream)
        name = (info or {}).get("leader", "")
        for i, s in enumerate(self.spec):
            if s["name"] == name:
                return i
        return -1

    def whole(self, stream):
        leader = self.leader(stream)
        info = self.stream_info(stream, leader) if leader >= 0 else None
        if not info or info.get("leader") != self.spec[leader]["name"]:
            return False
        replicas = info.get("replicas") or []
        return len(replicas) == len(self.spec) - 1 and all(
            r.get("current") and not r.get("offline") for r in replicas)

    def down(self, i):
        return gone(self.spec[i]["pid"], self.children[i])

    def kill(self, i):
        os.kill(self.spec[i]["pid"], signal.SIGKILL)
        if self.children[i] is not None:
            self.children[i].wait()
        else:
            until(lambda: self.down(i), 10)

    def start(self, i):
        p = subprocess.Popen(self.spec[i]["cmd"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        self.children[i] = p
        self.spec[i]["pid"] = p.pid

    def stop_started(self):
        for p in self.children:
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def until(cond, limit, step=0.01):
    deadline = now() + limit
    while now() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


class Writer(threading.Thread):
    """POSTs back to back, alternately to the two nodes; records (sent, answered, status, seq)."""

    def __init__(self, ports, hour):
        super().__init__(daemon=True)
        self.ports = ports
        self.hour = hour
        self.stop = False
        self.log = []  # (sent, answered, status, seq)
        self.lock = threading.Lock()

    def run(self):
        conns = [None, None]
        n = 0
        body = json.dumps([{"src_app": "f", "dest_app": "o", "vpc_id": "v", "bytes_tx": 1,
                            "bytes_rx": 1, "hour": self.hour}]).encode()
        while not self.stop:
            i = n % 2
            sent = now()
            status, seq = 0, 0
            try:
                if conns[i] is None:
                    conns[i] = http.client.HTTPConnection("127.0.0.1", self.ports[i], timeout=60)
                conns[i].request("POST", "/flows", body,
                                 {"Content-Type": "application/json",
                                  "Idempotency-Key": f"failover-{n}"})
                r = conns[i].getresponse()
                data = r.read()
                status = r.status
                if status == 200:
                    seq = json.loads(data)["seq"]
            except (OSError, http.client.HTTPException):
                if conns[i] is not None:
                    conns[i].close()
                conns[i] = None
            with self.lock:
                self.log.append((sent, now(), status, seq))
            n += 1

    def since(self, t):
        with self.lock:
            return [e for e in self.log if e[0] >= t]


class Applied(threading.Thread):
    """Polls one node's flowd_cluster_applied_seq; remembers when each new value was seen."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = False
        self.samples = []  # (time, seq), seq increasing
        self.restarts = 0  # flowd_cluster_consumer_restarts_total, last seen
        self.lock = threading.Lock()

    def run(self):
        conn = None
        while not self.stop:
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/metrics")
                text = conn.getresponse().read().decode()
                t = now()
                for line in text.splitlines():
                    if line.startswith("flowd_cluster_applied_seq "):
                        seq = int(float(line.split()[1]))
                        with self.lock:
                            if not self.samples or seq > self.samples[-1][1]:
                                self.samples.append((t, seq))
                    elif line.startswith("flowd_cluster_consumer_restarts_total "):
                        self.restarts = int(float(line.split()[1]))
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
            time.sleep(0.01)

    def applied_at(self, seq):
        """When this node was first seen at or past `seq`, or None."""
        with self.lock:
            for t, s in self.samples:
                if s >= seq:
                    return t
        return None


class Leaders(threading.Thread):
    """Polls the live servers' /jsz every 100 ms: who leads the stream and JetStream's meta
    group as each server sees it. Records (time, stream leader, meta leader), "" for none."""

    def __init__(self, servers, stream):
        super().__init__(daemon=True)
        self.servers = servers
        self.stream = stream
        self.stop = False
        self.samples = []
        self.lock = threading.Lock()

    def poll(self):
        stream_leader, meta_leader = None, None
        for i, s in enumerate(self.servers.spec):
            if self.servers.down(i):
                continue
            try:
                status, body = http_get(s["monitor"], "/jsz?accounts=true&streams=true", 1.0)
            except OSError:
                continue
            if status != 200:
                continue
            doc = json.loads(body)
            leader = ""
            for acc in doc.get("account_details") or []:
                for st in acc.get("stream_detail") or []:
                    if st.get("name") == self.stream:
                        leader = (st.get("cluster") or {}).get("leader", "") or ""
            meta = (doc.get("meta_cluster") or {}).get("leader", "") or ""
            # A leader is only as good as its server being up (a follower names the killed
            # one until its election timeout).
            alive = {x["name"] for j, x in enumerate(self.servers.spec)
                     if not self.servers.down(j)}
            stream_leader = stream_leader or (leader if leader in alive else "")
            meta_leader = meta_leader or (meta if meta in alive else "")
        return stream_leader or "", meta_leader or ""

    def run(self):
        while not self.stop:
            t = now()
            try:
                leader, meta = self.poll()
            except (OSError, ValueError, http.client.HTTPException):
                leader, meta = None, None
            if leader is not None:
                with self.lock:
                    self.samples.append((t, leader, meta))
            time.sleep(max(0.0, 0.1 - (now() - t)))

    def state_at(self, t):
        """(stream leader, meta leader) of the last sample at or before t, else None."""
        with self.lock:
            last = None
            for e in self.samples:
                if e[0] > t:
                    break
                last = e
        return None if last is None else (last[1], last[2])

    def leaderless(self, begin, end, which):
        """Seconds in [begin, end] without a stream (which=1) or meta (which=2) leader."""
        with self.lock:
            samples = [e for e in self.samples if begin - 1.0 <= e[0] <= end]
        total = 0.0
        for a, b in zip(samples, samples[1:] + [(end, "-", "-")]):
            lo, hi = max(begin, a[0]), min(end, b[0])
            if hi > lo and not a[which]:
                total += hi - lo
        return total


# What a node's log says about its consumer and connection, as (time, kind) events on this
# process's monotonic clock. kind: down/up (connection), failed/back (consumer).
LOG_EVENTS = [
    ("cluster: disconnected from NATS", "down"),
    ("cluster: reconnected to NATS", "up"),
    ("failed:", "failed"),
    ("delivered nothing for", "failed"),
    ("cluster: consuming the stream again", "back"),
]


def log_events(path, offset):
    events = []
    if not path:
        return events
    try:
        lines = open(path, errors="replace").read().splitlines()
    except OSError:
        return events
    for line in lines:
        kind = next((k for pat, k in LOG_EVENTS if pat in line and "cluster:" in line), None)
        if kind is None:
            continue
        try:
            wall = datetime.datetime.strptime(line.split(" ", 1)[0],
                                              "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        except ValueError:
            continue
        events.append((wall - offset, kind))
    return events


def state_at(events, t, on, off):
    """Whether the last of the `on`/`off` events at or before t was `on`."""
    last = None
    for at, kind in events:
        if at > t:
            break
        if kind in (on, off):
            last = kind
    return last == on


def cause(t, node_events, leaders):
    if state_at(node_events, t, "down", "up"):
        return "reconnect"
    st = leaders.state_at(t)
    if st is not None and not st[0]:
        return "no_leader"
    if state_at(node_events, t, "failed", "back"):
        return "recreating"
    return "silent"


CAUSES = ["no_leader", "recreating", "reconnect", "silent"]


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(len(v) * p / 100.0 + 0.999) - 1))]


def main():
    spec = json.load(open(sys.argv[1]))
    ports = [int(sys.argv[2]), int(sys.argv[3])]
    stream, hour, kills = sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
    logs = sys.argv[7:9] if len(sys.argv) >= 9 else [None, None]
    clock_offset = time.time() - now()
    servers = Servers(spec)
    writer = Writer(ports, hour)
    watchers = [Applied(p) for p in ports]
    leaders = Leaders(servers, stream)
    leaders.start()
    for w in watchers:
        w.start()
    writer.start()
    rng = random.Random()
    leader_first_ack, leader_all_applied, failover_posts = [], [], []
    delays, failed = [], 0
    slow_by_cause = {c: 0 for c in CAUSES}
    no_leader_s, no_meta_s, leader_no_leader = [], [], []
    try:
        for k in range(kills):
            # Steady first: every server up, the stream whole, POSTs acknowledged.
            if not until(lambda: servers.whole(stream), 60, 0.1):
                raise SystemExit(f"failover: the stream is not whole before kill {k + 1}")
            mark = now()
            if not until(lambda: sum(1 for e in writer.since(mark) if e[2] == 200) >= 20, 30):
                raise SystemExit("failover: the writer gets no acknowledgements")
            leader = servers.leader(stream)
            if leader < 0:
                raise SystemExit("failover: no stream leader in /jsz")
            restarts_before = [w.restarts for w in watchers]
            kill_leader = k % 2 == 0
            victim = leader if kill_leader else rng.choice(
                [i for i in range(len(spec)) if i != leader])
            killed = now()
            servers.kill(victim)
            # The first POST sent after the kill that was acknowledged.
            first = []

            def acked():
                first[:] = [e for e in writer.since(killed) if e[2] == 200][:1]
                return bool(first)

            if not until(acked, 60):
                raise SystemExit(f"failover: no POST acknowledged within 60 s of kill {k + 1}")
            first_ack = first[0][1] - killed
            seq = first[0][3]
            if not until(lambda: all(w.applied_at(seq) is not None for w in watchers), 60):
                raise SystemExit(f"failover: sequence {seq} not applied by both nodes")
            all_applied = max(w.applied_at(seq) for w in watchers) - killed
            # Down a while longer (at least 4 s, 2 s past the first acknowledgement), so the
            # batches after the failover are measured too; then back.
            time.sleep(max(0.0, max(killed + 4.0, now() + 2.0) - now()))
            restarted = now()
            servers.start(victim)
            # The POSTs answered while the server was down (the one in flight at the kill
            # included).
            window = [e for e in writer.since(killed - 70) if e[1] >= killed and e[0] < restarted]
            # Each batch acknowledged while the server was down: ack -> applied everywhere.
            until(lambda: all(w.applied_at(max([e[3] for e in window] or [0])) is not None
                              for w in watchers), 30)
            events = [log_events(path, clock_offset) for path in logs]
            slow = [{c: [] for c in CAUSES} for _ in watchers]
            for e in window:
                if e[2] != 200:
                    failed += 1
                    continue
                ats = [w.applied_at(e[3]) for w in watchers]
                delays.append(float("inf") if None in ats else max(0.0, max(ats) - e[1]))
                for n, at in enumerate(ats):
                    late = float("inf") if at is None else at - e[1]
                    if late > 2.0:
                        slow[n][cause(e[1] + 2.0, events[n], leaders)].append(late)
            end = max([e[1] for e in window] + [now()])
            no_leader_s.append(leaders.leaderless(killed, end, 1))
            no_meta_s.append(leaders.leaderless(killed, end, 2))
            if kill_leader:
                leader_no_leader.append(no_leader_s[-1])
            parts = []
            for n, by in enumerate(slow):
                for c in CAUSES:
                    slow_by_cause[c] += len(by[c])
                detail = ", ".join(f"{c} {len(v)} (max {max(v):.1f} s)" for c, v in by.items() if v)
                parts.append(f"node {'ab'[n]}: {watchers[n].restarts - restarts_before[n]} "
                             f"consumer restarts, slow: {detail or 'none'}")
            if kill_leader:
                leader_first_ack.append(first_ack)
                leader_all_applied.append(all_applied)
                failover_posts += [e[1] - e[0] for e in window]
            print(f"kill {k + 1}: {spec[victim]['name']}{' (leader)' if kill_leader else ''}: "
                  f"first ack {first_ack:.2f} s, applied on both {all_applied:.2f} s, "
                  f"{len(window)} POSTs while down, slowest {max(e[1] - e[0] for e in window):.2f} s; "
                  f"no stream leader {no_leader_s[-1]:.1f} s, no meta leader {no_meta_s[-1]:.1f} s; "
                  + "; ".join(parts), file=sys.stderr)
            if not until(lambda: accepting(spec[victim]["port"]), 15):
                raise SystemExit(f"failover: {spec[victim]['name']} did not come back")
    finally:
        writer.stop = True
        leaders.stop = True
        for w in watchers:
            w.stop = True
        writer.join(70)
        servers.stop_started()
    within = sum(1 for d in delays if d <= 2.0)
    print("RESULT"
          f" leader_kills={len(leader_first_ack)}"
          f" first_ack_median={statistics.median(leader_first_ack):.2f}"
          f" first_ack_max={max(leader_first_ack):.2f}"
          f" applied_median={statistics.median(leader_all_applied):.2f}"
          f" applied_max={max(leader_all_applied):.2f}"
          f" post_n={len(failover_posts)}"
          f" post_p50_ms={pct(failover_posts, 50) * 1000:.1f}"
          f" post_p99_ms={pct(failover_posts, 99) * 1000:.1f}"
          f" post_max_ms={max(failover_posts) * 1000:.0f}"
          f" kills={kills}"
          f" batches={len(delays)}"
          f" refused={failed}"
          f" delay_p50_ms={pct(delays, 50) * 1000:.0f}"
          f" delay_p99_ms={pct(delays, 99) * 1000:.0f}"
          f" delay_max_ms={max(delays) * 1000:.0f}"
          f" within_2s={within}"
          f" no_leader_median={statistics.median(leader_no_leader):.1f}"
          f" no_leader_max={max(leader_no_leader):.1f}"
          f" no_meta_median={statistics.median(no_meta_s):.1f}"
          f" no_meta_max={max(no_meta_s):.1f}"
          + "".join(f" slow_{c}={n}" for c, n in slow_by_cause.items()))


if __name__ == "__main__":
    main()
