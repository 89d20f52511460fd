# Channel adapter (CHA): host-port requests.  Checks every field of a frame before
# touching any state, then hands the request to the I/O path (firmware/iopath.py):
# the features' stages, the cache, the RAID groups behind it.
import struct

from firmware import iopath, store, wire


def volume(u, vol):
    vols = u.sm.t.get("volumes")
    if not vols:
        return None
    for v in vols:
        if v["id"] == vol:
            return v
    return None


async def handle(u, req):
    link = u.link
    p = req.payload()
    kind = req.kind
    if u.feature_errors:          # a configured feature is not running: serve nothing
        return link.respond(req.ch, kind, req.seq, wire.E_NOT_READY)
    if len(p) < 2:
        return link.respond(req.ch, kind, req.seq, wire.E_BAD_LENGTH)
    vol = p[0] | (p[1] << 8)
    v = volume(u, vol)
    if v is None:
        return link.respond(req.ch, kind, req.seq, wire.E_NO_VOLUME)
    bs = u.bs
    if kind == wire.K_VOLINFO:
        return link.respond(req.ch, kind, req.seq, wire.OK, struct.pack("<II", v["blocks"], bs))
    if kind == wire.K_FLUSH:
        st = wire.OK if await store.flush(u) == 0 else wire.E_DATA_LOST
        return link.respond(req.ch, kind, req.seq, st)
    if len(p) < wire.IO_HEAD_LEN:
        return link.respond(req.ch, kind, req.seq, wire.E_BAD_LENGTH)
    _, lba, count = struct.unpack_from(wire.IO_HEAD, p, 0)
    if count == 0 or lba + count > v["blocks"]:
        return link.respond(req.ch, kind, req.seq, wire.E_OUT_OF_RANGE)
    nbytes = count * bs
    if kind == wire.K_WRITE:
        if len(p) != wire.IO_HEAD_LEN + nbytes:
            return link.respond(req.ch, kind, req.seq, wire.E_BAD_LENGTH)
        st = await iopath.write(u, v, lba, count, p[wire.IO_HEAD_LEN:])
        return link.respond(req.ch, kind, req.seq, st)
    # K_READ: the data is assembled in the request's own buffer
    if nbytes + 1 > link.max_payload:
        return link.respond(req.ch, kind, req.seq, wire.E_TOO_LONG)
    out = req.mv[:nbytes]
    st = await iopath.read(u, v, lba, count, out)
    if st != wire.OK:
        return link.respond(req.ch, kind, req.seq, st)
    return link.respond(req.ch, kind, req.seq, wire.OK, out)
