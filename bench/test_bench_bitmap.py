"""Differential bitmaps: the core's (firmware.core on its C backend, called as the
firmware calls it) against `bitarray` and `pyroaring`, side by side in one run, on
2^20 and 2^24 bits.

    .venv/bin/pytest bench/test_bench_bitmap.py --benchmark-only

Operations (same data for every implementation):
  range   set bits [n/4 + 3, 3n/4) of a clear bitmap (an unaligned start)
  scan    visit every set bit of a sparse bitmap (one random bit in each 4096), one
          "next set bit at or after p" call per bit: core.next_set, bitarray.find(1, p),
          BitMap.next_set_bit(p)
  count   set bits of a bitmap with 1/16 of its bits set at random
  or      dst |= src, both random at 1/16 density

Ratios (> 1: ours is faster) land in extra_info as bitarray_ratio / pyroaring_ratio.
Goal (issue 6): >= 1.0x bitarray on every operation.  pyroaring is compressed
(runs and arrays), so its range, count and OR cost depends on the content, not on n:
its ratios are reported, not held to a goal.
"""
import random

import pytest

from firmware import core

bitarray = pytest.importorskip("bitarray")
pyroaring = pytest.importorskip("pyroaring")

SIZES = {"2^20": 1 << 20, "2^24": 1 << 24}
IMPLS = ["bitarray", "pyroaring", "core"]  # references first: ours then carries the ratios
OPS = ["range", "scan", "count", "or"]
REFS = ("bitarray", "pyroaring")
_TIMES = {}
_DATA = {}


def random_bits(n, every, seed):
    """Sorted positions: one random bit per `every` bits on average."""
    rnd = random.Random(seed)
    return sorted(rnd.sample(range(n), n // every))


def data(n):
    """(sparse positions, dense positions, other dense positions), cached per size."""
    if n not in _DATA:
        _DATA[n] = (random_bits(n, 4096, 1), random_bits(n, 16, 2), random_bits(n, 16, 3))
    return _DATA[n]


def make(impl, n, positions):
    if impl == "core":
        bm = core.bitmap_new(n)
        for p in positions:
            bm[p >> 3] |= 1 << (p & 7)
        return bm
    if impl == "bitarray":
        ba = bitarray.bitarray(n, endian="little")
        ba.setall(0)
        ba[positions] = 1 if positions else 0
        return ba
    return pyroaring.BitMap(positions)


def op_fn(impl, op, n):
    """fn() doing the operation once, and check(result) for its answer."""
    sparse, dense, dense2 = data(n)
    if op == "range":
        a, b = n // 4 + 3, 3 * n // 4
        bm = make(impl, n, [])
        if impl == "core":
            fn = lambda: core.range_set(bm, a, b - a)  # noqa: E731
        elif impl == "bitarray":
            fn = lambda: bm.__setitem__(slice(a, b), 1)  # noqa: E731
        else:
            fn = lambda: bm.add_range(a, b)  # noqa: E731
        want = b - a
        return fn, lambda _: _count(impl, bm) == want
    if op == "scan":
        bm = make(impl, n, sparse)
        if impl == "core":
            def fn():
                out = []
                nxt = core.next_set
                p = nxt(bm, 0)
                while p >= 0:
                    out.append(p)
                    p = nxt(bm, p + 1) if p + 1 < n else -1
                return out
        elif impl == "bitarray":
            def fn():
                out = []
                find = bm.find
                p = find(1, 0)
                while p >= 0:
                    out.append(p)
                    p = find(1, p + 1)
                return out
        else:
            def fn():
                out = []
                nxt = bm.next_set_bit
                last = bm.max()
                p = nxt(0)
                while True:
                    out.append(p)
                    if p == last:
                        return out
                    p = nxt(p + 1)
        return fn, lambda got: got == sparse
    if op == "count":
        bm = make(impl, n, dense)
        if impl == "core":
            fn = lambda: core.count(bm)  # noqa: E731
        elif impl == "bitarray":
            fn = lambda: bm.count(1)  # noqa: E731
        else:
            fn = lambda: len(bm)  # noqa: E731
        return fn, lambda got: got == len(dense)
    # or
    dst, src = make(impl, n, dense), make(impl, n, dense2)
    if impl == "core":
        fn = lambda: core.or_merge(dst, src)  # noqa: E731
    else:
        fn = lambda: dst.__ior__(src)  # noqa: E731
    want = len(set(dense) | set(dense2))
    return fn, lambda _: _count(impl, dst) == want


def _count(impl, bm):
    if impl == "core":
        return core.count(bm)
    if impl == "bitarray":
        return bm.count(1)
    return len(bm)


@pytest.fixture(scope="module", autouse=True)
def c_backend():
    before = core.BACKEND
    if before != "c":
        pytest.skip("the C core is not built (pip install -e .)")
    yield


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("size", list(SIZES))
def test_bitmap(benchmark, size, op, impl):
    n = SIZES[size]
    fn, check = op_fn(impl, op, n)
    group = "bitmap-%s-%s" % (op, size)
    benchmark.group = group
    benchmark.extra_info.update({"op": op, "bits": n, "impl": impl})
    got = benchmark(fn)
    assert check(got), "%s %s on %s bits gave a wrong answer" % (impl, op, size)
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return
    times = _TIMES.setdefault(group, {})
    times[impl] = stats.stats.median
    if impl == "core":
        for ref in REFS:
            if times.get(ref):
                benchmark.extra_info[ref + "_ratio"] = round(times[ref] / times["core"], 3)
        if times.get("bitarray"):
            benchmark.extra_info["goal"] = {"name": "bitmap %s %s bits vs bitarray" % (op, size),
                                            "value": benchmark.extra_info["bitarray_ratio"], "goal": 1.0}
