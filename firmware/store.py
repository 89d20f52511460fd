# The cache / RAID layer: blocks of a group into and out of the cache (write-back), read
# misses staged from the group under the RAID lock, and the destage of dirty slots.
# Volume addresses become group addresses only through firmware.volmap.
#
# Every block stored in the cache, by a host write or by a feature's internal copy,
# goes through write_blocks(): u.cache_observers (async fn(u, gid, glba, count, data))
# see each one before it counts as stored (the seam for a cache mirrored to a second
# controller); u.clean_observers (fn(slot)) see each slot a destage made clean, and
# u.destage_filter (fn(key) -> bool) keeps the slots another controller destages.
# Trace events (u.trace) show the channel adapter -> cache -> disk adapter handshake:
# "stage" (a read miss goes to the group), "staged", "destage", "destaged".
import asyncio

from firmware import volmap, wire
from firmware.cache import CLEAN, DIRTY, key_of
from firmware.raid import GOOD, locate, row_blocks


async def _each(u, v, lba, count, buf, fn):
    bs = u.bs
    for gid, glba, off, n in volmap.segments(v, lba, count):
        st = await fn(u, u.group(gid), glba, n, buf[off * bs:(off + n) * bs])
        if st is not None and st not in GOOD:
            return st
    return wire.OK


async def write_vol(u, v, lba, count, data):
    """Store volume blocks lba..lba+count-1 in the cache."""
    return await _each(u, v, lba, count, data, write_blocks)


async def read_vol(u, v, lba, count, out):
    """Read volume blocks into out (cache hits, else the group); the first bad status."""
    return await _each(u, v, lba, count, out, read_blocks)


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
    for fn in u.cache_observers:
        await fn(u, gid, glba, count, data)
    if c.ndirty >= u.high_water:
        u.destage_ev.set()


async def read_blocks(u, g, glba, count, out):
    """Cache hits first; a run of misses on one healthy member is one drive read with
    no lock (readers of healthy members never wait for a write); anything else (a
    failed member, an unreadable block, a stand-in) goes block by block under the
    RAID lock, which rebuilds and repairs."""
    c = u.cache
    bs = u.bs
    gid = g["id"]
    raid = u.raid
    most = (u.link.max_payload - 16) // bs
    i = 0
    while i < count:
        key = key_of(gid, glba + i)
        s = c.lookup(key)
        if s >= 0:
            c.c["read_hits"] += 1
            out[i * bs:(i + 1) * bs] = c.slot[s]
            i += 1
            continue
        n = 1
        while i + n < count and n < most and c.index.get(key_of(gid, glba + i + n), -1) < 0:
            n += 1
        # (a locked read may need a drive request per member: leave it room)
        run = raid.direct(g, glba + i, n, most) if len(u.link.free) > raid.nscratch * (raid.lock.nsets + 1) else None
        if run is not None:
            d, row, k = run
            if u.tracing:
                u.trace("stage", gid, glba + i, k)
            st = await u.dka.read(d, row, k, out[i * bs:(i + k) * bs])
            if st in GOOD:
                c.c["read_misses"] += k
                c.c["direct_reads"] = c.c.get("direct_reads", 0) + 1
                for j in range(k):
                    _fill(c, key_of(gid, glba + i + j), out[(i + j) * bs:(i + j + 1) * bs])
                if u.tracing:
                    u.trace("staged", gid, glba + i, st)
                i += k
                continue
            # the drive could not give the run: block by block under the lock (a block
            # read alone just now is not asked for again)
            tried = (d, st) if k == 1 else None
        else:
            tried = None
        st = await _read_locked(u, g, glba + i, key, out[i * bs:(i + 1) * bs], tried)
        if st not in GOOD:
            return st
        i += 1
    return wire.OK


def _fill(c, key, dst):
    """After a read from the drives: a host write that landed meanwhile wins (its data
    into dst), else the block is kept in a clean slot if one is free."""
    s = c.lookup(key)
    if s >= 0:
        dst[:] = c.slot[s]
        return
    s = c.alloc(key)
    if s >= 0:
        c.slot[s][:] = dst


