# Remote copy, the destination unit T: PairGen (step 410), the blocks S sends (510/511),
# the host's view of a copy destination, and failover (Figs 6 and 12, table 900).
#
# PairGen: T takes the designated unused LV# (t_lv) or the lowest unused one, and the
# lowest-numbered free LDEVs of any group (or of the user's t_group) covering only the area (full_capacity: the
# whole capacity from 0); S addresses are mapped in order from the area's start (an
# LDEV may run past S's capacity: seed 410's j = 3n..5n-1), so a T address is the S
# address.  No LV#, too few LDEVs, or an emulation type T does not define: "impossible
# to generate a copy" (COPY_IMPOSSIBLE) and nothing changes on either side.
#
# A copy destination (904 = COPY DESTINATION) refuses host writes (WRITE_PROTECTED)
# and reads of addresses it does not map (OUT_OF_RANGE) until it is taken over.
# Failover: rc_failover_info (601 / 1001), rc_extend (602: merge several LV(T)s of one
# LV(S) and map the missing S addresses on free LDEVs in order), rc_takeover (604:
# "use as it is"; the LV becomes an ordinary writable volume).  The host utility that
# erases file entries outside the areas (603) is host/features/remote_copy.py.
import struct

from firmware import ldev, peer, store, wire
from firmware.args import Refused, is_int, need_list
from firmware.features.remote_copy.copyjob import HEAD, HL, OP_COPY, OP_PROBE
from firmware.features.remote_copy.state import DEST, SUSPENDED


def _ldevs_for(u, blocks, group=None):
    """How many of the lowest free LDEVs (of `group` when given) cover `blocks`, or -1."""
    got = 0
    n = 0
    for i in ldev.free_ids(u, group):
        if got >= blocks:
            break
        got += ldev.get(u, i)["count"]
        n += 1
    return n if got >= blocks else -1


def pairgen(rc, u, msg):
    """(status, reply) of a PairGen; changes nothing unless it succeeds."""
    cfg = u.sm.t["config"]
    try:
        em = msg["emulation"]
        cap = msg["capacity"]
        a = msg["start"]
        b = msg["end"]
        src = msg["controller"]
        s_lv = msg["lv"]
        full = bool(msg.get("full_capacity"))
    except (KeyError, TypeError):
        return wire.E_BAD_PARAM, {"error": "PairGen needs emulation, capacity, start, end, controller, lv"}
    if src == rc.cfg["controller"]:
        return wire.E_BAD_PARAM, {"error": "pairing a volume with itself (controller %d)" % src}
    if em not in ldev.defined(cfg):
        return wire.E_COPY_IMPOSSIBLE, {"error": "impossible to generate a copy: emulation %r not defined" % em}
    group = msg.get("t_group")
    if group is not None and u.group(group) is None:
        return wire.E_BAD_PARAM, {"error": "no RAID group %r on this unit" % (group,)}
    lv = msg.get("t_lv")
    if lv is None:
        lv = ldev.free_lv_id(u)
    elif ldev.volume(u, lv) is not None:
        return wire.E_COPY_IMPOSSIBLE, {"error": "impossible to generate a copy: LV %d is in use" % lv}
    first = 0 if full else a
    blocks = cap if full else b - a + 1
    n = _ldevs_for(u, blocks, group)
    if n < 0:
        return wire.E_COPY_IMPOSSIBLE, {"error": "impossible to generate a copy: free LDEVs hold fewer than %d blocks"
                                        % blocks}
    ids = ldev.allocate(u, n, "remote_copy", group)
    ext = ldev.extents_on(u, ids, first)
    v = ldev.make_lv(u, lv, ext, em, cap, "remote_copy")
    v["blocks"] = cap
    rc.t["900"].append({"lv": lv, "903": [em, cap], "904": DEST, "905": src, "906": s_lv, "907": [[a, b]],
                        "state": "UNDER COPYING"})
    rc.index()
    u.sm.save()
    u.trace("rc", "pairgen_done", lv, a, b, len(ids))
    return wire.OK, {"controller": rc.cfg["controller"], "lv": lv, "ldevs": ids}


