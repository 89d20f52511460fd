# The management op "sparing": the service processor of Fig 7 (S21/S22 errors, S25/S27
# start, S26 terminate) and the sparings' info.  Arguments are checked before anything
# changes (firmware/args.py).
from firmware import wire
from firmware.args import Refused, need_bool, need_choice, need_int
from firmware.features.sparing.tables import svp


async def op_sparing(u, cmd):
    mgr = u.features["sparing"]
    act = need_choice(cmd, "action", ("errors", "start", "terminate", "info"), "info")
    if act == "errors":
        return wire.OK, svp(mgr)
    if act == "info":
        return wire.OK, {"sparing": mgr.sparings()}
    if act == "terminate":
        mgr.terminated = True
        u.sm.save()
        return wire.OK, {}
    paused = need_bool(cmd, "paused", mgr.cfg.start_paused)
    if cmd.get("drive") is None or cmd.get("drive") == -1:
        d = -1
    else:
        d = need_int(cmd, "drive", 0, len(u.sm.t["drives"]) - 1)
    if mgr.terminated:
        raise Refused(wire.E_STATE, "the sparing loop was terminated")
    if d < 0:
        for w in u.sm.t["sparing_warnings"]:
            if w["drive"] not in mgr.spared:
                d = w["drive"]
                break
        if d < 0:
            raise Refused(wire.E_STATE, "no warned drive to spare")
    err = await mgr.start(d, paused)
    if err:
        u.warn(err)
        raise Refused(wire.E_STATE, err)
    g = mgr.group_of(d)
    return wire.OK, {"group": g["id"], "drive": d, "spare": mgr.active[g["id"]].spare}

