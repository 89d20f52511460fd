# The core API: XOR, parity delta, compare, differential bitmaps, COBS.
# One API, three backends: C (cffi, CPython), viper (MicroPython), pure (reference).
# This module checks lengths and bounds and raises clear errors; backends trust it.
#
# Bitmaps are bytearrays, bit i in byte i >> 3 under mask 1 << (i & 7); a bitmap of
# nbits bits is (nbits + 7) // 8 bytes long (use bitmap_new).

try:
    import micropython  # noqa: F401  (present only on MicroPython)

    from . import viper as _b
except (ImportError, SyntaxError):   # SyntaxError: a port built without the native emitters
    try:
        from . import cffi_backend as _b
    except ImportError:
        from . import pure as _b

BACKEND = _b.NAME


def use(name):
    """Switch backend by name ('c', 'viper', 'pure'); for tests and benchmarks."""
    global _b, BACKEND
    if name == "pure":
        from . import pure as m
    elif name == "viper":
        from . import viper as m
    elif name == "c":
        from . import cffi_backend as m
    else:
        raise ValueError("unknown core backend %r" % (name,))
    _b = m
    BACKEND = m.NAME
    _bind()


def _same_len(a, b, what):
    if len(a) != len(b):
        raise ValueError("%s: length mismatch (%d != %d)" % (what, len(a), len(b)))


def _bits(bm, i, what):
    if i < 0 or i >= len(bm) * 8:
        raise IndexError("%s: bit %d outside bitmap of %d bits" % (what, i, len(bm) * 8))


def _span(bm, start, count, what):
    if start < 0 or count < 0 or start + count > len(bm) * 8:
        raise IndexError("%s: range [%d, %d) outside bitmap of %d bits"
                         % (what, start, start + count, len(bm) * 8))


def xor_into(dst, srcs):
    """dst[:] = XOR of every buffer in srcs (at least one, each len(dst))."""
    if not srcs:
        raise ValueError("xor_into: no sources")
    for s in srcs:
        _same_len(dst, s, "xor_into")
    _b.xor_into(dst, srcs)


def xor_acc(dst, src):
    """dst ^= src."""
    _same_len(dst, src, "xor_acc")
    _b.xor_acc(dst, src)


def parity_update(parity, old, new):
    """parity ^= old ^ new, in one pass (RAID5 small write)."""
    _same_len(parity, old, "parity_update")
    _same_len(parity, new, "parity_update")
    _b.parity_update(parity, old, new)


def equal(a, b):
    return len(a) == len(b) and _b.equal(a, b)


def is_zero(a):
    return _b.is_zero(a)


def bitmap_new(nbits):
    if nbits < 0:
        raise ValueError("bitmap_new: negative size")
    return bytearray((nbits + 7) >> 3)


def bit_set(bm, i):
    _bits(bm, i, "bit_set")
    _b.bit_set(bm, i)


def bit_clear(bm, i):
    _bits(bm, i, "bit_clear")
    _b.bit_clear(bm, i)


def bit_test(bm, i):
    _bits(bm, i, "bit_test")
    return _b.bit_test(bm, i)


def range_set(bm, start, count):
    _span(bm, start, count, "range_set")
    _b.range_set(bm, start, count)


def range_clear(bm, start, count):
    _span(bm, start, count, "range_clear")
    _b.range_clear(bm, start, count)


def count(bm, start=0, end=-1):
    """Set bits in [start, end); end=-1 means the whole bitmap."""
    if end < 0:
        end = len(bm) * 8
    _span(bm, start, end - start, "count")
    return _b.count(bm, start, end)


def _scan(bm, pos, nbits, what):
    # nbits of next_set / next_clear (negative: the whole bitmap), with pos checked.
    if nbits < 0:
        nbits = len(bm) * 8
    elif nbits > len(bm) * 8:
        _span(bm, 0, nbits, what)  # raises (called only when the check fails)
    if pos < 0:
        raise IndexError("%s: negative position" % what)
    return nbits


def next_set(bm, pos, nbits=-1):
    """First set bit in [pos, nbits), or -1."""
    nbits = _scan(bm, pos, nbits, "next_set")
    return _b.next_set(bm, pos, nbits) if pos < nbits else -1


def next_clear(bm, pos, nbits=-1):
    """First clear bit in [pos, nbits), or -1."""
    nbits = _scan(bm, pos, nbits, "next_clear")
    return _b.next_clear(bm, pos, nbits) if pos < nbits else -1


def or_merge(dst, src):
    """dst |= src."""
    _same_len(dst, src, "or_merge")
    _b.or_merge(dst, src)


def and_not(dst, src):
    """dst &= ~src."""
    _same_len(dst, src, "and_not")
    _b.and_not(dst, src)


def copy(dst, src):
    _same_len(dst, src, "copy")
    _b.copy(dst, src)


def cobs_max(n):
    """Worst-case COBS encoded size of n bytes (without the delimiter)."""
    return n + n // 254 + 1


def cobs_encode(src, dst):
    if len(dst) < cobs_max(len(src)):
        raise ValueError("cobs_encode: destination too small")
    return _b.cobs_encode(src, dst)


def cobs_decode(src, dst):
    """Decoded length, or -1 for invalid COBS / too small a destination."""
    return _b.cobs_decode(src, dst)


# The C backend serves these public names straight from C (csrc/pycore.c: the same
# checks, errors and results as the wrappers above, one builtin call instead of a
# wrapper, a backend call and a from_buffer per buffer).  Other backends get the
# wrappers back.
_FAST = ("xor_into", "xor_acc", "parity_update", "equal", "is_zero", "bit_set", "bit_clear", "bit_test",
         "range_set", "range_clear", "count", "next_set", "next_clear", "or_merge", "and_not", "copy",
         "cobs_encode", "cobs_decode")
_WRAPPERS = {}
for _n in _FAST:
    _WRAPPERS[_n] = globals()[_n]


def _bind():
    g = globals()
    fast = getattr(_b, "FAST", None)
    for name in _FAST:
        g[name] = getattr(fast, name) if fast is not None else _WRAPPERS[name]


_bind()
