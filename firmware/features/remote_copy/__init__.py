# Remote copy of partial areas of an LV between two units (seed 003 E1 with the E5/E6
# tables), and failover on the copy destination.  docs/remote_copy.md describes it.
#   state.py    settings, the SM tables (830 pairs and 820 groups from fixed pools, 900)
#   copyjob.py  the copy of a pair as a job, the block transfer to T, suspend
#   source.py   S: pair creation (PairGen), the write path (Fig 5), suspend / resync / release
#   target.py   T: PairGen (410), the blocks from S, the host's view, failover (Figs 6, 12)
# Settings cfg["remote_copy"]: controller (required), pairs, groups, group_blocks, probe_ms.
import binascii

from firmware import core, ldev, pairtables
from firmware.features.remote_copy import copyjob, source, target
from firmware.features.remote_copy.state import COPYING, DEST, DUPLEX, RC, SOURCE, settings


def validate(cfg, tables):
    settings(cfg)


def attach(u, reg):
    rc = RC(u, settings(u.sm.t["config"]))
    reg.stage("before_cache", lambda u, v, lba, n, d: source.intent(rc, u, v, lba, n, d), when=rc.is_source)
    reg.stage("after_commit", lambda u, v, lba, n, d: source.write(rc, u, v, lba, n, d), when=rc.is_source)
    reg.stage("check", lambda u, v, lba, n, d: target.host_write(rc, u, v, lba, n, d), when=rc.is_dest)
    reg.stage("read_check", lambda u, v, lba, n, o: target.host_read(rc, u, v, lba, n, o), when=rc.is_dest)
    reg.peer(copyjob.RC_CTL, lambda u, req, p: target.on_ctl(rc, u, req, p))
    reg.peer(copyjob.RC_DATA, lambda u, req, p: target.on_data(rc, u, req, p))
    for name, fn in (("rc_pair", source.op_pair), ("rc_suspend", source.op_suspend),
                     ("rc_resync", source.op_resync), ("rc_release", source.op_release),
                     ("rc_failover_info", target.op_info), ("rc_extend", target.op_extend),
                     ("rc_takeover", target.op_takeover), ("rc_path_rate", source.op_path_rate),
                     ("rc_delete", target.op_delete)):
        reg.op(name, _bind(rc, fn))
    reg.table("rc_830", lambda u: table_830(rc))
    reg.table("rc_820", lambda u: rc.t["820"])
    reg.table("rc_900", lambda u: rc.t["900"])
    reg.table("rc_800", lambda u: table_800(rc, u))
    reg.table("rc_300", lambda u: table_300(rc, u))
    reg.table("remote_copy", lambda u: {"controller": rc.cfg["controller"], "counters": rc.cnt})
    reg.before_save(rc.sync)
    for i in range(len(rc.t["830"])):
        resume(rc, i)
    if rc.cfg["probe_ms"]:
        reg.task(source.prober(rc))
    return rc


def resume(rc, i):
    """At attach (a reset): a copy goes on from 837 unless a track behind it is marked
    (a write in flight at the reset), then it scans again from 834 sending only marked
    tracks; a DUPLEX pair with marked tracks resynchronizes the same way."""
    s = rc.pair(i)
    if not rc.mine(s) or s["836"] not in (COPYING, DUPLEX):
        return
    t0, tb = rc.tracks(i)
    behind = min(s["837"], s["835"] + 1) // tb - t0 if s["836"] == COPYING else len(rc.bm[i]) * 8
    if core.next_set(rc.bm[i], 0, behind) >= 0:
        s["836"] = COPYING
        s["837"] = s["834"]
        s["scanned"] = 0
        s["why"] = "reset"
    if s["836"] == COPYING:
        copyjob.start(rc, i)


def _bind(rc, fn):
    async def op(u, cmd):
        return await fn(rc, u, cmd)
    return op


def table_830(rc):
    """The pair tables with their live bitmaps (marks of writes T acknowledged included)
    and the number of tracks T lacks."""
    out = []
    for i in range(len(rc.t["830"])):
        d = dict(rc.t["830"][i])
        if i in rc.bm:
            d["bits"] = binascii.hexlify(rc.bm[i]).decode()
        d["changed"] = rc.changed_tracks(i)
        out.append(d)
    return out


def table_800(rc, u):
    """Table 800 of every LV: 801 groups, 803 emulation, 804, 805 (805 / 804 from the 820
    that names the LV, a migration's too; a copy destination of this feature has none)."""
    out = []
    for v in u.sm.t["volumes"]:
        gi = pairtables.group_of(rc.t, v["id"])
        role = rc.t["820"][gi]["804"] if gi >= 0 else (DEST if rc.is_dest(v) else None)
        out.append({"lv": v["id"], "801": [e[2] for e in v["extents"]], "803": [v.get("emulation", "OPEN"),
                    ldev.capacity(v)], "804": role, "805": gi if gi >= 0 else None})
    return out


def table_300(rc, u):
    """The E1 view (table 300 with 302 / 305 / 306 / 307, 310's 314 / 315) of the LVs in a pair."""
    out = []
    for v in u.sm.t["volumes"]:
        if rc.is_source(v):
            areas = [(rc.pair(i)["834"], rc.pair(i)["835"], rc.pair(i)) for i in rc.pairs_of(v["id"])]
            side = SOURCE
        elif rc.is_dest(v):
            d = rc.dests[v["id"]]
            areas = [(a, b, None) for a, b in d["907"]]
            side = DEST
        else:
            continue
        ents = []
        for x in ldev.entries(u, v):
            lo, hi = x["range"]
            e = {"301": x["ldev"], "308": [lo, hi], "302": "COPY ABSENT", "305": None, "314": None, "315": None}
            for a, b, s in areas:
                if a <= hi and lo <= b:
                    e["302"] = "REMOTE COPY PRESENT"
                    e["305"] = [max(a, lo), min(b, hi)]
                    e["314"] = s["831"] if s else rc.dests[v["id"]]["905"]
                    e["315"] = s["832"] if s else None
            ents.append(e)
        pairs = [{"306": s["837"], "307": s["836"], "area": [a, b]} for a, b, s in areas if s] if side == SOURCE \
            else [{"307": rc.dests[v["id"]]["state"]}]
        out.append({"lv": v["id"], "303": [v.get("emulation", "OPEN"), ldev.capacity(v)], "304": side,
                    "entries": ents, "pairs": pairs})
    return out

