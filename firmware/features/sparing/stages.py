# Host I/O to a sparing group while its drive is copied (seed 001: Figs 8, 12, 17; E1-E3
# with every write diverted), as stages of the I/O path (firmware/iopath.py):
#   cache  a write during the copy is stored in the backup area, whole tracks (a partial
#          track is completed from the cache, the area or the group first, Fig 4B: S42/
#          S43, S88-S90, S143-S148), any cached copy updated; without space it goes to
#          the group with its bit 0 (S86/S87, S149).  During the feedback a written
#          track is fed back first and the write passes on to the cache.
#   read   a read touching diverted tracks is served from the area there (S40, S82/S83,
#          S142) and from the group elsewhere (S41, S84, S150; the faulty drive's blocks
#          rebuilt); a read touching none passes on.
# E5/E6 (faulty_only) divert in RAID's stand-in instead (standin.py).
from firmware import store, wire
from firmware.cache import CLEAN, key_of
from firmware.features.sparing.feedback import feed_key
from firmware.features.sparing.job import COPYING, FEEDBACK
from firmware.raid import GOOD


def _cache_put(sp, glba, src):
    """A diverted block's cached copy (if any) takes the new data."""
    c = sp.u.cache
    s = c.lookup(key_of(sp.gid, glba))
    if s >= 0:
        c.slot[s][:] = src
        if c.state[s] != CLEAN:
            c.mark_dirty(s)


async def _assemble(sp, key, gl, covered, data, has):
    """Fig 4B: the whole current track in tbuf, the written blocks merged in."""
    bs = sp.bs
    buf = sp.tbuf
    c = sp.u.cache
    for idx in range(len(gl)):
        dst = buf[idx * bs:(idx + 1) * bs]
        if idx in covered:
            off = covered[idx]
            dst[:] = data[off * bs:(off + 1) * bs]
            continue
        s = c.lookup(key_of(sp.gid, gl[idx]))
        if s >= 0:
            dst[:] = c.slot[s]
            continue
        if has:
            st = await sp.area.load_block(key, idx, dst)
        else:
            st = await sp.u.raid.read_block(sp.g, gl[idx], dst)
        if st not in GOOD:
            return st
    return wire.OK


async def _divert(sp, v, lba, count, data, over):
    """The request track by track into the area; what cannot go there into `over`
    [(group block, n, data)].  None: the copy is over, pass the write on."""
    bs = sp.bs
    area = sp.area
    base = sp.gstart[v["id"]] + lba
    if sp.phase != COPYING:              # feedback running: this track first, then the group
        if sp.phase == FEEDBACK:
            for i in range(count):
                key = sp.key_of(v, base + i)
                if area.has(key):
                    await feed_key(sp, key)
        # a bit the feedback cleared must be in SM before this write can reach the
        # group: a reset must not feed the older track again over it
        sp.mgr.persist()
        return None
    i = 0
    while i < count:
        glba = base + i
        key = sp.key_of(v, glba)
        gl = sp.glbas(key)
        covered = {}
        j = i
        while j < count and sp.key_of(v, base + j) == key:
            covered[gl.index(base + j)] = j
            j += 1
        n = len(gl)
        has = area.has(key)
        done = False
        if has or area.space(key):
            st = await _assemble(sp, key, gl, covered, data, has)
            if st not in GOOD:
                if has:
                    return st
            elif (has and not area.space(key)) or await area.store(key, sp.tbuf, n) not in GOOD:
                if has:
                    # S86/S87 (journal full) or a failed backup write (I32): the whole
                    # merged track to the group, the bit cleared
                    over.append((gl[0], n, bytes(sp.tbuf[:n * bs])))
                    area.drop(key)
                    done = True
            else:                                # S42/S43, S88-S90, S143-S148
                sp.stats["diverted"] += 1
                done = True
        if done:
            for idx in covered:
                off = covered[idx]
                _cache_put(sp, gl[idx], data[off * bs:(off + 1) * bs])
        else:                                                                # S86 / S149
            over.append((glba, j - i, data[i * bs:j * bs]))
        i = j
    sp.mgr.persist()      # bits cleared for an overflow: saved before its data goes on
    return wire.OK


async def host_write(mgr, u, v, lba, count, data):
    sp = mgr.diverting(v)
    if sp is None:
        return None
    over = []
    async with u.raid.lock:
        st = await _divert(sp, v, lba, count, data, over)
    sp.mgr.persist()            # the tables this write depends on, before its reply
    if st not in GOOD:
        return st
    if over:
        for glba, n, blk in over:
            sp.stats["overflow"] += 1
            await store.write_blocks(u, sp.g, glba, n, blk)
        if u.write_through:
            await store.destage(u)
    return wire.OK


async def host_read(mgr, u, v, lba, count, out):
    sp = mgr.diverting(v)
    if sp is None:
        return None
    area = sp.area
    base = sp.gstart[v["id"]] + lba
    if not any(area.has(sp.key_of(v, base + i)) for i in range(count)):
        return None          # nothing diverted here: the normal path (faulty drive rebuilt)
    c = u.cache
    bs = sp.bs
    async with u.raid.lock:
        for i in range(count):
            glba = base + i
            dst = out[i * bs:(i + 1) * bs]
            s = c.lookup(key_of(sp.gid, glba))
            if s >= 0:
                dst[:] = c.slot[s]
                continue
            key = sp.key_of(v, glba)
            if area.has(key):                                                # S40 / S82-S83 / S142
                st = await area.load_block(key, sp.glbas(key).index(glba), dst)
            else:                                                            # S41 / S84 / S150
                st = await u.raid.read_block(sp.g, glba, dst)
            if st not in GOOD:
                return st
    return wire.OK
