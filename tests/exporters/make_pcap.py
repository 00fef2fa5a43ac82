#!/usr/bin/env python3
"""Writes a pcap of known UDP and TCP flows between three application subnets over several
hours, and prints what a collector must total: JSON {"src|dst|hour": bytes}, where bytes are
IP lengths (what NetFlow/IPFIX exporters count as octets) and hour is the Unix hour of the
flow's last packet. Each flow's packets lie within a few seconds of one hour, away from its
edges, so no exporter timeout splits a flow across hours. No third-party modules: the pcap
bytes are written here.

The hours are the last HOURS whole hours before now: softflowd reading a file states flow
times as uptimes against its own (real) start, and uptimes are 32-bit milliseconds, so only
times less than 49.7 days old come back as themselves.

usage: make_pcap.py OUT.pcap [UNIX_NOW [FLOWS_PER_HOUR]]
"""
import json
import random
import struct
import sys
import time

APPS = {"web": "10.0.1.", "db": "10.0.2.", "cache": "10.0.3."}
HOURS = 4


def checksum(header: bytes) -> int:
    total = sum(struct.unpack("!%dH" % (len(header) // 2), header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_packet(src: str, dst: str, proto: int, sport: int, dport: int, payload: int) -> bytes:
    if proto == 17:
        l4 = struct.pack("!HHHH", sport, dport, 8 + payload, 0)
    else:  # TCP, ACK|PSH, no options
        l4 = struct.pack("!HHIIBBHHH", sport, dport, 1, 1, 5 << 4, 0x18, 65535, 0, 0)
    body = l4 + bytes(payload)
    total = 20 + len(body)
    s = bytes(int(x) for x in src.split("."))
    d = bytes(int(x) for x in dst.split("."))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0x4000, 64, proto, 0, s, d)
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + body


def main() -> None:
    now = int(sys.argv[2]) if len(sys.argv) > 2 else int(time.time())
    start = (now // 3600 - HOURS) * 3600
    flows_per_hour = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    rng = random.Random(18)
    packets = []  # (time, frame)
    expected = {}
    names = list(APPS)
    port = 20000
    for hour in range(HOURS):
        for _ in range(flows_per_hour):
            src_app, dst_app = rng.choice(names), rng.choice(names)
            src = APPS[src_app] + str(rng.randint(1, 20))
            dst = APPS[dst_app] + str(rng.randint(21, 40))
            if src == dst:
                continue
            proto = rng.choice([6, 17])
            port = port + 1 if port < 65000 else 20000
            # Away from the hour's edges so the whole flow, and its end, is in this hour.
            t = start + hour * 3600 + rng.randint(60, 3000)
            key = f"{src_app}|{dst_app}|{(start + hour * 3600) // 3600}"
            for i in range(rng.randint(1, 6)):
                payload = rng.randint(0, 1400)
                frame = ip_packet(src, dst, proto, port, 80 if proto == 6 else 53, payload)
                packets.append((t + i * 0.5, frame))
                expected[key] = expected.get(key, 0) + len(frame)
    packets.sort(key=lambda p: p[0])
    with open(sys.argv[1], "wb") as out:
        # Link type 101: raw IP, no Ethernet header.
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))
        for t, frame in packets:
            sec = int(t)
            usec = int(round((t - sec) * 1_000_000))
            out.write(struct.pack("<IIII", sec, usec, len(frame), len(frame)))
            out.write(frame)
    json.dump(expected, sys.stdout, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
