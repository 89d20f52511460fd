# Parity storage unit (seed 000): control messages between the units (JSON in PEER
# subtype CTRL; see docs/parity_unit.md "On the wire").
#   who                 any unit: its number and role (peer discovery)
#   settings            DU: S1004-S1006 / S2004-S2007 / S3004-S3006 / S4005-S4007 /
#                       S5005-S5007 (tables 710 / 720 from L, its block count, Fig 21 judgment)
#   cancel              DU: I5, a rejected request rolls back the tables it created
#   start, done, left   DU: a procedure starts on it / ends / it left the group (S9006)
#   restored            DU: its restoration is complete
#   lost                DU: the PU restores it by itself (its board was found dead)
#   recompute           PU: P[n] again for a DU's blocks in doubt
#   restore             PU: a failed DU's restore request (S7001 / S8001)
from firmware import peer, store, wire
from firmware.args import Refused
from firmware.features.parity_unit import ops, procs


def _du(pu):
    if pu.role != "data":
        raise Refused(wire.E_STATE, "unit %d is not a data storage unit" % pu.me)


async def c_who(pu, msg, k):
    return wire.OK, {"unit": pu.me, "role": pu.role}


async def c_settings(pu, msg, k):
    _du(pu)
    st = pu.st
    L = msg["L"]
    err = pu.length_error(L)
    if err:
        raise Refused(wire.E_BAD_PARAM, err)
    if st["member"] and st["pu"] != msg["pu"]:
        raise Refused(wire.E_STATE, "unit %d already belongs to parity unit %d" % (pu.me, st["pu"]))
    if st["restoring"]:
        raise Refused(wire.E_STATE, "unit %d is being restored" % pu.me)
    async with pu.lock:
        st["prev"] = {"t710": st["t710"], "t720": st["t720"], "pu": st["pu"], "pu_peer": st["pu_peer"]}
        st["t710"] = {"group": pu.gid, "data_units": msg["data_units"], "parity_unit": msg["pu"]}
        st["t720"] = pu.t720_for(L)
        st["pu"] = msg["pu"]
        st["pu_peer"] = k
        pu.geometry()
        pu.save()
    reply = {"n": pu.nb}
    if "np" in msg:                      # Fig 21 S2006: Np < Ni -> cannot (I3: equal can)
        reply["ok"] = msg["np"] >= pu.nb
    return wire.OK, reply


async def c_cancel(pu, msg, k):
    _du(pu)
    st = pu.st
    prev = st["prev"]
    if prev:
        async with pu.lock:
            for key in ("t710", "t720", "pu", "pu_peer"):
                st[key] = prev[key]
            st["prev"] = None
            pu.geometry()
            pu.save()
    return wire.OK, {}


async def _update(pu, changes):
    _du(pu)
    async with pu.lock:
        pu.st.update(changes)
        pu.save()
    return wire.OK, {}


async def c_start(pu, msg, k):
    """The unit enters the group (or a procedure starts on it): sent = 0."""
    return await _update(pu, {"member": True, "op": msg["op"], "sent": 0, "read_send": bool(msg.get("read_send")),
                              "prev": None})


async def c_done(pu, msg, k):
    return await _update(pu, {"op": None})


async def c_left(pu, msg, k):
    """S9006 / I11: the unit left the group; its 710 is cleared, its 720 stays."""
    return await _update(pu, {"member": False, "op": None, "t710": None})


async def c_lost(pu, msg, k):
    """The PU found this unit's board dead and restores it now (auto_restore): no host
    I/O until the data is back (the operator's parity_restore does the same, S7000)."""
    _du(pu)
    st = pu.st
    if not st["member"] or k != st["pu_peer"]:
        raise Refused(wire.E_STATE, "unit %d is not in that parity group" % pu.me)
    if not st["restoring"]:
        st["restoring"] = {"method": msg["method"], "written": 0, "ignored": 0, "auto": True}
        st["pending"] = []
        st["doubt"] = []          # the restored data is what parity says: nothing to recompute
        pu.save()
        pu.u.warn("unit %d: restoration by parity unit %d started (its board was found dead)" % (pu.me, st["pu"]))
    return wire.OK, {}


async def c_restored(pu, msg, k):
    _du(pu)
    st = pu.st
    r = st["restoring"]
    st["restoring"] = None
    await store.destage(pu.u)
    pu.save()
    pu.u.warn("unit %d restored from parity unit %d: %d blocks written, %d not written, %d unprotected"
              % (pu.me, st["pu"], r["written"] if r else 0, r["ignored"] if r else 0, msg.get("unprotected", 0)))
    return wire.OK, {"written": r["written"] if r else 0}


async def c_recompute(pu, msg, k):
    """PU: a DU is not sure its deltas for these blocks were applied exactly once (its
    board was reset between a delta and its data write, or while one was in flight, or an
    answer was lost): P[n] again from the copy of every member whose contribution is
    included."""
    if pu.role != "parity" or pu.st["t720"] is None:
        raise Refused(wire.E_STATE, "unit %d holds no parity" % pu.me)
    rs = pu.st["restore"]
    if rs:
        raise Refused(wire.E_BUSY, "unit %d is being restored" % rs["unit"])
    unit = msg.get("unit")
    if unit is not None and pu.monitor is not None and pu.monitor.waits_restore(unit):
        raise Refused(wire.E_BUSY, "unit %d is to be restored first" % unit)
    blocks = msg["blocks"]
    if not isinstance(blocks, list):
        raise Refused(wire.E_BAD_PARAM, "blocks must be a list")
    await procs.recompute_blocks(pu, blocks)
    return wire.OK, {}


async def c_restore(pu, msg, k):
    if pu.role != "parity":
        raise Refused(wire.E_STATE, "unit %d is not the parity unit" % pu.me)
    unit = msg["unit"]
    pu.peers[unit] = k
    return ops.start_restore(pu, unit, msg["method"], bool(msg.get("paused")))


HANDLERS = {"who": c_who, "settings": c_settings, "cancel": c_cancel, "start": c_start, "done": c_done,
            "left": c_left, "lost": c_lost, "restored": c_restored, "recompute": c_recompute,
            "restore": c_restore}


async def on_ctrl(pu, req, p):
    msg = peer.decode(pu.u, req, p)
    if msg is None:
        return
    fn = HANDLERS.get(msg.get("m"))
    if fn is None:
        return peer.answer(pu.u, req, wire.E_BAD_PARAM, {"error": "bad control message"})
    try:
        st, reply = await fn(pu, msg, req.ch - wire.CH_PEER)
    except Refused as e:
        st, reply = e.status, {"error": str(e)}
    except (KeyError, TypeError) as e:
        st, reply = wire.E_BAD_PARAM, {"error": "bad control message: %r" % (e,)}
    peer.answer(pu.u, req, st, reply)
