# Remote copy, the source unit S: pair creation (Fig 4 / E5), the write path (Fig 5),
# suspend / resync / release.
#
# rc_pair {volume, start, end, peer, t_lv?, t_group?, full_capacity?, paused?}: every check first (the LV,
# the area inside its capacity, no overlap and no group shared with another area, the
# pools); then PairGen to T over peer path `peer`; only T's completion makes S change
# anything (400 and 411 applied together: on "impossible" S stays simplex).  A free
# 830, on the LV's first pair a free 820 (groups meeting the area -> the 830#), 836 =
# UNDER COPYING, 837 = 834, every track of the area marked changed, and the copy job.
#
# The write stage runs after the data is in S's cache (after_commit): for each pair the
# groups of the write name (805 -> 820 -> 830), the part inside 834..835 is forwarded
# when DUPLEX, or below 837 when UNDER COPYING; the rest of the area is marked changed
# (the copy or a resync sends it).  The host is acknowledged after T's answers.  A
# forward that fails suspends the pair and marks its tracks; the write is still
# acknowledged from S alone ("suspend and acknowledge").
from firmware import ldev, pairtables, peer, wire
from firmware.args import Refused, is_int, need_bool, need_int
from firmware.features.remote_copy import copyjob
from firmware.features.remote_copy.copyjob import OP_WRITE, RC_CTL, TIMEOUT_MS
from firmware.features.remote_copy.state import COPYING, DUPLEX, OWNER, SIMPLEX, SOURCE, SUSPENDED, free_pair


async def intent(rc, u, v, lba, count, data):
    """before_cache: the write's tracks in every pair it touches are marked before S
    stores it (saved when a mark is new), so a reset of S before T has the data resends
    them; the marks of what T acknowledges go at the next save.  Off (write_intent = 0):
    only what is not forwarded is marked, after the store (docs/remote_copy.md)."""
    if not rc.cfg["write_intent"]:
        return None
    new = False
    for i in rc.hit(v, lba, count):
        s = rc.pair(i)
        a = max(lba, s["834"])
        b = min(lba + count - 1, s["835"])
        if a <= b and rc.intent(i, a, b):
            new = True
    if new:
        rc.intent_save = True            # this save keeps the other marks (they go at the saver's)
        try:
            u.sm.save()
        finally:
            rc.intent_save = False
    return None


async def write(rc, u, v, lba, count, data):
    """after_commit: forward per 836 / 837 (Fig 5, E5's 834-837 rule); the host's
    acknowledgement waits for T's."""
    hit = rc.hit(v, lba, count)
    if not hit:
        return None
    tracing = u.tracing
    if tracing:
        u.trace("rc", "s_cache", v["id"], lba, count)
    bs = u.bs
    wi = rc.cfg["write_intent"]
    save = False
    for i in hit:
        s = rc.pair(i)
        a = max(lba, s["834"])
        b = min(lba + count - 1, s["835"])
        if a > b or i not in rc.bm:
            continue
        async with rc.locks[i]:
            st = s["836"]
            top = b if st == DUPLEX else (min(b, s["837"] - 1) if st == COPYING else a - 1)
            if top >= a:
                if tracing:
                    u.trace("rc", "sent", v["id"], a, top - a + 1, s["832"])
                r = await copyjob.send(rc, i, OP_WRITE, a, top - a + 1, data[(a - lba) * bs:(top - lba + 1) * bs])
                if r == wire.OK:
                    rc.cnt["forwarded"] += 1
                    rc.cnt["forwarded_blocks"] += top - a + 1
                    if wi:
                        rc.settle(i, a, top, True)
                    if tracing:
                        u.trace("rc", "t_acked", v["id"], a, top - a + 1)
                else:
                    copyjob.suspend(rc, i, "write: %s" % wire.status_name(r))
                    top = a - 1
            if top < b:
                if not wi and rc.intent(i, top + 1, b):
                    save = True
                rc.settle(i, top + 1, b, False)
    if save:
        u.sm.save()          # without write-intent: a change T lacks is saved before the host hears
    if wi:
        u.sm.dirty = True    # the saver drops the acknowledged marks
    if tracing:
        u.trace("rc", "host_ack", v["id"], lba, count)
    return None


