#!/usr/bin/env python3
"""Real exporters against the real flowd (the `exporters` stage of `make test`).

Debian's softflowd reads a pcap this test writes (make_pcap.py: known hosts, ports and
payload sizes over several hours) and exports it as NetFlow v5, v9 and IPFIX to flowd; each
version's per-application totals per hour must equal those computed from the pcap. nfdump's
nfcapd receives the same export (softflowd run again towards it), and `nfdump -A
srcip,dstip` totals, mapped through the same apps file, must equal flowd's per application
pair. pmacct's pmacctd (nfprobe plugin) is a third exporter: it reads the same pcap and
exports it from another source address (127.0.0.3) to the same flowd, whose totals for that
exporter's vpc_id must equal the pcap's too. Waits are on conditions (a log line, a total
reached, a process exit), bounded.

usage: exporters_test.py PATH/TO/flowd
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
APPS = """apps:
  web: [10.0.1.0/24]
  db: [10.0.2.0/24]
  cache: [10.0.3.0/24]
unmatched: unknown
"""
PREFIXES = {"10.0.1.": "web", "10.0.2.": "db", "10.0.3.": "cache"}
DEADLINE = float(os.environ.get("EXPORTERS_DEADLINE_SECONDS", "30"))
results = {"passed": 0, "failed": 0}


def until(what, check, limit=DEADLINE):
    """Polls `check` until it returns a true value or `limit` passes."""
    end = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise TimeoutError(f"waited {limit:.0f} s for {what}")
        time.sleep(0.05)


def free_udp_port():
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Flowd:
    def __init__(self, binary, work, apps_file):
        self.log_path = os.path.join(work, f"flowd-{time.monotonic_ns()}.log")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "FLOWD_APPS_FILE": apps_file,
               "FLOWD_FLOW_BATCH_INTERVAL": "20ms"}
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
             "--flow-listen", "127.0.0.1:0", "--threads", "2"],
            stdout=subprocess.DEVNULL, stderr=self.log_file, env=env)
        text = until("flowd to be ready", lambda: self._ready())
        self.http = int(re.search(r"http listening on \S+:(\d+)", text).group(1))
        self.udp = int(re.search(r"flow listening on \S+:(\d+)", text).group(1))

    def _ready(self):
        if self.proc.poll() is not None:
            raise RuntimeError("flowd exited at start: " + self.log())
        text = self.log()
        return text if "ready:" in text and "flow listening on" in text else None

    def log(self):
        with open(self.log_path, "r", errors="replace") as f:
            return f.read()

    def get(self, target):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http}{target}", timeout=10) as r:
            return json.loads(r.read())

    def rows(self, first, last):
        return self.get(f"/flows?from={first}&to={last + 1}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=DEADLINE)
        self.log_file.close()


def app_of(address):
    for prefix, app in PREFIXES.items():
        if address.startswith(prefix):
            return app
    return "unknown"


def check(name, ok, detail=""):
    if ok:
        results["passed"] += 1
        print(f"ok    {name}")
    else:
        results["failed"] += 1
        print(f"FAIL  {name}\n{detail}")


def softflowd(pcap, port, version):
    subprocess.run(["softflowd", "-r", pcap, "-n", f"127.0.0.1:{port}", "-v", str(version)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=DEADLINE)


PMACCT_ADDRESS = "127.0.0.3"


def pmacctd(work, pcap, port, version):
    """pmacctd reads `pcap` to its end and exports it with its nfprobe plugin (pmacct's own
    NetFlow/IPFIX probe) from PMACCT_ADDRESS, then exits; it states flow times from the
    packets' timestamps."""
    conf = os.path.join(work, f"pmacctd-v{version}.conf")
    with open(conf, "w") as f:
        f.write(f"""daemonize: false
pcap_savefile: {pcap}
pcap_savefile_wait: false
plugins: nfprobe
nfprobe_receiver: 127.0.0.1:{port}
nfprobe_source_ip: {PMACCT_ADDRESS}
nfprobe_version: {version}
aggregate: src_host, dst_host, src_port, dst_port, proto
""")
    with open(os.path.join(work, f"pmacctd-v{version}.log"), "wb") as log:
        subprocess.run(["pmacctd", "-f", conf], check=True, stdout=log,
                       stderr=subprocess.STDOUT, timeout=DEADLINE)


