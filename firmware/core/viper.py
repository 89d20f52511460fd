# ruff: noqa: F821
# (ptr8 / ptr32 are viper casts, known to the MicroPython compiler only.)
#
# Viper backend of the core API for MicroPython: same names, signatures and results as
# pure.py, compiled to machine code by the viper emitter.  Imported only on MicroPython;
# CPython tooling merely compile()s this file.
#
# Buffers become raw pointers with ptr8(buf) / ptr32(buf).  When every buffer of a call
# starts on a 4-byte boundary the bulk runs 32 bits at a time through ptr32 (Cortex-M0
# and friends fault on unaligned word access), and the last len % 4 bytes go one by one.
# Lengths come from int(len(x)) (a native int), and values loaded through ptr32 are only
# compared with 0 or masked, so the code is the same on 32- and 64-bit ports.
#
# dst may be one of the sources of xor_into (the same buffer); other overlaps are not
# supported.  The callers (firmware/core/__init__.py) check lengths and bounds.

import micropython

NAME = "viper"

# Set bits per byte value, for count().
_POP = bytes(bin(i).count("1") for i in range(256))


# The bytewise loops (copy, xor_acc, parity_update, equal, is_zero, or_merge, and_not) are
# one viper function each on purpose: one shared with a mode argument needs a Python wrapper
# per name, a call more (unix port: +0.08 us, 40% of a 64-byte or_merge, 3% at 4 KiB).


@micropython.viper
def copy(dst, src):
    n = int(len(dst))
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    if ((int(d) | int(s)) & 3) == 0:
        d4 = ptr32(dst)
        s4 = ptr32(src)
        nw = n >> 2
        while i < nw:
            d4[i] = s4[i]
            i += 1
        i = nw << 2
    while i < n:
        d[i] = s[i]
        i += 1


@micropython.viper
def xor_acc(dst, src):
    """dst ^= src."""
    n = int(len(dst))
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    if ((int(d) | int(s)) & 3) == 0:
        d4 = ptr32(dst)
        s4 = ptr32(src)
        nw = n >> 2
        while i < nw:
            d4[i] = d4[i] ^ s4[i]
            i += 1
        i = nw << 2
    while i < n:
        d[i] = d[i] ^ s[i]
        i += 1


@micropython.viper
def _zero(dst):
    n = int(len(dst))
    d = ptr8(dst)
    i = 0
    while i < n:
        d[i] = 0
        i += 1


@micropython.viper
def xor_into(dst, srcs):
    """dst[:] = srcs[0] ^ srcs[1] ^ ... (N-way XOR, N >= 1)."""
    ns = int(len(srcs))
    da = int(ptr8(dst))
    # Sources that are dst itself: XOR is commutative, so dst's own bytes stay the
    # running value (an even number of them cancels out) and the others fold in.
    same = 0
    k = 0
    while k < ns:
        if int(ptr8(srcs[k])) == da:
            same += 1
        k += 1
    k = 0
    if same == 0:
        copy(dst, srcs[0])
        k = 1
    elif (same & 1) == 0:
        _zero(dst)
    while k < ns:
        s = srcs[k]
        if int(ptr8(s)) != da:
            xor_acc(dst, s)
        k += 1


@micropython.viper
def parity_update(parity, old, new):
    """One pass: parity ^= old ^ new (RAID5 read-modify-write)."""
    n = int(len(parity))
    p = ptr8(parity)
    o = ptr8(old)
    w = ptr8(new)
    i = 0
    if ((int(p) | int(o) | int(w)) & 3) == 0:
        p4 = ptr32(parity)
        o4 = ptr32(old)
        w4 = ptr32(new)
        nw = n >> 2
        while i < nw:
            p4[i] = p4[i] ^ o4[i] ^ w4[i]
            i += 1
        i = nw << 2
    while i < n:
        p[i] = p[i] ^ o[i] ^ w[i]
        i += 1


@micropython.viper
def equal(a, b) -> bool:
    n = int(len(a))
    if int(len(b)) != n:
        return False
    x = ptr8(a)
    y = ptr8(b)
    i = 0
    if ((int(x) | int(y)) & 3) == 0:
        x4 = ptr32(a)
        y4 = ptr32(b)
        nw = n >> 2
        while i < nw:
            if x4[i] != y4[i]:
                return False
            i += 1
        i = nw << 2
    while i < n:
        if x[i] != y[i]:
            return False
        i += 1
    return True


