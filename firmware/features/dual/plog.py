# The RAID5 parity log mirrored (firmware/writehole.py): the master opens a degraded
# row's record on its sibling before the row is written and closes it once the row is,
# waiting for each answer (the write hole's lock keeps it to one record at a time, so
# a close can never pass a later write of the same row).  A takeover makes the row the
# dead master had in flight whole from it, as a reset does from the non-volatile
# record; a joining controller drops its own record with its cache (the master's
# drives are newer than what it logged).
import struct

from firmware import peer, wire
from firmware.features.dual import mirror
from firmware.features.dual.state import MASTER

SUB_PLOG = 0x6D
HEAD = "<BBHIB"    # sub, open (1) / close (0), group, row, member
HEAD_LEN = 9


def setup(d):
    d.plog_head = bytearray(HEAD_LEN)
    d.plog_buf = None       # the sibling's open record's data (allocated at its first)
    d.plog_open = None      # (group, row, member) of the sibling's open record


def observer(d):
    async def send(rec):
        if d.role != MASTER or not d.peer_up:
            return
        h = d.plog_head
        if rec is None:
            struct.pack_into(HEAD, h, 0, SUB_PLOG, 0, 0, 0, 0)
            data = b""
        else:
            gid, row, k, data = rec
            struct.pack_into(HEAD, h, 0, SUB_PLOG, 1, gid, row, k)
        st, _ = await peer.request(d.u, wire.CH_PEER + d.sib, wire.K_PEER, h, data, d.rbuf)
        if st != wire.OK:
            mirror.lost(d, st)
        else:
            d.c["plogs_sent"] += 1
    return send


async def on_plog(d, u, req, p):
    link = u.link
    if len(p) < HEAD_LEN or len(p) != HEAD_LEN + (u.bs if p[1] else 0):
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    if d.role == MASTER:
        return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
    _, op, gid, row, k = struct.unpack_from(HEAD, p, 0)
    if op:
        if d.plog_buf is None:
            d.plog_buf = bytearray(u.bs)
        d.plog_buf[:] = p[HEAD_LEN:]
        d.plog_open = (gid, row, k)
    else:
        d.plog_open = None
    d.c["plogs_applied"] += 1
    link.respond(req.ch, req.kind, req.seq, wire.OK)


def take_over(d):
    """The dead master's open record becomes this controller's: the row is made whole
    before any other I/O of the RAID (its record also goes to the non-volatile cache,
    in case this board resets first)."""
    if d.plog_open is None:
        return False
    gid, row, k = d.plog_open
    u = d.u
    if u.cache is not None and u.cache.nv is not None:
        u.cache.nv.plog_put(gid, row, k, d.plog_buf)
    u.raid.pending_repair = (gid, row, k, d.plog_buf)
    d.plog_open = None
    return True


def drop(d):
    """Joining: this controller's own record is older than the master's drives."""
    u = d.u
    d.plog_open = None
    u.raid.pending_repair = None
    if u.cache is not None and u.cache.nv is not None:
        u.cache.nv.plog_clear()