async def _read_locked(u, g, glba, key, dst, tried=None):
    c = u.cache
    raid = u.raid
    c.c["read_misses"] += 1
    if u.tracing:
        u.trace("stage", g["id"], glba)
    row = locate(g, glba)[0]
    sc = await raid.enter(g, row)
    try:
        st = await raid.read_block(g, glba, dst, tried, sc)
        if st not in GOOD:
            return st
        _fill(c, key, dst)
    finally:
        raid.leave(g, row, sc)
    if u.tracing:
        u.trace("staged", g["id"], glba, st)
    return st


async def destage(u):
    """Write every dirty slot to its group: full RAID5 rows in one go when the whole
    row is cached, otherwise block by block (read-modify-write).  As many rows are in
    flight at once as the RAID has row-lock buffer sets (rows of one group never
    twice at once).  A slot is held busy while its data is in flight (a host write to
    it waits), so a retransmission sends the same bytes; `gen` still guards against a
    rewrite in between."""
    todo = u.cache.dirty_slots()
    owns = u.destage_filter
    if owns is not None:
        todo = [s for s in todo if owns(u.cache.key[s])]
    n = min(len(todo), u.raid.lock.nsets)
    if n > 1:
        await asyncio.gather(*[_destager(u, todo) for _ in range(n)])
    else:
        await _destager(u, todo)
    u.slot_ev.set()


async def flush(u):
    """Destage; the number of slots dirty when the flush began that did not reach the
    drives (0: everything written before the flush is on the drives).  Slots written
    again or first made dirty while it ran are the next flush's, not a failure."""
    c = u.cache
    before = [(s, c.gen[s]) for s in range(c.n) if c.state[s] != CLEAN]   # dirty or pinned
    await destage(u)
    stuck = 0
    for s, gen in before:
        if c.state[s] != CLEAN and c.gen[s] == gen:
            stuck += 1
    return stuck


async def _destager(u, todo):
    while todo:
        await _destage_slot(u, todo.pop(0))


async def _destage_slot(u, s):
    c = u.cache
    raid = u.raid
    if c.state[s] != DIRTY:
        return
    key = c.key[s]
    gid = volmap.key_gid(key)
    glba = volmap.key_glba(key)
    g = u.group(gid)
    row = locate(g, glba)[0]
    sc = await raid.enter(g, row)
    try:
        if c.state[s] != DIRTY or c.key[s] != key:
            return
        if u.destage_filter is not None and not u.destage_filter(key):
            return      # another controller destages it now (its role changed meanwhile)
        if u.tracing:
            u.trace("destage", gid, glba)
        if g["level"] == 5:
            slots = [c.index.get(key_of(gid, b), -1) if b is not None else -2 for b in row_blocks(g, row)]
            if -1 not in slots:
                bufs = [None if k < 0 else c.slot[k] for k in slots]
                gens = [0 if k < 0 else c.gen[k] for k in slots]
                for k in slots:
                    if k >= 0:
                        c.hold(k)
                try:
                    st = await raid.write_row(g, row, bufs, sc)
                finally:
                    for k in slots:
                        if k >= 0:
                            c.busy[k] = 0
                for i in range(len(slots)):
                    if slots[i] >= 0 and c.state[slots[i]] != CLEAN:
                        _done(u, slots[i], gens[i], st)
                if u.tracing:
                    u.trace("destaged", gid, glba, st)
                u.slot_ev.set()
                return
        gen = c.gen[s]
        c.hold(s)
        try:
            st = await raid.write_block(g, glba, c.slot[s], c.resync[s], sc)
        finally:
            c.busy[s] = 0
        _done(u, s, gen, st)
        if u.tracing:
            u.trace("destaged", gid, glba, st)
        u.slot_ev.set()
    finally:
        raid.leave(g, row, sc)


def _done(u, s, gen, st):
    c = u.cache
    if st in GOOD:
        if c.mark_clean(s, gen):
            for fn in u.clean_observers:
                fn(s)
    else:
        c.pin(s)
        u.warn("destage of slot %d failed: %s; data kept in cache" % (s, wire.status_name(st)))
