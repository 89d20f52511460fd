# Volume copy: its settings, its tables in SM and their runtime form (seed 003 E7 pair
# information 1310 / Figs 14-15, E8 pair information 2310 / Fig 24, E9 pair information
# 3109 / Figs 32-33).
#
# Three tables of fixed slots live in the SM table "volcopy" (persisted; bitmaps as hex):
#   pairs  (1310, E7): use, orig, copy, state, bitmaps G / D / U (one bit per track),
#                      extent entries 1405 {use, start, end}
#   areas  (2310, E8): one slot per (start, end) area with its own bitmap "bits" (bit 0 =
#                      the area's first track)
#   xpairs (3109, E9): use, orig, copy, state, bitmaps G / D, extent list 3206 [[start, end]]
# and "done": the last outcome of every copy job by name (a finished copy is still listed
# in the jobs table after a reset).
#
# Bitmaps are bytearrays at run time and hex strings in SM, refreshed before every SM save
# (sync).  Addresses are track numbers (track = block // track_blocks).
import asyncio
import binascii

from firmware import core
from firmware.args import Refused, need_choice, need_int, need_table, only_keys
from firmware.jobs import PAUSED

UNDER_GEN = "UNDER GENERATION"
GEN_DONE = "GENERATION COMPLETED"
UNDER_DIV = "UNDER DIVISION"
DIV_DONE = "DIVISION COMPLETED"
UNDER_XDIV = "UNDER EXTENT DIVISION"
XDIV_DONE = "EXTENT DIVISION COMPLETED"
UNDER_XCPL = "UNDER EXTENT COUPLE"
GEN_STATES = (UNDER_GEN, GEN_DONE)                  # 1906 / 2808: writes mark G (the bits)
XG_STATES = (UNDER_GEN, GEN_DONE, UNDER_XCPL)       # 3807: writes mark G, else D

T_PAIR = 1310
T_AREA = 2310
T_XPAIR = 3109
TABLES = (T_PAIR, T_AREA, T_XPAIR)
KEYS = {T_PAIR: "pairs", T_AREA: "areas", T_XPAIR: "xpairs"}
BITMAPS = {T_PAIR: ("G", "D", "U"), T_AREA: ("bits",), T_XPAIR: ("G", "D")}

# copy kinds: (table, job-name prefix, state at the end)
KINDS = {
    "generation": (T_PAIR, "vcgen", GEN_DONE),           # Fig 20
    "division": (T_PAIR, "vcdiv", DIV_DONE),             # Fig 21
    "extent_update": (T_PAIR, "vcext", None),            # Fig 22 (2207: D <- U, entry freed)
    "area_generation": (T_AREA, "vcagen", GEN_DONE),     # Fig 29
    "area_division": (T_AREA, "vcadiv", DIV_DONE),       # Fig 30
    "xgeneration": (T_XPAIR, "vcxgen", GEN_DONE),        # Fig 37
    "extent_division": (T_XPAIR, "vcxdiv", XDIV_DONE),   # Fig 39
    "extent_couple": (T_XPAIR, "vcxcpl", GEN_DONE),      # Fig 40 (4007 "FORMATION COMPLETED")
}

# setting: (default, largest value); every one is an integer >= 1 but the policy
DEFAULTS = {
    "track_blocks": (4, 65536),      # blocks per track: one bitmap bit per track
    "slots": (4, 256),               # 1310 pair slots
    "area_slots": (4, 256),          # 2310 area slots
    "extent_slots": (4, 256),        # 3109 pair slots
    "extents": (4, 64),              # extent entries 1405 per 1310 pair
    "max_tracks": (65536, 1 << 24),  # largest original volume, in tracks (bitmap size budget)
}
SPLIT_POLICIES = ("supersede", "reject")   # PairSplit in UNDER GENERATION
MAX_TRACK_BYTES = 65536     # the track buffer a copy step stages through
MAX_EXTENTS = 64            # ranges per request
CANCELLED = "cancelled"


def settings(cfg):
    """cfg["volcopy"] checked in full -> {setting: value} (raises args.Refused)."""
    given = need_table(cfg, "volcopy")
    only_keys(given, list(DEFAULTS) + ["split_during_generation"], "volcopy")
    try:
        out = {}
        for k in DEFAULTS:
            out[k] = need_int(given, k, 1, DEFAULTS[k][1], DEFAULTS[k][0])
        out["split_during_generation"] = need_choice(given, "split_during_generation", SPLIT_POLICIES,
                                                     "supersede")
    except Refused as e:
        raise Refused(e.status, "volcopy: %s" % e)
    bs = cfg.get("block_size", 512)
    if out["track_blocks"] * bs > MAX_TRACK_BYTES:
        raise Refused("volcopy: a track of %d blocks of %d bytes exceeds the %d-byte track buffer"
                      % (out["track_blocks"], bs, MAX_TRACK_BYTES))
    return out


