# The RAID's locks, after Linux md's stripe cache: I/O to different rows of a group runs
# at once, a row is worked on by one task at a time, and an exclusive lock over all of
# it serves what must see the whole RAID still (a feature standing in for a member, a
# degraded group's parity log, rebuild and repair).
#
#   async with raid.lock:  ...        exclusive: waits for every row holder to finish;
#                                     new row holders wait while it is held or wanted
#   sc = await raid.lock.row(key)     one row (key = row << 8 | group id), with a set of
#   raid.lock.row_done(key, sc)       scratch buffers of its own for the RAID methods
import asyncio


class RowLocks:
    def __init__(self, sets):
        self.rows = {}          # row key -> 1 while held
        self.excl = False
        self.want = 0           # tasks waiting for the exclusive lock (rows yield to them)
        self.sets = sets        # free scratch-buffer sets for row holders
        self.nsets = len(sets)
        self.ev = asyncio.Event()
        self.waits = 0          # times a task had to wait (the "raid" table shows it)
        self.rwait = 0          # row holders waiting now

    async def _wait(self):
        self.waits += 1
        self.ev.clear()
        await self.ev.wait()

    async def acquire(self):
        if self.rwait:
            # row holders woken by the last release go first (a loop that takes the
            # whole RAID again and again must not starve them)
            await asyncio.sleep(0)
        self.want += 1
        try:
            while self.excl or self.rows:
                await self._wait()
        finally:
            self.want -= 1
        self.excl = True

    def release(self):
        self.excl = False
        self.ev.set()

    def locked(self):
        return self.excl

    async def __aenter__(self):
        await self.acquire()
        return self

    async def __aexit__(self, *exc):
        self.release()

    async def row(self, key):
        while self.excl or self.want or key in self.rows or not self.sets:
            self.rwait += 1
            try:
                await self._wait()
            finally:
                self.rwait -= 1
        self.rows[key] = 1
        return self.sets.pop()

    def row_done(self, key, sc):
        del self.rows[key]
        self.sets.append(sc)
        self.ev.set()
