#!/usr/bin/env python3
"""Writes small flowd data directories for the format-compatibility tests.

    tests/data/make_datadir.py FLOWD_BINARY OUT_DIR

OUT_DIR gets batches.json (what was POSTed, in order) and two data directories written
by that binary: log-only/ (every batch in the write-ahead log, flowd killed with SIGKILL, so
no checkpoint) and snapshot-and-log/ (the first `checkpointed` batches, then a clean stop
that writes a checkpoint, then a restart, the other batches, and SIGKILL). Run it with each
release's flowd when the on-disk format changes, and keep its output under
tests/data/datadir-v<N>/: tests/unit/durable/datadir_compat_test.cpp recovers each one and
checks it against its batches.json.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request


def batches():
    """Deterministic batches: repeated and distinct keys, several hours, long and non-ASCII
    names, large counters, and two with an Idempotency-Key."""
    out = []
    apps = ["web", "db", "cache", "api-gateway", "zähler", "x" * 255]
    for b in range(8):
        records = []
        for r in range(5 + 3 * b):
            records.append({
                "src_app": apps[(b + r) % len(apps)],
                "dest_app": apps[(b * 3 + r * 5 + 1) % len(apps)],
                "vpc_id": "vpc-%d" % (r % 3),
                "bytes_tx": (b + 1) * 1000003 + r * 7,
                "bytes_rx": (r + 1) * 999983 + b * 11 + (2 ** 40 if r == 2 else 0),
                "hour": 490000 + (b * r) % 5,
            })
        entry = {"body": records}
        if b in (2, 5):
            entry["idempotency_key"] = "datadir-batch-%d" % b
        out.append(entry)
    return out


def start(flowd, data_dir, log_path):
    log = open(log_path, "w")
    proc = subprocess.Popen([flowd, "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                             "--data-dir", data_dir], stderr=log, stdout=log)
    for _ in range(400):
        text = open(log_path).read()
        port = re.search(r"http listening on \S*:(\d+)\s", text)
        if port and "] ready: " in text:
            return proc, int(port.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit("flowd did not start:\n" + open(log_path).read())


def post(port, entry):
    req = urllib.request.Request("http://127.0.0.1:%d/flows" % port,
                                 data=json.dumps(entry["body"]).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    if "idempotency_key" in entry:
        req.add_header("Idempotency-Key", entry["idempotency_key"])
    with urllib.request.urlopen(req) as r:
        assert r.status == 200, r.status


def main():
    flowd, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    bs = batches()
    checkpointed = 5
    with open(os.path.join(out, "batches.json"), "w") as f:
        json.dump({"written_unix_ms": int(time.time() * 1000), "checkpointed": checkpointed,
                   "batches": bs}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    logs = tempfile.mkdtemp()
    for name in ("log-only", "snapshot-and-log"):
        shutil.rmtree(os.path.join(out, name), ignore_errors=True)
    # log-only: everything in the log, then SIGKILL.
    d = os.path.join(out, "log-only")
    proc, port = start(flowd, d, os.path.join(logs, "a.log"))
    for e in bs:
        post(port, e)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # snapshot-and-log: a checkpoint by the clean stop, then more in the log.
    d = os.path.join(out, "snapshot-and-log")
    proc, port = start(flowd, d, os.path.join(logs, "b.log"))
    for e in bs[:checkpointed]:
        post(port, e)
    proc.send_signal(signal.SIGTERM)
    proc.wait()
    proc, port = start(flowd, d, os.path.join(logs, "c.log"))
    for e in bs[checkpointed:]:
        post(port, e)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for name in ("log-only", "snapshot-and-log"):
        lock = os.path.join(out, name, "LOCK")
        if os.path.exists(lock):
            os.remove(lock)
    shutil.rmtree(logs)


if __name__ == "__main__":
    main()
