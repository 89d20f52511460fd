# Times the core API under MicroPython, per backend (viper, pure), one JSON line per
# operation:  {"backend": ..., "op": ..., "us": microseconds per call, "n": calls}
#
#   MICROPYPATH=.frozen:<repo> micropython bench/mp_core_timing.py [min_ms] [backend ...]
#
# Run by bench/test_bench_viper.py; the sizes are the firmware's (4 KiB blocks, 5
# members, bitmaps of 2^16 tracks).
import json
import sys

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython, for trying it out on the host
    from time import perf_counter

    def ticks_us():
        return int(perf_counter() * 1e6)

    def ticks_diff(a, b):
        return a - b


def _dirname(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


ROOT = _dirname(_dirname(__file__)) if "/" in __file__ else ".."
if ROOT not in sys.path:
    sys.path.append(ROOT)

import firmware.core as core  # noqa: E402

BS = 4096
NBITS = 1 << 16


def pattern(n, seed):
    b = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        b[i] = (x >> 16) & 0xFF
    return b


def ops():
    srcs = [pattern(BS, k + 1) for k in range(5)]
    dst = bytearray(BS)
    par = pattern(BS, 9)
    sparse = core.bitmap_new(NBITS)
    for i in range(0, NBITS, 4099):
        core.bit_set(sparse, i)
    bm = core.bitmap_new(NBITS)
    other = pattern(NBITS // 8, 7)
    enc = bytearray(core.cobs_max(BS))
    out = bytearray(BS)
    n_enc = core.cobs_encode(srcs[0], enc)
    encv = memoryview(enc)[:n_enc]

    def scan():
        p = core.next_set(sparse, 0)
        while p >= 0:
            p = core.next_set(sparse, p + 1) if p + 1 < NBITS else -1

    return [
        ("xor_into 5x4K", lambda: core.xor_into(dst, srcs)),
        ("parity_update 4K", lambda: core.parity_update(par, srcs[0], srcs[1])),
        ("equal 4K", lambda: core.equal(srcs[0], srcs[0])),
        ("range_set 2^16", lambda: core.range_set(bm, 3, NBITS - 7)),
        ("count 2^16", lambda: core.count(other)),
        ("scan 2^16 (16 set)", scan),
        ("or_merge 2^16", lambda: core.or_merge(bm, other)),
        ("cobs_encode 4K", lambda: core.cobs_encode(srcs[0], enc)),
        ("cobs_decode 4K", lambda: core.cobs_decode(encv, out)),
    ]


def time_op(fn, min_us):
    fn()
    n = 0
    t0 = ticks_us()
    while True:
        fn()
        n += 1
        dt = ticks_diff(ticks_us(), t0)
        if dt >= min_us and n >= 3:
            return dt / n, n


def main(argv):
    min_ms = int(argv[0]) if argv else 200
    backends = argv[1:] or ["viper", "pure"]
    for name in backends:
        core.use(name)
        for op, fn in ops():
            us, n = time_op(fn, min_ms * 1000)
            print(json.dumps({"backend": name, "op": op, "us": us, "n": n}))


main(sys.argv[1:])
