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
MAX_RANGES = 32         # set-track ranges listed per bitmap in the readable tables
MAX_EXTENTS = 64        # ranges per request
CANCELLED = "cancelled"


class Refused(Exception):
    """A request refused: args = (status, text)."""


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


def _volume(u, vid):
    for v in u.sm.t.get("volumes", []):
        if v["id"] == vid:
            return v
    return None


def _free_slot(tbl, cfg):
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
                t[KEYS[tbl]] = [_free_slot(tbl, cfg) for _ in range(cfg[n])]
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
        ov = _volume(u, orig)
        cv = _volume(u, copy)
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

    # ---- request checks ----------------------------------------------------------
    def _vol(self, cmd, key):
        vid = cmd.get(key)
        if not isinstance(vid, int) or isinstance(vid, bool):
            raise Refused(wire.E_BAD_PARAM, "%s must be a volume number, got %r" % (key, vid))
        v = _volume(self.u, vid)
        if v is None:
            raise Refused(wire.E_NO_VOLUME, "no volume %d" % vid)
        return v

    def _tracks(self, v):
        return (v["blocks"] + self.tb - 1) // self.tb

    def _two(self, cmd):
        ov = self._vol(cmd, "orig")
        cv = self._vol(cmd, "copy")
        if ov["id"] == cv["id"]:
            raise Refused(wire.E_BAD_PARAM, "orig and copy are the same volume (%d)" % ov["id"])
        return ov, cv

    def _whole(self, ov, cv):
        """E7 / E9: the copy of track t goes to track t over the whole volume."""
        if cv["blocks"] < ov["blocks"]:
            raise Refused(wire.E_BAD_PARAM, "copy volume %d (%d blocks) is smaller than original %d (%d blocks)"
                          % (cv["id"], cv["blocks"], ov["id"], ov["blocks"]))
        n = self._tracks(ov)
        if n > self.cfg["max_tracks"]:
            raise Refused(wire.E_BAD_PARAM, "volume %d has %d tracks; bitmaps hold at most %d (max_tracks)"
                          % (ov["id"], n, self.cfg["max_tracks"]))
        return n

    def _ranges(self, cmd, key, ntracks, what):
        r = cmd.get(key)
        if not isinstance(r, list) or not r or len(r) > MAX_EXTENTS:
            raise Refused(wire.E_BAD_PARAM, "%s must be a list of 1..%d [start, end] track ranges"
                          % (key, MAX_EXTENTS))
        out = []
        for x in r:
            if not isinstance(x, list) or len(x) != 2 or not isinstance(x[0], int) or not isinstance(x[1], int):
                raise Refused(wire.E_BAD_PARAM, "%s: %r is not a [start, end] track range" % (key, x))
            a, b = x
            if a < 0 or b < a or b >= ntracks:
                raise Refused(wire.E_BAD_PARAM, "%s: [%d, %d] is outside %s (tracks 0..%d)"
                              % (key, a, b, what, ntracks - 1))
            out.append((a, b))
        return out

    def _in_use(self, orig, copy, tbl, areas=None):
        """I-G5: a copy volume belongs to no other pair (E8: areas of one source on one
        destination may share it if they do not overlap); an original is no copy."""
        for stbl in TABLES:
            slots = self.t[KEYS[stbl]]
            for j in range(len(slots)):
                s = slots[j]
                if not s["use"]:
                    continue
                where = "table %d slot %d: %d -> %d" % (stbl, j, s["orig"], s["copy"])
                if copy == s["copy"]:
                    if tbl == T_AREA and stbl == T_AREA and s["orig"] == orig:
                        for a, b in areas:
                            if a <= s["end"] and s["start"] <= b:
                                raise Refused(wire.E_STATE, "area [%d, %d] overlaps area [%d, %d] on volume %d (%s)"
                                              % (a, b, s["start"], s["end"], copy, where))
                        continue
                    raise Refused(wire.E_STATE, "volume %d is already the copy of a pair (%s)" % (copy, where))
                if copy == s["orig"]:
                    raise Refused(wire.E_STATE, "volume %d is already the original of a pair (%s)" % (copy, where))
                if orig == s["copy"]:
                    raise Refused(wire.E_STATE, "volume %d is the copy of a pair (%s); it cannot be an original"
                                  % (orig, where))

    def _free(self, tbl, n):
        slots = self.t[KEYS[tbl]]
        free = [i for i in range(len(slots)) if not slots[i]["use"]]
        if len(free) < n:
            raise Refused(wire.E_STATE, "table %d: %d free slot(s) of %d, %d needed"
                          % (tbl, len(free), len(slots), n))
        return free[:n]

    def _find(self, tbl, cmd):
        ov, cv = self._two(cmd)
        want = None
        if tbl == T_AREA:
            a, b = cmd.get("start"), cmd.get("end")
            if not isinstance(a, int) or not isinstance(b, int):
                raise Refused(wire.E_BAD_PARAM, "start and end (tracks) select the area")
            want = (a, b)
        slots = self.t[KEYS[tbl]]
        for i in range(len(slots)):
            s = slots[i]
            if s["use"] and s["orig"] == ov["id"] and s["copy"] == cv["id"]:
                if want is None or (s["start"], s["end"]) == want:
                    return i, s
        extra = " area [%d, %d]" % want if want else ""
        raise Refused(wire.E_BAD_PARAM, "no pair %d -> %d%s in table %d" % (ov["id"], cv["id"], extra, tbl))

    def _new(self, tbl, i, s, orig, copy, bms):
        s["use"] = 1
        s["orig"] = orig
        s["copy"] = copy
        s["state"] = UNDER_GEN
        for name in bms:
            self.bm[(tbl, i, name)] = bms[name]
            self.dirty.add((tbl, i, name))

    def _begin(self, tbl, i, holder, kind, first, paused, name=None):
        rec = self._rec(kind, name or "%s%d" % (KINDS[kind][1], i), first, paused)
        holder["job"] = rec
        return rec

    def _split(self, i, s, paused, kind, what):
        if s["state"] == UNDER_GEN:
            if self.cfg["split_during_generation"] != "supersede":
                raise Refused(wire.E_STATE, "%s: the pair is UNDER GENERATION; split refused until generation "
                              "completes (split_during_generation = reject)" % what)
            # I-7.5: the division copy scans the same G, so it finishes the generation's work
            self._cancel(s["job"], "superseded by a split: the division copy scans the same bitmap")
        elif s["state"] != GEN_DONE:
            raise Refused(wire.E_STATE, "%s: the pair is %s; a split needs GENERATION COMPLETED" % (what, s["state"]))
        s["state"] = UNDER_DIV
        return self._begin(KINDS[kind][0], i, s, kind, s.get("start", 0), paused)

    # ---- commands ----------------------------------------------------------------
    def pair_create(self, cmd):
        """1600: PairCreate(orig, copy): G all 1, D = U = 0, extents unused; generation copy."""
        ov, cv = self._two(cmd)
        n = self._whole(ov, cv)
        self._in_use(ov["id"], cv["id"], T_PAIR)
        i = self._free(T_PAIR, 1)[0]
        s = self.slot(T_PAIR, i)
        G = core.bitmap_new(n)
        core.range_set(G, 0, n)
        self._new(T_PAIR, i, s, ov["id"], cv["id"], {"G": G, "D": core.bitmap_new(n), "U": core.bitmap_new(n)})
        s["tracks"] = n
        for e in s["extents"]:
            e["use"] = 0
            e["job"] = None
        rec = self._begin(T_PAIR, i, s, "generation", 0, cmd.get("paused"))
        return self._go(T_PAIR, i, [(s, rec)], {"table": T_PAIR, "slot": i, "job": rec["name"]})

    def pair_split(self, cmd):
        """1700: PairSplit(orig, copy): UNDER DIVISION; division copy."""
        i, s = self._find(T_PAIR, cmd)
        rec = self._split(i, s, cmd.get("paused"), "division", "PairSplit")
        return self._go(T_PAIR, i, [(s, rec)], {"table": T_PAIR, "slot": i, "job": rec["name"]})

    def extent_update(self, cmd):
        """1800: ExtentUpdate(orig, copy, [start, end]+): one extent entry and one
        extent-update copy per range (DIVISION COMPLETED only, I-7.4)."""
        i, s = self._find(T_PAIR, cmd)
        ranges = self._ranges(cmd, "extents", s["tracks"], "volume %d" % s["orig"])
        if s["state"] != DIV_DONE:
            raise Refused(wire.E_STATE, "ExtentUpdate: the pair is %s; it needs DIVISION COMPLETED" % s["state"])
        free = [k for k in range(len(s["extents"])) if not s["extents"][k]["use"]]
        if len(free) < len(ranges):
            raise Refused(wire.E_STATE, "ExtentUpdate: %d free extent entries, %d ranges asked"
                          % (len(free), len(ranges)))
        started = []
        for n in range(len(ranges)):
            k = free[n]
            e = s["extents"][k]
            e["use"] = 1
            e["start"], e["end"] = ranges[n]
            started.append((e, self._begin(T_PAIR, i, e, "extent_update", e["start"], cmd.get("paused"),
                                           "vcext%d.%d" % (i, k))))
        return self._go(T_PAIR, i, started, {"table": T_PAIR, "slot": i, "entries": free[:len(ranges)],
                                             "jobs": [r["name"] for _, r in started]})

    def area_create(self, cmd):
        """2600: PairCreate(src, dst, [start, end]+): one slot per area, all bits 1."""
        ov, cv = self._two(cmd)
        n = min(self._tracks(ov), self._tracks(cv))
        areas = self._ranges(cmd, "areas", n, "volumes %d and %d" % (ov["id"], cv["id"]))
        for x in range(len(areas)):
            for y in range(x):
                if areas[x][0] <= areas[y][1] and areas[y][0] <= areas[x][1]:
                    raise Refused(wire.E_BAD_PARAM, "areas %r and %r overlap" % (list(areas[y]), list(areas[x])))
        self._in_use(ov["id"], cv["id"], T_AREA, areas)
        slots = self._free(T_AREA, len(areas))
        out = []
        for k in range(len(areas)):
            i = slots[k]
            s = self.slot(T_AREA, i)
            a, b = areas[k]
            bits = core.bitmap_new(b - a + 1)
            core.range_set(bits, 0, b - a + 1)
            self._new(T_AREA, i, s, ov["id"], cv["id"], {"bits": bits})
            s["start"], s["end"] = a, b
            out.append((s, self._begin(T_AREA, i, s, "area_generation", a, cmd.get("paused"))))
        return self._go(T_AREA, slots, out, {"table": T_AREA, "slots": slots, "jobs": [r["name"] for _, r in out]})

    def area_split(self, cmd):
        """2700: PairSplit(src, dst, start, end): UNDER DIVISION; division copy."""
        i, s = self._find(T_AREA, cmd)
        rec = self._split(i, s, cmd.get("paused"), "area_division", "AreaPairSplit")
        return self._go(T_AREA, i, [(s, rec)], {"table": T_AREA, "slot": i, "job": rec["name"]})

    def xpair_create(self, cmd):
        """3400: PairCreate(orig, copy) into 3109: G all 1, D = 0; generation copy."""
        ov, cv = self._two(cmd)
        n = self._whole(ov, cv)
        self._in_use(ov["id"], cv["id"], T_XPAIR)
        i = self._free(T_XPAIR, 1)[0]
        s = self.slot(T_XPAIR, i)
        G = core.bitmap_new(n)
        core.range_set(G, 0, n)
        self._new(T_XPAIR, i, s, ov["id"], cv["id"], {"G": G, "D": core.bitmap_new(n)})
        s["tracks"] = n
        s["extents"] = []
        rec = self._begin(T_XPAIR, i, s, "xgeneration", 0, cmd.get("paused"))
        return self._go(T_XPAIR, i, [(s, rec)], {"table": T_XPAIR, "slot": i, "job": rec["name"]})

    def extent_split(self, cmd):
        """3500: ExtentSplit(orig, copy, extents): UNDER EXTENT DIVISION (from GENERATION
        COMPLETED only, I-9.3); the extent list is replaced; extent-division copy."""
        i, s = self._find(T_XPAIR, cmd)
        ranges = self._ranges(cmd, "extents", s["tracks"], "volume %d" % s["orig"])
        if s["state"] != GEN_DONE:
            raise Refused(wire.E_STATE, "ExtentSplit: the pair is %s; it needs GENERATION COMPLETED" % s["state"])
        s["state"] = UNDER_XDIV
        s["extents"] = [[a, b] for a, b in ranges]
        rec = self._begin(T_XPAIR, i, s, "extent_division", ranges[0][0], cmd.get("paused"))
        return self._go(T_XPAIR, i, [(s, rec)], {"table": T_XPAIR, "slot": i, "job": rec["name"]})

    def extent_couple(self, cmd):
        """3600: ExtentCouple(orig, copy): UNDER EXTENT COUPLE (from EXTENT DIVISION
        COMPLETED only); extent-couple copy over the stored extents."""
        i, s = self._find(T_XPAIR, cmd)
        if s["state"] != XDIV_DONE:
            raise Refused(wire.E_STATE, "ExtentCouple: the pair is %s; it needs EXTENT DIVISION COMPLETED"
                          % s["state"])
        s["state"] = UNDER_XCPL
        rec = self._begin(T_XPAIR, i, s, "extent_couple", s["extents"][0][0], cmd.get("paused"))
        return self._go(T_XPAIR, i, [(s, rec)], {"table": T_XPAIR, "slot": i, "job": rec["name"]})

    def pair_delete(self, cmd):
        """Free a slot (not in the seed, which never releases one): no copy may be running."""
        tbl = cmd.get("table")
        if tbl not in TABLES:
            raise Refused(wire.E_BAD_PARAM, "table must be one of 1310, 2310, 3109")
        i, s = self._find(tbl, cmd)
        busy = s["job"] is not None
        if tbl == T_PAIR:
            for e in s["extents"]:
                busy = busy or e["use"]
        if busy:
            raise Refused(wire.E_STATE, "table %d slot %d: a copy is in progress" % (tbl, i))
        self.t[KEYS[tbl]][i] = _free_slot(tbl, self.cfg)
        for name in BITMAPS[tbl]:
            self.bm.pop((tbl, i, name), None)
            self.dirty.discard((tbl, i, name))
        self._index()
        self.u.sm.save()
        return wire.OK, {"table": tbl, "slot": i}

    def _go(self, tbl, slots, started, reply):
        """Commit a command: index, save, then start its copies."""
        self._index()
        self.u.sm.save()
        idx = slots if isinstance(slots, list) else [slots] * len(started)
        for k in range(len(started)):
            holder, rec = started[k]
            self._start(tbl, idx[k], holder, rec)
        return wire.OK, reply

    def bitmap(self, cmd):
        """One bitmap as hex, paged: {table, slot, name, offset (bytes), length (bytes)}."""
        tbl = cmd.get("table")
        i = cmd.get("slot")
        name = cmd.get("name")
        if tbl not in TABLES or not isinstance(i, int) or name not in BITMAPS[tbl]:
            raise Refused(wire.E_BAD_PARAM, "table (1310/2310/3109), slot and name (%s) select a bitmap"
                          % "/".join(BITMAPS.get(tbl, ("G", "D", "U"))))
        bm = self.bm.get((tbl, i, name))
        if bm is None:
            raise Refused(wire.E_BAD_PARAM, "table %r slot %r is not in use" % (tbl, i))
        s = self.slot(tbl, i)
        nbits = s["end"] - s["start"] + 1 if tbl == T_AREA else s["tracks"]
        off = cmd.get("offset", 0)
        room = (self.u.link.max_payload - 128) // 2
        ln = cmd.get("length", room)
        if not isinstance(off, int) or not isinstance(ln, int) or off < 0 or ln < 0:
            raise Refused(wire.E_BAD_PARAM, "offset and length must be integers >= 0")
        ln = min(ln, room, max(0, len(bm) - off))
        return wire.OK, {"bits": nbits, "bytes": len(bm), "offset": off,
                         "hex": binascii.hexlify(bm[off:off + ln]).decode()}

    # ---- readable tables ---------------------------------------------------------
    def _ranges_of(self, bm, nbits, off, more):
        out = []
        i = 0
        while i < nbits:
            a = core.next_set(bm, i, nbits)
            if a < 0:
                return out
            if len(out) == MAX_RANGES:
                more.append(1)
                return out
            b = core.next_clear(bm, a, nbits)
            if b < 0:
                b = nbits
            out.append([a + off, b - 1 + off])
            i = b
        return out

    def _job_view(self, rec):
        if rec is None:
            return None
        return {"name": rec["name"], "kind": rec["kind"], "pointer": rec["pointer"], "copied": rec["copied"]}

    def render(self, tbl):
        self.check()
        out = []
        slots = self.t[KEYS[tbl]]
        for i in range(len(slots)):
            s = slots[i]
            if not s["use"]:
                out.append({"slot": i, "use": 0})
                continue
            d = {"slot": i, "use": 1, "orig": s["orig"], "copy": s["copy"], "state": s["state"],
                 "job": self._job_view(s["job"])}
            if tbl == T_AREA:
                nbits, off = s["end"] - s["start"] + 1, s["start"]
                d["start"] = s["start"]
                d["end"] = s["end"]
            else:
                nbits, off = s["tracks"], 0
                d["tracks"] = nbits
            counts = {}
            for name in BITMAPS[tbl]:
                bm = self.bm[(tbl, i, name)]
                more = []
                d[name] = self._ranges_of(bm, nbits, off, more)
                counts[name] = core.count(bm, 0, nbits)
                if more:
                    d.setdefault("truncated", []).append(name)
            d["set"] = counts
            if tbl == T_PAIR:
                d["extents"] = [{"entry": k, "start": e["start"], "end": e["end"], "job": self._job_view(e["job"])}
                                for k, e in enumerate(s["extents"]) if e["use"]]
            elif tbl == T_XPAIR:
                d["extents"] = [list(x) for x in s["extents"]]
            out.append(d)
        return out

    def info(self):
        self.check()
        d = dict(self.stats)
        d["track_blocks"] = self.tb
        d["slots"] = {"1310": len(self.t["pairs"]), "2310": len(self.t["areas"]), "3109": len(self.t["xpairs"])}
        d["running"] = [job.name for job, _ in self.running]
        return d


def _op(vc, fn):
    async def op(u, cmd):
        vc.check()
        async with vc.lock:
            try:
                return fn(cmd)
            except Refused as e:
                return e.args[0], {"error": e.args[1]}
    return op


def attach(u):
    vc = VolCopy(u)
    for name, fn in (("PairCreate", vc.pair_create), ("PairSplit", vc.pair_split),
                     ("ExtentUpdate", vc.extent_update), ("AreaPairCreate", vc.area_create),
                     ("AreaPairSplit", vc.area_split), ("ExtentPairCreate", vc.xpair_create),
                     ("ExtentSplit", vc.extent_split), ("ExtentCouple", vc.extent_couple),
                     ("PairDelete", vc.pair_delete), ("VcBitmap", vc.bitmap)):
        u.ops[name] = _op(vc, fn)
    u.table_fns["vc_pairs"] = lambda u: vc.render(T_PAIR)
    u.table_fns["vc_area_pairs"] = lambda u: vc.render(T_AREA)
    u.table_fns["vc_extent_pairs"] = lambda u: vc.render(T_XPAIR)
    u.table_fns["vc_stats"] = lambda u: vc.info()
    u.write_hooks.append(vc.write_hook)
    u.sm.before_save.append(vc.sync)
    return vc
