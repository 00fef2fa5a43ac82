#!/usr/bin/env python3
"""Records what softflowd exports for a pcap: runs `softflowd -r PCAP -v VERSION` towards a
UDP socket of its own and writes the datagrams as [length, 2 bytes big-endian][datagram]
(flowd-flow-replay's input). UDP to loopback is queued at send, so once softflowd has exited
the socket holds the whole export: it is drained without waiting.

usage: record_softflowd.py PCAP OUT [VERSION]
"""
import socket
import struct
import subprocess
import sys


def main():
    pcap, out = sys.argv[1], sys.argv[2]
    version = sys.argv[3] if len(sys.argv) > 3 else "10"
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    chunks = []
    proc = subprocess.Popen(["softflowd", "-r", pcap, "-n", f"127.0.0.1:{port}", "-v", version],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Read while it runs, so a small kernel cap on the buffer loses nothing.
    s.settimeout(0.05)
    while True:
        try:
            d = s.recv(65535)
            chunks.append(struct.pack(">H", len(d)) + d)
            continue
        except socket.timeout:
            pass
        if proc.poll() is not None:
            break
    s.setblocking(False)
    while True:
        try:
            d = s.recv(65535)
        except BlockingIOError:
            break
        chunks.append(struct.pack(">H", len(d)) + d)
    if proc.returncode != 0:
        sys.exit(f"softflowd exited {proc.returncode}")
    with open(out, "wb") as f:
        f.write(b"".join(chunks))
    print(f"{len(chunks)} datagrams")


if __name__ == "__main__":
    main()