async def on_ctl(rc, u, req, p):
    msg = peer.decode(u, req, p)
    if msg is None:
        return
    op = msg.get("op")
    if op == "pairgen":
        st, r = pairgen(rc, u, msg)
        return peer.answer(u, req, st, r)
    d = rc.dests.get(msg.get("lv"))
    if d is None:
        return peer.answer(u, req, wire.E_NO_VOLUME, {"error": "no copy destination %r" % (msg.get("lv"),)})
    if op == "state":
        if d.get("merged") or d["904"] != DEST:
            return peer.answer(u, req, wire.E_STATE, {"error": "LV %d was extended or taken over" % d["lv"]})
        d["state"] = msg.get("state", d["state"])
        u.sm.save()
        return peer.answer(u, req, wire.OK, {"state": d["state"]})
    if op == "release":
        d["state"] = "SIMPLEX"
        d["released"] = True
        u.sm.save()
        return peer.answer(u, req, wire.OK, {})
    peer.answer(u, req, wire.E_BAD_PARAM, {"error": "unknown op %r" % (op,)})


async def on_data(rc, u, req, p):
    link = u.link
    if len(p) < HL:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    _, op, lv, lba, count = struct.unpack_from(HEAD, p, 0)
    if op == OP_PROBE:
        return link.respond(req.ch, req.kind, req.seq, wire.OK if len(p) == HL + count * u.bs else wire.E_BAD_LENGTH)
    d = rc.dests.get(lv)
    v = ldev.volume(u, lv)
    if d is None or v is None:
        return link.respond(req.ch, req.kind, req.seq, wire.E_NO_VOLUME)
    if d.get("merged") or d.get("released") or d["904"] != DEST:
        return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
    if len(p) != HL + count * u.bs or count == 0:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    if not inside(d, lba, count) or ldev.unmapped(v, lba, count) >= 0:
        return link.respond(req.ch, req.kind, req.seq, wire.E_OUT_OF_RANGE)
    await store.write_vol(u, v, lba, count, p[HL:])           # 510: into T's cache
    rc.cnt["remote_writes"] += 1
    if u.tracing and op != OP_COPY:
        u.trace("rc", "t_cache", lv, lba, count)
        u.trace("rc", "t_ack", lv, lba, count)
    link.respond(req.ch, req.kind, req.seq, wire.OK)         # 511


def inside(d, lba, count):
    for a, b in d["907"]:
        if a <= lba and lba + count - 1 <= b:
            return True
    return False


# ---- the host's view of a copy destination --------------------------------------------
async def host_write(rc, u, v, lba, count, data):
    if v["id"] in rc.dests:
        return wire.E_WRITE_PROTECTED
    return None


async def host_read(rc, u, v, lba, count, out):
    if v["id"] in rc.dests and (lba + count > ldev.capacity(v) or ldev.unmapped(v, lba, count) >= 0):
        return wire.E_OUT_OF_RANGE
    return None


# ---- failover --------------------------------------------------------------------------
def _dest(rc, u, lv):
    v = ldev.volume(u, lv) if is_int(lv) else None
    if v is None:
        raise Refused(wire.E_NO_VOLUME, "no volume %r" % (lv,))
    d = rc.dests.get(lv)
    if d is None:
        raise Refused(wire.E_STATE, "LV %d is not a copy destination" % lv)
    return v, d


def missing(v, cap):
    """The S addresses 0..cap-1 no extent of v maps: [[first, count], ...] in order."""
    out = []
    a = 0
    while a < cap:
        u0 = ldev.unmapped(v, a, cap - a)
        if u0 < 0:
            break
        e = u0
        while e < cap and ldev.unmapped(v, e, 1) == e:
            e += 1
        out.append([u0, e - u0])
        a = e
    return out


async def op_info(rc, u, cmd):
    v, d = _dest(rc, u, cmd.get("volume"))
    em, cap = d["903"]
    runs = missing(v, cap)
    mapped = 0
    for e in v["extents"]:
        mapped += e[1]
    return wire.OK, {"lv": v["id"], "emulation": em, "source_capacity": cap, "mapped": mapped,
                     "areas": d["907"], "missing": runs, "extend": bool(runs), "source": [d["905"], d["906"]],
                     "state": d["state"], "entries": ldev.entries(u, v)}


