# Parity storage unit (seed 000): management ops.
#   PU  parity_setup    Fig 15 screen, synchronous build: Fig 14 (capacity check on the PU,
#                       S1000-S1015), Fig 21 (on the DUs, S2000-S2016), Fig 23 (random
#                       initialization, S3000-S3009); on a configured group spec 3.6
#       parity_change   Fig 25 screen: add (Fig 24 S4000-S4016, Fig 26 S5000-S5010),
#                       delete (Fig 32 S9000-S9006), the form of table 740, or the
#                       current configuration
#       parity_rebuild  the PU lost its parity: every DU's data XORed again (I14)
#   DU  parity_restore  S7000-S7001 / S8000-S8001: this unit lost its data
#       parity_hold     the next host write waits at a point of its delta (tests)
# A refusal changes nothing (I5): tables created by the request are rolled back here
# and on the DUs.
from firmware import wire
from firmware.args import Refused, is_int, need_choice, need_int
from firmware.features.parity_unit import exchange, procs, rows
from firmware.features.parity_unit.state import FORMS

MSG_SYNC = "synchronous initial copy cannot be made"     # S1015, S2016, S3009
MSG_ADD = "data storage unit cannot be added"            # S4016, S5010
METHODS = ("sequential", "random")


def _pu(pu):
    if pu.role != "parity":
        raise Refused(wire.E_STATE, "unit %d is not a parity storage unit" % pu.me)


def _idle(pu):
    st = pu.st
    if st["busy"]:
        raise Refused(wire.E_STATE, "parity unit busy: %s in progress" % st["busy"])
    if st["rebuilding"]:
        raise Refused(wire.E_STATE, "parity unit is rebuilding its parity")
    if st["restore"]:
        raise Refused(wire.E_STATE, "unit %d is being restored" % st["restore"]["unit"])


def _length(pu, cmd):
    L = need_int(cmd, "block_length", 1, 65536)
    err = pu.length_error(L)
    if err:
        raise Refused(wire.E_BAD_PARAM, err)
    return L


def _snapshot(pu):
    st = pu.st
    return {"t710": st["t710"], "t720": st["t720"], "t730": st["t730"], "t740": st["t740"], "bm": dict(pu.bm)}


def _rollback(pu, snap):
    st = pu.st
    for key in ("t710", "t720", "t730", "t740"):
        st[key] = snap[key]
    pu.bm = snap["bm"]
    pu.geometry()
    pu.save()


async def _cancel_all(pu, told):
    for unit in told:
        await exchange.ctrl(pu, pu.peers[unit], {"m": "cancel"})


async def zero_parity(pu):
    """I6: parity that starts from nothing starts from zero."""
    for n in range(pu.nb):
        async with pu.lock:
            await pu.write_p(n, pu.zeros)


