# RAID's view of the faulty member while it is copied (seed 001; Raid.standin[gid], see
# firmware/raid.py).  RAID never writes the faulty drive and reads it only when its
# block cannot be rebuilt.  A block RAID writes for the faulty member goes through to
# the spare (spec 9), or, when only the faulty drive's data is diverted (E5/E6: S205/
# S206, S232-S234, S260-S262), into the backup area; an updated block of the faulty
# member is read from the area (S204, S227, S256).  Called with the RAID lock held.
from firmware import core, wire
from firmware.features.sparing.feedback import feed_key
from firmware.features.sparing.job import COPYING
from firmware.raid import GOOD


class StandIn:
    def __init__(self, sp):
        self.sp = sp
        self.member = sp.member

    async def read(self, g, row, into, first):
        sp = self.sp
        if first:
            if sp.faulty_only and sp.area is not None:
                key = (sp.drive, row // sp.tb)
                if sp.area.has(key):
                    return await sp.area.load_block(key, row % sp.tb, into)
            return None
        if core.bit_test(sp.bad, row):
            return None
        if core.bit_test(sp.cur, row) or (row < sp.ptr and not core.bit_test(sp.wt, row)):
            return await sp.u.dka.read(sp.spare, row, 1, into)
        return None

    async def write(self, g, row, data):
        sp = self.sp
        if sp.faulty_only and sp.area is not None:
            st = await self._divert(row, data)
            sp.mgr.persist()      # before the destage marks the cache slot clean
            if st is not None:
                return st
        return await sp.through(row, data)

    async def _through_track(self, t, buf, n):
        sp = self.sp
        bs = sp.bs
        for j in range(n):
            await sp.through(t * sp.tb + j, buf[j * bs:(j + 1) * bs])

    async def _divert(self, row, data):
        """The faulty drive's block (data or parity) into the area as part of its whole
        track; None: write it through to the spare (no space, S230/S231)."""
        sp = self.sp
        area = sp.area
        tb = sp.tb
        t = row // tb
        i = row % tb
        key = (sp.drive, t)
        if sp.phase != COPYING:
            if area.has(key):
                await feed_key(sp, key)
            return None
        n = sp.track_len(key)
        bs = sp.bs
        buf = sp.wbuf
        has = area.has(key)
        if not has and not area.space(key):
            return None
        buf[i * bs:(i + 1) * bs] = data
        raid = sp.u.raid
        for j in range(n):
            if j == i:
                continue
            dst = buf[j * bs:(j + 1) * bs]
            if has:
                st = await area.load_block(key, j, dst)
            else:
                st = await raid._read_held(sp.g, t * tb + j, sp.member, dst)
            if st not in GOOD:
                return None
        if has and not area.space(key):          # E2 journal full: the whole track to the spare
            await self._through_track(t, buf, n)
            area.drop(key)
            sp.stats["overflow"] += 1
            return wire.OK
        st = await area.store(key, buf, n)
        if st not in GOOD:
            if has:
                area.drop(key)
                await self._through_track(t, buf, n)
                return wire.OK
            return None
        sp.stats["diverted"] += 1
        return wire.OK
