/* storlab C core; see core.h and firmware/core/pure.py (the reference).
 *
 * Fast paths: on x86_64 the hot loops are built several times with GCC
 * target_clones (AVX-512, AVX2, baseline SSE2) and the dynamic loader picks
 * the widest one the CPU supports.  The loops themselves are plain C over
 * restrict pointers that the compiler vectorises; other architectures
 * (aarch64: NEON is baseline) get the same loops built once.  xor_into of
 * buffers of 4 MiB and more uses non-temporal stores on x86_64 (AVX-512 /
 * AVX2 / SSE2 picked by cpuid), see xor_stream.
 *
 * Buffers that overlap take a plain byte-at-a-time loop with exactly the
 * reference's element order, so restrict is never a lie.
 */
#include "core.h"

#include <string.h>

typedef uint8_t u8;

#define INLINE static inline __attribute__((always_inline))

#if defined(__x86_64__) && defined(__ELF__) && !defined(STORLAB_NO_CLONES)
#include <immintrin.h>
/* XOR / parity / bitmap byte loops: widest vectors first. */
#define SC_VEC __attribute__((target_clones("avx512f", "avx2", "default")))
/* popcount loop: the POPCNT instruction instead of the bit-trick sequence. */
#define SC_POPCNT __attribute__((target_clones("popcnt", "default")))
/* xor_into of very large buffers: non-temporal stores (see xor_stream). */
#define SC_STREAM 1
#else
#define SC_VEC
#define SC_POPCNT
#endif

/* Unroll the vector loops so several independent vectors are in flight. */
#define UNROLL _Pragma("GCC unroll 4")

static int overlap(const void *a, const void *b, size_t n)
{
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return n && x < y + n && y < x + n;
}

/* 8 bytes at any alignment.  The XOR loops work on 64-bit words so that the
 * AVX-512F clone can use 512-bit registers (byte-typed vectors would need
 * AVX512BW, which target_clones cannot select on older GCC). */
INLINE uint64_t ld(const u8 *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return w;
}

INLINE void st(u8 *p, uint64_t w)
{
    memcpy(p, &w, 8);
}

/* ---- XOR kernels: d = a ^ b ^ ..., or d ^= a ^ ...; no overlap ----
 * Whole words first (vectorised, unrolled: several vectors in flight),
 * then the 0..7 byte tail.  One kernel per source count on purpose: with
 * the sources fixed each vectorises to one pass, a loop over sources does not. */

#define WORDS(n) for (size_t w = 0, nw_ = (n) >> 3; w < nw_; w++)
#define TAIL(n) for (size_t i = (n) & ~(size_t)7; i < (n); i++)
#define AT(p) ((p) + (w << 3))

INLINE void k_x2(u8 *restrict d, const u8 *restrict a, const u8 *restrict b, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(a)) ^ ld(AT(b)));
    TAIL(n) d[i] = a[i] ^ b[i];
}

INLINE void k_x3(u8 *restrict d, const u8 *restrict a, const u8 *restrict b,
                 const u8 *restrict c, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(a)) ^ ld(AT(b)) ^ ld(AT(c)));
    TAIL(n) d[i] = a[i] ^ b[i] ^ c[i];
}

INLINE void k_x4(u8 *restrict d, const u8 *restrict a, const u8 *restrict b,
                 const u8 *restrict c, const u8 *restrict e, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(a)) ^ ld(AT(b)) ^ ld(AT(c)) ^ ld(AT(e)));
    TAIL(n) d[i] = a[i] ^ b[i] ^ c[i] ^ e[i];
}

INLINE void k_x5(u8 *restrict d, const u8 *restrict a, const u8 *restrict b,
                 const u8 *restrict c, const u8 *restrict e, const u8 *restrict f, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(a)) ^ ld(AT(b)) ^ ld(AT(c)) ^ ld(AT(e)) ^ ld(AT(f)));
    TAIL(n) d[i] = a[i] ^ b[i] ^ c[i] ^ e[i] ^ f[i];
}

INLINE void k_a1(u8 *restrict d, const u8 *restrict a, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(d)) ^ ld(AT(a)));
    TAIL(n) d[i] ^= a[i];
}

INLINE void k_a2(u8 *restrict d, const u8 *restrict a, const u8 *restrict b, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(d)) ^ ld(AT(a)) ^ ld(AT(b)));
    TAIL(n) d[i] ^= a[i] ^ b[i];
}

