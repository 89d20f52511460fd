# RAID groups: RAID1 (mirror) and RAID5 (rotating parity, left-symmetric), per-block
# reads and writes with one member failed, repair of unreadable blocks, rebuild rows.
#
# A group's members all hold `rows` blocks; a "row" is one block on every member.
# Group table (SM "groups"): id, level, members [drive ids], chunk, rows, capacity,
# failed [member indexes], state, spares [drive ids], rebuild {member, spare, pointer,
# lost [rows], paused} or None, and optionally invalid [[member, row]]: blocks known to
# hold no valid data (never read as data; rebuilt, and valid again once rewritten), and
# lost [[member, row]]: blocks whose data is gone (a double fault: reads answer
# E_DATA_LOST, nothing is rebuilt from or into them; valid again once rewritten).
#
# A feature may stand in for one member of a group (proactive sparing of a failing
# drive): Raid.standin[gid] = an object with
#   .member                      the member index it stands in for
#   async .read(g, row, into, first) -> status, or None when it has no copy: first=True
#       before RAID tries to rebuild the block (a copy that must win, e.g. diverted
#       updates), first=False after the rebuild failed (e.g. the spare's copy).  It must
#       not call Raid methods (the scratch buffers may be in use).
#   async .write(g, row, data) -> status   the member's new block (called last).
# RAID never writes that member's drive, and reads it only when its block can be got
# no other way (last resort).
#
# Locks (RowLocks): `self.lock` is the whole RAID's (exclusive: features and anything
# touching a degraded group or a group a feature stands in for); a row lock lets I/O to
# different rows of a healthy group run at once, each with scratch buffers of its own
# (`sc`, from the pool).  A method called without `sc` uses the RAID's own scratch
# buffers and must be called with `self.lock` held.
import asyncio

from firmware import core, wire
from firmware.geometry import capacity, locate, row_blocks  # noqa: F401  (the RAID layout)
from firmware.rowlock import RowLocks
from firmware.writehole import WriteHole

GOOD = (wire.OK, wire.RECOVERED)
# Drive statuses that mean "this drive is gone" (as opposed to one bad block).
_DRIVE_LOST = (wire.E_NOT_READY, wire.E_WRITE_FAULT, wire.E_TIMEOUT)
HELD = -2   # drive_of(): the member a feature stands in for (see Raid.standin)


