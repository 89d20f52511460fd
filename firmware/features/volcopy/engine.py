# Volume copy driven by differential bitmaps (seed 003, embodiments E7, E8, E9).
#
# Three tables of fixed slots live in the SM table "volcopy" (persisted; bitmaps as hex):
#   pairs  (1310, E7): use, orig, copy, state, bitmaps G / D / U (one bit per track),
#                      extent entries 1405 {use, start, end}
#   areas  (2310, E8): one slot per (start, end) area with its own bitmap "bits" (bit 0 =
#                      the area's first track)
#   xpairs (3109, E9): use, orig, copy, state, bitmaps G / D, extent list 3206 [[start, end]]
# Addresses in commands are track numbers (track = block // track_blocks); ranges are
# inclusive.  A host write to an original runs the write path of Fig 19 / 28 / 38 under
# the feature lock: copy-on-write where the state requires it, the bitmap marks, then the
# data into the cache (1907 / 2807 / 3808).  The background copies (Figs 20-22, 29-30, 37,
# 39-40) are jobs that skip clean tracks with next_set, so their cost follows the set
# bits; `step n` lets a paused copy make n more track copies.
# "Copy track t" stages the original's track t through the cache (a hit, or read from
# its group) and writes it as the copy volume's track t through the cache write path;
# the destage task writes it out later (the seed: "the time of writing ... may be
# arbitrary").
#
# Commands (PairCreate ...) and the readable tables: ops.py beside this file.
#
# Persistence: bitmaps are bytearrays at run time and hex strings in SM, refreshed before
# every SM save.  A host write that changes a bit (or follows bits cleared by a copy)
# saves SM before its data enters the cache, so no difference recorded on the drives can
# be forgotten by a restart; bits cleared by a copy are saved within save_ms (a lost clear
# only means one more copy of the same data).  Copy pointers live in SM; copies resume
# after a restart.
import asyncio
import binascii

from firmware import cha, core, wire
from firmware.jobs import DONE, FAILED, PAUSED, Job
from firmware.link import sleep_ms
from firmware.raid import GOOD

try:
    from time import ticks_diff, ticks_ms
except ImportError:  # CPython
    from time import monotonic

    def ticks_ms():
        return int(monotonic() * 1000)

    def ticks_diff(a, b):
        return a - b

UNDER_GEN = "UNDER GENERATION"
GEN_DONE = "GENERATION COMPLETED"
UNDER_DIV = "UNDER DIVISION"
DIV_DONE = "DIVISION COMPLETED"
UNDER_XDIV = "UNDER EXTENT DIVISION"
XDIV_DONE = "EXTENT DIVISION COMPLETED"
UNDER_XCPL = "UNDER EXTENT COUPLE"

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

DEFAULTS = {
    "track_blocks": 4,      # blocks per track: one bitmap bit per track
    "slots": 4,             # 1310 pair slots
    "area_slots": 4,        # 2310 area slots
    "extent_slots": 4,      # 3109 pair slots
    "extents": 4,           # extent entries 1405 per 1310 pair
    "max_tracks": 65536,    # largest original volume, in tracks (bitmap size budget)
    "split_during_generation": "supersede",   # or "reject" (PairSplit in UNDER GENERATION)
}
MAX_EXTENTS = 64        # ranges per request
CANCELLED = "cancelled"


def config(u):
    cfg = dict(DEFAULTS)
    given = u.sm.t["config"].get("volcopy") or {}
    if not isinstance(given, dict):
        u.warn("volcopy: configuration must be a table; using defaults")
        given = {}
    for k in given:
        v = given[k]
        if k not in DEFAULTS:
            u.warn("volcopy: unknown setting %r ignored" % (k,))
        elif k == "split_during_generation":
            if v in ("supersede", "reject"):
                cfg[k] = v
            else:
                u.warn("volcopy: split_during_generation must be supersede or reject")
        elif isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= (1 << 24):
            cfg[k] = v
        else:
            u.warn("volcopy: %s must be an integer >= 1, got %r; using %d" % (k, v, DEFAULTS[k]))
    return cfg


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


class CopyJob(Job):
    """A background copy; its record (pointer = next track to look at, copies made)
    lives in SM."""

    def __init__(self, rec, total, pointer):
        Job.__init__(self, rec["name"], rec["kind"], total, pointer, rec["paused"])
        self.rec = rec
        self.persist = rec      # mgmt saves SM on pause / resume: its "paused" flag goes with it
        self.note = "copied %d" % rec["copied"]
        self.t0 = ticks_ms()
        self.ms = -1            # run time since (re)start, once finished

    def info(self):
        d = Job.info(self)
        d["copied"] = self.rec["copied"]
        d["track"] = self.rec["pointer"]
        d["ms"] = self.ms if self.ms >= 0 else ticks_diff(ticks_ms(), self.t0)
        return d


