# Volume copy commands (seed 003 E7 Figs 16-18, E8 Figs 26-27, E9 Figs 34-36): every
# request is checked in full (checks.py) before anything changes; a refusal is args.Refused
# (a status and a JSON error text).  A command that starts a copy saves its new state and
# the copy's record in one SM save, then starts the job (copies.py).
from firmware import core, wire
from firmware.args import Refused, need_bool
from firmware.features.volcopy import checks, copies
from firmware.features.volcopy.state import (
    BITMAPS,
    DIV_DONE,
    GEN_DONE,
    KEYS,
    KINDS,
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
)


def _new(vc, tbl, i, s, orig, copy, bms):
    s["use"] = 1
    s["orig"] = orig
    s["copy"] = copy
    s["state"] = UNDER_GEN
    for name in bms:
        vc.bm[(tbl, i, name)] = bms[name]
        vc.dirty.add((tbl, i, name))


def _begin(holder, kind, i, first, paused, name=None):
    rec = copies.new_rec(kind, name or "%s%d" % (KINDS[kind][1], i), first, paused)
    holder["job"] = rec
    return rec


def _go(vc, tbl, slots, started, reply):
    """Commit a command: index, save (states and copy records together), start the copies."""
    vc.index()
    vc.u.sm.save()
    idx = slots if isinstance(slots, list) else [slots] * len(started)
    for k in range(len(started)):
        holder, rec = started[k]
        copies.start(vc, tbl, idx[k], holder, rec)
    return wire.OK, reply


def _one(vc, tbl, i, s, rec):
    return _go(vc, tbl, i, [(s, rec)], {"table": tbl, "slot": i, "job": rec["name"]})


def _create_whole(vc, cmd, tbl, names, kind):
    """1600 / 3400: a pair over the whole original: G all 1, the other bitmaps 0, a
    generation copy."""
    paused = need_bool(cmd, "paused")
    ov, cv = checks.two(vc, cmd)
    n = checks.whole(vc, ov, cv)
    checks.not_in_use(vc, ov["id"], cv["id"], tbl)
    i = checks.free_slots(vc, tbl, 1)[0]
    s = vc.slot(tbl, i)
    bms = {}
    for name in names:
        bms[name] = core.bitmap_new(n)
    core.range_set(bms["G"], 0, n)
    _new(vc, tbl, i, s, ov["id"], cv["id"], bms)
    s["tracks"] = n
    return i, s, _begin(s, kind, i, 0, paused)


def _split(vc, tbl, cmd, kind, what):
    """1700 / 2700: UNDER DIVISION and a division copy over the same bitmap."""
    paused = need_bool(cmd, "paused")
    i, s = checks.find(vc, tbl, cmd)
    if s["state"] == UNDER_GEN:
        if vc.cfg["split_during_generation"] != "supersede":
            raise Refused(wire.E_STATE, "%s: the pair is UNDER GENERATION; split refused until generation "
                          "completes (split_during_generation = reject)" % what)
        # I-7.5: the division copy scans the same G, so it finishes the generation's work
        copies.cancel(vc, s["job"], "superseded by a split: the division copy scans the same bitmap")
    elif s["state"] != GEN_DONE:
        raise Refused(wire.E_STATE, "%s: the pair is %s; a split needs GENERATION COMPLETED" % (what, s["state"]))
    s["state"] = UNDER_DIV
    return _one(vc, tbl, i, s, _begin(s, kind, i, s.get("start", 0), paused))


def pair_create(vc, cmd):
    """1600: PairCreate(orig, copy): G all 1, D = U = 0, extents unused; generation copy."""
    i, s, rec = _create_whole(vc, cmd, T_PAIR, ("G", "D", "U"), "generation")
    for e in s["extents"]:
        e["use"] = 0
        e["job"] = None
    return _one(vc, T_PAIR, i, s, rec)


def pair_split(vc, cmd):
    """1700: PairSplit(orig, copy): UNDER DIVISION; division copy."""
    return _split(vc, T_PAIR, cmd, "division", "PairSplit")


def extent_update(vc, cmd):
    """1800: ExtentUpdate(orig, copy, [start, end]+): one extent entry and one
    extent-update copy per range (DIVISION COMPLETED only, I-7.4)."""
    paused = need_bool(cmd, "paused")
    i, s = checks.find(vc, T_PAIR, cmd)
    ranges = checks.ranges(cmd, "extents", s["tracks"], "volume %d" % s["orig"])
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
        started.append((e, _begin(e, "extent_update", i, e["start"], paused, "vcext%d.%d" % (i, k))))
    return _go(vc, T_PAIR, i, started, {"table": T_PAIR, "slot": i, "entries": free[:len(ranges)],
                                        "jobs": [r["name"] for _, r in started]})


