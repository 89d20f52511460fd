# Host I/O that arrives at the standby goes on to the master over the controllers' path
# and is answered with the master's status (and data): a host may address either
# controller (seed 004: hosts reach both controllers' ports).  The master runs it through
# its whole I/O path (its features' stages, the mirror back to the standby), so there is
# one order of writes for the unit.  A joining controller refuses host I/O (STATE).
import struct

from firmware import cha, iopath, peer, wire
from firmware.features.dual.state import MASTER, STANDBY

SUB_FWD = 0x6C
FWD_HEAD = "<BBHIH"    # sub, op, vol, lba, count
FWD_LEN = 10
OP_WRITE = 1
OP_READ = 2


async def _fwd(d, op, v, lba, count, data, out):
    u = d.u
    # a forward holds a worker here and one on the master, whose mirror write comes back
    # to a worker here: leave two free
    if d.nfwd >= u.board["workers"] - 2:
        d.c["fwd_busy"] += 1
        return wire.E_BUSY
    d.nfwd += 1
    try:
        head = struct.pack(FWD_HEAD, SUB_FWD, op, v["id"], lba, count)
        st, p = await peer.request(u, wire.CH_PEER + d.sib, wire.K_PEER, head, data, out)
    finally:
        d.nfwd -= 1
    if st in (wire.E_PATH_DOWN, wire.E_TIMEOUT):
        return wire.E_STATE          # the master is gone: the host goes to the other port
    if st == wire.OK and op == OP_READ and (p is None or p.n != count * u.bs):
        return wire.E_BAD_LENGTH
    d.c["forwarded"] += 1
    return st


def stages(d):
    """check / read_check: a joining controller refuses; redirect / read: a standby
    forwards; a master passes."""
    async def joining(u, v, lba, count, buf):
        if d.role != MASTER and d.role != STANDBY:
            d.c["refused_io"] += 1
            return wire.E_STATE
        return None

    async def write(u, v, lba, count, data):
        if d.role == MASTER:
            return None
        return await _fwd(d, OP_WRITE, v, lba, count, data, None)

    async def read(u, v, lba, count, out):
        if d.role == MASTER:
            return None
        return await _fwd(d, OP_READ, v, lba, count, b"", out)
    return joining, write, read


async def on_fwd(d, u, req, p):
    """The master's side: a host request the standby passed on."""
    link = u.link
    if d.role != MASTER:
        return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
    if len(p) < FWD_LEN:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    _, op, vol, lba, count = struct.unpack_from(FWD_HEAD, p, 0)
    v = cha.volume(u, vol)
    if v is None:
        return link.respond(req.ch, req.kind, req.seq, wire.E_NO_VOLUME)
    if count == 0 or lba + count > v["blocks"]:
        return link.respond(req.ch, req.kind, req.seq, wire.E_OUT_OF_RANGE)
    nbytes = count * u.bs
    if op == OP_WRITE:
        if len(p) != FWD_LEN + nbytes:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        st = await iopath.write(u, v, lba, count, p[FWD_LEN:])
        return link.respond(req.ch, req.kind, req.seq, st)
    if op != OP_READ or len(p) != FWD_LEN:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_PARAM)
    if nbytes + 1 > link.max_payload:
        return link.respond(req.ch, req.kind, req.seq, wire.E_TOO_LONG)
    out = req.mv[:nbytes]            # the request's own buffer (its head is read)
    st = await iopath.read(u, v, lba, count, out)
    if st != wire.OK:
        return link.respond(req.ch, req.kind, req.seq, st)
    link.respond(req.ch, req.kind, req.seq, wire.OK, out)