INLINE void k_a3(u8 *restrict d, const u8 *restrict a, const u8 *restrict b,
                 const u8 *restrict c, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(d)) ^ ld(AT(a)) ^ ld(AT(b)) ^ ld(AT(c)));
    TAIL(n) d[i] ^= a[i] ^ b[i] ^ c[i];
}

INLINE void k_a4(u8 *restrict d, const u8 *restrict a, const u8 *restrict b,
                 const u8 *restrict c, const u8 *restrict e, size_t n)
{
    UNROLL WORDS(n) st(AT(d), ld(AT(d)) ^ ld(AT(a)) ^ ld(AT(b)) ^ ld(AT(c)) ^ ld(AT(e)));
    TAIL(n) d[i] ^= a[i] ^ b[i] ^ c[i] ^ e[i];
}

/* nsrc (1..5) sources, no overlap: one pass of the word kernels. */
INLINE void xor_small(u8 *dst, const u8 *const *s, size_t nsrc, size_t len)
{
    switch (nsrc) {
    case 1: memcpy(dst, s[0], len); break;
    case 2: k_x2(dst, s[0], s[1], len); break;
    case 3: k_x3(dst, s[0], s[1], s[2], len); break;
    case 4: k_x4(dst, s[0], s[1], s[2], s[3], len); break;
    default: k_x5(dst, s[0], s[1], s[2], s[3], s[4], len); break;
    }
}

/* Byte at a time over [from, to), reference order: for overlapping buffers and
 * for the edges of the streaming path. */
static void xor_bytes(u8 *dst, const u8 *const *s, size_t nsrc, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        u8 v = s[0][i];
        for (size_t j = 1; j < nsrc; j++)
            v ^= s[j][i];
        dst[i] = v;
    }
}

#ifdef SC_STREAM
/* Outputs this large go out with non-temporal (streaming) stores: they are far
 * bigger than L2 and will not be read back from cache, and streaming saves the
 * read-for-ownership of every dst line (about 15-20% at 16 MiB on AVX-512).
 * Below this, normal stores win: dst is often still cached when reused. */
#define XOR_STREAM_MIN ((size_t)4 << 20)

/* n is a multiple of the vector size W and d is aligned to it; s[] any alignment.
 * One loop, built per instruction set: V the vector type, then its intrinsics. */
#define STREAM_KERNEL(name, isa, V, W, loadu, xor, stream)                   \
    isa static void name(u8 *d, const u8 *const *s, size_t nsrc, size_t n) \
    {                                                                       \
        for (size_t i = 0; i < n; i += W) {                                 \
            V x = loadu((const V *)(s[0] + i));                             \
            for (size_t k = 1; k < nsrc; k++)                               \
                x = xor(x, loadu((const V *)(s[k] + i)));                   \
            stream((V *)(d + i), x);                                        \
        }                                                                   \
    }

STREAM_KERNEL(stream_avx512, __attribute__((target("avx512f"))), __m512i, 64, _mm512_loadu_si512,
              _mm512_xor_si512, _mm512_stream_si512)
STREAM_KERNEL(stream_avx2, __attribute__((target("avx2"))), __m256i, 32, _mm256_loadu_si256,
              _mm256_xor_si256, _mm256_stream_si256)
STREAM_KERNEL(stream_sse2, , __m128i, 16, _mm_loadu_si128, _mm_xor_si128, _mm_stream_si128)

/* One pass, nsrc <= 5: bytes up to a 64-byte boundary of dst, the streamed
 * body, the tail bytes. */
static void xor_stream(u8 *dst, const u8 *const *s, size_t nsrc, size_t len)
{
    size_t head = (size_t)(-(uintptr_t)dst & 63);
    size_t body = (len - head) & ~(size_t)63;
    const u8 *p[5];
    for (size_t k = 0; k < nsrc; k++)
        p[k] = s[k] + head;
    xor_bytes(dst, s, nsrc, 0, head);
    if (__builtin_cpu_supports("avx512f"))
        stream_avx512(dst + head, p, nsrc, body);
    else if (__builtin_cpu_supports("avx2"))
        stream_avx2(dst + head, p, nsrc, body);
    else
        stream_sse2(dst + head, p, nsrc, body);
    _mm_sfence(); /* streaming stores are weakly ordered: publish them */
    xor_bytes(dst, s, nsrc, head + body, len);
}

