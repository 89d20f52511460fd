# Remote copy (seed 003 E1 / E5): settings, the SM tables and their lookups.
#
# The 830 pair tables and 820 group tables come from the shared pools of
# firmware/pairtables.py (SM "pairtables"; a migration takes its tables from the same
# pools).  This feature's 830s have owner "remote_copy" and also hold: path (peer index
# to the other unit), bits (changed tracks, hex), why, paused, copied, scanned; one per
# area of an LV(S).  Its 820s (one per LV(S) with pairs) have 804 = COPY SOURCE, and the
# 820's number is the LV's 805.
# SM table "remote_copy" (persisted):
#   "900"  T LV info, one per copy destination: {lv, 903 [emulation, capacity], 904,
#          905 source controller#, 906 source LV#, 907 [[start, end], ...], state, path}.
# Bitmaps: one bit per track of the area (bit 0 = the track holding 834); bytearrays at
# run time, hex in SM (refreshed before each SM save).
import asyncio
import binascii

from firmware import core, ldev, pairtables
from firmware.args import need_int, need_table, only_keys
from firmware.pairtables import DEST, NONE, SIMPLEX, SOURCE, free_pair

COPYING = "UNDER COPYING"
DUPLEX = "DUPLEX"
SUSPENDED = "SUSPENDED"
OWNER = "remote_copy"
__all__ = ("DEST", "NONE", "SIMPLEX", "SOURCE", "free_pair")
# setting: (lo, hi, default)
SETTINGS = {
    "controller": (0, 65535, None),   # this unit's controller number (the user's)
    "pairs": (1, 64, 8),              # 830 pool size
    "groups": (1, 64, 4),             # 820 pool size
    "group_blocks": (1, 1 << 20, 16),  # open systems: group = address // group_blocks
    "probe_ms": (0, 60000, 0),        # try a suspended-by-fault pair's path this often (0: only rc_resync)
    "write_intent": (0, 1, 1),        # mark a write's tracks before S stores it (a reset of S resends them)
}


def settings(cfg):
    c = need_table(cfg, "remote_copy")
    only_keys(c, SETTINGS, "remote_copy")
    out = {}
    for k in SETTINGS:
        lo, hi, d = SETTINGS[k]
        out[k] = need_int(c, k, lo, hi) if d is None else need_int(c, k, lo, hi, d)
    return out


def track_blocks(em):
    return ldev.EMULATIONS.get(em, (1, 0))[0]


def group_size(cfg, em):
    """Blocks per group: a cylinder for a mainframe type, else group_blocks."""
    return pairtables.group_size(em, cfg["group_blocks"])


