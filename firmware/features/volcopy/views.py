# Volume copy: the readable tables (vc_pairs 1310, vc_area_pairs 2310, vc_extent_pairs
# 3109, vc_stats) and the VcBitmap op (one bitmap as hex, paged).  Bitmaps read as lists
# of set-track ranges, absolute track numbers, at most MAX_RANGES per bitmap.
import binascii

from firmware import core, wire
from firmware.args import Refused, is_int
from firmware.features.volcopy.state import BITMAPS, KEYS, T_AREA, T_PAIR, T_XPAIR, TABLES

MAX_RANGES = 32         # set-track ranges listed per bitmap in the readable tables


def _ranges_of(bm, nbits, off, more):
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


def _job_view(rec):
    if rec is None:
        return None
    return {"name": rec["name"], "kind": rec["kind"], "pointer": rec["pointer"], "copied": rec["copied"]}


def render(vc, tbl):
    out = []
    slots = vc.t[KEYS[tbl]]
    for i in range(len(slots)):
        s = slots[i]
        if not s["use"]:
            out.append({"slot": i, "use": 0})
            continue
        d = {"slot": i, "use": 1, "orig": s["orig"], "copy": s["copy"], "state": s["state"],
             "job": _job_view(s["job"])}
        if tbl == T_AREA:
            nbits, off = s["end"] - s["start"] + 1, s["start"]
            d["start"] = s["start"]
            d["end"] = s["end"]
        else:
            nbits, off = s["tracks"], 0
            d["tracks"] = nbits
        counts = {}
        for name in BITMAPS[tbl]:
            bm = vc.bm[(tbl, i, name)]
            more = []
            d[name] = _ranges_of(bm, nbits, off, more)
            counts[name] = core.count(bm, 0, nbits)
            if more:
                d.setdefault("truncated", []).append(name)
        d["set"] = counts
        if tbl == T_PAIR:
            d["extents"] = [{"entry": k, "start": e["start"], "end": e["end"], "job": _job_view(e["job"])}
                            for k, e in enumerate(s["extents"]) if e["use"]]
        elif tbl == T_XPAIR:
            d["extents"] = [list(x) for x in s["extents"]]
        out.append(d)
    return out


def stats(vc):
    d = dict(vc.stats)
    d["track_blocks"] = vc.tb
    t = vc.t
    d["slots"] = {"1310": len(t["pairs"]), "2310": len(t["areas"]), "3109": len(t["xpairs"])}
    d["running"] = [job.name for job, _, _ in vc.running]
    return d


def bitmap(vc, cmd):
    """One bitmap as hex, paged: {table, slot, name, offset (bytes), length (bytes)}."""
    tbl = cmd.get("table")
    i = cmd.get("slot")
    name = cmd.get("name")
    if tbl not in TABLES or not is_int(i) or name not in BITMAPS[tbl]:
        raise Refused(wire.E_BAD_PARAM, "table (1310/2310/3109), slot and name (%s) select a bitmap"
                      % "/".join(BITMAPS.get(tbl, ("G", "D", "U"))))
    bm = vc.bm.get((tbl, i, name))
    if bm is None:
        raise Refused(wire.E_BAD_PARAM, "table %r slot %r is not in use" % (tbl, i))
    s = vc.slot(tbl, i)
    nbits = s["end"] - s["start"] + 1 if tbl == T_AREA else s["tracks"]
    off = cmd.get("offset", 0)
    room = (vc.u.link.max_payload - 128) // 2
    ln = cmd.get("length", room)
    if not is_int(off) or not is_int(ln) or off < 0 or ln < 0:
        raise Refused(wire.E_BAD_PARAM, "offset and length must be integers >= 0")
    ln = min(ln, room, max(0, len(bm) - off))
    return wire.OK, {"bits": nbits, "bytes": len(bm), "offset": off,
                     "hex": binascii.hexlify(bm[off:off + ln]).decode()}


def register(vc, reg):
    async def vc_bitmap(u, cmd):
        return bitmap(vc, cmd)
    reg.op("VcBitmap", vc_bitmap)
    reg.table("vc_pairs", lambda u: render(vc, T_PAIR))
    reg.table("vc_area_pairs", lambda u: render(vc, T_AREA))
    reg.table("vc_extent_pairs", lambda u: render(vc, T_XPAIR))
    reg.table("vc_stats", lambda u: stats(vc))
