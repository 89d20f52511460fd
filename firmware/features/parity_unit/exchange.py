# Parity storage unit (seed 000): the exchange with the other units on the peer paths.
# Block data in PBLOCK frames (the Fig 33 format: block number, destination, source,
# flags, procedure, length, data), control messages as JSON in PEER subtype CTRL, every
# request asked again while the other side answers BUSY and peer discovery ("who" on
# every path) through the core's peer layer (firmware/peer.py), and the blocks counted
# per path and per procedure (table parity_paths).
import struct

from firmware import peer as peer_layer
from firmware import wire
from firmware.link import sleep_ms

CTRL = 0x50                     # PEER subtype: control messages (JSON)
HL = wire.PBLK_HEAD_LEN
TIMEOUT_MS = peer_layer.TIMEOUT_MS
TRIES = peer_layer.TRIES
PROCS = {wire.PB_OP_NONE: "delta", wire.PB_OP_BUILD: "build", wire.PB_OP_ADD: "add",
         wire.PB_OP_DELETE: "delete", wire.PB_OP_RESTORE: "restore", wire.PB_OP_REBUILD: "rebuild",
         wire.PB_OP_READSEND: "readsend"}


def count(pu, k, op, tx, unit=None):
    """One block of procedure `op` sent (tx) or received on peer path k."""
    d = pu.paths.get(k)
    if d is None:
        d = pu.paths[k] = {"unit": None}
    if unit is not None:
        d["unit"] = unit
    name = PROCS.get(op, "other")
    c = d.get(name)
    if c is None:
        c = d[name] = [0, 0]
    c[0 if tx else 1] += 1
    L = pu.L
    if tx:
        pu.cnt["tx_blocks"] += 1
        pu.cnt["tx_bytes"] += L
    else:
        pu.cnt["rx_blocks"] += 1
        pu.cnt["rx_bytes"] += L


def paths_table(pu):
    """Table parity_paths: [{peer, unit, procedure, sent, received}] in blocks."""
    out = []
    for k in sorted(pu.paths):
        d = pu.paths[k]
        for name in sorted(d):
            if name != "unit":
                out.append({"peer": k, "unit": d["unit"], "procedure": name,
                            "sent": d[name][0], "received": d[name][1]})
    return out


async def request(pu, ch, kind, head, data, into, timeout=TIMEOUT_MS):
    """firmware/peer.py request(), BUSY retries counted in the parity unit's counters."""
    return await peer_layer.request(pu.u, ch, kind, head, data, into, timeout, pu.cnt)


async def send_block(pu, k, n, dst, flags, op, f):
    """Send the Fig 33 frame in f (data already in f[HL:]) to peer k; return the status
    and the receiver's row flag (1: the sender's 740 row turned OFF)."""
    L = pu.L
    struct.pack_into(wire.PBLK_HEAD, f, 0, n, dst, pu.me, flags, op, L)
    pu.ack[0] = 0
    st, p = await request(pu, wire.CH_PEER + k, wire.K_PBLOCK, b"", f[:HL + L], pu.ack)
    if st == wire.OK:
        count(pu, k, op, True, dst)
    return st, (pu.ack[0] if (st == wire.OK and p.n) else 0)


def _pull_start(pu, k, n, dst, op, req, into):
    struct.pack_into(wire.PBLK_HEAD, req, 0, n, dst, pu.me, wire.PB_REQUEST, op, 0)
    return pu.u.link.start(wire.CH_PEER + k, wire.K_PBLOCK, b"", req, into)


async def _pull_finish(pu, p, k, n, op, into):
    if p is None:
        return wire.E_BUSY
    st = await pu.u.link.finish(p, TIMEOUT_MS)
    if st != wire.OK:
        return st
    if p.n != HL + pu.L or struct.unpack_from("<I", into, 0)[0] != n:
        return wire.E_BAD_LENGTH
    count(pu, k, op, False, into[5])
    return st


async def pull(pu, srcs, n, op, reqs, bufs):
    """Ask every (unit, peer[, its own op]) in srcs for its block n at once; the data in
    bufs[i][HL:].  Only a source that answered BUSY is asked again: a copy already
    served stands (the source may have sent deltas for the block since)."""
    todo = list(range(len(srcs)))
    for _ in range(TRIES):
        ps = []
        for i in todo:
            s = srcs[i]
            ps.append(_pull_start(pu, s[1], n, s[0], s[2] if len(s) > 2 else op, reqs[i], bufs[i]))
        busy = []
        for j in range(len(todo)):
            i = todo[j]
            s = srcs[i]
            st = await _pull_finish(pu, ps[j], s[1], n, s[2] if len(s) > 2 else op, bufs[i])
            if st == wire.E_BUSY:
                busy.append(i)
            elif st != wire.OK:
                for q in ps[j + 1:]:
                    if q is not None:
                        await pu.u.link.finish(q, TIMEOUT_MS)
                return st
        if not busy:
            return wire.OK
        todo = busy
        pu.cnt["busy_retries"] += 1
        await sleep_ms(2)
    return wire.E_BUSY


async def ctrl(pu, k, msg, timeout=TIMEOUT_MS):
    """A control message to peer k: (status, reply dict, with "error" when not OK)."""
    return await peer_layer.call(pu.u, k, CTRL, msg, timeout, pu.cnt)


async def peer(pu, unit):
    """Peer index of a unit number (PU side), found by asking every path "who"."""
    return await peer_layer.find(pu.u, pu.peers, unit, CTRL, {"m": "who"}, "unit")


async def peers_of(pu, units):
    """[(unit, peer)] of every unit; raises when one cannot be reached."""
    out = []
    for unit in units:
        k = await peer(pu, unit)
        if k < 0:
            raise Exception("unit %d cannot be reached" % unit)
        out.append((unit, k))
    return out