/* Mid-sized XORs (the sources together larger than L1, all of them within L2):
 * on AMD Zen 4, 256-bit loads, four vectors per step, beat the 512-bit loop by
 * 5-10% (64 KiB x 5 sources: 1.69 against 1.85 us; ISA-L's xor_gen 1.72 us),
 * while below and above this window the 512-bit loop is as fast or faster. */
#define XOR_MID_MIN ((size_t)32 << 10)
#define XOR_MID_MAX ((size_t)128 << 10)

#define LD256(p) _mm256_loadu_si256((const __m256i *)(p))
__attribute__((target("avx2"))) INLINE void mid_step(u8 *d, const u8 *const *s, size_t nsrc, size_t i)
{
    __m256i x0 = LD256(s[0] + i), x1 = LD256(s[0] + i + 32);
    __m256i x2 = LD256(s[0] + i + 64), x3 = LD256(s[0] + i + 96);
    for (size_t k = 1; k < nsrc; k++) {
        x0 = _mm256_xor_si256(x0, LD256(s[k] + i));
        x1 = _mm256_xor_si256(x1, LD256(s[k] + i + 32));
        x2 = _mm256_xor_si256(x2, LD256(s[k] + i + 64));
        x3 = _mm256_xor_si256(x3, LD256(s[k] + i + 96));
    }
    _mm256_storeu_si256((__m256i *)(d + i), x0);
    _mm256_storeu_si256((__m256i *)(d + i + 32), x1);
    _mm256_storeu_si256((__m256i *)(d + i + 64), x2);
    _mm256_storeu_si256((__m256i *)(d + i + 96), x3);
}

/* 128 bytes per step; nsrc (2..5) a constant in each loop, so the source loop
 * unrolls.  The last len % 128 bytes: the word kernels. */
__attribute__((target("avx2")))
static void xor_mid(u8 *d, const u8 *const *s, size_t nsrc, size_t len)
{
    size_t body = len & ~(size_t)127;
    const u8 *p[5] = {0}; /* a local copy: stores to d cannot change it, no reloads */
    for (size_t k = 0; k < nsrc; k++)
        p[k] = s[k];
    switch (nsrc) {
    case 2: for (size_t i = 0; i < body; i += 128) mid_step(d, p, 2, i); break;
    case 3: for (size_t i = 0; i < body; i += 128) mid_step(d, p, 3, i); break;
    case 4: for (size_t i = 0; i < body; i += 128) mid_step(d, p, 4, i); break;
    default: for (size_t i = 0; i < body; i += 128) mid_step(d, p, 5, i); break;
    }
    for (size_t k = 0; k < nsrc; k++)
        p[k] += body;
    xor_small(d + body, p, nsrc, len - body);
}
#endif

/* Sources beyond the first five are folded in per block, so a block of dst
 * stays in L1 while each extra group of sources is streamed through once. */
#define XOR_BLOCK 8192

SC_VEC void sc_xor_into(u8 *dst, const u8 *const *s, size_t nsrc, size_t len)
{
    if (!nsrc || !len)
        return;
    for (size_t k = 0; k < nsrc; k++) {
        if (overlap(dst, s[k], len)) {
            /* dst aliases a source: byte at a time, reference order. */
            xor_bytes(dst, s, nsrc, 0, len);
            return;
        }
    }
#ifdef SC_STREAM
    if (nsrc <= 5 && len >= XOR_STREAM_MIN) {
        xor_stream(dst, s, nsrc, len);
        return;
    }
    if (nsrc >= 2 && nsrc <= 5 && len >= XOR_MID_MIN && len < XOR_MID_MAX && __builtin_cpu_supports("avx2")) {
        xor_mid(dst, s, nsrc, len);
        return;
    }
#endif
    if (nsrc <= 5) {
        /* One pass: every source read once, dst written once. */
        xor_small(dst, s, nsrc, len);
        return;
    }
    for (size_t off = 0; off < len; off += XOR_BLOCK) {
        size_t n = len - off < XOR_BLOCK ? len - off : XOR_BLOCK;
        u8 *d = dst + off;
        size_t k = 5;
        k_x5(d, s[0] + off, s[1] + off, s[2] + off, s[3] + off, s[4] + off, n);
        for (; k + 4 <= nsrc; k += 4)
            k_a4(d, s[k] + off, s[k + 1] + off, s[k + 2] + off, s[k + 3] + off, n);
        switch (nsrc - k) {
        case 3: k_a3(d, s[k] + off, s[k + 1] + off, s[k + 2] + off, n); break;
        case 2: k_a2(d, s[k] + off, s[k + 1] + off, n); break;
        case 1: k_a1(d, s[k] + off, n); break;
        default: break;
        }
    }
}

