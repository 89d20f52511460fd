# The migration feature's commands (seed 003 E2 steps 701 / 704, E3, E4).  Every one
# checks all of its input before it changes anything; a refusal is a precise status.
#   mig_assign {lv, capacity, emulation, group?, mapped?}   710: an LV on unused LDEVs
#                                                    (in order; mapped false: on none yet)
#   migrate {lv, peer, src_lv, start, end, src_unit?, paused?}   704 / 711
#   place {lv, start, end, group, paused?}           E3: the reply is the mapped range
#   mig_clock {advance}                              E4: the harness moves the clock on
#   mig_level {}                                     E4: a levelling check now
#   mig_restart {}                                   E4: a new period from now, counters at 0
#   mig_path_rate {peer, src_lv, blocks, repeat}     the peer path's raw read rate (benchmark)
from firmware import ldev, wire
from firmware.args import Refused, need_bool, need_int
from firmware.clock import ms_since, ticks_ms
from firmware.features.migration import fetch, level, move
from firmware.features.migration.lvmap import remap


def register(mig, reg):
    def bind(fn):
        async def op(u, cmd):
            return await fn(mig, cmd)
        return op
    reg.op("mig_assign", bind(assign))
    reg.op("migrate", bind(migrate))
    reg.op("place", bind(place))
    reg.op("mig_clock", bind(clock))
    reg.op("mig_level", bind(level_now))
    reg.op("mig_restart", bind(restart))
    reg.op("mig_path_rate", bind(path_rate))


def need_area(v, cmd):
    start = cmd.get("start")
    end = cmd.get("end")
    for x in (start, end):
        if not isinstance(x, int) or isinstance(x, bool):
            raise Refused("start and end must be integers, got %r, %r" % (start, end))
    if start > end:
        raise Refused("the area's start %d is after its end %d" % (start, end))
    if not 0 <= start <= end < v["blocks"]:
        raise Refused(wire.E_OUT_OF_RANGE, "area %r..%r is not inside LV %d (0..%d)"
                      % (start, end, v["id"], v["blocks"] - 1))
    return start, end


def need_group(u, cmd):
    gid = cmd.get("group")
    if not isinstance(gid, int) or isinstance(gid, bool) or u.group(gid) is None:
        raise Refused("no RAID group %r" % (gid,))
    return gid


def need_free(mig, lv):
    why = mig.in_use(lv)
    if why is not None:
        raise Refused(wire.E_STATE, why)


# ---- E2 ------------------------------------------------------------------------------
async def assign(mig, cmd):
    """701 / 710: LV lv of `capacity` blocks on the lowest unused LDEVs, in order."""
    u = mig.u
    lv = need_int(cmd, "lv", 0, 65535)
    if ldev.volume(u, lv) is not None:
        raise Refused(wire.E_STATE, "LV %d exists" % lv)
    cap = need_int(cmd, "capacity", 1)
    em = cmd.get("emulation", "OPEN")
    if em not in ldev.defined(u.sm.t["config"]):
        raise Refused("emulation %r is not defined on this unit" % (em,))
    gid = need_group(u, cmd) if "group" in cmd else None
    if not need_bool(cmd, "mapped", True):         # an LV with no LDEV yet (placed later)
        v = {"id": lv, "blocks": cap, "extents": [], "emulation": em, "capacity": cap, "owner": "migration"}
        u.sm.t["volumes"].append(v)
        u.sm.save()
        return wire.OK, {"lv": lv, "ldevs": [], "lvs": ldev.lv_info(u, v)}
    sizes = [ldev.get(u, i)["count"] for i in ldev.free_ids(u, gid)]
    n = 1
    while n < len(sizes) and sum(sizes[:n]) < cap:      # the fewest lowest-numbered that hold it
        n += 1
    if sum(sizes[:n]) < cap:
        raise Refused(wire.E_NO_SPACE, "%d blocks on unused LDEVs, %d needed" % (sum(sizes), cap))
    ids = ldev.allocate(u, n, "volume", gid)
    v = ldev.make_lv(u, lv, ldev.extents_on(u, ids, 0, cap), em, cap)
    u.sm.save()
    return wire.OK, {"lv": lv, "ldevs": ids, "lvs": ldev.lv_info(u, v)}