@micropython.viper
def is_zero(a) -> bool:
    n = int(len(a))
    x = ptr8(a)
    i = 0
    if (int(x) & 3) == 0:
        x4 = ptr32(a)
        nw = n >> 2
        while i < nw:
            if x4[i]:
                return False
            i += 1
        i = nw << 2
    while i < n:
        if x[i]:
            return False
        i += 1
    return True


@micropython.viper
def bit_set(bm, i: int):
    p = ptr8(bm)
    p[i >> 3] = p[i >> 3] | (1 << (i & 7))


@micropython.viper
def bit_clear(bm, i: int):
    p = ptr8(bm)
    p[i >> 3] = p[i >> 3] & (0xFF ^ (1 << (i & 7)))


@micropython.viper
def bit_test(bm, i: int) -> int:
    p = ptr8(bm)
    return (p[i >> 3] >> (i & 7)) & 1


@micropython.viper
def _range(bm, start: int, count: int, fill: int):
    # fill is 0xFF to set, 0 to clear: partial bytes at the ends, whole bytes (and
    # whole aligned words) in between.
    if count <= 0:
        return
    p = ptr8(bm)
    end = start + count
    b0 = start >> 3
    b1 = end >> 3
    if b0 == b1:
        m = ((1 << (end & 7)) - 1) ^ ((1 << (start & 7)) - 1)
        if fill:
            p[b0] = p[b0] | m
        else:
            p[b0] = p[b0] & (0xFF ^ m)
        return
    if start & 7:
        m = 0xFF ^ ((1 << (start & 7)) - 1)
        if fill:
            p[b0] = p[b0] | m
        else:
            p[b0] = p[b0] & (0xFF ^ m)
        b0 += 1
    base = int(p)
    while b0 < b1 and ((base + b0) & 3):
        p[b0] = fill
        b0 += 1
    if b0 + 4 <= b1:
        p4 = ptr32(base + b0)
        word = fill | (fill << 8) | (fill << 16) | (fill << 24)
        nw = (b1 - b0) >> 2
        k = 0
        while k < nw:
            p4[k] = word
            k += 1
        b0 += nw << 2
    while b0 < b1:
        p[b0] = fill
        b0 += 1
    if end & 7:
        m = (1 << (end & 7)) - 1
        if fill:
            p[b1] = p[b1] | m
        else:
            p[b1] = p[b1] & (0xFF ^ m)


def range_set(bm, start, count):
    _range(bm, start, count, 0xFF)


def range_clear(bm, start, count):
    _range(bm, start, count, 0)


@micropython.viper
def count(bm, start: int, end: int) -> int:
    """Number of set bits in [start, end)."""
    if start >= end:
        return 0
    p = ptr8(bm)
    t = ptr8(_POP)
    b0 = start >> 3
    b1 = end >> 3
    if b0 == b1:
        return t[p[b0] & (((1 << (end & 7)) - 1) ^ ((1 << (start & 7)) - 1))]
    n = 0
    if start & 7:
        n += t[p[b0] & (0xFF ^ ((1 << (start & 7)) - 1))]
        b0 += 1
    base = int(p)
    while b0 < b1 and ((base + b0) & 3):
        n += t[p[b0]]
        b0 += 1
    # Aligned words: empty ones (the common case in sparse bitmaps) cost one load.
    p4 = ptr32(base + b0)
    k = 0
    nw = (b1 - b0) >> 2
    while k < nw:
        w = p4[k]
        if w:
            n += t[w & 0xFF] + t[(w >> 8) & 0xFF] + t[(w >> 16) & 0xFF] + t[(w >> 24) & 0xFF]
        k += 1
    b0 += nw << 2
    while b0 < b1:
        n += t[p[b0]]
        b0 += 1
    if end & 7:
        n += t[p[b1] & ((1 << (end & 7)) - 1)]
    return n


