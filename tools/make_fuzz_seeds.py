#!/usr/bin/python3
"""Writes the committed seed corpora of the fuzzers (run from the repository root; tools/test.sh
runs each fuzzer for a bounded time from these seeds, in a scratch copy).

session_fuzz record: [request u8][flags u8][size u8][fd u8] + payload (see session_fuzz.cpp):
flags bit 0 = need_reply; fd 3 = a 1 MiB memfd, 4 = an eventfd.
chain_fuzz input: [queue size code][flags] + guest memory (see core/virtio/fuzz/chain_fuzz.cpp).
iotlb_fuzz input: little-endian u64 words feeding the operation generator (iotlb_fuzz.cpp).
"""
import os
import struct


def rec(req, payload=b"", flags=1, fd=0):
    return bytes([req, flags, len(payload), fd]) + payload


U = 0x7F0000000000  # front-end address of guest memory
FEATURES = (1 << 32) | (1 << 33) | (1 << 30) | (1 << 28)  # VERSION_1, IOMMU, PROTOCOL, INDIRECT
PROTO = (1 << 3) | (1 << 5) | (1 << 1)  # REPLY_ACK, BACKEND_REQ, LOG? (refused bits are fine)


def session_seeds():
    setup = (rec(1, flags=0) + rec(15, flags=0) + rec(2, struct.pack("<Q", FEATURES), 0)
             + rec(16, struct.pack("<Q", PROTO), 0) + rec(3)
             + rec(5, struct.pack("<II4Q", 1, 0, 0, 1 << 20, U, 0), fd=3))
    queue = b""
    for q in (0, 1):
        base = q * 0x10000
        queue += (rec(8, struct.pack("<II", q, 256))
                  + rec(9, struct.pack("<II4Q", q, 0, U + base, U + base + 0x2000,
                                       U + base + 0x1000, 0))
                  + rec(10, struct.pack("<II", q, 0)) + rec(12, struct.pack("<Q", q), fd=4)
                  + rec(18, struct.pack("<II", q, 1)))
    iotlb = b"".join(rec(22, struct.pack("<QQQBB6x", 0x1000 * i, 0x1000, U + 0x1000 * i, 3, 2))
                     for i in range(1, 5))
    inval = rec(22, struct.pack("<QQQBB6x", 0, 2 ** 64 - 1, 0, 0, 3))
    return {
        "setup": setup,
        "queues": setup + queue + rec(11, struct.pack("<II", 0, 0)),
        "iotlb": setup + rec(21, fd=4) + iotlb + queue + inval + rec(11, struct.pack("<II", 1, 0)),
        "reset": setup + queue + rec(4) + setup,
    }


def chain_seeds():
    def ring(num, descs, heads):
        mem = bytearray(64 << 10)
        for i, (addr, ln, flags, nxt) in enumerate(descs):
            struct.pack_into("<QIHH", mem, 16 * i, addr, ln, flags, nxt)
        avail = 16 * num
        struct.pack_into("<HH", mem, avail, 0, len(heads))
        for k, h in enumerate(heads):
            struct.pack_into("<H", mem, avail + 4 + 2 * k, h)
        return bytes(mem[:0x3000])
    code = 7  # 256 entries
    direct = ring(256, [(0x8000, 76, 0, 0), (0x9000, 2048, 2, 0)], [0, 1])
    chained = ring(256, [(0x8000, 12, 1, 1), (0x800c, 64, 1, 2), (0x9000, 2048, 2, 0)], [0])
    table = bytearray(ring(256, [(0x2800, 48, 4, 0)], [0]))
    for i, (a, l, f, n) in enumerate([(0x8000, 12, 1, 1), (0x8400, 64, 1, 2), (0x9000, 1024, 2, 0)]):
        struct.pack_into("<QIHH", table, 0x2800 + 16 * i, a, l, f, n)
    loop = ring(256, [(0x8000, 8, 1, 1), (0x8008, 8, 1, 0)], [0])
    return {"direct": bytes([code, 0]) + direct, "chained": bytes([code, 0]) + chained,
            "indirect": bytes([code, 1]) + bytes(table), "loop": bytes([code, 0]) + loop,
            "miss": bytes([code, 2]) + direct}


def iotlb_seeds():
    import random
    rng = random.Random(11)
    return {f"ops{n}": b"".join(struct.pack("<Q", rng.getrandbits(64)) for _ in range(n))
            for n in (8, 64, 256)}


def write(folder, seeds):
    os.makedirs(folder, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    write("core/backend/fuzz/corpus", session_seeds())
    write("core/virtio/fuzz/corpus", chain_seeds())
    write("core/iotlb/fuzz/corpus", iotlb_seeds())
