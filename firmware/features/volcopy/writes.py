# Volume copy: host writes to an original (seed 003 E7 Fig 19, E8 Fig 28, E9 Fig 38), a
# `before_cache` stage of the I/O path registered with the feature lock and for
# originals only.  For every pair of the written volume (slot order, tables 1310, 2310,
# 3109), track by track: copy-on-write where the state requires it, then the bitmap marks.
# A write that changed a bit (or follows bits cleared by a copy) saves SM before its data
# enters the cache, so no difference that can reach the drives is forgotten by a reset.
# The store itself (1907 / 2807 / 3808) is the path's cache stage, still under the lock.
from firmware import core, wire
from firmware.features.volcopy.copies import copy_track
from firmware.features.volcopy.state import GEN_STATES, T_AREA, T_PAIR, T_XPAIR, UNDER_DIV, UNDER_XDIV, XG_STATES
from firmware.raid import GOOD


def stage(vc):
    """The before_cache stage function of this feature object."""

    async def before_cache(u, v, lba, count, data):
        ps = vc.origs.get(v["id"], ())
        tb = vc.tb
        vc.changed = False
        for t in range(lba // tb, (lba + count - 1) // tb + 1):
            for tbl, i in ps:
                if tbl == T_PAIR:
                    st = await _w1310(vc, i, t)
                elif tbl == T_AREA:
                    st = await _w2310(vc, i, t)
                else:
                    st = await _w3109(vc, i, t)
                if st is not None:
                    u.sm.dirty = True
                    return st
        if vc.changed or vc.unsaved:
            u.sm.save()       # the marks reach SM before the data can reach a drive
        return None
    return before_cache


async def _cow(vc, s, t):
    st = await copy_track(vc, s["orig"], s["copy"], t)
    if st in GOOD:
        vc.stats["cow"] += 1
        return None
    vc.u.warn("volcopy: copy-on-write of track %d (%d -> %d) failed: %s"
              % (t, s["orig"], s["copy"], wire.status_name(st)))
    return st


async def _w1310(vc, i, t):
    s = vc.slot(T_PAIR, i)
    hit = False
    for e in s["extents"]:                                   # 1901
        if e["use"] and e["start"] <= t <= e["end"]:
            hit = True
            break
    if hit:
        if core.bit_test(vc.bm[(T_PAIR, i, "D")], t):       # 1902
            st = await _cow(vc, s, t)                        # 1903-1904
            if st is not None:
                return st
            vc.clear(T_PAIR, i, "D", t)                      # 1905
    elif s["state"] == UNDER_DIV and core.bit_test(vc.bm[(T_PAIR, i, "G")], t):   # 1908-1909
        st = await _cow(vc, s, t)                            # 1910-1911
        if st is not None:
            return st
        vc.clear(T_PAIR, i, "G", t)                          # 1912
    state = s["state"]                                       # 1906
    if state in GEN_STATES:
        vc.mark(T_PAIR, i, "G", t)
    elif state == UNDER_DIV or not hit:
        vc.mark(T_PAIR, i, "D", t)
    else:
        vc.mark(T_PAIR, i, "U", t)
    return None


async def _w2310(vc, i, t):
    s = vc.slot(T_AREA, i)
    if t < s["start"] or t > s["end"]:                       # 2800
        return None
    idx = t - s["start"]
    state = s["state"]
    if state == UNDER_DIV:                                   # 2801
        if core.bit_test(vc.bm[(T_AREA, i, "bits")], idx):  # 2802
            st = await _cow(vc, s, t)                        # 2803-2804
            if st is not None:
                return st
            vc.clear(T_AREA, i, "bits", idx)                 # 2805
    elif state in GEN_STATES:                                # 2808
        vc.mark(T_AREA, i, "bits", idx)                      # 2806
    return None


async def _w3109(vc, i, t):
    s = vc.slot(T_XPAIR, i)
    state = s["state"]
    if state == UNDER_XDIV:                                  # 3801
        inside = False
        for a, b in s["extents"]:                            # 3802
            if a <= t <= b:
                inside = True
                break
        if inside and core.bit_test(vc.bm[(T_XPAIR, i, "G")], t):   # 3803
            st = await _cow(vc, s, t)                        # 3804-3805
            if st is not None:
                return st
            vc.clear(T_XPAIR, i, "G", t)                     # 3806
    if state in XG_STATES:                                   # 3807
        vc.mark(T_XPAIR, i, "G", t)
    else:
        vc.mark(T_XPAIR, i, "D", t)
    return None