@micropython.viper
def _next(bm, pos: int, nbits: int, flip: int) -> int:
    # First bit in [pos, nbits) whose value XOR flip's bit is 1 (flip 0: set bits,
    # 0xFF: clear bits), or -1.  Reads only bytes below (nbits + 7) // 8.
    if pos >= nbits:
        return -1
    p = ptr8(bm)
    nbytes = (nbits + 7) >> 3
    b = pos >> 3
    v = (p[b] ^ flip) & (0xFF ^ ((1 << (pos & 7)) - 1))
    if not v:
        b += 1
        base = int(p)
        while b < nbytes and ((base + b) & 3):
            v = p[b] ^ flip
            if v:
                break
            b += 1
        if not v:
            # Aligned words that are all-clear (all-set) are skipped with one load.
            p4 = ptr32(base + b)
            full = flip | (flip << 8)
            k = 0
            while b + 4 <= nbytes:
                w = p4[k]
                if (w & 0xFFFF) != full or ((w >> 16) & 0xFFFF) != full:
                    break
                b += 4
                k += 1
            while b < nbytes:
                v = p[b] ^ flip
                if v:
                    break
                b += 1
            if not v:
                return -1
    i = b << 3
    while not (v & 1):
        v >>= 1
        i += 1
    if i < nbits:
        return i
    return -1


def next_set(bm, pos, nbits):
    """Index of the first set bit >= pos and < nbits, or -1."""
    return _next(bm, pos, nbits, 0)


def next_clear(bm, pos, nbits):
    """Index of the first clear bit >= pos and < nbits, or -1."""
    return _next(bm, pos, nbits, 0xFF)


@micropython.viper
def or_merge(dst, src):
    """dst |= src (bytewise, equal lengths)."""
    n = int(len(dst))
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    if ((int(d) | int(s)) & 3) == 0:
        d4 = ptr32(dst)
        s4 = ptr32(src)
        nw = n >> 2
        while i < nw:
            d4[i] = d4[i] | s4[i]
            i += 1
        i = nw << 2
    while i < n:
        d[i] = d[i] | s[i]
        i += 1


@micropython.viper
def and_not(dst, src):
    """dst &= ~src."""
    n = int(len(dst))
    d = ptr8(dst)
    s = ptr8(src)
    i = 0
    if ((int(d) | int(s)) & 3) == 0:
        d4 = ptr32(dst)
        s4 = ptr32(src)
        nw = n >> 2
        while i < nw:
            d4[i] = d4[i] & (s4[i] ^ -1)
            i += 1
        i = nw << 2
    while i < n:
        d[i] = d[i] & (s[i] ^ 0xFF)
        i += 1


# The COBS coder is pure.py's, line for line, over typed pointers (viper's speed is the point).


@micropython.viper
def cobs_encode(src, dst) -> int:
    """COBS-encode src into dst (no trailing 0x00); return the encoded length.
    dst must hold len(src) + len(src) // 254 + 1 bytes."""
    n = int(len(src))
    s = ptr8(src)
    d = ptr8(dst)
    code_at = 0
    out = 1
    code = 1
    i = 0
    while i < n:
        b = s[i]
        i += 1
        if b == 0:
            d[code_at] = code
            code_at = out
            out += 1
            code = 1
        else:
            d[out] = b
            out += 1
            code += 1
            if code == 0xFF:
                d[code_at] = code
                code_at = out
                out += 1
                code = 1
    d[code_at] = code
    return out


@micropython.viper
def cobs_decode(src, dst) -> int:
    """Decode one COBS block (without its 0x00 delimiter) into dst; return the
    decoded length, or -1 if src is not valid COBS or dst is too small."""
    n = int(len(src))
    cap = int(len(dst))
    s = ptr8(src)
    d = ptr8(dst)
    i = 0
    out = 0
    while i < n:
        code = s[i]
        if code == 0:
            return -1
        i += 1
        end = i + code - 1
        if end > n or out + code - 1 > cap:
            return -1
        while i < end:
            b = s[i]
            if b == 0:
                return -1
            d[out] = b
            out += 1
            i += 1
        if code != 0xFF and i < n:
            if out >= cap:
                return -1
            d[out] = 0
            out += 1
    return out