def _area(rc, u, cmd):
    """(v, start, end) of a request, checked against the LV and its other areas."""
    v = ldev.need_volume(u, cmd)
    cap = ldev.capacity(v)
    if not is_int(cmd.get("start")) or not is_int(cmd.get("end")):
        raise Refused("start and end must be integers (an inclusive area)")
    a, b = cmd["start"], cmd["end"]
    if a < 0 or b < a or b >= cap:
        raise Refused(wire.E_OUT_OF_RANGE, "area %r..%r is not inside LV %d (0..%d)" % (a, b, v["id"], cap - 1))
    if ldev.unmapped(v, a, b - a + 1) >= 0:
        raise Refused(wire.E_OUT_OF_RANGE, "LV %d does not map address %d" % (v["id"], ldev.unmapped(v, a, b - a + 1)))
    if rc.is_dest(v):
        raise Refused(wire.E_STATE, "LV %d is a copy destination" % v["id"])
    why = pairtables.other_use(rc.t, v["id"], rc.sources.get(v["id"], -1))
    if why:
        raise Refused(wire.E_STATE, why)
    gs = rc.gsize(v)
    for i in rc.pairs_of(v["id"]):
        s = rc.pair(i)
        if a <= s["835"] and s["834"] <= b:
            raise Refused(wire.E_CONFLICT, "area %d..%d overlaps area %d..%d (pair %d)" % (a, b, s["834"], s["835"], i))
        if a // gs <= s["835"] // gs and s["834"] // gs <= b // gs:
            raise Refused(wire.E_CONFLICT, "area %d..%d shares a group of %d blocks with area %d..%d (pair %d)"
                          % (a, b, gs, s["834"], s["835"], i))
    return v, a, b


async def op_pair(rc, u, cmd):
    v, a, b = _area(rc, u, cmd)
    k = need_int(cmd, "peer", 0, 15)
    full = need_bool(cmd, "full_capacity", False)
    paused = need_bool(cmd, "paused", False)
    t_lv = need_int(cmd, "t_lv", 0, 65535) if "t_lv" in cmd else None
    t_group = need_int(cmd, "t_group", 0, 255) if "t_group" in cmd else None
    pi = pairtables.free_index(rc.t["830"])
    gi = rc.sources.get(v["id"], -1)
    if gi < 0:
        gi = pairtables.free_index(rc.t["820"])
    if pi < 0 or gi < 0:
        raise Refused(wire.E_NO_TABLE, "no free %s table in the pool" % ("pair (830)" if pi < 0 else "group (820)"))
    em = v.get("emulation", "OPEN")
    msg = {"op": "pairgen", "controller": rc.cfg["controller"], "lv": v["id"], "emulation": em,
           "capacity": ldev.capacity(v), "start": a, "end": b, "full_capacity": full}
    if t_lv is not None:
        msg["t_lv"] = t_lv
    if t_group is not None:
        msg["t_group"] = t_group
    u.trace("rc", "pairgen", v["id"], a, b, k)
    st, r = await peer.call(u, k, RC_CTL, msg, TIMEOUT_MS)
    if st != wire.OK:
        u.trace("rc", "pairgen_refused", v["id"], wire.status_name(st))
        raise Refused(st, r.get("error", wire.status_name(st)))
    # 411: T's completion; now S records the pair
    if rc.t["830"][pi]["use"] or (gi not in rc.sources.values() and rc.t["820"][gi]["use"]):
        raise Refused(wire.E_NO_TABLE, "the pool's tables %d / %d were taken meanwhile (rc_delete LV %d on T)"
                      % (pi, gi, r["lv"]))
    s = free_pair()
    s.update({"use": 1, "owner": OWNER, "831": r["controller"], "832": r["lv"], "833": v["id"], "834": a, "835": b,
              "836": COPYING, "837": a, "path": k, "paused": paused})
    rc.t["830"][pi] = s
    rc.slot(pi)
    pairtables.fill_group(rc.t, gi, OWNER, SOURCE, v, rc.gsize(v), pi, a, b)
    rc.new_bits(pi, True)
    rc.index()
    u.sm.save()
    copyjob.start(rc, pi)
    return wire.OK, {"pair": pi, "t_lv": r["lv"], "t_controller": r["controller"], "group_table": gi,
                     "ldevs": r.get("ldevs", [])}


def _pair_arg(rc, u, cmd):
    i = cmd.get("pair")
    if not is_int(i) or i < 0 or i >= len(rc.t["830"]) or not rc.pair(i)["use"]:
        raise Refused("no pair %r" % (i,))
    if not rc.mine(rc.pair(i)):
        raise Refused(wire.E_STATE, "pair table %d is a %s's" % (i, rc.pair(i)["owner"]))
    return i