SC_VEC void sc_xor_acc(u8 *dst, const u8 *src, size_t len)
{
    if (overlap(dst, src, len)) {
        for (size_t i = 0; i < len; i++)
            dst[i] ^= src[i];
        return;
    }
    k_a1(dst, src, len);
}

SC_VEC void sc_parity_update(u8 *p, const u8 *old, const u8 *new_, size_t len)
{
    if (overlap(p, old, len) || overlap(p, new_, len)) {
        for (size_t i = 0; i < len; i++)
            p[i] ^= old[i] ^ new_[i];
        return;
    }
    /* old and new_ are only read, so they may overlap each other. */
    u8 *restrict d = p;
    k_a2(d, old, new_, len);
}

int sc_equal(const u8 *a, const u8 *b, size_t len)
{
    return len == 0 || memcmp(a, b, len) == 0;
}

int sc_is_zero(const u8 *a, size_t len)
{
    /* a[0] == 0 and every byte equals the next: libc's vector memcmp. */
    return len == 0 || (a[0] == 0 && memcmp(a, a + 1, len - 1) == 0);
}

/* ---- bitmaps ---- */

void sc_bit_set(u8 *bm, size_t i)
{
    bm[i >> 3] |= (u8)(1u << (i & 7));
}

void sc_bit_clear(u8 *bm, size_t i)
{
    bm[i >> 3] &= (u8)~(1u << (i & 7));
}

int sc_bit_test(const u8 *bm, size_t i)
{
    return (bm[i >> 3] >> (i & 7)) & 1;
}