def volume_of(u, vid):
    for v in u.sm.t.get("volumes", []):
        if v["id"] == vid:
            return v
    return None


def free_slot(tbl, cfg):
    if tbl == T_PAIR:
        return {"use": 0, "orig": -1, "copy": -1, "state": "", "tracks": 0, "G": "", "D": "", "U": "",
                "extents": [{"use": 0, "start": 0, "end": 0, "job": None} for _ in range(cfg["extents"])],
                "job": None}
    if tbl == T_AREA:
        return {"use": 0, "orig": -1, "copy": -1, "state": "", "start": 0, "end": 0, "bits": "",
                "job": None}
    return {"use": 0, "orig": -1, "copy": -1, "state": "", "tracks": 0, "G": "", "D": "", "extents": [],
            "job": None}


class VolCopy:
    """The feature's runtime: the SM table, its bitmaps, the lock shared by host writes
    to originals, copy steps and commands."""

    def __init__(self, u, cfg):
        self.u = u
        self.cfg = cfg
        self.lock = asyncio.Lock()
        self.live = True         # false once detached: its copies stop
        self.stats = {"copied": 0, "cow": 0}
        t = u.sm.t.get("volcopy")
        if t is None:
            t = {"track_blocks": cfg["track_blocks"], "done": {}}
            for tbl, n in ((T_PAIR, "slots"), (T_AREA, "area_slots"), (T_XPAIR, "extent_slots")):
                t[KEYS[tbl]] = [free_slot(tbl, cfg) for _ in range(cfg[n])]
            u.sm.t["volcopy"] = t
            u.sm.save()
        t.setdefault("done", {})
        self.t = t
        self.tb = t["track_blocks"]
        self.tbuf = memoryview(bytearray(self.tb * u.bs))
        self.bm = {}            # (table, slot, name) -> bytearray
        self.dirty = set()      # bitmaps changed since the last save
        self.unsaved = False    # a copy cleared bits since the last save
        self.changed = False    # the write being processed changed a bit
        self.running = []       # (job, rec, task) of the copies in progress
        for tbl, i, s in self.used():
            for name in BITMAPS[tbl]:
                self.bm[(tbl, i, name)] = bytearray(binascii.unhexlify(s[name]))
        self.index()

    def used(self):
        """(table, slot number, slot) of every slot in use, tables 1310, 2310, 3109."""
        out = []
        for tbl in TABLES:
            slots = self.t[KEYS[tbl]]
            for i in range(len(slots)):
                if slots[i]["use"]:
                    out.append((tbl, i, slots[i]))
        return out

    def buffers(self):
        """Its buffers by owner, for the unit's "mem" table (mgmt.buffers)."""
        return {"volcopy.track": len(self.tbuf), "volcopy.bitmaps": sum([len(b) for b in self.bm.values()])}

    def index(self):
        """origs: volume id -> [(table, slot)] of the pairs it is the original of."""
        o = {}
        for tbl, i, s in self.used():
            o.setdefault(s["orig"], []).append((tbl, i))
        self.origs = o

    def is_orig(self, v):
        return v["id"] in self.origs

    def sync(self):
        """Before every SM save: bitmaps to hex, copies' pause flags."""
        if self.u.sm.t.get("volcopy") is not self.t:
            return
        for key in self.dirty:
            tbl, i, name = key
            self.t[KEYS[tbl]][i][name] = binascii.hexlify(self.bm[key]).decode()
        self.dirty = set()
        for job, rec, _ in self.running:
            rec["paused"] = job.state == PAUSED
        self.unsaved = False

    def detach(self):
        """The unit is reconfigured: every copy stops where it is (its record stays)."""
        self.live = False
        for job, _, task in self.running:
            job.state = CANCELLED
            job.note = "stopped: the unit was reconfigured"
            job.ev.set()
            task.cancel()
        self.running = []

    def slot(self, tbl, i):
        return self.t[KEYS[tbl]][i]

    def tracks(self, v):
        return (v["blocks"] + self.tb - 1) // self.tb

    def mark(self, tbl, i, name, idx):
        bm = self.bm[(tbl, i, name)]
        if not core.bit_test(bm, idx):
            core.bit_set(bm, idx)
            self.dirty.add((tbl, i, name))
            self.changed = True

    def clear(self, tbl, i, name, idx):
        bm = self.bm[(tbl, i, name)]
        if core.bit_test(bm, idx):
            core.bit_clear(bm, idx)
            self.dirty.add((tbl, i, name))
            self.changed = True