async def op_suspend(rc, u, cmd):
    i = _pair_arg(rc, u, cmd)
    async with rc.locks[i]:
        if rc.pair(i)["836"] == SUSPENDED:
            raise Refused(wire.E_STATE, "pair %d is already suspended" % i)
        copyjob.suspend(rc, i, "user")
    await copyjob.tell(rc, i, SUSPENDED)
    return wire.OK, {"pair": i, "state": SUSPENDED}


async def resync(rc, i):
    """836 = UNDER COPYING from 834: the job sends only the changed tracks."""
    s = rc.pair(i)
    st = await copyjob.tell(rc, i, COPYING)
    if st != wire.OK:
        return st
    async with rc.locks[i]:
        if s["836"] != SUSPENDED:
            return wire.E_STATE
        s["836"] = COPYING
        s["837"] = s["834"]
        s["scanned"] = 0
        s["why"] = ""
        rc.u.sm.save()
        copyjob.start(rc, i)
    rc.u.trace("rc", "resync", s["833"], i, rc.changed_tracks(i))
    return wire.OK


async def op_resync(rc, u, cmd):
    i = _pair_arg(rc, u, cmd)
    if rc.pair(i)["836"] != SUSPENDED:
        raise Refused(wire.E_STATE, "pair %d is %s, not suspended" % (i, rc.pair(i)["836"]))
    st = await resync(rc, i)
    if st != wire.OK:
        raise Refused(st, "pair %d: the path to its copy destination answers %s" % (i, wire.status_name(st)))
    return wire.OK, {"pair": i, "state": COPYING, "changed": rc.changed_tracks(i)}


async def op_release(rc, u, cmd):
    """Release a DUPLEX or SUSPENDED pair: its 830 back to the pool, its 820 entries
    cleared, the 820 back too when it was the LV's last pair.  T keeps LV(T) as it is."""
    i = _pair_arg(rc, u, cmd)
    s = rc.pair(i)
    if s["836"] not in (DUPLEX, SUSPENDED):
        raise Refused(wire.E_STATE, "pair %d is %s (suspend it first)" % (i, s["836"]))
    st, _ = await peer.call(u, s["path"], RC_CTL, {"op": "release", "lv": s["832"]}, TIMEOUT_MS)
    async with rc.locks[i]:
        pairtables.release(rc.t, rc.sources[s["833"]], i)
        for d in (rc.bm, rc.acked, rc.inflight):
            d.pop(i, None)
        rc.jobs.pop(i, None)
        rc.index()
        u.sm.save()
    return wire.OK, {"pair": i, "state": SIMPLEX, "t_told": wire.status_name(st)}


async def op_path_rate(rc, u, cmd):
    """The path's raw rate: `frames` frames of `blocks` blocks each sent to T one after
    another (as the copy sends tracks), answered without being stored; firmware time."""
    import struct

    from firmware.clock import ms_since, ticks_ms
    from firmware.features.remote_copy.copyjob import HEAD, HL, OP_PROBE

    k = need_int(cmd, "peer", 0, 15)
    most = (u.link.max_payload - HL - 8) // u.bs
    n = need_int(cmd, "blocks", 1, most)
    frames = need_int(cmd, "frames", 1, 100000)
    head = bytearray(HL)
    struct.pack_into(HEAD, head, 0, copyjob.RC_DATA, OP_PROBE, 0, 0, n)
    data = bytearray(n * u.bs)
    into = bytearray(16)
    t0 = ticks_ms()
    for _ in range(frames):
        st, _ = await peer.request(u, wire.CH_PEER + k, wire.K_PEER, head, data, into, TIMEOUT_MS)
        if st != wire.OK:
            raise Refused(st, "path %d: %s" % (k, wire.status_name(st)))
    ms = ms_since(t0)
    return wire.OK, {"frames": frames, "bytes": frames * n * u.bs, "ms": ms}


async def prober(rc):
    """Background: pairs suspended by a fault are resynchronized once their path
    answers again (every probe_ms; off when 0)."""
    from firmware.link import sleep_ms

    ms = rc.cfg["probe_ms"]
    while rc.live and ms:
        await sleep_ms(ms)
        for i in range(len(rc.t["830"])):
            s = rc.pair(i)
            if s["use"] and s["836"] == SUSPENDED and s["why"] not in ("", "user"):
                await resync(rc, i)
