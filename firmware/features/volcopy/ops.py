# Volume copy commands and readable tables (seed 003 E7 / E8 / E9): every request is
# checked in full before anything changes; a refusal is a status and a JSON error text.
# The runtime (bitmaps, write paths, copies) is engine.py beside this file.
import binascii

from firmware import core, wire
from firmware.features.volcopy.engine import (
    BITMAPS,
    DIV_DONE,
    GEN_DONE,
    KEYS,
    KINDS,
    MAX_EXTENTS,
    T_AREA,
    T_PAIR,
    T_XPAIR,
    TABLES,
    UNDER_DIV,
    UNDER_GEN,
    UNDER_XCPL,
    UNDER_XDIV,
    XDIV_DONE,
    free_slot,
    volume_of,
)

MAX_RANGES = 32         # set-track ranges listed per bitmap in the readable tables


class Refused(Exception):
    """A request refused: args = (status, text)."""


class Ops:
    def __init__(self, vc):
        self.vc = vc
        self.u = vc.u

    # ---- request checks ----------------------------------------------------------
    def _vol(self, cmd, key):
        vid = cmd.get(key)
        if not isinstance(vid, int) or isinstance(vid, bool):
            raise Refused(wire.E_BAD_PARAM, "%s must be a volume number, got %r" % (key, vid))
        v = volume_of(self.u, vid)
        if v is None:
            raise Refused(wire.E_NO_VOLUME, "no volume %d" % vid)
        return v

    def _tracks(self, v):
        return (v["blocks"] + self.vc.tb - 1) // self.vc.tb

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
        if n > self.vc.cfg["max_tracks"]:
            raise Refused(wire.E_BAD_PARAM, "volume %d has %d tracks; bitmaps hold at most %d (max_tracks)"
                          % (ov["id"], n, self.vc.cfg["max_tracks"]))
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
            slots = self.vc.t[KEYS[stbl]]
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
        slots = self.vc.t[KEYS[tbl]]
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
        slots = self.vc.t[KEYS[tbl]]
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
            self.vc.bm[(tbl, i, name)] = bms[name]
            self.vc.dirty.add((tbl, i, name))

    def _begin(self, tbl, i, holder, kind, first, paused, name=None):
        rec = self.vc._rec(kind, name or "%s%d" % (KINDS[kind][1], i), first, paused)
        holder["job"] = rec
        return rec

    def _split(self, i, s, paused, kind, what):
        if s["state"] == UNDER_GEN:
            if self.vc.cfg["split_during_generation"] != "supersede":
                raise Refused(wire.E_STATE, "%s: the pair is UNDER GENERATION; split refused until generation "
                              "completes (split_during_generation = reject)" % what)
            # I-7.5: the division copy scans the same G, so it finishes the generation's work
            self.vc._cancel(s["job"], "superseded by a split: the division copy scans the same bitmap")
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
        s = self.vc.slot(T_PAIR, i)
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
            s = self.vc.slot(T_AREA, i)
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
        s = self.vc.slot(T_XPAIR, i)
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
        self.vc.t[KEYS[tbl]][i] = free_slot(tbl, self.vc.cfg)
        for name in BITMAPS[tbl]:
            self.vc.bm.pop((tbl, i, name), None)
            self.vc.dirty.discard((tbl, i, name))
        self.vc._index()
        self.u.sm.save()
        return wire.OK, {"table": tbl, "slot": i}

    def _go(self, tbl, slots, started, reply):
        """Commit a command: index, save, then start its copies."""
        self.vc._index()
        self.u.sm.save()
        idx = slots if isinstance(slots, list) else [slots] * len(started)
        for k in range(len(started)):
            holder, rec = started[k]
            self.vc._start(tbl, idx[k], holder, rec)
        return wire.OK, reply

    def bitmap(self, cmd):
        """One bitmap as hex, paged: {table, slot, name, offset (bytes), length (bytes)}."""
        tbl = cmd.get("table")
        i = cmd.get("slot")
        name = cmd.get("name")
        if tbl not in TABLES or not isinstance(i, int) or name not in BITMAPS[tbl]:
            raise Refused(wire.E_BAD_PARAM, "table (1310/2310/3109), slot and name (%s) select a bitmap"
                          % "/".join(BITMAPS.get(tbl, ("G", "D", "U"))))
        bm = self.vc.bm.get((tbl, i, name))
        if bm is None:
            raise Refused(wire.E_BAD_PARAM, "table %r slot %r is not in use" % (tbl, i))
        s = self.vc.slot(tbl, i)
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
        self.vc.check()
        out = []
        slots = self.vc.t[KEYS[tbl]]
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
                bm = self.vc.bm[(tbl, i, name)]
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
        self.vc.check()
        d = dict(self.vc.stats)
        d["track_blocks"] = self.vc.tb
        t = self.vc.t
        d["slots"] = {"1310": len(t["pairs"]), "2310": len(t["areas"]), "3109": len(t["xpairs"])}
        d["running"] = [job.name for job, _ in self.vc.running]
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


def register(u, vc):
    ops = Ops(vc)
    for name, fn in (("PairCreate", ops.pair_create), ("PairSplit", ops.pair_split),
                     ("ExtentUpdate", ops.extent_update), ("AreaPairCreate", ops.area_create),
                     ("AreaPairSplit", ops.area_split), ("ExtentPairCreate", ops.xpair_create),
                     ("ExtentSplit", ops.extent_split), ("ExtentCouple", ops.extent_couple),
                     ("PairDelete", ops.pair_delete), ("VcBitmap", ops.bitmap)):
        u.ops[name] = _op(vc, fn)
    u.table_fns["vc_pairs"] = lambda u: ops.render(T_PAIR)
    u.table_fns["vc_area_pairs"] = lambda u: ops.render(T_AREA)
    u.table_fns["vc_extent_pairs"] = lambda u: ops.render(T_XPAIR)
    u.table_fns["vc_stats"] = lambda u: ops.info()
