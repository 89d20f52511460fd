# Migration from an old unit that keeps no pair tables (seed 003 E2, Fig 8 steps 711 / 705).
#
# The new unit T pulls the area start..end (inclusive, LV addresses = S addresses) of the
# old unit's LV over a peer path with PEER_VREAD (firmware/peer.py: every unit answers it,
# so the old unit runs the plain firmware).  The migration's 830 (pairs.py, E6) is what
# routes: 834 / 835 the area, 837 the copy pointer, 836 the state, 832 / path where S's
# blocks are read; the record keeps a copy of the pointer and state for its job and view
# (both are set together).  A copy job scans the area from 837, copy_blocks addresses
# per step.  The host is online on T meanwhile: an I/O that touches an address of the
# area at or past the pointer not yet fetched first reads
# those blocks from S and stores them on T ("staged", I-2.3), then is served by T as
# usual; the copy passes over staged blocks (T's data is the newest there).
#
# Order for a reset: blocks pulled from S are stored on T and durable there (in a
# non-volatile cache, else destaged) before the pointer or a staged bit says so.  The
# pointer and the staged bits are saved by the SM saver (within save_ms), and at once
# before a host write to the LV finds an address behind the pointer the last save did
# not cover, or staged bits not saved yet (feature.on_write).  So after a kill T never takes a block for
# copied that it does not hold, a copy that goes again over addresses never meets a host
# write there, and a host write ahead of the pointer is never overwritten by the copy.
#
# Every fetch and copy step runs under the feature's lock, which host I/O to the LV takes
# too (a write stays under it until stored): a copy step never interleaves with a write.
import binascii
import struct

from firmware import core, peer, store, wire
from firmware.link import sleep_ms
from firmware.raid import GOOD

UNDER = "UNDER MIGRATORY COPYING"
SIMPLEX = "SIMPLEX"
RETRY_MS = 50           # a copy step that could not reach S is tried again after this