async def op_extend(rc, u, cmd):
    """602 / 1003: merge LV(T)s of one LV(S) (disjoint areas) and map the S addresses
    none of them maps on the lowest free LDEVs, each run cut at the LDEV capacity."""
    lvs = need_list(cmd, "volumes")
    if not lvs:
        raise Refused("volumes must name at least one copy destination")
    pairs = [_dest(rc, u, lv) for lv in lvs]
    if len(set(lvs)) != len(lvs):
        raise Refused("a volume is named twice")
    src = (pairs[0][1]["905"], pairs[0][1]["906"], pairs[0][1]["903"][0], pairs[0][1]["903"][1])
    for v, d in pairs:
        if (d["905"], d["906"], d["903"][0], d["903"][1]) != src:
            raise Refused("LV %d copies another source (or emulation) than LV %d" % (v["id"], lvs[0]))
    cap = src[3]
    ext = []
    areas = []
    for v, d in pairs:
        ext += v["extents"]
        areas += d["907"]
    ext.sort(key=lambda e: e[0])
    for k in range(1, len(ext)):
        if ext[k][0] < ext[k - 1][0] + ext[k - 1][1]:
            raise Refused(wire.E_CONFLICT, "the LVs map the same S address %d" % ext[k][0])
    target = cmd.get("lv", min(lvs))
    if not is_int(target) or (target not in lvs and ldev.volume(u, target) is not None):
        raise Refused(wire.E_STATE, "LV %r is in use" % (target,))
    whole = {"id": -1, "extents": ext}
    runs = missing(whole, cap)
    size = ldev.get(u, 0)["count"] if ldev.ldevs(u) else 1
    need = 0
    for run in runs:
        need += (run[1] + size - 1) // size
    if need and len(ldev.free_ids(u)) < need:
        raise Refused(wire.E_NO_SPACE, "%d free LDEVs, %d needed to extend to %d blocks"
                      % (len(ldev.free_ids(u)), need, cap))
    # validated: now change
    new = ldev.allocate(u, need, "remote_copy") if need else []
    k = 0
    for a, n in runs:
        while n > 0:
            m = min(n, size)
            ext += ldev.extents_on(u, [new[k]], a, m)
            k += 1
            a += m
            n -= m
    ext.sort(key=lambda e: e[0])
    for v, d in pairs:
        u.sm.t["volumes"].remove(v)
        rc.t["900"].remove(d)
    em = src[2]
    v = ldev.make_lv(u, target, ext, em, cap, "remote_copy")
    v["blocks"] = cap
    areas.sort()
    rc.t["900"].append({"lv": target, "903": [em, cap], "904": DEST, "905": src[0], "906": src[1], "907": areas,
                        "state": SUSPENDED, "merged": True})
    rc.index()
    u.sm.save()
    return wire.OK, {"lv": target, "added_ldevs": new, "entries": ldev.entries(u, v), "areas": areas}


async def op_takeover(rc, u, cmd):
    """604: use LV(T) as it is: 904 cleared, the LV writable, remote writes refused.
    Addresses it does not map stay unreadable (extend first for a full volume)."""
    v, d = _dest(rc, u, cmd.get("volume"))
    if ldev.unmapped(v, 0, ldev.capacity(v)) >= 0:
        raise Refused(wire.E_STATE, "LV %d does not map S address %d: rc_extend it first"
                      % (v["id"], ldev.unmapped(v, 0, ldev.capacity(v))))
    rc.t["900"].remove(d)
    v.pop("owner", None)
    rc.index()
    u.sm.save()
    return wire.OK, {"lv": v["id"], "blocks": v["blocks"], "areas": d["907"]}


async def op_delete(rc, u, cmd):
    """Remove a copy destination (a released pair's LV(T), or one a PairGen left behind
    when its answer never reached S): the LV goes, its LDEVs are free again."""
    v, d = _dest(rc, u, cmd.get("volume"))
    ids = ldev.ldevs_of(u, v)
    ldev.delete_lv(u, v)
    rc.t["900"].remove(d)
    rc.index()
    u.sm.save()
    return wire.OK, {"lv": v["id"], "freed": ids}
