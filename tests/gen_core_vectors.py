"""Generate tests/core_vectors.json, the shared test vectors of the core API.

    python tests/gen_core_vectors.py           # (re)write the file
    python tests/gen_core_vectors.py --check   # exit 1 if the file is stale

Expected results come from the reference backend (firmware/core/pure.py) and are
cross-checked here against independent one-liners where there is one.  Inputs come
from a fixed-seed PRNG, so the output is byte-for-byte reproducible.

Format: {"version": 1, "cases": [{"fn": name, ...}]}; buffers are hex strings.
  xor_into      srcs[], out
  xor_acc       dst, src, out            (also or_merge, and_not, copy)
  parity_update parity, old, new, out
  equal         a, b, out (bool)         is_zero  a, out (bool)
  bit_set / bit_clear   bm, i, out (hex)
  range_set / range_clear  bm, start, count, out (hex)
  bit_test, count, next_set, next_clear  bm, probes: [[args..., out], ...]
  cobs          plain, enc: cobs_encode(plain) gives enc; cobs_decode(enc) gives plain
                with room len(plain) or more, -1 with len(plain) - 1
  cobs_decode   src, cap, ret, out (hex of dst[:ret], or null when ret is -1)
"""

import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "core_vectors.json")
sys.path.insert(0, ROOT)

from firmware.core import pure as P  # noqa: E402

LENS = [0, 1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 255, 256, 1000, 4096]
SMALL = [n for n in LENS if n <= 256]

rng = random.Random(0x5702AB)


def rnd(n, zero=0.0):
    """n random bytes; each is 0 with probability `zero`."""
    return bytearray(0 if rng.random() < zero else rng.getrandbits(8) for _ in range(n))


def nonzero(n):
    return bytearray(rng.randrange(1, 256) for _ in range(n))


def h(b):
    return bytes(b).hex()


def ixor(bufs, n):
    v = 0
    for b in bufs:
        v ^= int.from_bytes(bytes(b), "little")
    return v.to_bytes(n, "little")