class RC:
    """The feature's runtime on one unit (either side)."""

    def __init__(self, u, cfg):
        self.u = u
        self.cfg = cfg
        self.live = True
        own = u.sm.t.get("remote_copy")
        if own is None:
            own = {"900": []}
            u.sm.t["remote_copy"] = own
            u.sm.save()
        pools = pairtables.pools(u, cfg["pairs"], cfg["groups"])
        self.own = own
        # the shared pools and this feature's 900 under one name (rc.t["830"] ...)
        t = {"830": pools["830"], "820": pools["820"], "900": own["900"]}
        self.t = t
        self.bm = {}
        self.acked = {}
        self.inflight = {}
        self.locks = {}
        self.bufs = {}
        for i in range(len(t["830"])):
            s = t["830"][i]
            self.slot(i)
            if self.mine(s):
                self.bm[i] = bytearray(binascii.unhexlify(s["bits"]))
                self.extra(i)
        self.jobs = {}
        self.intent_save = False   # an SM save for a new mark: the acknowledged marks stay
        self.cnt = {"forwarded": 0, "forwarded_blocks": 0, "copied": 0, "copied_blocks": 0, "marked": 0,
                    "suspends": 0, "remote_writes": 0}
        self.index()

    def slot(self, i):
        """Pair i's lock, and a forward's request head and answer buffer (no allocation
        per write); made once per table number (the shared pool may grow)."""
        if i not in self.locks:
            self.locks[i] = asyncio.Lock()
            self.bufs[i] = (bytearray(10), bytearray(16))

    @staticmethod
    def mine(s):
        """An 830 in use by this feature (a migration's shares the pool)."""
        return s["use"] and s.get("owner", OWNER) == OWNER

    # ---- lookups --------------------------------------------------------------------
    def index(self):
        """sources: LV# -> 820#; dests: LV# -> 900 entry."""
        self.sources = pairtables.groups_of(self.t, OWNER, SOURCE)
        self.dests = {}
        for d in self.t["900"]:
            self.dests[d["lv"]] = d

    def is_source(self, v):
        return v["id"] in self.sources

    def is_dest(self, v):
        return v["id"] in self.dests

    def pair(self, i):
        return self.t["830"][i]

    def pairs_of(self, lv):
        """The 830#s of an LV(S), in area order."""
        k = self.sources.get(lv)
        if k is None:
            return []
        out = []
        for i in self.t["820"][k]["entries"]:
            if i != NONE and i not in out:
                out.append(i)
        out.sort(key=lambda i: self.t["830"][i]["834"])
        return out

    def gsize(self, v):
        return group_size(self.cfg, v.get("emulation", "OPEN"))

    def hit(self, v, lba, count):
        """830#s whose 820 entries the groups of lba..lba+count-1 name (805 -> 820 -> 830)."""
        k = self.sources.get(v["id"])
        if k is None:
            return []
        return pairtables.hit(self.t, k, self.gsize(v), lba, count, [])

    # ---- changed tracks -----------------------------------------------------------------
    def tracks(self, i):
        """(first track, blocks per track) of pair i's bitmap."""
        s = self.t["830"][i]
        tb = track_blocks(self.em(s["833"]))
        return s["834"] // tb, tb

    def em(self, lv):
        v = ldev.volume(self.u, lv)
        return v.get("emulation", "OPEN") if v is not None else "OPEN"

    def new_bits(self, i, fill):
        """Pair i's changed-track bitmap (every track set when fill), its acknowledged
        marks and its per-track count of host writes in flight."""
        t0, tb = self.tracks(i)
        nt = self.pair(i)["835"] // tb - t0 + 1
        bm = bytearray((nt + 7) // 8)
        if fill:
            core.range_set(bm, 0, nt)
        self.bm[i] = bm
        self.extra(i)

    def extra(self, i):
        self.acked[i] = bytearray(len(self.bm[i]))
        self.inflight[i] = bytearray(len(self.bm[i]) * 8)

    def intent(self, i, a, b):
        """Before a host write to addresses a..b of pair i is stored: its tracks are
        marked (a write-intent record: a reset before T has them resends them) and
        counted in flight; True if a bit was new (SM must be saved first)."""
        t0, tb = self.tracks(i)
        bm = self.bm[i]
        fl = self.inflight[i]
        new = False
        t = a // tb - t0
        while t <= b // tb - t0:
            if not core.bit_test(bm, t):
                core.bit_set(bm, t)
                new = True
            if fl[t] < 255:
                fl[t] += 1
            t += 1
        return new

    def settle(self, i, a, b, sent):
        """After the forwarding decision for a..b: sent -> the marks may go at the next
        save (once no write to the track is in flight); not sent -> a real change."""
        t0, tb = self.tracks(i)
        fl = self.inflight[i]
        ack = self.acked[i]
        t = a // tb - t0
        while t <= b // tb - t0:
            if fl[t]:
                fl[t] -= 1
            if sent:
                core.bit_set(ack, t)
            else:
                core.bit_clear(ack, t)
            t += 1
        if not sent:
            self.cnt["marked"] += 1

    def cleared(self, i, bit):
        """The copy sent track `bit` of pair i: clear its mark unless a write is in flight."""
        if not self.inflight[i][bit]:
            core.bit_clear(self.bm[i], bit)
            core.bit_clear(self.acked[i], bit)

    def clean(self, i):
        """Marks of tracks T has acknowledged with no write in flight are dropped."""
        ack = self.acked[i]
        n = len(ack) * 8
        t = core.next_set(ack, 0, n)
        while t >= 0:
            if not self.inflight[i][t]:
                core.bit_clear(self.bm[i], t)
                core.bit_clear(ack, t)
            t = core.next_set(ack, t + 1, n)

    def changed_tracks(self, i):
        """Tracks T lacks (marks of acknowledged writes not counted)."""
        bm = self.bm.get(i)
        if not bm:
            return 0
        real = bytearray(bm)
        core.and_not(real, self.acked[i])
        return core.count(real, 0, len(real) * 8)

    def sync(self):
        """Before each SM save: bitmaps to hex, pause flags."""
        if self.u.sm.t.get("remote_copy") is not self.own:
            return
        for i in self.bm:
            if not self.intent_save:
                self.clean(i)
            self.t["830"][i]["bits"] = binascii.hexlify(self.bm[i]).decode()
        for i in self.jobs:
            self.t["830"][i]["paused"] = self.jobs[i].state == "paused"

    def detach(self):
        self.live = False
