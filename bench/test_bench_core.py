"""The C core's XOR against ISA-L's xor_gen (Debian: libisal2 / libisal-dev).

    pytest bench --benchmark-only

Groups, each a side-by-side pair (plus our raw C call):
  xor5-<size>    xor of 5 sources into a 6th buffer
  parity-<size>  parity ^= old ^ new (ISA-L: xor_gen of 3 sources, dest = parity)
Implementations:
  c      firmware.core.cffi_backend, as Python callers use it (from_buffer per call)
  c-raw  the same C function with the pointers prepared once (like the isal call)
  isal   xor_gen through ctypes, pointer array prepared once
All use the same 64-byte-aligned buffers (xor_gen needs 32-byte alignment and a length
that is a multiple of 32).  The end-of-session table prints isal / ours ratios; each
of our results also carries it in extra_info["isal_ratio"].
"""

import ctypes
import ctypes.util
import os

import pytest

cffi_backend = pytest.importorskip("firmware.core.cffi_backend", reason="C core not built")
from _storlab_core import ffi, lib  # noqa: E402

SIZES = {"4K": 4 << 10, "64K": 64 << 10, "1M": 1 << 20, "16M": 16 << 20}


def _isal():
    for name in ("libisal.so.2", ctypes.util.find_library("isal")):
        if not name:
            continue
        try:
            so = ctypes.CDLL(name)
        except OSError:
            continue
        so.xor_gen.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p)]
        so.xor_gen.restype = ctypes.c_int
        return so
    return None


ISAL = _isal()
need_isal = pytest.mark.skipif(ISAL is None, reason="ISA-L not installed (apt-get install libisal-dev)")


def aligned(n, fill=True, align=64):
    """A writable memoryview of n bytes at an `align`-byte boundary, and its address."""
    raw = bytearray(n + align)
    addr = ctypes.addressof((ctypes.c_char * len(raw)).from_buffer(raw))
    off = (-addr) % align
    view = memoryview(raw)[off:off + n]
    if fill:
        view[:] = os.urandom(n)
    return view, addr + off


def _bench(benchmark, record, group, impl, fn, size):
    benchmark.group = group
    benchmark.extra_info["bytes"] = size
    benchmark(fn)
    ratio = record(benchmark, group, impl)
    if ratio is not None:
        benchmark.extra_info["isal_ratio"] = ratio


def _xor_ref(srcs, n):
    v = 0
    for s in srcs:
        v ^= int.from_bytes(bytes(s), "little")
    return v.to_bytes(n, "little")


# isal first in each group so that our entries can carry the ratio
@need_isal
@pytest.mark.parametrize("impl", ["isal", "c", "c-raw"])
@pytest.mark.parametrize("size", list(SIZES))
def test_xor5(benchmark, bench_record, size, impl):
    n = SIZES[size]
    srcs = [aligned(n) for _ in range(5)]
    dst, daddr = aligned(n, fill=False)
    views = [v for v, _ in srcs]
    if impl == "isal":
        ptrs = (ctypes.c_void_p * 6)(*[a for _, a in srcs], daddr)
        xor_gen = ISAL.xor_gen

        def fn():
            if xor_gen(6, n, ptrs):
                raise RuntimeError("xor_gen failed")
    elif impl == "c":
        xor_into = cffi_backend.xor_into

        def fn():
            xor_into(dst, views)
    else:
        cdst = ffi.from_buffer(dst, require_writable=True)
        csrcs = ffi.new("uint8_t *[]", [ffi.cast("uint8_t *", a) for _, a in srcs])
        xi = lib.sc_xor_into

        def fn():
            xi(cdst, csrcs, 5, n)
    _bench(benchmark, bench_record, "xor5-" + size, impl, fn, n)
    if n <= 1 << 20:
        assert bytes(dst) == _xor_ref(views, n)


@need_isal
@pytest.mark.parametrize("impl", ["isal", "c", "c-raw"])
@pytest.mark.parametrize("size", list(SIZES))
def test_parity_update(benchmark, bench_record, size, impl):
    n = SIZES[size]
    (par, paddr), (old, oaddr), (new, naddr) = aligned(n), aligned(n), aligned(n)
    if impl == "isal":
        ptrs = (ctypes.c_void_p * 4)(paddr, oaddr, naddr, paddr)
        xor_gen = ISAL.xor_gen

        def fn():
            if xor_gen(4, n, ptrs):
                raise RuntimeError("xor_gen failed")
    elif impl == "c":
        pu = cffi_backend.parity_update

        def fn():
            pu(par, old, new)
    else:
        cp, co, cn = (ffi.from_buffer(b) for b in (par, old, new))
        pu = lib.sc_parity_update

        def fn():
            pu(cp, co, cn, n)
    want = _xor_ref([par, old, new], n) if n <= 1 << 20 else None
    _bench(benchmark, bench_record, "parity-" + size, impl, fn, n)
    if want is not None:  # an odd number of rounds leaves par ^ old ^ new, an even one par
        assert bytes(par) in (want, _xor_ref([want, old, new], n))