def gen():
    cases = []
    add = cases.append

    # -- XOR family: 1..6 sources at every small length; the long ones fewer times.
    for n in LENS:
        counts = range(1, 7) if n <= 256 else ((5,) if n == 1000 else (2,))
        for ns in counts:
            srcs = [rnd(n) for _ in range(ns)]
            d = bytearray(n)
            P.xor_into(d, srcs)
            assert bytes(d) == ixor(srcs, n)
            add({"fn": "xor_into", "srcs": [h(s) for s in srcs], "out": h(d)})
    for n in LENS:
        if n == 4096:
            continue
        dst, src = rnd(n), rnd(n)
        out = bytearray(dst)
        P.xor_acc(out, src)
        assert bytes(out) == ixor([dst, src], n)
        add({"fn": "xor_acc", "dst": h(dst), "src": h(src), "out": h(out)})
    for n in LENS[:-1]:
        par, old, new = rnd(n), rnd(n), rnd(n)
        if n == 1000:  # a sparse update: most of old == new
            new = bytearray(old)
            for k in range(0, n, 97):
                new[k] ^= 0x5A
        out = bytearray(par)
        P.parity_update(out, old, new)
        assert bytes(out) == ixor([par, old, new], n)
        add({"fn": "parity_update", "parity": h(par), "old": h(old), "new": h(new), "out": h(out)})

    # -- compare
    for n in SMALL:
        a = rnd(n)
        add({"fn": "equal", "a": h(a), "b": h(a), "out": True})
        for at in sorted({0, n // 2, n - 1}) if n else []:
            b = bytearray(a)
            b[at] ^= 1 << rng.randrange(8)
            add({"fn": "equal", "a": h(a), "b": h(b), "out": P.equal(a, b)})
    add({"fn": "equal", "a": "00", "b": "0000", "out": False})
    add({"fn": "equal", "a": "", "b": "00", "out": False})
    a = rnd(1000)
    add({"fn": "equal", "a": h(a), "b": h(a), "out": True})
    for n in SMALL:
        z = bytearray(n)
        add({"fn": "is_zero", "a": h(z), "out": True})
        for at in sorted({0, n // 2, n - 1}) if n else []:
            b = bytearray(n)
            b[at] = 1 << rng.randrange(8)
            assert not P.is_zero(b)
            add({"fn": "is_zero", "a": h(b), "out": False})

    # -- bitmaps: 40 bytes = 320 bits, so ranges cross byte and 64-bit word edges.
    nb = 40
    pats = {
        "zero": bytearray(nb),
        "ones": bytearray(b"\xff" * nb),
        "dense": rnd(nb),
        "sparse": bytearray(rng.choice((0, 0, 0, 0, 0, 0, 1 << rng.randrange(8))) for _ in range(nb)),
    }
    for bm in pats.values():
        for i in (0, 1, 7, 8, 63, 64, 65, 127, 128, 200, 319):
            for fn in ("bit_set", "bit_clear"):
                out = bytearray(bm)
                getattr(P, fn)(out, i)
                add({"fn": fn, "bm": h(bm), "i": i, "out": h(out)})
        add({"fn": "bit_test", "bm": h(bm),
             "probes": [[i, P.bit_test(bm, i)] for i in (0, 1, 7, 8, 63, 64, 65, 127, 128, 200, 319)]})
    spans = [(0, 0), (5, 0), (0, 1), (3, 2), (0, 8), (1, 7), (7, 2), (8, 8), (6, 12), (0, 64),
             (1, 63), (63, 2), (60, 10), (64, 64), (57, 80), (3, 130), (100, 1), (120, 150),
             (0, 320), (1, 318), (255, 65), (312, 8), (319, 1), (250, 70)]
    for name, bm in pats.items():
        counts = []
        for start, cnt in spans:
            for fn in ("range_set", "range_clear"):
                if (name, fn) in (("ones", "range_set"), ("zero", "range_clear")):
                    continue
                out = bytearray(bm)
                getattr(P, fn)(out, start, cnt)
                add({"fn": fn, "bm": h(bm), "start": start, "count": cnt, "out": h(out)})
            n = P.count(bm, start, start + cnt)
            ref = sum((bm[k >> 3] >> (k & 7)) & 1 for k in range(start, start + cnt))
            assert n == ref
            counts.append([start, start + cnt, n])
        add({"fn": "count", "bm": h(bm), "probes": counts})
    # next_set / next_clear: word-sized gaps, nothing found, bits past nbits ignored.
    probes = [0, 1, 7, 8, 9, 63, 64, 65, 100, 191, 192, 255, 300, 318, 319]
    lone = bytearray(nb)
    P.bit_set(lone, 300)  # one set bit far from the start: skips 4 words
    hole = bytearray(b"\xff" * nb)
    P.bit_clear(hole, 300)
    edge = bytearray(nb)
    P.range_set(edge, 64, 1)
    P.range_set(edge, 127, 2)
    maps = dict(pats, lone=lone, hole=hole, edge=edge)
    for bm in maps.values():
        for fn in ("next_set", "next_clear"):
            found = []
            for nbits in (320, 301, 300, 129, 65, 64, 13, 1):
                for pos in probes + [nbits - 1, nbits]:
                    if pos > nbits:
                        continue
                    out = getattr(P, fn)(bm, pos, nbits)
                    skip = 0 if fn == "next_set" else 1
                    ref = next((k for k in range(pos, nbits) if ((bm[k >> 3] >> (k & 7)) & 1) != skip), -1)
                    assert out == ref
                    found.append([pos, nbits, out])
            add({"fn": fn, "bm": h(bm), "probes": found})
    # bits set beyond nbits inside the last byte must not be found
    tail = bytearray(3)
    tail[2] = 0xF8  # bits 19..23
    inv = bytearray(b ^ 0xFF for b in tail)
    add({"fn": "next_set", "bm": h(tail), "probes": [[p, n, P.next_set(tail, p, n)]
                                                     for p in (0, 16) for n in (17, 19, 20, 24)]})
    add({"fn": "next_clear", "bm": h(inv), "probes": [[p, n, P.next_clear(inv, p, n)]
                                                      for p in (0, 16) for n in (17, 19, 20, 24)]})
    for n in SMALL + [1000]:
        for fn in ("or_merge", "and_not", "copy"):
            dst, src = rnd(n, 0.3), rnd(n, 0.3)
            out = bytearray(dst)
            getattr(P, fn)(out, src)
            add({"fn": fn, "dst": h(dst), "src": h(src), "out": h(out)})

    # -- COBS: each "cobs" case is a plain/encoded pair; the runner encodes `plain`
    # (expecting `enc`) and decodes `enc` into exact, roomy and one-byte-short buffers.
    plain = [bytearray(), bytearray(1), bytearray(2), bytearray(254), bytearray(255), bytearray(300),
             bytearray(b"\x11"), bytearray(b"\x11\x00"), bytearray(b"\x00\x11"),
             bytearray(b"\x11\x22\x00\x33")]
    for run in (1, 252, 253, 254, 255, 256, 508, 509):
        plain.append(nonzero(run))  # no zeros at all
        plain.append(nonzero(run) + b"\x00")
        if 253 <= run <= 255:
            plain.append(bytearray(1) + nonzero(run))
            plain.append(nonzero(run) + b"\x00" + nonzero(3))
    for n in (1, 3, 4, 7, 8, 31, 32, 33, 63, 64, 65, 255, 256, 1000):
        plain.append(rnd(n, 0.1))
        if n < 1000:
            plain.append(rnd(n, 0.7))
    for src in plain:
        dst = bytearray(len(src) + len(src) // 254 + 1)
        r = P.cobs_encode(src, dst)
        enc = bytes(dst[:r])
        assert 0 not in enc
        for cap in (len(src) - 1, len(src), len(src) + 5):
            if cap >= 0:
                d = bytearray(cap)
                r = P.cobs_decode(enc, d)
                assert r == (len(src) if cap >= len(src) else -1)
                assert r < 0 or bytes(d[:r]) == bytes(src)
        add({"fn": "cobs", "plain": h(src), "enc": h(enc)})
    run254 = bytes(nonzero(254))
    bad = [
        b"\x00",                      # zero code
        b"\x01\x00",                  # zero code after a block
        b"\x03\x11\x00",              # zero inside a block
        b"\x05\x11\x22",              # block runs past the end
        b"\x02",                      # block runs past the end
        b"\x02\x11\x00",              # trailing delimiter included
        b"\xff" + run254[:200],       # full block cut short
        b"\xff" + run254 + b"\x00",   # delimiter after a full block
        b"\x03\x11\x22\x04\x33\x00\x44",
    ]
    # Valid but not what the encoder makes: decoding still has to agree.
    odd = [b"", b"\x01", b"\x01\x01", b"\xff" + run254, b"\xff" + run254 + b"\x01",
           b"\x02\x11\x01\x01"]
    for src in bad + odd:
        for cap in (0, 4, 300):
            d = bytearray(cap)
            r = P.cobs_decode(src, d)
            if src in bad:
                assert r == -1
            add({"fn": "cobs_decode", "src": h(src), "cap": cap, "ret": r,
                 "out": h(d[:r]) if r >= 0 else None})
    return {"version": 1, "cases": cases}


def dump(data):
    """One case per line, so a change to the vectors reads well in a diff."""
    lines = [json.dumps(c, separators=(",", ":"), sort_keys=True) for c in data["cases"]]
    return '{"version":%d,"cases":[\n%s\n]}\n' % (data["version"], ",\n".join(lines))


def main(argv):
    text = dump(gen())
    if "--check" in argv:
        with open(OUT) as f:
            same = f.read() == text
        print("core_vectors.json is", "up to date" if same else "STALE")
        return 0 if same else 1
    with open(OUT, "w") as f:
        f.write(text)
    print("wrote %s: %d cases, %d bytes" % (OUT, len(json.loads(text)["cases"]), len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