class VolCopy:
    def __init__(self, u):
        self.u = u
        self.lock = asyncio.Lock()   # host writes to originals, copy steps and commands
        self.epoch = 0
        self.stats = {"copied": 0, "cow": 0}
        self.boot()

    # ---- state ------------------------------------------------------------------
    def boot(self):
        """(Re)build the runtime from SM: bitmaps from hex, the volume index, the copies."""
        u = self.u
        self.epoch += 1
        self.cfg = cfg = config(u)
        t = u.sm.t.get("volcopy")
        if t is None:
            t = {"track_blocks": cfg["track_blocks"]}
            for tbl, n in ((T_PAIR, "slots"), (T_AREA, "area_slots"), (T_XPAIR, "extent_slots")):
                t[KEYS[tbl]] = [free_slot(tbl, cfg) for _ in range(cfg[n])]
            u.sm.t["volcopy"] = t
            u.sm.save()
        self.t = t
        self.tb = t["track_blocks"]
        self.tbuf = memoryview(bytearray(self.tb * u.bs))
        self.bm = {}            # (table, slot, name) -> bytearray
        self.dirty = set()      # bitmaps changed since the last save
        self.unsaved = False    # a copy cleared bits since the last save
        self.changed = False    # the write being processed changed a bit
        self.running = []       # (job, rec) of the copies in progress
        for tbl in TABLES:
            slots = t[KEYS[tbl]]
            for i in range(len(slots)):
                s = slots[i]
                if s["use"]:
                    for name in BITMAPS[tbl]:
                        self.bm[(tbl, i, name)] = bytearray(binascii.unhexlify(s[name]))
        self._index()
        for tbl in TABLES:
            slots = t[KEYS[tbl]]
            for i in range(len(slots)):
                s = slots[i]
                if not s["use"]:
                    continue
                if s["job"]:
                    self._start(tbl, i, s, s["job"])
                if tbl == T_PAIR:
                    for e in s["extents"]:
                        if e["use"] and e["job"]:
                            self._start(tbl, i, e, e["job"])

    def check(self):
        """After a forced reconfiguration the SM table is gone: start again."""
        if self.u.sm.t.get("volcopy") is not self.t:
            self.boot()

    def _index(self):
        o = {}
        for tbl in TABLES:
            slots = self.t[KEYS[tbl]]
            for i in range(len(slots)):
                if slots[i]["use"]:
                    o.setdefault(slots[i]["orig"], []).append((tbl, i))
        self.origs = o

    def sync(self):
        """Before every SM save: bitmaps to hex, copies' pause flags."""
        if self.u.sm.t.get("volcopy") is not self.t:
            return
        for key in self.dirty:
            tbl, i, name = key
            self.t[KEYS[tbl]][i][name] = binascii.hexlify(self.bm[key]).decode()
        self.dirty = set()
        for job, rec in self.running:
            rec["paused"] = job.state == PAUSED
        self.unsaved = False

    def slot(self, tbl, i):
        return self.t[KEYS[tbl]][i]

    def _mark(self, tbl, i, name, idx):
        bm = self.bm[(tbl, i, name)]
        if not core.bit_test(bm, idx):
            core.bit_set(bm, idx)
            self.dirty.add((tbl, i, name))
            self.changed = True

    def _clear(self, tbl, i, name, idx):
        bm = self.bm[(tbl, i, name)]
        if core.bit_test(bm, idx):
            core.bit_clear(bm, idx)
            self.dirty.add((tbl, i, name))
            self.changed = True

    # ---- copy a track ------------------------------------------------------------
    async def copy_track(self, orig, copy, t):
        """Stage the original's track t through the cache and write it into the copy's
        track t through the cache write path (destaged later)."""
        u = self.u
        ov = volume_of(u, orig)
        cv = volume_of(u, copy)
        first = t * self.tb
        n = min(self.tb, ov["blocks"] - first, cv["blocks"] - first)
        if n <= 0:
            return wire.OK
        buf = self.tbuf[:n * u.bs]
        st = await cha.read_blocks(u, u.group(ov["group"]), ov["start"] + first, n, buf)
        if st not in GOOD:
            return st
        await cha.write_blocks(u, u.group(cv["group"]), cv["start"] + first, n, buf)
        self.stats["copied"] += 1
        return wire.OK

    async def _cow(self, s, t):
        st = await self.copy_track(s["orig"], s["copy"], t)
        if st in GOOD:
            self.stats["cow"] += 1
            return None
        self.u.warn("volcopy: copy-on-write of track %d (%d -> %d) failed: %s"
                    % (t, s["orig"], s["copy"], wire.status_name(st)))
        return st

    # ---- host writes (Figs 19, 28, 38) -------------------------------------------
    async def write_hook(self, u, v, lba, count, data):
        self.check()
        ps = self.origs.get(v["id"])
        if not ps:
            return None           # 1900 / 2800 / 3800: no pair: the normal path stores it
        tb = self.tb
        async with self.lock:
            self.changed = False
            ps = self.origs.get(v["id"], ())
            for t in range(lba // tb, (lba + count - 1) // tb + 1):
                for tbl, i in ps:
                    if tbl == T_PAIR:
                        st = await self._w1310(i, t)
                    elif tbl == T_AREA:
                        st = await self._w2310(i, t)
                    else:
                        st = await self._w3109(i, t)
                    if st is not None:
                        u.sm.dirty = True
                        return st
            if self.changed or self.unsaved:
                u.sm.save()       # the marks reach SM before the data can reach a drive
            # 1907 / 2807 / 3808: store the write data into the cache
            await cha.write_blocks(u, u.group(v["group"]), v["start"] + lba, count, data)
            if u.write_through:
                await cha.destage(u)
        return wire.OK

    async def _w1310(self, i, t):
        s = self.slot(T_PAIR, i)
        hit = False
        for e in s["extents"]:                                   # 1901
            if e["use"] and e["start"] <= t <= e["end"]:
                hit = True
                break
        if hit:
            if core.bit_test(self.bm[(T_PAIR, i, "D")], t):     # 1902
                st = await self._cow(s, t)                       # 1903-1904
                if st is not None:
                    return st
                self._clear(T_PAIR, i, "D", t)                   # 1905
        elif s["state"] == UNDER_DIV and core.bit_test(self.bm[(T_PAIR, i, "G")], t):   # 1908-1909
            st = await self._cow(s, t)                           # 1910-1911
            if st is not None:
                return st
            self._clear(T_PAIR, i, "G", t)                       # 1912
        state = s["state"]                                       # 1906
        if state == UNDER_GEN or state == GEN_DONE:
            self._mark(T_PAIR, i, "G", t)
        elif state == UNDER_DIV or not hit:
            self._mark(T_PAIR, i, "D", t)
        else:
            self._mark(T_PAIR, i, "U", t)
        return None

    async def _w2310(self, i, t):
        s = self.slot(T_AREA, i)
        if t < s["start"] or t > s["end"]:                       # 2800
            return None
        idx = t - s["start"]
        state = s["state"]
        if state == UNDER_DIV:                                   # 2801
            if core.bit_test(self.bm[(T_AREA, i, "bits")], idx):     # 2802
                st = await self._cow(s, t)                       # 2803-2804
                if st is not None:
                    return st
                self._clear(T_AREA, i, "bits", idx)              # 2805
        elif state == UNDER_GEN or state == GEN_DONE:            # 2808
            self._mark(T_AREA, i, "bits", idx)                   # 2806
        return None

    async def _w3109(self, i, t):
        s = self.slot(T_XPAIR, i)
        state = s["state"]
        if state == UNDER_XDIV:                                  # 3801
            inside = False
            for a, b in s["extents"]:                            # 3802
                if a <= t <= b:
                    inside = True
                    break
            if inside and core.bit_test(self.bm[(T_XPAIR, i, "G")], t):   # 3803
                st = await self._cow(s, t)                       # 3804-3805
                if st is not None:
                    return st
                self._clear(T_XPAIR, i, "G", t)                  # 3806
        if state == UNDER_GEN or state == GEN_DONE or state == UNDER_XCPL:   # 3807
            self._mark(T_XPAIR, i, "G", t)
        else:
            self._mark(T_XPAIR, i, "D", t)
        return None

    # ---- background copies -------------------------------------------------------
    def _rec(self, kind, name, first, paused):
        return {"kind": kind, "name": name, "k": 0, "pointer": first, "copied": 0, "paused": bool(paused)}

    def _segs(self, tbl, i, holder, kind):
        """The track ranges a copy scans: [(bitmap, first, last, bit offset)]."""
        s = self.slot(tbl, i)
        if kind in ("generation", "division", "xgeneration"):
            return [("G", 0, s["tracks"] - 1, 0)]
        if kind == "extent_update":
            return [("D", holder["start"], holder["end"], 0)]
        if kind in ("area_generation", "area_division"):
            return [("bits", s["start"], s["end"], s["start"])]
        name = "G" if kind == "extent_division" else "D"
        return [(name, a, b, 0) for a, b in s["extents"]]

    def _next(self, tbl, i, rec, segs):
        """Move the pointer to the next set track of the scan; -1 when none is left."""
        while rec["k"] < len(segs):
            name, lo, hi, off = segs[rec["k"]]
            p = max(rec["pointer"], lo)
            if p <= hi:
                j = core.next_set(self.bm[(tbl, i, name)], p - off, hi + 1 - off)
                if j >= 0:
                    rec["pointer"] = j + off
                    return j + off
            rec["k"] += 1
            rec["pointer"] = segs[rec["k"]][1] if rec["k"] < len(segs) else hi + 1
        return -1

    def _progress(self, rec, segs):
        done = 0
        for k in range(len(segs)):
            _, lo, hi, _ = segs[k]
            if k < rec["k"]:
                done += hi - lo + 1
            elif k == rec["k"]:
                done += min(max(rec["pointer"], lo), hi + 1) - lo
        return done

    def _start(self, tbl, i, holder, rec):
        segs = self._segs(tbl, i, holder, rec["kind"])
        total = 0
        for _, lo, hi, _ in segs:
            total += hi - lo + 1
        job = CopyJob(rec, total, self._progress(rec, segs))
        self.u.jobs.add(job)
        self.running.append((job, rec))
        asyncio.create_task(self._run(job, tbl, i, holder, rec, segs, self.epoch))
        return job

    def _cancel(self, rec, note):
        job = self.u.jobs.get(rec["name"])
        if job is not None and getattr(job, "rec", None) is rec:
            job.state = CANCELLED
            job.note = note
            job.ev.set()

    def _live(self, holder, rec, epoch):
        return epoch == self.epoch and holder["job"] is rec

    async def _run(self, job, tbl, i, holder, rec, segs, epoch):
        s = self.slot(tbl, i)
        try:
            while True:
                async with self.lock:
                    if not self._live(holder, rec, epoch):
                        return
                    t = self._next(tbl, i, rec, segs)
                    job.pointer = self._progress(rec, segs)
                    if t < 0:
                        self._complete(tbl, i, holder, rec, job)
                        return
                await job.gate()
                async with self.lock:
                    if not self._live(holder, rec, epoch):
                        return
                    t = self._next(tbl, i, rec, segs)
                    if t < 0:
                        continue
                    st = await self.copy_track(s["orig"], s["copy"], t)      # e.g. 2002-2003
                    if st not in GOOD:
                        job.state = FAILED
                        job.note = "copy of track %d failed: %s" % (t, wire.status_name(st))
                        self.u.warn("volcopy: %s: %s" % (job.name, job.note))
                        return
                    name, _, _, off = segs[rec["k"]]
                    bm = self.bm[(tbl, i, name)]
                    core.bit_clear(bm, t - off)                               # e.g. 2004
                    self.dirty.add((tbl, i, name))
                    self.unsaved = True
                    rec["pointer"] = t + 1
                    rec["copied"] += 1
                    job.pointer = self._progress(rec, segs)
                    job.note = "copied %d" % rec["copied"]
                self.u.sm.dirty = True
                await sleep_ms(0)
        except Exception as e:  # a bug must not leave the copy "running" for ever
            job.state = FAILED
            job.note = "error: %r" % (e,)
            self.u.warn("volcopy: %s: %s" % (job.name, job.note))
        finally:
            for k in range(len(self.running)):
                if self.running[k][0] is job:
                    self.running.pop(k)
                    break

    def _complete(self, tbl, i, holder, rec, job):
        s = self.slot(tbl, i)
        kind = rec["kind"]
        if kind == "extent_update":
            # 2207: D[start..end] <- U[start..end]; free the extent entry (U is kept)
            a, b = holder["start"], holder["end"]
            D = self.bm[(T_PAIR, i, "D")]
            U = self.bm[(T_PAIR, i, "U")]
            core.range_clear(D, a, b - a + 1)
            j = core.next_set(U, a, b + 1)
            while j >= 0:
                core.bit_set(D, j)
                j = core.next_set(U, j + 1, b + 1)
            self.dirty.add((T_PAIR, i, "D"))
            holder["use"] = 0
        else:
            s["state"] = KINDS[kind][2]          # 2007, 2107, 2907, 3007, 3707, 3907, 4007
        holder["job"] = None
        job.state = DONE
        job.ms = ticks_diff(ticks_ms(), job.t0)
        job.pointer = job.total
        job.note = "copied %d" % rec["copied"]
        self.u.sm.save()