async def op_setup(pu, cmd):
    _pu(pu)
    need_int(cmd, "block_length", 1, 65536)
    dus = cmd.get("data_units")
    if (not isinstance(dus, list) or not dus or len(dus) > 15 or len(set(dus)) != len(dus)
            or any(not is_int(x) or x < 1 or x > 255 or x == pu.me for x in dus)):
        raise Refused(wire.E_BAD_PARAM, "data_units must list 1..15 distinct unit numbers other than %d" % pu.me)
    if cmd.get("parity_unit", pu.me) != pu.me:
        raise Refused(wire.E_BAD_PARAM, "parity_unit %r: this is unit %d" % (cmd.get("parity_unit"), pu.me))
    method = need_choice(cmd, "method", METHODS, "sequential")
    check = need_choice(cmd, "capacity_check", ("parity", "data"), "parity")
    form = need_choice(cmd, "form", FORMS, pu.form)
    L = _length(pu, cmd)
    _idle(pu)
    st = pu.st
    snap = _snapshot(pu)
    old = rows.members(pu)
    st["t710"] = {"group": pu.gid, "data_units": list(dus), "parity_unit": pu.me}   # S1002
    st["t720"] = pu.t720_for(L)                                                      # S1001
    pu.geometry()
    np_ = pu.nb
    counts = {}
    judged = {}
    told = []
    for du in dus:                                                   # S1003 / S2003 / S3003
        k = await exchange.peer(pu, du)
        if k < 0:
            await _cancel_all(pu, told)
            _rollback(pu, snap)
            raise Refused(wire.E_PATH_DOWN, "unit %d cannot be reached" % du)
        msg = {"m": "settings", "L": L, "data_units": dus, "pu": pu.me, "method": method}
        if check == "data":
            msg["np"] = np_
        s, r = await exchange.ctrl(pu, k, msg)
        if s != wire.OK:
            await _cancel_all(pu, told)
            _rollback(pu, snap)
            raise Refused(s, "unit %d: %s" % (du, r.get("error")))
        told.append(du)
        counts[du] = r["n"]                                          # S1006 (I21: Fig 21 too)
        judged[du] = r.get("ok", r["n"] <= np_)
    if check == "parity":
        bad = [du for du in dus if counts[du] > np_]                 # S1007 / S3007
    else:
        bad = [du for du in dus if not judged[du]]                   # S2008
    if bad:                                                          # S1015 / S2016 / S3009
        await _cancel_all(pu, told)
        _rollback(pu, snap)
        pu.u.warn(MSG_SYNC)
        return wire.E_STATE, {"error": MSG_SYNC, "units": bad, "parity_blocks": np_,
                              "blocks": [[du, counts[du]] for du in dus]}
    st["t730"] = [{"unit": pu.me, "blocks": np_}] + [{"unit": du, "blocks": counts[du]} for du in dus]
    st["t740"] = {"form": form, "rows": [rows.new_row(pu, du, counts[du], "build" if method == "sequential"
                                                      else "random", method, True) for du in dus]}
    for du in old:                                                   # 3.6: listed-out units leave
        k = await exchange.peer(pu, du) if du not in dus else -1
        if k >= 0:
            await exchange.ctrl(pu, k, {"m": "left"})
    for du in dus:           # no deltas until the parity is zero (sent = 0: nothing sent yet)
        await exchange.ctrl(pu, pu.peers[du], {"m": "start", "op": "build"})
    await zero_parity(pu)
    pu.save()
    reply = {"parity_blocks": np_, "blocks": [[du, counts[du]] for du in dus], "job": None}
    if method == "random":                                           # Fig 23: after S3008
        rs = bool(cmd.get("read_send"))
        for du in dus:
            await exchange.ctrl(pu, pu.peers[du], {"m": "start", "op": "random", "read_send": rs})
        return wire.OK, reply
    st["busy"] = "build"                                             # S1009 - S1014
    pu.save()
    reply["job"] = procs.run_job(pu, "pbuild", "parity-build", np_, cmd.get("paused"),
                                 lambda job: procs.j_build(pu, job))
    return wire.OK, reply


async def op_change(pu, cmd):
    _pu(pu)
    add = cmd.get("add")
    dele = cmd.get("delete")
    st = pu.st
    if add is None and dele is None and "form" not in cmd:
        t720 = st["t720"]
        return wire.OK, {"current": {"parity_unit": pu.me, "data_units": rows.members(pu),
                                     "block_length": t720["block_length"] if t720 else None}}
    if add is None and dele is None and st["t740"] is not None:
        # which form of table 740 is kept (13A / 13B / 13C: "any one ... may be used")
        st["t740"]["form"] = need_choice(cmd, "form", FORMS)
        pu.save()
        return wire.OK, {"form": st["t740"]["form"]}
    if (add is None) == (dele is None):
        raise Refused(wire.E_BAD_PARAM, "give one of add or delete")
    _idle(pu)
    if add is not None:
        return await _add(pu, cmd, need_int(cmd, "add", 1, 255))
    return await _delete(pu, cmd, need_int(cmd, "delete", 1, 255))


