# Differential bitmaps of a sparing (seed 001, differential bitmap 20: one bit per
# track, 1 = the newest data is in the backup area): text and hex forms for the tables
# and for SM, and the bit operations the E1 / E2 areas share.
import binascii

from firmware import core


def bits_text(bm, n):
    """Track 0 first, as "0100..." (T2, T4)."""
    return "".join("1" if core.bit_test(bm, i) else "0" for i in range(n))


def bits_hex(bm):
    return binascii.hexlify(bm).decode()


def bits_from_hex(text, nbits):
    """A core bitmap of nbits from its hex form (an empty bitmap if it does not fit)."""
    bm = core.bitmap_new(nbits)
    raw = binascii.unhexlify(text or "")
    if len(raw) == len(bm):
        bm[:] = raw
    return bm


class TrackBits:
    """An area whose updates are marked in the sparing's bitmaps: one per volume
    (tracks), or, when only the faulty drive is diverted (E5), one of its tracks.
    A key is (volume or disk, track)."""

    def has(self, key):
        bm = self.sp.bitmap(key)
        return bm is not None and core.bit_test(bm, key[1])

    def mark(self, key):
        core.bit_set(self.sp.bitmap(key), key[1])
        self.mgr.unsaved = True

    def drop(self, key):
        bm = self.sp.bitmap(key)
        if bm is not None and core.bit_test(bm, key[1]):
            core.bit_clear(bm, key[1])
            self.mgr.unsaved = True

    def applies(self, key, ref):
        return self.has(key)

    def set_tracks(self, bm, nt, owner, out):
        """(key, None) for every set bit of bm, track order (Fig 9 S51-S55)."""
        t = core.next_set(bm, 0, nt)
        while t >= 0:
            out.append(((owner, t), None))
            t = core.next_set(bm, t + 1, nt)
