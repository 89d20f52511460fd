# The RAID5 write hole (a mixin of firmware.raid.Raid): a row written part-way at a
# reset has data and parity that disagree, which is harmless while every member is
# there (the non-volatile cache writes the row again at boot, parity recomputed) but
# loses the absent member's block of a degraded row, which lives only in that parity.
# So before such a write the absent member's data goes to the parity log (one record
# in the non-volatile cache, nvcache.plog_*), and boot makes the row whole from it.
#
# One record: one logged write at a time.  Degraded groups are worked on under the
# RAID's exclusive lock, but a write that took a row lock while its group was healthy
# can find a member gone mid-operation, as can another such write on another row; the
# record is therefore held (`plog`, taken by _log_take) from its put until its clear.
# A dual unit's master also opens and closes it on its sibling (u.plog_observers), so
# that a takeover can make the dead master's row whole (features/dual/plog.py).
from firmware import core, wire

GOOD = (wire.OK, wire.RECOVERED)


class WriteHole:
    pending_repair: tuple   # (group, row, member, data) of an open record, or None (Raid, the unit)
    async def _log_take(self):
        if self.plog.locked():
            self.log_waits += 1
        await self.plog.acquire()

    def _guard_rebuilt_row(self, g, row):
        """Before writing a row the rebuild has just passed: save its pointer, so after
        a reset the spare is trusted for this row (a write here updates the spare and
        the parity together; with an older pointer, the row would count as absent and a
        write cut short could no longer be made whole)."""
        rb = g.get("rebuild")
        if rb and row < rb["pointer"] and row >= rb.get("saved", 0):
            rb["saved"] = rb["pointer"]
            self.u.sm.save()

    def _absent(self, g, row, m, p):
        """RAID5: a member other than m and p with no drive for this row, or -1."""
        if g["level"] != 5 or not g["failed"]:
            return -1
        for k in range(len(g["members"])):
            if k != m and k != p and self.drive_of(g, k, row) < 0:
                return k
        return -1

    async def _log_absent(self, g, row, m, p, k, old, ppar, sc=None):
        """Before a read-modify-write of a row whose member k is absent: log k's data
        (old parity ^ old data ^ the other data blocks), so the row can be made whole
        again whatever part of the write a reset lets through."""
        sc = sc or self.scratch
        nv = self.u.cache.nv if self.u.cache else None
        if nv is None:
            return wire.OK
        acc = sc[-1]
        core.xor_into(acc, [ppar, old])
        ops = []
        j = 2
        for o in range(len(g["members"])):
            if o not in (m, p, k):
                ops.append((self.drive_of(g, o, row), "r", row, sc[j]))
                j += 1
        if ops:
            sts = await self._io_all(ops)
            for i in range(len(ops)):
                if sts[i] not in GOOD:
                    self._lost(g, ops[i][0], sts[i])
                    return wire.E_DATA_LOST
                core.xor_acc(acc, sc[2 + i])
        await self._log_put(g["id"], row, k, acc)
        return wire.OK

    async def _log_put(self, gid, row, k, data):
        """Open the record (the non-volatile cache's, and every plog observer's: the
        dual unit's sibling) before the row is written."""
        self.u.cache.nv.plog_put(gid, row, k, data)
        for fn in self.u.plog_observers:
            await fn((gid, row, k, data))

    async def _log_end(self):
        """The row is written: close the record, here and at the observers."""
        nv = self.u.cache.nv if self.u.cache else None
        if nv is not None:
            nv.plog_clear()
            for fn in self.u.plog_observers:
                await fn(None)

    async def _repair(self):
        """Boot found an open parity-log record: rewrite that row's parity from the
        data on the drives and the logged data of the absent member."""
        gid, row, k, data = self.pending_repair
        self.pending_repair = None
        g = self.u.group(gid)
        if g is not None and g["level"] == 5:
            n = len(g["members"])
            p = (n - 1) - (row // g["chunk"]) % n
            acc = self.scratch[-1]
            acc[:] = data
            ok = True
            for o in range(n):
                if o == k or o == p:
                    continue
                d = self.drive_of(g, o, row)
                if d < 0 or await self.dka.read(d, row, 1, self.scratch[0]) not in GOOD:
                    ok = False
                    break
                core.xor_acc(acc, self.scratch[0])
            dp = self.drive_of(g, p, row)
            if ok and dp >= 0 and await self.dka.write(dp, row, 1, acc) == wire.OK:
                self.hole_repairs += 1
        await self._log_end()
