# Mirror with sub-host access (seed 002): a main volume on the main unit and its
# mirrored sub volume on the sub unit.  docs/mirror.md describes it.
#   main unit: a host write is noticed to the sub unit, stored, then copied over path 202
#              (JOB5 -> JOB2), acknowledged only after the sub's answer (chain.py).
#   sub unit:  a host write is forwarded to the main unit over path 203 first
#              (JOB1 -> JOB3 -> JOB4); the sub volume is written only by the copy that
#              comes back from the main unit (JOB5 -> JOB2) (sub.py); 521 / 603 (comm.py).
# Settings cfg["mirror"]: role "main" | "sub", volume (this unit's), peer_volume (the
# other unit's), out_peer (peer index of this unit's outgoing path: main 202, sub 203),
# mode "sync" | "async", comm "disk" | "cache" | "none" (sub), comm_volume (comm "disk"),
# slots (521 slots, sub).  Example 3: role "sym" on both units, exclusive "main" | "sub"
# (which of the two volumes is the exclusive main volume), host (the id of the unit's
# host, for reservations), mode (sym.py).
from firmware import wire
from firmware.args import Refused, need_choice, need_int, need_table, only_keys
from firmware.features.mirror import chain
from firmware.features.mirror.comm import KINDS

KEYS = ("role", "volume", "peer_volume", "out_peer", "mode", "comm", "comm_volume", "slots", "exclusive", "host")


def _vol(tables, vid):
    for v in tables["volumes"]:
        if v["id"] == vid:
            return v
    raise Refused("mirror: no volume %d" % vid)


def validate(cfg, tables):
    c = need_table(cfg, "mirror")
    only_keys(c, KEYS, "mirror")
    need_choice(c, "role", ("main", "sub", "sym"))
    if c["role"] == "sym":
        need_choice(c, "exclusive", ("main", "sub"))
        need_int(c, "host", 1, 65535)
    elif "exclusive" in c or "host" in c:
        raise Refused("mirror: exclusive and host belong to role \"sym\" (example 3)")
    v = _vol(tables, need_int(c, "volume", 0, 65535))
    need_int(c, "peer_volume", 0, 65535)
    need_int(c, "out_peer", 0, 15)
    if "mode" in c:
        need_choice(c, "mode", ("sync", "async"))
    if "slots" in c:
        need_int(c, "slots", 1, 16)
    if "comm" in c:
        need_choice(c, "comm", KINDS)
        if c["role"] != "sub":
            raise Refused("mirror: comm belongs to the sub unit (the one with volume 603)")
    if c.get("comm") == "disk":
        cv = _vol(tables, need_int(c, "comm_volume", 0, 65535))
        if cv["id"] == v["id"] or cv["blocks"] < v["blocks"]:
            raise Refused("mirror: comm_volume must be another volume at least as large as volume %d"
                          % v["id"])
    elif "comm_volume" in c:
        raise Refused("mirror: comm_volume needs comm = \"disk\"")


def attach(u, reg):
    import asyncio

    from firmware.cha import volume

    cfg = u.sm.t["config"]["mirror"]
    vid = cfg["volume"]
    if cfg["role"] == "sub":
        from firmware.features.mirror import sub

        side = sub.SubSide(u, cfg, volume(u, vid))
        reg.stage("read", side.read, when=lambda v: v["id"] == vid)
        reg.table("mirror_515", lambda u: side.live())
        reg.table("mirror_514", lambda u: side.pending())
        reg.table("mirror_521", lambda u: [{"entry": e["entry"], "bytes": e["520"][1] * u.bs} for e in side.live()])
        reg.task(side.resyncer(side.pull))
        if side.comm.disk:
            reg.task(side.comm.run())
            reg.task(side.replay())
    elif cfg["role"] == "sym":
        from firmware.features.mirror import sym

        side = sym.SymSide(u, cfg)
        reg.stage("read", side.read, when=lambda v: v["id"] == vid)
        reg.op("mirror_reserve", side.op_reserve)
        reg.task(side.resyncer(side.push))
    else:
        side = chain.MainSide(u, cfg)
        side.lock = asyncio.Lock()
        reg.task(side.resyncer(side.push))
    reg.stage("redirect", side.write, when=lambda v: v["id"] == vid)
    reg.peer(chain.MSG, lambda u, req, p: chain.on_peer(side, u, req, p))
    reg.frame_observer(side.peer_reset)
    reg.op("mirror_state", lambda u, cmd: op_state(side, u, cmd))
    reg.table("mirror", lambda u: info(side))
    return side


def info(side):
    d = {"role": side.role, "volume": side.vol, "peer_volume": side.peer_vol, "mode": side.mode,
         "state": side.st["state"], "resync": side.st["resync"], "counters": side.cnt}
    if side.role == "sym":
        d["exclusive"] = side.excl
        d["host"] = side.host
        d["reserved_by"] = side.st["reserved_by"]
        d["held"] = side.held or ""
        d["queued"] = 0 if side.slots is None else side.slots.n - len(side.slots.free)   # async writes not done
        d["async_status"] = side.st.get("async_status", "")
    if side.role == "sub":
        d["comm"] = side.comm.kind
        d["async_status"] = side.st.get("async_status", "")
    return d


async def op_state(side, u, cmd):
    s = cmd.get("state")
    if s not in ("normal", "abnormal"):
        raise Refused("state must be normal or abnormal")
    side.st["state"] = s
    u.sm.save()
    return wire.OK, {"state": s}
