# Controller 300 serves a command of a port's target task (seed 004, records 420 / 440,
# Fig 14 1302), on either controller: the master runs it through its I/O path; a
# standby's I/O path passes it on to the master (feature dual).  `owner` says what
# differs: host_backup (a BACKUP instruction), count (the load records: here on the
# master, a report to it on a standby), online_begin / online_end (priority 670).
from firmware import cha, iopath, wire
from firmware.args import Refused
from firmware.features.online_backup import fc
from firmware.features.online_backup.ports import put


def refusal(u, v, op, lba, n, plen):
    """The status a command is refused with (nothing moves), or None."""
    if v is None:
        return wire.E_NO_VOLUME
    if n == 0 or lba + n > v["blocks"]:
        return wire.E_OUT_OF_RANGE
    if op != fc.READ:
        return wire.E_BAD_LENGTH if plen != wire.FC_HEAD_LEN + n * u.bs else None
    return wire.E_TOO_LONG if n * u.bs + 1 > u.link.max_payload else None


async def serve(owner, port, req, h):
    u = owner.u
    link = u.link
    op, src, _, _, lu, lba, n = h
    if op == fc.BACKUP:
        try:
            owner.host_backup(lu, lba)
            st = wire.OK
        except Refused as e:
            st = e.status
        return link.respond(req.ch, req.kind, req.seq, st)
    if op not in (fc.READ, fc.WRITE, fc.DATA):
        return link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_KIND)
    v = cha.volume(u, lu)
    nbytes = n * u.bs
    p = req.payload()
    st = refusal(u, v, op, lba, n, len(p))
    if st is not None:
        return link.respond(req.ch, req.kind, req.seq, st)
    put(port.hr, src, "RD" if op == fc.READ else "WR", lu, lba, n)
    if op != fc.DATA:             # backup data from another unit is not host load
        await owner.count(port, op, lu, lba, n)
    await owner.online_begin()
    try:
        if op == fc.READ:
            out = req.mv[:nbytes]
            st = await iopath.read(u, v, lba, n, out)
            return link.respond(req.ch, req.kind, req.seq, st, out if st == wire.OK else b"")
        st = await iopath.write(u, v, lba, n, p[wire.FC_HEAD_LEN:])
        link.respond(req.ch, req.kind, req.seq, st)
    finally:
        owner.online_end()
