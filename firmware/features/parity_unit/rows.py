# Parity storage unit (seed 000): table 740, initial data management (Figs 13A-13C, on
# the PU).  One row per DU: ON / OFF, the 13B position, the 13C completed blocks; at run
# time each ON row has a bitmap of the blocks whose contribution is in parity
# ("included", pu.bm).  Also where a build / add / delete goes on after a reset.
from firmware import core


def ranges(bm, nbits, want_set):
    """[[first, last], ...] of the set (or clear) bits of bm[:nbits]."""
    out = []
    i = 0
    while i < nbits:
        a = core.next_set(bm, i, nbits) if want_set else core.next_clear(bm, i, nbits)
        if a < 0:
            break
        b = core.next_clear(bm, a, nbits) if want_set else core.next_set(bm, a, nbits)
        if b < 0:
            b = nbits
        out.append([a, b - 1])
        i = b
    return out


def members(pu):
    t = pu.st["t710"]
    return list(t["data_units"]) if t else []


def row(pu, unit):
    t740 = pu.st["t740"]
    if t740:
        for r in t740["rows"]:
            if r["unit"] == unit:
                return r
    return None


def included(pu, r, n):
    """Is unit r's contribution to P[n] in parity?  Blocks beyond its count are zeros."""
    if n >= r["blocks"] or not r["on"]:
        return True
    return core.bit_test(pu.bm[r["unit"]], n)


def include(pu, r, n, on):
    bm = pu.bm[r["unit"]]
    if on:
        core.bit_set(bm, n)
    else:
        core.bit_clear(bm, n)
    pu.u.sm.dirty = True


def new_row(pu, unit, blocks, op, method, sync, include_all=False):
    bm = core.bitmap_new(blocks)
    if include_all:
        core.range_set(bm, 0, blocks)
    pu.bm[unit] = bm
    return {"unit": unit, "on": True, "op": op, "method": method, "sync": sync,
            "blocks": blocks, "pos": 0, "inc": None}


def row_off(pu, r):
    r["on"] = False
    r["op"] = None
    r["pos"] = r["blocks"]
    pu.bm.pop(r["unit"], None)


def random_progress(pu, r):
    """I9: a random-add row turns OFF when all its blocks are completed; the rows of a
    synchronous random initialization turn OFF together (13A: all ON or all OFF)."""
    if core.count(pu.bm[r["unit"]], 0, r["blocks"]) < r["blocks"]:
        return False
    if not r["sync"]:
        row_off(pu, r)
        pu.u.warn("parity unit: unit %d completed by the random method" % r["unit"])
        return True
    rows = [x for x in pu.st["t740"]["rows"] if x["on"] and x["sync"] and x["op"] == "random"]
    for x in rows:
        if core.count(pu.bm[x["unit"]], 0, x["blocks"]) < x["blocks"]:
            return False
    for x in rows:
        row_off(pu, x)
    pu.u.warn("parity unit: random initialization complete")
    return True


def view(pu, form=None):
    """Table 740 as the seed draws it, in the PU's form or the one asked for."""
    t740 = pu.st["t740"]
    if t740 is None:
        return None
    form = form or t740["form"]
    out = []
    for r in t740["rows"]:
        x = {"unit": r["unit"], "recalc": "ON" if r["on"] else "OFF"}
        if r["on"]:
            x["op"] = r["op"]
            if form == "13B":
                x["position"] = r["pos"] - 1 if r["method"] == "sequential" or r["op"] == "delete" else None
            elif form == "13C":
                # delete: blocks whose contribution is no longer in parity (I11)
                x["completed"] = ranges(pu.bm[r["unit"]], r["blocks"], r["op"] != "delete")
        out.append(x)
    return {"form": form, "rows": out}


def resume_point(pu, op, rws):
    """Where a sequential build / add / delete goes on after a reset, from table 740 in
    the form the PU keeps: 13B the position, 13C the first block not completed, 13A
    (ON / OFF only) block 0."""
    form = pu.st["t740"]["form"]
    if form == "13A":
        return 0
    if form == "13B":
        return max([r["pos"] for r in rws] + [0])
    out = -1
    for r in rws:
        bm = pu.bm[r["unit"]]
        if op == "delete":       # 13C keeps the blocks already removed (I11)
            n = 0 if r.get("partial") else core.next_set(bm, 0, r["blocks"])
        else:
            n = core.next_clear(bm, 0, r["blocks"])
        if n < 0:
            n = r["blocks"] if op != "build" else -1
        if n >= 0 and (out < 0 or n < out):
            out = n
    if out < 0:     # build: every row complete
        out = max([r["blocks"] for r in rws] + [0])
    return out