def per_app_hour(rows, vpc):
    got = {}
    for r in rows:
        if r["vpc_id"] == vpc:
            key = f"{r['src_app']}|{r['dest_app']}|{r['hour']}"
            got[key] = got.get(key, 0) + r["bytes_tx"]
    return got


def udp_queue_empty(port):
    """True when no socket bound to `port` has datagrams waiting (/proc/net/udp rx_queue)."""
    with open("/proc/net/udp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port:
                return int(fields[4].split(":")[1], 16) == 0
    return True


def nfcapd_totals(work, pcap, version):
    """softflowd towards nfcapd; nfdump's per (src_app, dst_app) octets."""
    out = os.path.join(work, f"nfcapd-v{version}")
    os.makedirs(out)
    port = free_udp_port()
    log = open(os.path.join(work, f"nfcapd-v{version}.log"), "wb")
    proc = subprocess.Popen(["nfcapd", "-w", out, "-b", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        until("nfcapd to bind", lambda: b"Startup" in open(log.name, "rb").read())
        softflowd(pcap, port, version)
        # UDP to loopback is queued at send: once softflowd has exited and nfcapd's socket
        # queue is empty, nfcapd has read the whole export (it writes its file at exit).
        until("nfcapd to read the export", lambda: udp_queue_empty(port))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=DEADLINE)
        log.close()
    text = subprocess.run(["nfdump", "-R", out, "-q", "-A", "srcip,dstip", "-o",
                           "fmt:%sa %da %byt"], check=True, capture_output=True,
                          text=True).stdout
    totals = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        src, dst, octets = fields[0], fields[1], fields[2]
        key = f"{app_of(src)}|{app_of(dst)}"
        totals[key] = totals.get(key, 0) + int(octets)
    return totals


def storm(port, stop):
    """Random and mutated datagrams from 127.0.0.2 until `stop` is set: every version's
    header, then garbage; truncations and flipped bytes of a valid IPFIX message. They come
    from another exporter address, so whatever of them decodes lands in its own vpc_id."""
    import random
    import socket
    import struct
    rng = random.Random(1805)
    template = struct.pack(">HHHHHHHHHH", 2, 20, 300, 3, 8, 4, 12, 4, 1, 4)
    data = struct.pack(">HHIII", 300, 16, 0x0A000101, 0x0A000202, 1000)
    valid = struct.pack(">HHIII", 10, 16 + len(template) + len(data), int(time.time()), 0, 0)
    valid += template + data
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.2", 0))
        while not stop.is_set():
            kind = rng.randrange(3)
            if kind == 0:
                d = struct.pack(">H", rng.choice([5, 9, 10, 7])) + rng.randbytes(rng.randrange(64))
            elif kind == 1:
                d = valid[:rng.randrange(len(valid))]
            else:
                d = bytearray(valid)
                for _ in range(rng.randint(1, 4)):
                    d[rng.randrange(len(d))] = rng.randrange(256)
                d = bytes(d)
            s.sendto(d, ("127.0.0.1", port))
            sent += 1
            if sent % 200 == 0:
                time.sleep(0.001)  # leave room in the socket buffer for softflowd's export
    return sent


def main():
    binary = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="flowd-exporters-")
    apps_file = os.path.join(work, "apps.yaml")
    with open(apps_file, "w") as f:
        f.write(APPS)
    pcap = os.path.join(work, "flows.pcap")
    expected = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "make_pcap.py"),
                                          pcap], check=True, capture_output=True,
                                         text=True).stdout)
    hours = sorted({int(k.split("|")[2]) for k in expected})
    total = sum(expected.values())
    by_pair = {}
    for k, v in expected.items():
        pair = "|".join(k.split("|")[:2])
        by_pair[pair] = by_pair.get(pair, 0) + v
    print(f"pcap: {len(expected)} (src_app, dest_app, hour) keys, {total} octets, hours "
          f"{hours[0]}..{hours[-1]}")

    for version in (5, 9, 10):
        flowd = Flowd(binary, work, apps_file)
        try:
            if version == 10:
                # Malformed datagrams from elsewhere while softflowd exports: none may
                # crash flowd or touch softflowd's totals.
                import threading
                stop = threading.Event()
                storm_thread = threading.Thread(target=storm, args=(flowd.udp, stop))
                storm_thread.start()
                try:
                    softflowd(pcap, flowd.udp, version)
                finally:
                    stop.set()
                    storm_thread.join()
            else:
                softflowd(pcap, flowd.udp, version)
            pmacctd(work, pcap, flowd.udp, version)

            def summed():
                rows = flowd.rows(hours[0] - 48, hours[-1] + 48)
                done = all(sum(per_app_hour(rows, f"exporter-{a}").values()) >= total
                           for a in ("127.0.0.1", PMACCT_ADDRESS))
                return rows if done else None

            try:
                rows = until(f"flowd to total {total} octets (v{version})", summed)
            except TimeoutError as e:
                check(f"v{version}: flowd received the export", False, str(e) + "\n" +
                      flowd.log()[-3000:])
                continue
            vpcs = {r["vpc_id"] for r in rows}
            got = per_app_hour(rows, "exporter-127.0.0.1")
            check(f"v{version}: flowd per application and hour equals the pcap", got == expected,
                  f"flowd: {got}\npcap:  {expected}")
            pmacct = per_app_hour(rows, f"exporter-{PMACCT_ADDRESS}")
            check(f"v{version}: pmacctd's export, per application and hour, equals the pcap",
                  pmacct == expected, f"flowd: {pmacct}\npcap:  {expected}")
            # The storm's (v10) decodable datagrams are those of exporter 127.0.0.2.
            ours = {"exporter-127.0.0.1", f"exporter-{PMACCT_ADDRESS}"}
            check(f"v{version}: every record is in its exporter's vpc",
                  vpcs <= ours | {"exporter-127.0.0.2"} and (version == 10 or vpcs == ours),
                  str(vpcs))
            flowd_pairs = {}
            for k, v in got.items():
                pair = "|".join(k.split("|")[:2])
                flowd_pairs[pair] = flowd_pairs.get(pair, 0) + v
            nf = nfcapd_totals(work, pcap, version)
            check(f"v{version}: nfdump's totals per application pair equal flowd's",
                  nf == flowd_pairs == by_pair, f"nfdump: {nf}\nflowd:  {flowd_pairs}")
            listed = flowd.get("/flow-exporters")
            for name, address in (("softflowd", "127.0.0.1"), ("pmacctd", PMACCT_ADDRESS)):
                exporters = [e for e in listed if e["address"] == address]
                check(f"v{version}: /flow-exporters shows {name}",
                      len(exporters) == 1 and exporters[0]["version"] == version and
                      exporters[0]["sequence_gaps"] == 0, str(exporters))
            if version == 10:
                metrics = urllib.request.urlopen(
                    f"http://127.0.0.1:{flowd.http}/metrics", timeout=10).read().decode()
                malformed = sum(float(m) for m in re.findall(
                    r'flowd_flow_packets_total\{result="malformed",version="[^"]+"\} (\S+)',
                    metrics))
                check("v10: the storm's malformed datagrams were counted, flowd still up",
                      malformed > 0 and flowd.proc.poll() is None, f"malformed={malformed}")
        finally:
            flowd.stop()

    print(f"exporters: {results['passed']} passed, {results['failed']} failed")
    return 1 if results["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