async def migrate(mig, cmd):
    """704 -> 711: copy S's LV src_lv (over peer path `peer`) area start..end into LV lv."""
    u = mig.u
    v = ldev.need_volume(u, cmd, "lv")
    lv = v["id"]
    peer_k = need_int(cmd, "peer", 0, 15)
    src_lv = need_int(cmd, "src_lv", 0, 65535)
    start, end = need_area(v, cmd)
    paused = need_bool(cmd, "paused", False)
    src_unit = cmd.get("src_unit", peer_k)
    if not isinstance(src_unit, (int, str)) or isinstance(src_unit, bool):
        raise Refused("src_unit must be a controller number or name")
    need_free(mig, lv)
    if ldev.unmapped(v, start, end - start + 1) >= 0:
        raise Refused(wire.E_STATE, "LV %d has no LDEV at address %d" % (lv, ldev.unmapped(v, start, end - start + 1)))
    mig.pairs.check(v)                                 # I-5.4: a free 830 and 820, else refused
    async with mig.lock:
        st = await mig.fetcher.probe(peer_k, src_lv, end)
    if st != wire.OK:
        raise Refused(st, "LV %d on peer %d cannot be read up to address %d: %s"
                      % (src_lv, peer_k, end, wire.status_name(st)))
    need_free(mig, lv)                                 # (again: the probe waited)
    m = fetch.new_record(lv, peer_k, src_unit, src_lv, start, end, paused)
    mig.pairs.take(v, m)                               # 711: the 830 and 820 (E6)
    job = mig.add_migration(m)
    return wire.OK, {"lv": lv, "job": job.name, "pointer": m["pointer"], "state": m["state"], "830": m["830"],
                     "805": mig.pairs.dest[lv]}


async def path_rate(mig, cmd):
    """S's blocks 0..blocks-1 read `repeat` times over the path, stored nowhere: the
    path's raw rate for the benchmark's ratio (timed by the board)."""
    peer_k = need_int(cmd, "peer", 0, 15)
    src_lv = need_int(cmd, "src_lv", 0, 65535)
    n = need_int(cmd, "blocks", 1, mig.fetcher.most)
    rep = need_int(cmd, "repeat", 1, 100000)
    async with mig.lock:
        t0 = ticks_ms()
        for _ in range(rep):
            st = await mig.fetcher.read(peer_k, src_lv, 0, n)
            if st != wire.OK:
                raise Refused(st, "read of LV %d on peer %d: %s" % (src_lv, peer_k, wire.status_name(st)))
        ms = ms_since(t0)
    return wire.OK, {"bytes": n * rep * mig.u.bs, "ms": ms}