/* Mask of bits [lo, hi) within one byte, 0 <= lo <= hi <= 8. */
static u8 byte_mask(unsigned lo, unsigned hi)
{
    return (u8)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

static void range_op(u8 *bm, size_t start, size_t count, int set)
{
    if (!count)
        return;
    size_t end = start + count;
    size_t b0 = start >> 3, b1 = end >> 3;
    if (b0 == b1) {
        u8 m = byte_mask(start & 7, end & 7);
        bm[b0] = set ? bm[b0] | m : bm[b0] & (u8)~m;
        return;
    }
    if (start & 7) {
        u8 m = byte_mask(start & 7, 8);
        bm[b0] = set ? bm[b0] | m : bm[b0] & (u8)~m;
        b0++;
    }
    memset(bm + b0, set ? 0xFF : 0x00, b1 - b0);
    if (end & 7) {
        u8 m = byte_mask(0, end & 7);
        bm[b1] = set ? bm[b1] | m : bm[b1] & (u8)~m;
    }
}

void sc_range_set(u8 *bm, size_t start, size_t count)
{
    range_op(bm, start, count, 1);
}

void sc_range_clear(u8 *bm, size_t start, size_t count)
{
    range_op(bm, start, count, 0);
}

/* 8 bitmap bytes as one word whose bit k is bitmap bit k (any alignment). */
INLINE uint64_t load64(const u8 *p)
{
    uint64_t w = ld(p);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

SC_POPCNT size_t sc_count(const u8 *bm, size_t start, size_t end)
{
    if (start >= end)
        return 0;
    size_t b0 = start >> 3, b1 = end >> 3;
    if (b0 == b1)
        return (size_t)__builtin_popcount(bm[b0] & byte_mask(start & 7, end & 7));
    size_t n = 0;
    if (start & 7) {
        n += (size_t)__builtin_popcount(bm[b0] & byte_mask(start & 7, 8));
        b0++;
    }
    /* Whole bytes [b0, b1): eight at a time, then the rest. */
    size_t b = b0;
    for (; b + 8 <= b1; b += 8)
        n += (size_t)__builtin_popcountll(load64(bm + b));
    for (; b < b1; b++)
        n += (size_t)__builtin_popcount(bm[b]);
    if (end & 7)
        n += (size_t)__builtin_popcount(bm[b1] & byte_mask(0, end & 7));
    return n;
}

/* First bit in [pos, nbits) whose value differs from `inv` (0: set, 1: clear).
 * Reads only bytes below (nbits + 7) / 8. */
static int64_t next_bit(const u8 *bm, size_t pos, size_t nbits, int inv)
{
    if (pos >= nbits)
        return -1;
    const u8 flip = inv ? 0xFF : 0x00;
    const uint64_t wflip = inv ? ~(uint64_t)0 : 0;
    size_t nbytes = (nbits + 7) >> 3;
    size_t b = pos >> 3;
    size_t found;
    u8 v = (u8)((bm[b] ^ flip) & byte_mask(pos & 7, 8));
    if (v) {
        found = (b << 3) + (size_t)__builtin_ctz(v);
        goto done;
    }
    b++;
    /* Skip 64 bits at a time while the words are all-clear (all-set). */
    for (; b + 8 <= nbytes; b += 8) {
        uint64_t w = load64(bm + b) ^ wflip;
        if (w) {
            found = (b << 3) + (size_t)__builtin_ctzll(w);
            goto done;
        }
    }
    for (; b < nbytes; b++) {
        v = (u8)(bm[b] ^ flip);
        if (v) {
            found = (b << 3) + (size_t)__builtin_ctz(v);
            goto done;
        }
    }
    return -1;
done:
    /* Bits past nbits in the last byte do not count. */
    return found < nbits ? (int64_t)found : -1;
}

int64_t sc_next_set(const u8 *bm, size_t pos, size_t nbits)
{
    return next_bit(bm, pos, nbits, 0);
}

int64_t sc_next_clear(const u8 *bm, size_t pos, size_t nbits)
{
    return next_bit(bm, pos, nbits, 1);
}

SC_VEC void sc_or_merge(u8 *dst, const u8 *src, size_t len)
{
    if (overlap(dst, src, len)) {
        for (size_t i = 0; i < len; i++)
            dst[i] |= src[i];
        return;
    }
    u8 *restrict d = dst;
    const u8 *restrict a = src;
    UNROLL WORDS(len) st(AT(d), ld(AT(d)) | ld(AT(a)));
    TAIL(len) d[i] |= a[i];
}

SC_VEC void sc_and_not(u8 *dst, const u8 *src, size_t len)
{
    if (overlap(dst, src, len)) {
        for (size_t i = 0; i < len; i++)
            dst[i] &= (u8)~src[i];
        return;
    }
    u8 *restrict d = dst;
    const u8 *restrict a = src;
    UNROLL WORDS(len) st(AT(d), ld(AT(d)) & ~ld(AT(a)));
    TAIL(len) d[i] &= (u8)~a[i];
}

void sc_copy(u8 *dst, const u8 *src, size_t len)
{
    if (overlap(dst, src, len)) {
        /* Reference order (forward, byte at a time) even when overlapping. */
        for (size_t i = 0; i < len; i++)
            dst[i] = src[i];
        return;
    }
    memcpy(dst, src, len);
}

/* ---- COBS (byte-for-byte the reference encoding) ---- */

int64_t sc_cobs_encode(const u8 *src, size_t n, u8 *dst)
{
    size_t code_at = 0, out = 1;
    unsigned code = 1;
    for (size_t i = 0; i < n; i++) {
        u8 b = src[i];
        if (b == 0) {
            dst[code_at] = (u8)code;
            code_at = out++;
            code = 1;
        } else {
            dst[out++] = b;
            if (++code == 0xFF) {
                /* A full block; like the reference, a run of 254 at the end
                 * of the data still opens an (empty) code-1 block. */
                dst[code_at] = (u8)code;
                code_at = out++;
                code = 1;
            }
        }
    }
    dst[code_at] = (u8)code;
    return (int64_t)out;
}

int64_t sc_cobs_decode(const u8 *src, size_t n, u8 *dst, size_t cap)
{
    size_t i = 0, out = 0;
    while (i < n) {
        unsigned code = src[i++];
        if (code == 0)
            return -1;
        size_t run = code - 1;
        if (run > n - i || run > cap - out)
            return -1;
        for (size_t k = 0; k < run; k++) {
            u8 b = src[i + k];
            if (b == 0)
                return -1;
            dst[out + k] = b;
        }
        i += run;
        out += run;
        if (code != 0xFF && i < n) {
            if (out >= cap)
                return -1;
            dst[out++] = 0;
        }
    }
    return (int64_t)out;
}