async def _add(pu, cmd, unit):
    st = pu.st
    method = need_choice(cmd, "method", METHODS, "sequential")
    if unit == pu.me or unit in rows.members(pu):
        raise Refused(wire.E_BAD_PARAM, "unit %d is already in the parity group" % unit)
    first = not rows.members(pu)                                     # S4001 / S5001
    snap = _snapshot(pu)
    if first:                                                        # S4002-S4003 / S5002-S5003
        L = _length(pu, cmd)
        st["t710"] = {"group": pu.gid, "data_units": [], "parity_unit": pu.me}
        st["t720"] = pu.t720_for(L)
        st["t730"] = None
        st["t740"] = None
        pu.bm = {}
        pu.geometry()
    else:                                                            # I7
        L = st["t720"]["block_length"]
        if cmd.get("block_length", L) != L:
            raise Refused(wire.E_BAD_PARAM, "block_length is %d; changing it needs a synchronous build" % L)
    np_ = pu.nb
    k = await exchange.peer(pu, unit)
    if k < 0:
        _rollback(pu, snap)
        raise Refused(wire.E_PATH_DOWN, "unit %d cannot be reached" % unit)
    s, r = await exchange.ctrl(pu, k, {"m": "settings", "L": L, "data_units": rows.members(pu) + [unit],
                                       "pu": pu.me, "method": method})      # S4004 / S5004
    if s != wire.OK:
        _rollback(pu, snap)
        raise Refused(s, "unit %d: %s" % (unit, r.get("error")))
    n = r["n"]                                                       # S4007 / S5007
    if n > np_:                                                      # S4008 -> S4016 / S5008 -> S5010
        await exchange.ctrl(pu, k, {"m": "cancel"})
        _rollback(pu, snap)
        pu.u.warn(MSG_ADD)
        return wire.E_STATE, {"error": MSG_ADD, "unit": unit, "blocks": n, "parity_blocks": np_}
    st["t710"]["data_units"].append(unit)                            # S4009 / S5009 (I7)
    if st["t730"] is None:
        st["t730"] = [{"unit": pu.me, "blocks": np_}]
    st["t730"].append({"unit": unit, "blocks": n})
    if st["t740"] is None:
        st["t740"] = {"form": need_choice(cmd, "form", FORMS, pu.form), "rows": []}
    st["t740"]["rows"].append(rows.new_row(pu, unit, n, "add" if method == "sequential" else "random",
                                           method, False))
    if first:
        await zero_parity(pu)
    pu.save()
    if method == "random":                                           # Fig 26 ends after S5009
        await exchange.ctrl(pu, k, {"m": "start", "op": "random", "read_send": bool(cmd.get("read_send"))})
        return wire.OK, {"unit": unit, "blocks": n, "parity_blocks": np_, "job": None}
    await exchange.ctrl(pu, k, {"m": "start", "op": "add"})
    st["busy"] = "add"
    pu.save()
    name = procs.run_job(pu, "padd%d" % unit, "parity-add", n, cmd.get("paused"),
                         lambda job: procs.j_add(pu, job, unit))
    return wire.OK, {"unit": unit, "blocks": n, "parity_blocks": np_, "job": name}


async def _delete(pu, cmd, unit):
    st = pu.st
    if unit not in rows.members(pu):
        raise Refused(wire.E_BAD_PARAM, "unit %d is not in the parity group" % unit)
    r = rows.row(pu, unit)
    partial = r["on"]
    if not partial:
        r.update(rows.new_row(pu, unit, r["blocks"], "delete", "sequential", False, include_all=True))
    r["op"] = "delete"
    r["method"] = "sequential"
    r["pos"] = 0
    r["partial"] = partial
    pu.save()
    await exchange.ctrl(pu, await exchange.peer(pu, unit), {"m": "start", "op": "delete"})    # S9001
    st["busy"] = "delete"
    pu.save()
    name = procs.run_job(pu, "pdel%d" % unit, "parity-delete", r["blocks"], cmd.get("paused"),
                         lambda job: procs.j_delete(pu, job, unit))
    return wire.OK, {"unit": unit, "job": name}


