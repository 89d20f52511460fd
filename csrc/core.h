/* storlab C core: XOR, parity delta, compare, differential bitmaps, COBS.
 *
 * Mirrors firmware/core/pure.py function by function; the Python wrapper
 * (firmware/core/__init__.py) checks lengths and bounds before calling here.
 * Bitmaps: bit i lives in byte i >> 3 under mask 1 << (i & 7).
 *
 * build_core.py feeds the declarations below to cffi's cdef (preprocessor
 * lines are dropped), so keep them plain C declarations.
 */
#ifndef STORLAB_CORE_H
#define STORLAB_CORE_H

#include <stddef.h>
#include <stdint.h>

/* dst = srcs[0] ^ ... ^ srcs[nsrc - 1]; nsrc >= 1. */
void sc_xor_into(uint8_t *dst, const uint8_t *const *srcs, size_t nsrc, size_t len);
/* dst ^= src */
void sc_xor_acc(uint8_t *dst, const uint8_t *src, size_t len);
/* p ^= old ^ new_ (RAID5 read-modify-write, one pass) */
void sc_parity_update(uint8_t *p, const uint8_t *old, const uint8_t *new_, size_t len);
int sc_equal(const uint8_t *a, const uint8_t *b, size_t len);
int sc_is_zero(const uint8_t *a, size_t len);

void sc_bit_set(uint8_t *bm, size_t i);
void sc_bit_clear(uint8_t *bm, size_t i);
int sc_bit_test(const uint8_t *bm, size_t i);
void sc_range_set(uint8_t *bm, size_t start, size_t count);
void sc_range_clear(uint8_t *bm, size_t start, size_t count);
/* set bits in [start, end) */
size_t sc_count(const uint8_t *bm, size_t start, size_t end);
/* first set / clear bit in [pos, nbits), or -1 */
int64_t sc_next_set(const uint8_t *bm, size_t pos, size_t nbits);
int64_t sc_next_clear(const uint8_t *bm, size_t pos, size_t nbits);
/* bytewise, len in bytes */
void sc_or_merge(uint8_t *dst, const uint8_t *src, size_t len);
void sc_and_not(uint8_t *dst, const uint8_t *src, size_t len);
void sc_copy(uint8_t *dst, const uint8_t *src, size_t len);

/* COBS without the 0x00 delimiter.  encode: dst holds n + n / 254 + 1 bytes;
 * returns the encoded length.  decode: returns the decoded length, or -1 if
 * src is not valid COBS or does not fit in cap bytes. */
int64_t sc_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst);
int64_t sc_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

#endif