# ---- E3 ------------------------------------------------------------------------------
def place_plan(mig, v, start, end, gid):
    """(slots to map [(slot start, [(first, n)])], entries to rearrange) of a placement:
    the area's slots (multiples of the LDEV capacity) with unmapped addresses get a new
    LDEV each, the entries holding part of the area on another group move."""
    u = mig.u
    cap = mig.res.by_group[gid][1] if gid in mig.res.by_group else 0
    if cap == 0:
        raise Refused(wire.E_NO_SPACE, "assignment impossible: group %d has no LDEVs" % gid)
    ents = ldev.entries(u, v)
    moved = []
    for e in ents:
        a, b = e["range"]
        if b < start or a > end:
            continue
        if e["ldev"] < 0:
            raise Refused(wire.E_STATE, "LV %d addresses %d..%d are on no LDEV" % (v["id"], a, b))
        if ldev.get(u, e["ldev"])["group"] != gid:
            moved.append(e)
    new = []                 # slots of the area with unmapped addresses: one LDEV each
    slot = (start // cap) * cap
    while slot <= end:
        hi = min(slot + cap, v["blocks"])
        runs = []
        a = slot
        while a < hi:        # the slot's unmapped runs (clipped against the entries)
            x = ldev.unmapped(v, a, hi - a)
            if x < 0:
                break
            y = x + 1
            while y < hi and ldev.unmapped(v, y, 1) == y:
                y += 1
            runs.append((x, y - x))
            a = y
        if runs:
            new.append((slot, runs))
        slot += cap
    return new, moved


async def place(mig, cmd):
    u = mig.u
    v = ldev.need_volume(u, cmd, "lv")
    lv = v["id"]
    start, end = need_area(v, cmd)
    gid = need_group(u, cmd)
    paused = need_bool(cmd, "paused", False)
    need_free(mig, lv)
    new, moved = place_plan(mig, v, start, end, gid)
    want = len(new) + len(moved)
    free = ldev.free_ids(u, gid)
    if len(free) < want:
        raise Refused(wire.E_NO_SPACE, "assignment impossible: %d unused LDEVs on group %d, %d needed"
                      % (len(free), gid, want))
    ids = ldev.allocate(u, want, "volume", gid) if want else []
    for i in range(len(new)):          # unmapped parts: mapped at once (no data to copy)
        slot, runs = new[i]
        d = ldev.get(u, ids[i])
        for x, n in runs:
            remap(v, x, n, gid, d["start"] + x - slot)
    items = []
    for i in range(len(moved)):
        e = moved[i]
        items.append(move.item(u, e["ldev"], ids[len(new) + i], e["range"][0], e["range"][1], e["offset"]))
    job = None
    if items:
        job = mig.add_move(move.new_record(lv, items, "place", paused))
    else:
        u.sm.save()
    lo = hi = None
    for e in ldev.entries(u, v):
        a, b = e["range"]
        if b < start or a > end:
            continue
        lo = a if lo is None else min(lo, a)
        hi = b if hi is None else max(hi, b)
    return wire.OK, {"lv": lv, "range": [lo, hi], "ldevs": ids, "job": job.name if job else None}


# ---- E4 ------------------------------------------------------------------------------
async def clock(mig, cmd):
    ms = need_int(cmd, "advance", 0, 1 << 30)
    ended = mig.stats.advance(ms)
    out = []
    for last in ended:
        rec = {"period": last["period"], "groups": last["groups"], "moves": []}
        if mig.cfg["auto_level"]:
            rec["moves"] = start_moves(mig, last)
            mig.log_level(rec)
        out.append(rec)
    mig.u.sm.save()
    return wire.OK, {"clock": mig.t["clock"], "periods": out}


async def restart(mig, cmd):
    mig.stats.restart()
    mig.u.sm.save()
    return wire.OK, {"clock": mig.t["clock"], "period_start": mig.t["period_start"]}


async def level_now(mig, cmd):
    last = mig.t.get("last")
    if last is None:
        raise Refused(wire.E_STATE, "no period has ended yet (mig_clock)")
    rec = {"period": last["period"], "groups": last["groups"], "moves": start_moves(mig, last)}
    mig.log_level(rec)
    mig.u.sm.save()
    return wire.OK, rec


def start_moves(mig, last):
    """The levelling check of one period: plan, then one move job per LV."""
    u = mig.u
    owner = {}                            # movable LDEV -> (lv, entry): one entry of an idle LV
    for n in range(mig.res.count()):
        h = move.holders(u, n)
        if len(h) == 1 and mig.in_use(h[0][0]) is None:
            owner[n] = h[0]
    free = {}
    for gid, _ in mig.res.groups():
        free[gid] = len(ldev.free_ids(u, gid))
    plan = level.plan(last, lambda n: n in owner, free, mig.cfg)
    by_lv = {}
    out = []
    for ld, a, b, util, pat in plan:
        dst = ldev.allocate(u, 1, "volume", b)[0]
        lv, e = owner[ld]
        by_lv.setdefault(lv, []).append(move.item(u, ld, dst, e["range"][0], e["range"][1], e["offset"]))
        out.append({"ldev": ld, "from": a, "to": b, "dst": dst, "lv": lv, "utilization": util, "pattern": pat})
    for lv in sorted(by_lv):
        items = sorted(by_lv[lv], key=lambda it: it["first"])
        mig.add_move(move.new_record(lv, items, "level", False))
    return out
