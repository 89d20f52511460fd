# C backend of the core API for CPython: thin calls into _storlab_core (csrc/core.c,
# built by cffi from csrc/build_core.py).  Same names, signatures and results as pure.py.
#
# Buffers are passed with ffi.from_buffer, so bytes, bytearray and memoryview all work
# without copies; destinations must be writable (BufferError otherwise).  Lengths are
# len() of the Python objects, i.e. byte buffers are expected, as in pure.py.
# The callers (firmware/core/__init__.py) check lengths and bounds; these trust them.
#
# Per-call overhead is what matters for small buffers: the cdata type, from_buffer
# and the lib functions are bound once at import (LOAD_GLOBAL is cached by CPython),
# and require_writable is passed positionally (a keyword costs ~70 ns per call).

from itertools import repeat as _repeat

from _storlab_core import ffi as _ffi
from _storlab_core import lib as _lib

# Single-bit operations touch one byte: the reference's plain indexing is several times
# faster than any foreign call (sc_bit_set/clear/test exist in the C core for C callers).
from .pure import bit_clear, bit_set, bit_test  # noqa: F401

NAME = "c"

# The checked entry points of csrc/pycore.c (module _storlab_fast, created by the cffi
# module): firmware.core binds its public names to them, so a call from the firmware is
# one builtin call, with no Python wrapper and no from_buffer (see firmware/core/_bind).
FAST = None
if _lib.sc_py_init() == 0:
    import _storlab_fast

    FAST = _storlab_fast

_U8 = _ffi.typeof("uint8_t[]")
_fb = _ffi.from_buffer
_map = map
_list = list
_len = len

_xor_into = _lib.sc_xor_into
_xor_acc = _lib.sc_xor_acc
_parity_update = _lib.sc_parity_update
_equal = _lib.sc_equal
_is_zero = _lib.sc_is_zero
_range_set = _lib.sc_range_set
_range_clear = _lib.sc_range_clear
_count = _lib.sc_count
_next_set = _lib.sc_next_set
_next_clear = _lib.sc_next_clear
_or_merge = _lib.sc_or_merge
_and_not = _lib.sc_and_not
_copy = _lib.sc_copy
_cobs_encode = _lib.sc_cobs_encode
_cobs_decode = _lib.sc_cobs_decode


def xor_into(dst, srcs):
    """dst[:] = srcs[0] ^ srcs[1] ^ ... (N-way XOR, N >= 1)."""
    # One pointer array per call; cffi turns the list into a temporary uint8_t *[].
    ptrs = _list(_map(_fb, _repeat(_U8), srcs))
    _xor_into(_fb(_U8, dst, True), ptrs, _len(ptrs), _len(dst))


def xor_acc(dst, src):
    """dst ^= src."""
    _xor_acc(_fb(_U8, dst, True), _fb(_U8, src), _len(dst))


def parity_update(parity, old, new):
    """One pass: parity ^= old ^ new (RAID5 read-modify-write)."""
    _parity_update(_fb(_U8, parity, True), _fb(_U8, old), _fb(_U8, new), _len(parity))


def equal(a, b):
    n = _len(a)
    return n == _len(b) and _equal(_fb(_U8, a), _fb(_U8, b), n) != 0


def is_zero(a):
    return _is_zero(_fb(_U8, a), _len(a)) != 0


def range_set(bm, start, count):
    _range_set(_fb(_U8, bm, True), start, count)


def range_clear(bm, start, count):
    _range_clear(_fb(_U8, bm, True), start, count)


def count(bm, start, end):
    """Number of set bits in [start, end)."""
    return _count(_fb(_U8, bm), start, end)


def next_set(bm, pos, nbits):
    """Index of the first set bit >= pos and < nbits, or -1."""
    return _next_set(_fb(_U8, bm), pos, nbits)


def next_clear(bm, pos, nbits):
    """Index of the first clear bit >= pos and < nbits, or -1."""
    return _next_clear(_fb(_U8, bm), pos, nbits)


def or_merge(dst, src):
    """dst |= src (bytewise, equal lengths)."""
    _or_merge(_fb(_U8, dst, True), _fb(_U8, src), _len(dst))


def and_not(dst, src):
    """dst &= ~src."""
    _and_not(_fb(_U8, dst, True), _fb(_U8, src), _len(dst))


def copy(dst, src):
    _copy(_fb(_U8, dst, True), _fb(_U8, src), _len(dst))


def cobs_encode(src, dst):
    """COBS-encode src into dst (no trailing 0x00); return the encoded length.
    dst must hold len(src) + len(src) // 254 + 1 bytes."""
    return _cobs_encode(_fb(_U8, src), _len(src), _fb(_U8, dst, True))


def cobs_decode(src, dst):
    """Decode one COBS block (without its 0x00 delimiter) into dst; return the
    decoded length, or -1 if src is not valid COBS or dst is too small."""
    return _cobs_decode(_fb(_U8, src), _len(src), _fb(_U8, dst, True), _len(dst))