def start_restore(pu, unit, method, paused):
    """S7002 / S8002: restore DU `unit` by method 1 (its own range, table 730) or method 2
    (all Np blocks)."""
    st = pu.st
    if unit not in rows.members(pu):
        raise Refused(wire.E_BAD_PARAM, "unit %d is not in the parity group" % unit)
    if method not in (1, 2):
        raise Refused(wire.E_BAD_PARAM, "method must be 1 or 2")
    if st["rebuilding"]:
        raise Refused(wire.E_STATE, "the parity unit itself is being rebuilt: double failure")
    if st["restore"]:
        raise Refused(wire.E_STATE, "unit %d is already being restored: double failure" % st["restore"]["unit"])
    if st["busy"] == "delete" or (st["busy"] == "add" and rows.row(pu, unit)["op"] == "add"):
        raise Refused(wire.E_STATE, "unit %d: wait for the %s in progress" % (unit, st["busy"]))
    form = st["t740"]["form"]
    for r in st["t740"]["rows"]:                                     # I13
        if not r["on"]:
            continue
        if form == "13A":
            raise Refused(wire.E_STATE, "table 740 (form 13A) cannot tell which blocks of unit %d are in "
                          "parity: wait until every row is OFF" % r["unit"])
        if form == "13B" and (r["method"] == "random" or r.get("partial")):
            raise Refused(wire.E_STATE, "table 740 (form 13B) cannot describe the random progress of "
                          "unit %d: wait until its row is OFF" % r["unit"])
    k = rows.row(pu, unit)["blocks"] if method == 1 else pu.nb      # table 730 / Np
    st["restore"] = {"unit": unit, "method": method, "range": k, "sent": 0, "asked": {},
                     "unprotected": 0, "first_unprotected": [], "ms": 0}
    pu.save()
    name = procs.run_job(pu, "prestore%d" % unit, "parity-restore", k, paused,
                         lambda job: procs.j_restore(pu, job, unit, method, k))
    return wire.OK, {"job": name, "range": k, "parity_unit": pu.me}


async def op_rebuild(pu, cmd):
    _pu(pu)
    if pu.st["t720"] is None:
        raise Refused(wire.E_STATE, "no parity group")
    _idle(pu)
    pu.st["rebuilding"] = True
    pu.save()
    name = procs.run_job(pu, "prebuild", "parity-rebuild", pu.nb, cmd.get("paused"),
                         lambda job: procs.j_rebuild(pu, job))
    return wire.OK, {"job": name}


def _du(pu):
    if pu.role != "data":
        raise Refused(wire.E_STATE, "unit %d is not a data storage unit" % pu.me)
    if not pu.st["member"]:
        raise Refused(wire.E_STATE, "unit %d is not in a parity group" % pu.me)


async def op_restore(pu, cmd):
    _du(pu)
    st = pu.st
    method = need_int(cmd, "method", 1, 2)
    st["restoring"] = {"method": method, "written": 0, "ignored": 0}
    pu.save()
    s, r = await exchange.ctrl(pu, st["pu_peer"], {"m": "restore", "unit": pu.me, "method": method,
                                                  "paused": bool(cmd.get("paused"))})
    if s != wire.OK:
        st["restoring"] = None
        pu.save()
    return s, r


async def op_hold(pu, cmd):
    """The next host write with a delta waits at `at` (before_delta: its pending record
    saved, the delta not sent; after_delta: the PU applied it; after_cache: Dnew is in the
    cache), so a test can kill the board exactly there; `at` null releases it."""
    from firmware.features.parity_unit.stages import HOLDS

    _du(pu)
    at = cmd.get("at")
    if at is not None and at not in HOLDS:
        raise Refused(wire.E_BAD_PARAM, "at must be one of %s, or null" % ", ".join(HOLDS))
    pu.held = at
    if at is None and pu.hold_ev is not None:
        pu.hold_ev.set()
        pu.hold_ev = None
    return wire.OK, {"held": at}


OPS = (("parity_setup", op_setup), ("parity_change", op_change), ("parity_rebuild", op_rebuild),
       ("parity_restore", op_restore), ("parity_hold", op_hold))
