# Reference backend of the core API: plain Python, runs on CPython and MicroPython.
# Every other backend (C via cffi, viper) must give the same results on the shared vectors.
#
# Buffers are bytes-like (bytes, bytearray, memoryview).  Destinations are writable.
# Bitmaps are bytearrays; bit i lives in byte i >> 3, mask 1 << (i & 7).
# Callers (firmware/core/__init__.py) check lengths and bounds; these functions trust them.

NAME = "pure"


def xor_into(dst, srcs):
    """dst[:] = srcs[0] ^ srcs[1] ^ ... (N-way XOR, N >= 1).
    Byte at a time, so dst may itself be one of the sources."""
    first = srcs[0]
    rest = srcs[1:]
    for i in range(len(dst)):
        v = first[i]
        for s in rest:
            v ^= s[i]
        dst[i] = v


def xor_acc(dst, src):
    """dst ^= src."""
    for i in range(len(dst)):
        dst[i] ^= src[i]


def parity_update(parity, old, new):
    """One pass: parity ^= old ^ new (RAID5 read-modify-write)."""
    for i in range(len(parity)):
        parity[i] ^= old[i] ^ new[i]


def equal(a, b):
    return bytes(a) == bytes(b)


def is_zero(a):
    for i in range(len(a)):
        if a[i]:
            return False
    return True


def bit_set(bm, i):
    bm[i >> 3] |= 1 << (i & 7)


def bit_clear(bm, i):
    bm[i >> 3] &= ~(1 << (i & 7)) & 0xFF


def bit_test(bm, i):
    return (bm[i >> 3] >> (i & 7)) & 1


def range_set(bm, start, count):
    for i in range(start, start + count):
        bm[i >> 3] |= 1 << (i & 7)


def range_clear(bm, start, count):
    for i in range(start, start + count):
        bm[i >> 3] &= ~(1 << (i & 7)) & 0xFF


def count(bm, start, end):
    """Number of set bits in [start, end)."""
    n = 0
    for i in range(start, end):
        n += (bm[i >> 3] >> (i & 7)) & 1
    return n


def next_set(bm, pos, nbits):
    """Index of the first set bit >= pos and < nbits, or -1."""
    for i in range(pos, nbits):
        if (bm[i >> 3] >> (i & 7)) & 1:
            return i
    return -1


def next_clear(bm, pos, nbits):
    """Index of the first clear bit >= pos and < nbits, or -1."""
    for i in range(pos, nbits):
        if not (bm[i >> 3] >> (i & 7)) & 1:
            return i
    return -1


def or_merge(dst, src):
    """dst |= src (bytewise, equal lengths)."""
    for i in range(len(dst)):
        dst[i] |= src[i]


def and_not(dst, src):
    """dst &= ~src."""
    for i in range(len(dst)):
        dst[i] &= ~src[i] & 0xFF


def copy(dst, src):
    for i in range(len(dst)):
        dst[i] = src[i]


def cobs_encode(src, dst):
    """COBS-encode src into dst (no trailing 0x00); return the encoded length.
    dst must hold len(src) + len(src) // 254 + 1 bytes."""
    code_at = 0
    out = 1
    code = 1
    for b in src:
        if b == 0:
            dst[code_at] = code
            code_at = out
            out += 1
            code = 1
        else:
            dst[out] = b
            out += 1
            code += 1
            if code == 0xFF:
                dst[code_at] = code
                code_at = out
                out += 1
                code = 1
    dst[code_at] = code
    return out


def cobs_decode(src, dst):
    """Decode one COBS block (without its 0x00 delimiter) into dst; return the
    decoded length, or -1 if src is not valid COBS or dst is too small."""
    n = len(src)
    i = 0
    out = 0
    cap = len(dst)
    while i < n:
        code = src[i]
        if code == 0:
            return -1
        i += 1
        end = i + code - 1
        if end > n or out + code - 1 > cap:
            return -1
        while i < end:
            b = src[i]
            if b == 0:
                return -1
            dst[out] = b
            out += 1
            i += 1
        if code != 0xFF and i < n:
            if out >= cap:
                return -1
            dst[out] = 0
            out += 1
    return out