def area_create(vc, cmd):
    """2600: PairCreate(src, dst, [start, end]+): one slot per area, all bits 1."""
    paused = need_bool(cmd, "paused")
    ov, cv = checks.two(vc, cmd)
    n = min(vc.tracks(ov), vc.tracks(cv))
    areas = checks.ranges(cmd, "areas", n, "volumes %d and %d" % (ov["id"], cv["id"]))
    for x in range(len(areas)):
        for y in range(x):
            if areas[x][0] <= areas[y][1] and areas[y][0] <= areas[x][1]:
                raise Refused(wire.E_BAD_PARAM, "areas %r and %r overlap" % (list(areas[y]), list(areas[x])))
    checks.not_in_use(vc, ov["id"], cv["id"], T_AREA, areas)
    slots = checks.free_slots(vc, T_AREA, len(areas))
    out = []
    for k in range(len(areas)):
        i = slots[k]
        s = vc.slot(T_AREA, i)
        a, b = areas[k]
        bits = core.bitmap_new(b - a + 1)
        core.range_set(bits, 0, b - a + 1)
        _new(vc, T_AREA, i, s, ov["id"], cv["id"], {"bits": bits})
        s["start"], s["end"] = a, b
        out.append((s, _begin(s, "area_generation", i, a, paused)))
    return _go(vc, T_AREA, slots, out, {"table": T_AREA, "slots": slots, "jobs": [r["name"] for _, r in out]})


def area_split(vc, cmd):
    """2700: PairSplit(src, dst, start, end): UNDER DIVISION; division copy."""
    return _split(vc, T_AREA, cmd, "area_division", "AreaPairSplit")


def xpair_create(vc, cmd):
    """3400: PairCreate(orig, copy) into 3109: G all 1, D = 0; generation copy."""
    i, s, rec = _create_whole(vc, cmd, T_XPAIR, ("G", "D"), "xgeneration")
    s["extents"] = []
    return _one(vc, T_XPAIR, i, s, rec)


def extent_split(vc, cmd):
    """3500: ExtentSplit(orig, copy, extents): UNDER EXTENT DIVISION (from GENERATION
    COMPLETED only, I-9.3); the extent list is replaced; extent-division copy.
    Not the text (GAP-E9-1): the differences still pending in D (tracks written while
    the pair was split, outside the extents an ExtentCouple copied) fold into G first
    (G |= D, D = 0), so this split's copy and copy-on-write cover them too: the split
    image equals the original as of this request on every track of the extents."""
    paused = need_bool(cmd, "paused")
    i, s = checks.find(vc, T_XPAIR, cmd)
    ranges = checks.ranges(cmd, "extents", s["tracks"], "volume %d" % s["orig"])
    if s["state"] != GEN_DONE:
        raise Refused(wire.E_STATE, "ExtentSplit: the pair is %s; it needs GENERATION COMPLETED" % s["state"])
    G = vc.bm[(T_XPAIR, i, "G")]
    D = vc.bm[(T_XPAIR, i, "D")]
    core.or_merge(G, D)
    core.range_clear(D, 0, s["tracks"])
    vc.dirty.add((T_XPAIR, i, "G"))
    vc.dirty.add((T_XPAIR, i, "D"))
    s["state"] = UNDER_XDIV
    s["extents"] = [[a, b] for a, b in ranges]
    return _one(vc, T_XPAIR, i, s, _begin(s, "extent_division", i, ranges[0][0], paused))


def extent_couple(vc, cmd):
    """3600: ExtentCouple(orig, copy): UNDER EXTENT COUPLE (from EXTENT DIVISION
    COMPLETED only); extent-couple copy over the stored extents."""
    paused = need_bool(cmd, "paused")
    i, s = checks.find(vc, T_XPAIR, cmd)
    if s["state"] != XDIV_DONE:
        raise Refused(wire.E_STATE, "ExtentCouple: the pair is %s; it needs EXTENT DIVISION COMPLETED"
                      % s["state"])
    s["state"] = UNDER_XCPL
    return _one(vc, T_XPAIR, i, s, _begin(s, "extent_couple", i, s["extents"][0][0], paused))


def pair_delete(vc, cmd):
    """Free a slot (not in the seed, which never releases one): no copy may be running."""
    tbl = cmd.get("table")
    if tbl not in TABLES:
        raise Refused(wire.E_BAD_PARAM, "table must be one of 1310, 2310, 3109")
    i, s = checks.find(vc, tbl, cmd)
    busy = s["job"] is not None
    if tbl == T_PAIR:
        for e in s["extents"]:
            busy = busy or e["use"]
    if busy:
        raise Refused(wire.E_STATE, "table %d slot %d: a copy is in progress" % (tbl, i))
    vc.t[KEYS[tbl]][i] = free_slot(tbl, vc.cfg)
    for name in BITMAPS[tbl]:
        vc.bm.pop((tbl, i, name), None)
        vc.dirty.discard((tbl, i, name))
    vc.index()
    vc.u.sm.save()
    return wire.OK, {"table": tbl, "slot": i}


COMMANDS = (("PairCreate", pair_create), ("PairSplit", pair_split), ("ExtentUpdate", extent_update),
            ("AreaPairCreate", area_create), ("AreaPairSplit", area_split),
            ("ExtentPairCreate", xpair_create), ("ExtentSplit", extent_split),
            ("ExtentCouple", extent_couple), ("PairDelete", pair_delete))


def _op(vc, fn):
    async def op(u, cmd):
        async with vc.lock:
            return fn(vc, cmd)
    return op


def register(vc, reg):
    for name, fn in COMMANDS:
        reg.op(name, _op(vc, fn))