class Raid(WriteHole):
    def __init__(self, unit, block_size, max_members, sets=0):
        self.u = unit
        self.dka = unit.dka
        self.bs = block_size
        # a set of scratch blocks serves one row of a group of at most max_members:
        # a method reads at most n - 1 members into sc[0 .. n-2] and builds its parity
        # or result in sc[-1] (rebuild_row: scratch[-1], reconstruct: sc[:n-1])
        self.nscratch = max(2, max_members)
        self.scratch = self._set()
        # row locks: `sets` tasks at once on rows of healthy groups (0: all exclusive)
        self.lock = RowLocks([self._set() for _ in range(sets)])
        self.repaired = 0
        self.lost_reads = 0
        self.pending_repair = None   # parity-log record found at boot (see _repair)
        # members absent at boot: (group, member) -> first row the rebuild has not reached
        self.boot_absent = {}
        for g in unit.sm.t.get("groups") or ():
            rb = g.get("rebuild")
            for m in g.get("failed") or ():
                self.boot_absent[(g["id"], m)] = rb["pointer"] if rb and rb["member"] == m else 0
        self.hole_repairs = 0
        self.plog = asyncio.Lock()   # held from a parity-log record's put to its clear
        self.log_waits = 0           # logged writes that waited for the record
        self.double_faults = 0       # rows caught mid-write by a reset with a block unreadable
        self.standin = {}

    def _set(self):
        return [memoryview(bytearray(self.bs)) for _ in range(self.nscratch)]

    # ---- locking ----------------------------------------------------------
    def rowable(self, g):
        """Rows of g may be worked on at once: a healthy group no feature stands in for."""
        return (self.lock.nsets > 0 and not g["failed"] and self.pending_repair is None
                and not (self.standin and g["id"] in self.standin))

    async def enter(self, g, row):
        """Lock for work on one row of g: that row alone where rowable, else the whole
        RAID; returns the scratch buffers to work with (pass them as sc)."""
        if self.rowable(g):
            return await self.lock.row(row << 8 | g["id"])
        await self.lock.acquire()
        return self.scratch

    def leave(self, g, row, sc):
        if sc is self.scratch:
            self.lock.release()
        else:
            self.lock.row_done(row << 8 | g["id"], sc)

    def counters(self):
        """The "raid" table."""
        return {"repaired": self.repaired, "lost_reads": self.lost_reads, "hole_repairs": self.hole_repairs,
                "double_faults": self.double_faults, "row_sets": self.lock.nsets, "lock_waits": self.lock.waits,
                "log_waits": self.log_waits}

    @staticmethod
    def _is_lost(g, m, row):
        lost = g.get("lost")
        return bool(lost) and [m, row] in lost

    @staticmethod
    def _invalid(g, m, row):
        inv = g.get("invalid")
        if inv and [m, row] in inv:
            return True
        lost = g.get("lost")
        return bool(lost) and [m, row] in lost

    def _valid_again(self, g, m, row):
        inv = g.get("invalid")
        if inv and [m, row] in inv:
            inv.remove([m, row])
        lost = g.get("lost")
        if lost and [m, row] in lost:
            lost.remove([m, row])
            self.u.sm.save()

    def _mark_lost(self, g, m, row):
        lost = g.setdefault("lost", [])
        if [m, row] not in lost:
            lost.append([m, row])

    # ---- membership -----------------------------------------------------
    def drive_of(self, g, m, row):
        """Drive that holds member m's block of `row` now, -1 if none does, HELD if a
        feature stands in for the member."""
        if self.standin:
            h = self.standin.get(g["id"])
            if h is not None and h.member == m:
                return HELD
        if m in g["failed"]:
            rb = g["rebuild"]
            if rb and rb["member"] == m and row < rb["pointer"]:
                d = rb["spare"]
                return d if self.dka.usable(d) else -1
            return -1
        d = g["members"][m]
        return d if self.dka.usable(d) else -1

    def direct(self, g, glba, n, most):
        """(drive, row, k): group blocks glba..glba+k-1 (1 <= k <= min(n, most)) lie on
        one healthy drive at rows row..row+k-1 and can be read straight from it, with no
        lock (no scratch buffer, nothing rebuilt); None when they need the full path."""
        if self.pending_repair is not None or g.get("invalid") or g.get("lost"):
            return None
        h = self.standin.get(g["id"]) if self.standin else None
        if g["level"] == 1:
            for m in range(len(g["members"])):
                d = g["members"][m]
                if m not in g["failed"] and (h is None or h.member != m) and self.dka.usable(d):
                    return d, glba, min(n, most)
            return None
        row, m, _ = locate(g, glba)
        if m in g["failed"] or (h is not None and h.member == m):
            return None
        d = g["members"][m]
        if not self.dka.usable(d):
            return None
        chunk = g["chunk"]
        k = chunk - row % chunk
        return d, row, min(n, most, k)

    def _lost(self, g, d, st):
        """A drive stopped answering: fail it (and whatever it was doing)."""
        if st in _DRIVE_LOST:
            self.u.fail_drive(d, wire.status_name(st))

    async def _io_all(self, ops):
        """Run drive ops [(d, 'r'|'w', row, buf)] in parallel; return their statuses.
        All are sent before the first await, so written buffers go out as one snapshot."""
        ps = []
        for d, op, row, buf in ops:
            ps.append(self.dka.start(d, op, row, 1, buf))
        sts = []
        for i in range(len(ops)):
            d, op, _, _ = ops[i]
            sts.append(await self.dka.finish(d, op, ps[i]))
        return sts

    # ---- reads ------------------------------------------------------------
    async def read_block(self, g, glba, into, tried=None, sc=None):
        """One group block into `into`.  tried = (drive, status) of a read of this very
        block just made without the lock (see direct()): not asked of that drive again.
        sc: the scratch buffers of a row-locked caller (see RowLocks), else the RAID's."""
        if self.pending_repair is not None:
            await self._repair()
        row, m, _ = locate(g, glba)
        if g["level"] == 1:
            return await self._read_mirror(g, row, into, tried)
        d = self.drive_of(g, m, row)
        if d >= 0:
            if self._invalid(g, m, row):
                st = wire.E_MEDIUM
            elif tried is not None and tried[0] == d:
                st = tried[1]
                self._lost(g, d, st)
            else:
                st = await self.dka.read(d, row, 1, into)
                if st in GOOD:
                    return st
                self._lost(g, d, st)
            st = await self.reconstruct(g, row, m, into, sc)
            if st in GOOD and self.drive_of(g, m, row) == d:
                # S: the block was unreadable but the drive is alive: rewrite it (repair)
                if await self.dka.write(d, row, 1, into) == wire.OK:
                    self.repaired += 1
                    self._valid_again(g, m, row)
            return st
        if d == HELD:
            return await self._read_held(g, row, m, into)
        return await self.reconstruct(g, row, m, into, sc)

    async def _read_held(self, g, row, m, into):
        """The held member's block: the stand-in's own copy if it must win, else rebuilt
        from the others; only if that fails the stand-in's other copy, then the drive."""
        h = self.standin[g["id"]]
        st = await h.read(g, row, into, True)
        if st is not None and st in GOOD:
            return st
        st = await self.reconstruct(g, row, m, into)
        if st in GOOD:
            return st
        return await self._held(g, row, into)

    async def _held(self, g, row, into):
        """The held member's block where it cannot be rebuilt (it is needed to rebuild
        another): the stand-in's copies, else the held drive itself (last resort)."""
        h = self.standin[g["id"]]
        for first in (True, False):
            st = await h.read(g, row, into, first)
            if st is not None and st in GOOD:
                return st
        return await self.dka.read(g["members"][h.member], row, 1, into)

    async def _read_mirror(self, g, row, into, tried=None):
        bad = []
        for m in range(len(g["members"])):
            d = self.drive_of(g, m, row)
            if d < 0:
                continue
            if tried is not None and tried[0] == d:
                st = tried[1]
                tried = None
            else:
                st = await self.dka.read(d, row, 1, into)
            if st in GOOD:
                for bd in bad:  # repair the copies that could not be read
                    if self.dka.usable(bd) and await self.dka.write(bd, row, 1, into) == wire.OK:
                        self.repaired += 1
                return st
            self._lost(g, d, st)
            if st == wire.E_MEDIUM:
                bad.append(d)
        self.lost_reads += 1
        return wire.E_DATA_LOST

    async def reconstruct(self, g, row, m, into, sc=None):
        """RAID5: member m's block of row = XOR of every other member's block."""
        sc = sc or self.scratch
        if self._is_lost(g, m, row):
            self.lost_reads += 1
            return wire.E_DATA_LOST
        ops = []
        n = len(g["members"])
        k = 0
        for o in range(n):
            if o == m:
                continue
            d = self.drive_of(g, o, row)
            if d == HELD and await self._held(g, row, sc[k]) in GOOD:
                k += 1
                continue
            if d < 0 or self._invalid(g, o, row):
                self.lost_reads += 1
                return wire.E_DATA_LOST
            ops.append((d, "r", row, sc[k]))
            k += 1
        sts = await self._io_all(ops)
        for i in range(len(ops)):
            if sts[i] not in GOOD:
                self._lost(g, ops[i][0], sts[i])
                self.lost_reads += 1
                return wire.E_DATA_LOST
        core.xor_into(into, sc[:k])
        return wire.OK

    # ---- writes -------------------------------------------------------------
    async def write_block(self, g, glba, data, resync=False, sc=None):
        """Write one group block (RAID5: read-modify-write of data and parity; with
        resync, parity is recomputed from the row's data instead, for a row whose last
        write may have been cut short)."""
        sc = sc or self.scratch
        if self.pending_repair is not None:
            await self._repair()
        row, m, p = locate(g, glba)
        self._guard_rebuilt_row(g, row)
        if g["level"] == 1:
            return await self._write_ops(g, [(self.drive_of(g, k, row), "w", row, data)
                                             for k in range(len(g["members"]))])
        dm = self.drive_of(g, m, row)
        dp = self.drive_of(g, p, row)
        if dm == HELD or dp == HELD or self._invalid(g, m, row) or self._invalid(g, p, row):
            # the held drive is never read: parity from the other data blocks
            return await self._reconstruct_write(g, row, m, p, data, sc)
        if dp < 0:
            if dm < 0:
                return wire.E_DATA_LOST
            return await self._write_ops(g, [(dm, "w", row, data)])
        if dm < 0:
            # data member missing: parity = XOR(new data, the other data blocks)
            return await self._reconstruct_write(g, row, m, p, data, sc)
        if resync and not self._logged_row(g, row, m, p):
            # the row was caught mid-write by a reset: parity not trusted, recompute it
            # from the data
            return await self._resync_write(g, row, m, p, dm, dp, data, sc)
        old = sc[0]
        ppar = sc[1]
        sts = await self._io_all([(dm, "r", row, old), (dp, "r", row, ppar)])
        if sts[0] not in GOOD or sts[1] not in GOOD:
            for i, d in ((0, dm), (1, dp)):
                if sts[i] not in GOOD:
                    self._lost(g, d, sts[i])
            # an old block is unreadable: write the row from the other data blocks instead
            return await self._reconstruct_write(g, row, m, p, data, sc)
        absent = self._absent(g, row, m, p)
        if absent < 0:
            core.parity_update(ppar, old, data)
            return await self._write_ops(g, [(dm, "w", row, data), (dp, "w", row, ppar)])
        await self._log_take()   # the one parity-log record: one logged write at a time
        try:
            st = await self._log_absent(g, row, m, p, absent, old, ppar, sc)
            if st not in GOOD:
                return st
            core.parity_update(ppar, old, data)
            st = await self._write_ops(g, [(dm, "w", row, data), (dp, "w", row, ppar)])
            await self._log_end()
            return st
        finally:
            self.plog.release()

    async def _reconstruct_write(self, g, row, m, p, data, sc=None):
        """Parity = XOR(new data, every other data block); write both."""
        sc = sc or self.scratch
        n = len(g["members"])
        ops = []
        k = 0
        for o in range(n):
            if o == m or o == p:
                continue
            d = self.drive_of(g, o, row)
            if d == HELD and await self._held(g, row, sc[k]) in GOOD:
                k += 1
                continue
            if d < 0 or self._invalid(g, o, row):
                return wire.E_DATA_LOST
            ops.append((d, "r", row, sc[k]))
            k += 1
        sts = await self._io_all(ops)
        for i in range(len(ops)):
            if sts[i] not in GOOD:
                self._lost(g, ops[i][0], sts[i])
                return wire.E_DATA_LOST
        par = sc[-1]
        srcs = sc[:k]
        srcs.append(data)
        core.xor_into(par, srcs)
        w = [(self.drive_of(g, p, row), "w", row, par)]
        dm = self.drive_of(g, m, row)
        if dm >= 0 or dm == HELD:
            w.append((dm, "w", row, data))
        st = await self._write_ops(g, w)
        if dm == -1 and st in GOOD and self._is_lost(g, m, row):
            self._valid_again(g, m, row)    # an absent member's new data: held by the parity now
        return st

    def _logged_row(self, g, row, m, p):
        """A row caught mid-write whose parity can be trusted all the same: a member is
        absent, and every absent one was absent before the reset, so the row's writes
        went through the parity log (which made the row whole at boot if it was open)."""
        absent = False
        for k in range(len(g["members"])):
            if k != m and k != p and self.drive_of(g, k, row) == -1:
                first = self.boot_absent.get((g["id"], k))
                if first is None or row < first:
                    return False      # gone since the boot: its block leaned on this parity
                absent = True
        return absent

    async def _resync_write(self, g, row, m, p, dm, dp, data, sc=None):
        """Write member m's block of a row caught mid-write by a reset: parity from the
        row's data.  A data block that cannot be read (a double fault: parity is not
        trusted, so it cannot be rebuilt either) is lost: it is marked (its reads answer
        E_DATA_LOST until it is written again), reported with its group and row, and
        counted; parity is computed without it, so the rest of the row stays protected."""
        sc = sc or self.scratch
        ops = []
        who = []
        k = 0
        held = []
        for o in range(len(g["members"])):
            if o == m or o == p:
                continue
            d = self.drive_of(g, o, row)
            if d == HELD:
                held.append((o, k))
            elif d >= 0 and not self._invalid(g, o, row):
                ops.append((d, "r", row, sc[k]))
                who.append((o, k))
            else:
                held.append((o, -1))     # no drive, or no valid data: unreadable
            k += 1
        sts = await self._io_all(ops)
        bad = []
        good = []
        for i in range(len(ops)):
            if sts[i] in GOOD:
                good.append(who[i][1])
            else:
                self._lost(g, ops[i][0], sts[i])
                bad.append(who[i][0])
        for o, j in held:
            if j >= 0 and await self._held(g, row, sc[j]) in GOOD:
                good.append(j)
            else:
                bad.append(o)
        if bad:
            for o in bad:
                self._mark_lost(g, o, row)
            self.double_faults += 1
            self.u.warn("group %d row %d: a write cut short by a reset (parity not trusted) and member %s "
                        "unreadable: data lost" % (g["id"], row, ",".join([str(o) for o in bad])))
            self.u.sm.save()
        par = sc[-1]
        srcs = [sc[j] for j in good]
        srcs.append(data)
        core.xor_into(par, srcs)
        return await self._write_ops(g, [(dp, "w", row, par), (dm, "w", row, data)])

    async def write_row(self, g, row, blocks, sc=None):
        """RAID5 full-row write: blocks[m] is the data for member m (None at parity)."""
        sc = sc or self.scratch
        if self.pending_repair is not None:
            await self._repair()
        self._guard_rebuilt_row(g, row)
        n = len(g["members"])
        nv = self.u.cache.nv if self.u.cache else None
        absent = self._absent(g, row, -1, -1)
        logged = nv is not None and absent >= 0 and blocks[absent] is not None
        if logged:   # the absent member's data lives only in parity: log it first
            await self._log_take()
        try:
            if logged:
                await self._log_put(g["id"], row, absent, blocks[absent])
            par = sc[-1]
            core.xor_into(par, [b for b in blocks if b is not None])
            ops = []
            for m in range(n):
                buf = par if blocks[m] is None else blocks[m]
                ops.append((self.drive_of(g, m, row), "w", row, buf))
            st = await self._write_ops(g, ops)
            if logged:
                await self._log_end()
            return st
        finally:
            if logged:
                self.plog.release()

    async def _write_ops(self, g, ops):
        """Issue the writes that have a drive; the row survives if at most one member
        of the group is missing afterwards."""
        live = [op for op in ops if op[0] >= 0]
        sts = await self._io_all(live)
        for i in range(len(live)):
            if sts[i] != wire.OK and sts[i] != wire.RECOVERED:
                self.u.fail_drive(live[i][0], wire.status_name(sts[i]))
        ok = sum(1 for s in sts if s in GOOD)
        if g.get("invalid") or g.get("lost"):
            for m in range(len(g["members"])):
                for i in range(len(live)):
                    if sts[i] in GOOD and live[i][0] == g["members"][m]:
                        self._valid_again(g, m, live[i][2])
        for op in ops:
            if op[0] == HELD and await self.standin[g["id"]].write(g, op[2], op[3]) in GOOD:
                ok += 1
        if ok == 0:
            return wire.E_DATA_LOST
        if g["level"] == 5 and len(g["failed"]) > 1:
            return wire.E_DATA_LOST
        return wire.OK

    # ---- rebuild ---------------------------------------------------------------
    async def rebuild_row(self, g, row):
        """Recreate the failed member's block of `row` on the spare; return a status."""
        if self.pending_repair is not None:
            await self._repair()
        rb = g["rebuild"]
        m = rb["member"]
        buf = self.scratch[-1]
        if g["level"] == 1:
            st = wire.E_DATA_LOST
            for k in range(len(g["members"])):
                d = self.drive_of(g, k, row)
                if k != m and d >= 0:
                    st = await self.dka.read(d, row, 1, buf)
                    if st in GOOD:
                        break
                    self._lost(g, d, st)
        else:
            st = await self.reconstruct(g, row, m, buf)
        if st == wire.E_DATA_LOST and g["level"] == 5:
            self._mark_lost(g, m, row)   # the spare has nothing valid there: never read it as data
        if st not in GOOD:
            return st
        st = await self.dka.write(rb["spare"], row, 1, buf)
        if st not in GOOD:
            self.u.fail_drive(rb["spare"], wire.status_name(st))
        return st
