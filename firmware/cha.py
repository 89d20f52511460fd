# Channel adapter (CHA): host-port requests.  Checks every field before touching any
# state, then reads through the cache (hit, or miss staged under the RAID lock) and
# writes into the cache (write-back; the destage task writes dirty slots to the group).
import struct

from firmware import wire
from firmware.cache import CLEAN, DIRTY, key_of
from firmware.raid import GOOD, locate, row_blocks


def _volume(u, vol):
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
    if len(p) < 2:
        return link.respond(req.ch, kind, req.seq, wire.E_BAD_LENGTH)
    vol = p[0] | (p[1] << 8)
    v = _volume(u, vol)
    if v is None:
        return link.respond(req.ch, kind, req.seq, wire.E_NO_VOLUME)
    g = u.group(v["group"])
    bs = u.bs
    if kind == wire.K_VOLINFO:
        return link.respond(req.ch, kind, req.seq, wire.OK, struct.pack("<II", v["blocks"], bs))
    if kind == wire.K_FLUSH:
        await destage(u)
        st = wire.OK if u.cache.ndirty == 0 else wire.E_DATA_LOST
        return link.respond(req.ch, kind, req.seq, st)
    if len(p) < wire.IO_HEAD_LEN:
        return link.respond(req.ch, kind, req.seq, wire.E_BAD_LENGTH)
    _, lba, count = struct.unpack_from(wire.IO_HEAD, p, 0)
    if count == 0 or lba + count > v["blocks"]:
        return link.respond(req.ch, kind, req.seq, wire.E_OUT_OF_RANGE)
    nbytes = count * bs
    glba = v["start"] + lba
    if kind == wire.K_WRITE:
        if len(p) != wire.IO_HEAD_LEN + nbytes:
            return link.respond(req.ch, kind, req.seq, wire.E_BAD_LENGTH)
        data = p[wire.IO_HEAD_LEN:]
        for hook in u.write_hooks:
            st = await hook(u, v, lba, count, data)
            if st is not None:
                return link.respond(req.ch, kind, req.seq, st)
        await write_blocks(u, g, glba, count, data)
        if u.write_through:
            await destage(u)
        return link.respond(req.ch, kind, req.seq, wire.OK)
    # K_READ: the data is assembled in the request's own buffer
    if nbytes + 1 > link.max_payload:
        return link.respond(req.ch, kind, req.seq, wire.E_TOO_LONG)
    out = req.mv[:nbytes]
    for hook in u.read_hooks:
        st = await hook(u, v, lba, count, out)
        if st is not None:
            if st in GOOD:
                return link.respond(req.ch, kind, req.seq, wire.OK, out)
            return link.respond(req.ch, kind, req.seq, st)
    st = await read_blocks(u, g, glba, count, out)
    if st not in GOOD:
        return link.respond(req.ch, kind, req.seq, st)
    return link.respond(req.ch, kind, req.seq, wire.OK, out)


async def write_blocks(u, g, glba, count, data):
    c = u.cache
    bs = u.bs
    gid = g["id"]
    for i in range(count):
        key = key_of(gid, glba + i)
        while True:
            s = c.lookup(key)
            if s < 0:
                s = c.alloc(key)
                if s >= 0:
                    c.c["write_misses"] += 1
            elif not c.busy[s]:
                c.c["write_hits"] += 1
            if s >= 0 and not c.busy[s]:
                break
            # every slot dirty, or this one's data is on its way to the drives (and may
            # be resent): wait for the destage task, then look again
            c.c["full_waits"] += 1
            u.slot_ev.clear()
            u.destage_ev.set()
            await u.slot_ev.wait()
        c.slot[s][:] = data[i * bs:(i + 1) * bs]
        c.mark_dirty(s)
    if c.ndirty >= u.high_water:
        u.destage_ev.set()


async def read_blocks(u, g, glba, count, out):
    c = u.cache
    bs = u.bs
    gid = g["id"]
    worst = wire.OK
    for i in range(count):
        key = key_of(gid, glba + i)
        dst = out[i * bs:(i + 1) * bs]
        s = c.lookup(key)
        if s >= 0:
            c.c["read_hits"] += 1
            dst[:] = c.slot[s]
            continue
        c.c["read_misses"] += 1
        async with u.raid.lock:
            st = await u.raid.read_block(g, glba + i, dst)
            if st not in GOOD:
                return st
            s = c.lookup(key)   # a host write may have landed while we read
            if s >= 0:
                dst[:] = c.slot[s]
            else:
                s = c.alloc(key)
                if s >= 0:
                    c.slot[s][:] = dst
    return worst


async def destage(u):
    """Write every dirty slot to its group: full RAID5 rows in one go when the whole
    row is cached, otherwise block by block (read-modify-write).  A slot is held busy
    while its data is in flight (a host write to it waits), so a retransmission sends
    the same bytes; `gen` still guards against a rewrite in between."""
    c = u.cache
    raid = u.raid
    for s in c.dirty_slots():
        async with raid.lock:
            if c.state[s] != DIRTY:
                continue
            key = c.key[s]
            gid = key % 16
            glba = key // 16
            g = u.group(gid)
            if g["level"] == 5:
                row, _, _ = locate(g, glba)
                slots = [c.index.get(key_of(gid, b), -1) if b is not None else -2 for b in row_blocks(g, row)]
                if -1 not in slots:
                    bufs = [None if k < 0 else c.slot[k] for k in slots]
                    gens = [0 if k < 0 else c.gen[k] for k in slots]
                    for k in slots:
                        if k >= 0:
                            c.hold(k)
                    try:
                        st = await raid.write_row(g, row, bufs)
                    finally:
                        for k in slots:
                            if k >= 0:
                                c.busy[k] = 0
                    for i in range(len(slots)):
                        if slots[i] >= 0 and c.state[slots[i]] != CLEAN:
                            _done(u, slots[i], gens[i], st)
                    u.slot_ev.set()
                    continue
            gen = c.gen[s]
            c.hold(s)
            try:
                st = await raid.write_block(g, glba, c.slot[s], c.resync[s])
            finally:
                c.busy[s] = 0
            _done(u, s, gen, st)
            u.slot_ev.set()
    u.slot_ev.set()


def _done(u, s, gen, st):
    c = u.cache
    if st in GOOD:
        c.mark_clean(s, gen)
    else:
        c.pin(s)
        u.warn("destage of slot %d failed: %s; data kept in cache" % (s, wire.status_name(st)))
