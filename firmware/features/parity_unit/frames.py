# Parity storage unit (seed 000): PBLOCK frames (Fig 33) arriving on a peer path.
#   a request (flag "request", no data)  DU: send its copy of block n (S1010, S4011,
#                                         S9002, S7003-S7004, S8003-S8004; zeros for a
#                                         block it does not have, I4)
#   a write delta or read-send            PU: P[n] ^= x (S6004-S6006; read-send I9)
#   a restored block                      DU being restored: write it (S7008-S7009, S8009)
import struct

from firmware import core, wire
from firmware.features.parity_unit import exchange, rows
from firmware.features.parity_unit.state import HL
from firmware.raid import GOOD

PARITY_OPS = (wire.PB_OP_BUILD, wire.PB_OP_ADD, wire.PB_OP_DELETE, wire.PB_OP_REBUILD)
SENDS = {"build": wire.PB_OP_BUILD, "add": wire.PB_OP_ADD, "delete": wire.PB_OP_DELETE}


async def on_block(pu, req, p):
    link = pu.u.link
    if len(p) < HL:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    n, dst, src, flags, op, ln = struct.unpack_from(wire.PBLK_HEAD, p, 0)
    if pu.st["t720"] is None or dst != pu.me:
        return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
    k = req.ch - wire.CH_PEER
    if flags & wire.PB_REQUEST:
        if ln != 0 or len(p) != HL:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        return await serve(pu, req, k, n, src, op)
    if ln != pu.L or len(p) != HL + ln:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    exchange.count(pu, k, op, False, src)
    data = p[HL:HL + ln]
    off = 0
    if pu.role == "parity":
        st, off = await apply(pu, n, src, flags, op, data)
    else:
        st = await restored(pu, n, op, data)
    link.respond(req.ch, req.kind, req.seq, st, b"\x01" if off else b"")


async def serve(pu, req, k, n, src, op):
    """A DU sends its copy of block n; zeros for a block it does not have."""
    st = pu.st
    link = pu.u.link
    if pu.role != "data" or src != st["pu"]:
        return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
    async with pu.lock:
        f = pu.rbuf
        d = f[HL:HL + pu.L]
        if n < pu.nb:
            s = await pu.io(n, d, False)
            if s not in GOOD:
                return link.respond(req.ch, req.kind, req.seq, s)
        else:
            d[:] = pu.zeros
        name = st["op"]
        if name in SENDS and SENDS[name] == op and n + 1 > st["sent"]:
            st["sent"] = n + 1
            pu.save()    # I8 after a reset of this board: saved before the copy goes out
        flags = wire.PB_PARITY if op in PARITY_OPS else 0
        struct.pack_into(wire.PBLK_HEAD, f, 0, n, src, pu.me, flags, op, pu.L)
        exchange.count(pu, k, op, True, src)
        link.respond(req.ch, req.kind, req.seq, wire.OK, f)


async def apply(pu, n, src, flags, op, data):
    """PU: P[n] ^= x for a write delta (S6004-S6006, and the random methods' writes) or a
    read-send copy (included only if block n is not completed yet, I9)."""
    if n >= pu.nb:
        return wire.E_OUT_OF_RANGE, 0
    r = rows.row(pu, src)
    if r is None or src not in rows.members(pu):
        return wire.E_STATE, 0
    if not flags & (wire.PB_HOST | wire.PB_PARITY):
        return wire.E_BAD_PARAM, 0
    async with pu.lock:
        random = r["on"] and r["op"] in ("random", "delete") and n < r["blocks"]
        if flags & wire.PB_PARITY:
            if op != wire.PB_OP_READSEND or not (r["on"] and r["op"] == "random") or rows.included(pu, r, n):
                pu.cnt["readsend_ignored"] += 1
                return wire.OK, 0 if r["on"] else 1
        s = await pu.io(n, pu.pbuf, False)
        if s not in GOOD:
            return s, 0
        core.xor_acc(pu.pbuf, data)
        await pu.write_p(n, pu.pbuf)
        if flags & wire.PB_HOST:
            pu.cnt["deltas_applied"] += 1
        else:
            pu.cnt["copies_applied"] += 1
        off = 0
        if random and not rows.included(pu, r, n):
            rows.include(pu, r, n, True)
            if r["op"] == "random" and rows.random_progress(pu, r):
                off = 1
            pu.save()      # the block counts as included from now on: before the reply
        elif not r["on"]:
            off = 1
    return wire.OK, off


async def restored(pu, n, op, data):
    """The failed DU writes a restored block (S7008-S7009); blocks beyond its own count
    are not written (S8009)."""
    r = pu.st["restoring"]
    if op != wire.PB_OP_RESTORE or not r:
        return wire.E_STATE
    if n < pu.nb:
        async with pu.lock:
            await pu.io(n, data, True)
        r["written"] += 1
        pu.cnt["restored_written"] += 1
    else:
        r["ignored"] += 1
        pu.cnt["restored_ignored"] += 1
    pu.u.sm.dirty = True
    return wire.OK