class Fetcher:
    """Pulls blocks of S's LV over peer path k into this unit's LV (all under mig.lock)."""

    def __init__(self, mig):
        self.mig = mig
        u = mig.u
        self.head = bytearray(1 + wire.IO_HEAD_LEN)
        self.most = max(1, (u.link.max_payload - 16) // u.bs)     # blocks per peer request
        # one buffer for every copy and fetch of the feature (they run under its lock):
        # a peer answer, or a move's step of copy_blocks
        self.buf = memoryview(bytearray(max(self.most, mig.cfg["copy_blocks"]) * u.bs))

    async def pull(self, p, v, a, n):
        """S blocks a..a+n-1 (830 p: S's LV 832 over `path`) -> T (stored in the cache);
        the first bad status."""
        u = self.mig.u
        bs = u.bs
        while n > 0:
            k = n if n < self.most else self.most
            st = await self.read(p["path"], p["832"], a, k)
            if st != wire.OK:
                return st
            st = await store.write_vol(u, v, a, k, self.buf[:k * bs])
            if st not in GOOD:
                return st
            self.mig.cnt["pulled_blocks"] += k
            a += k
            n -= k
        return wire.OK

    async def read(self, peer_k, src_lv, a, k, timeout=peer.TIMEOUT_MS):
        """S blocks a..a+k-1 (k <= self.most) into self.buf; the status."""
        struct.pack_into("<B" + wire.IO_HEAD[1:], self.head, 0, peer.PEER_VREAD, src_lv, a, k)
        st, p = await peer.request(self.mig.u, wire.CH_PEER + peer_k, wire.K_PEER, self.head, b"", self.buf,
                                   timeout)
        if st == wire.OK and p.n != k * self.mig.u.bs:
            return wire.E_BAD_LENGTH
        return st

    async def probe(self, peer_k, src_lv, last):
        """Can S's LV be read up to address `last` over the path?  Its status."""
        return await self.read(peer_k, src_lv, last, 1, 2000)


async def durable(u):
    """What is in the cache is kept across a reset: at once with a non-volatile cache,
    else once it is destaged (now)."""
    if u.cache.nv is None:
        await store.destage(u)


def new_record(lv, peer_k, src_unit, src_lv, start, end, paused):
    n = end - start + 1
    return {"lv": lv, "peer": peer_k, "src_unit": src_unit, "src_lv": src_lv, "start": start,
            "end": end, "pointer": start, "state": UNDER, "paused": bool(paused),
            "staged": binascii.hexlify(core.bitmap_new(n)).decode(), "copied": 0, "fetched": 0,
            "name": "mig%d" % lv}


def unfetched(p, bm, a, n):
    """The first run [x, y) of blocks in a..a+n-1 that an I/O must fetch first, else
    None (I-6.2: 834 <= addr <= 835, addr >= 837, not staged; 830 p)."""
    lo = a if a > p["837"] else p["837"]
    hi = a + n
    if hi > p["835"] + 1:
        hi = p["835"] + 1
    if p["836"] != UNDER or lo >= hi:
        return None
    s = p["834"]
    i = core.next_clear(bm, lo - s, hi - s)
    if i < 0:
        return None
    j = core.next_set(bm, i, hi - s)
    return i + s, (hi if j < 0 else j + s)


async def stage_range(mig, m, p, bm, v, a, n, save):
    """Fetch every block of a..a+n-1 that is ahead of the pointer and not staged; the
    first bad status (then nothing more is marked).  save: the staged bits are saved
    before this returns (a write follows); else by the next save, which a write to the
    LV makes first (feature.on_write): a staged bit lost by a reset only costs a fetch
    again, as long as no host write relied on it."""
    got = False
    while True:
        r = unfetched(p, bm, a, n)
        if r is None:
            break
        x, y = r
        st = await mig.fetcher.pull(p, v, x, y - x)
        if st != wire.OK:
            return st
        await durable(mig.u)
        core.range_set(bm, x - m["start"], y - x)
        m["fetched"] += y - x
        got = True
        if mig.u.tracing:
            mig.u.trace("mig_fetch", m["lv"], x, y - x)     # 705: served before the copy got there
    if got:
        mig.cnt["fetches"] += 1
        if save:
            mig.u.sm.save()
        else:
            mig.unsaved[m["lv"]] = True
            mig.u.sm.dirty = True
    return wire.OK


async def run(mig, job, m):
    """The background copy (711): from the pointer to the end of the area."""
    u = mig.u
    cb = mig.cfg["copy_blocks"]
    bm = mig.bitmaps[m["lv"]]
    while m["state"] == UNDER and mig.live:
        await job.gate()
        while True:
            async with mig.lock:
                if mig.records.get(m["lv"]) is not m or not mig.live:
                    return
                p = mig.pairs.pair(m)
                a = p["837"]
                n = min(cb, p["835"] + 1 - a)
                v = mig.volume(m["lv"])
                st = wire.OK
                r = unfetched(p, bm, a, n)
                while r is not None and st == wire.OK:
                    x, y = r
                    st = await mig.fetcher.pull(p, v, x, y - x)
                    if st == wire.OK:
                        await durable(u)
                        core.range_set(bm, x - m["start"], y - x)
                        m["copied"] += y - x
                        r = unfetched(p, bm, a, n)
                if st == wire.OK:
                    p["837"] = m["pointer"] = a + n
                    if u.tracing:
                        u.trace("mig_copy", m["lv"], a, n)
                    job.pointer = (m["pointer"] - m["start"] + cb - 1) // cb
                    if m["pointer"] > m["end"]:
                        m["state"] = SIMPLEX
                        mig.pairs.done(m)               # 804 = 805 = NULL, 820 / 830 freed
                        mig.sync_bitmap(m)
                        mig.finished(m, job)
                        u.sm.save()
                    else:
                        u.sm.dirty = True       # saved within save_ms (or by a write behind it)
                    job.stalled = False
                    job.note = "copied %d, fetched %d" % (m["copied"], m["fetched"])
                    break
                job.stalled = True
                job.note = "stalled: S unreachable (%s)" % wire.status_name(st)
            await sleep_ms(RETRY_MS)
        await sleep_ms(0)
