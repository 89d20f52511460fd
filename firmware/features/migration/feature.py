# The migration feature's runtime: its SM table, its lock, the I/O path stages, and the
# jobs of migrations (fetch.py) and moves (move.py), resumed after a reset.
#
# SM "migration": clock / period counters (stats.py), "migrations" {lv: record} (E2),
# "moves" {lv: record} (E3 / E4), "levels" (the last levelling checks).  A migration's
# 830 / 820 (E6, pairs.py) are in SM "pairtables"; the record names its 830 ("830").
import asyncio
import binascii

from firmware import core, ldev, wire
from firmware.clock import ms_since, ticks_ms
from firmware.features.migration import fetch, move
from firmware.features.migration.lvmap import Resolver
from firmware.features.migration.pairs import Pairs
from firmware.features.migration.stats import Stats
from firmware.jobs import DONE, Job

MAX_LEVELS = 8


class MigJob(Job):
    """A migration or move job: `step n` = n copy steps of copy_blocks addresses."""

    def __init__(self, m, kind, total, done):
        Job.__init__(self, m["name"], kind, total, done, m["paused"])
        self.m = m
        self.persist = m
        self.stalled = False
        self.t0 = ticks_ms()
        self.ms = -1             # run time since (re)start, once done

    def info(self):
        d = Job.info(self)
        d["ms"] = self.ms        # from the (re)start to the end; -1 until then
        d["copy_pointer"] = self.m["pointer"]
        d["lv"] = self.m["lv"]
        d["unit"] = "copy step (copy_blocks addresses)"
        d["stalled"] = self.stalled
        return d


class Migration:
    def __init__(self, u, cfg):
        self.u = u
        self.cfg = cfg
        self.live = True
        self.lock = asyncio.Lock()
        t = u.sm.t.get("migration")
        if t is None:
            t = {"migrations": {}, "moves": {}, "levels": []}
            u.sm.t["migration"] = t
        self.t = t
        self.res = Resolver(u)
        self.stats = Stats(u, cfg, self.res, t)
        self.fetcher = fetch.Fetcher(self)
        self.pairs = Pairs(self)
        self.cnt = {"pulled_blocks": 0, "fetches": 0}
        self.records = {}       # lv -> migration record (E2)
        self.bitmaps = {}       # lv -> staged bitmap of the area
        self.moves = {}         # lv -> move record (E3 / E4)
        self.saved = {}         # lv -> its copy pointer as SM last saved it
        self.unsaved = {}       # lv -> True: staged bits set since the last save
        for k in t["migrations"]:
            m = t["migrations"][k]
            self.records[m["lv"]] = m
            self.bitmaps[m["lv"]] = bytearray(binascii.unhexlify(m["staged"]))
        for k in t["moves"]:
            m = t["moves"][k]
            self.moves[m["lv"]] = m
        for lv in list(self.records) + list(self.moves):
            m = self.running(lv)
            if m is not None:
                self.saved[lv] = m["pointer"]       # as loaded from SM

    def detach(self):
        self.live = False

    def volume(self, lv):
        return ldev.volume(self.u, lv)

    def busy(self, v):
        """Host I/O to v takes the lock: a migration or a move of it is running."""
        return self.running(v["id"]) is not None

    def in_use(self, lv):
        """The text of why LV lv cannot start a migration or a move, or None."""
        m = self.running(lv)
        if m is None:
            return None
        if m is self.records.get(lv):
            return "LV %d is under migratory copying" % lv
        return "LV %d is under copying (a rearrangement)" % lv

    # ---- I/O path ------------------------------------------------------------------
    def register(self, reg):
        reg.stage("read", self.on_io, lock=self.lock, when=self.busy)
        reg.stage("before_cache", self.on_write, lock=self.lock, when=self.busy)
        reg.before_save(self.saving)
        reg.stage("check", self.mapped, when=self.partial)
        reg.stage("read_check", self.mapped, when=self.partial)
        reg.stage("after_commit", self.stats.stage(True))
        reg.stage("after_read", self.stats.stage(False))

    def partial(self, v):
        """An LV this feature defined that is not mapped in full (placed area by area)."""
        if v.get("owner") != "migration":
            return False
        n = 0
        for e in v["extents"]:
            n += e[1]
        return n < v["blocks"]

    async def mapped(self, u, v, lba, n, buf):
        """Host I/O to an address no LDEV holds yet is refused."""
        return wire.E_OUT_OF_RANGE if ldev.unmapped(v, lba, n) >= 0 else None

    def running(self, lv):
        """The migration or move record of LV lv that is copying, or None."""
        m = self.records.get(lv)
        if m is not None and m["state"] == fetch.UNDER:
            return m
        m = self.moves.get(lv)
        if m is not None and m["state"] == move.UNDER:
            return m
        return None

    def saving(self):
        """Before every SM save: the pointers and staged bits it holds (a job saves only
        at its turning points; the saver takes the rest within save_ms)."""
        for lv in list(self.records) + list(self.moves):
            m = self.running(lv)
            if m is not None:
                self.saved[lv] = m["pointer"]
                if m is self.records.get(lv):
                    self.sync_bitmap(m)          # the staged bits, as hex
        self.unsaved = {}

    async def on_write(self, u, v, lba, n, buf):
        """Before a host write, what a reset must not undo under it is saved: a pointer
        past the write's addresses that the last save did not cover (the copy would go
        over them again), staged bits not saved yet (the copy would overwrite them)."""
        lv = v["id"]
        m = self.running(lv)
        if m is not None and (lv in self.unsaved or (lba < m["pointer"] and lba + n > self.saved.get(lv, -1))):
            u.sm.save()
        return await self.on_io(u, v, lba, n, buf, True)

    async def on_io(self, u, v, lba, n, buf, write=False):
        """705 / I-6.2: the I/O's groups name 830s (804 = COPY DESTINATION -> 805 -> 820
        -> 830); an address of an 830's area not yet copied is fetched from S first (a
        read, or a write: the block is T's from then on).  A move needs only the lock."""
        hits = self.pairs.route(v, lba, n)
        if not hits:
            return None
        t830 = self.pairs.t["830"]
        for pi in hits:
            p = t830[pi]
            m = self.records.get(p["833"])
            if m is None or p["836"] != fetch.UNDER:
                continue
            st = await fetch.stage_range(self, m, p, self.bitmaps[m["lv"]], v, lba, n, write)
            if st != wire.OK:
                return st
        return None

    # ---- records and jobs ----------------------------------------------------------
    def sync_bitmap(self, m):
        m["staged"] = binascii.hexlify(self.bitmaps[m["lv"]]).decode()

    def add_migration(self, m):
        self.records[m["lv"]] = m
        self.bitmaps[m["lv"]] = bytearray(binascii.unhexlify(m["staged"]))
        self.t["migrations"][str(m["lv"])] = m
        self.u.sm.save()
        return self.start_migration(m)

    def start_migration(self, m):
        cb = self.cfg["copy_blocks"]
        n = m["end"] - m["start"] + 1
        done = (m["pointer"] - m["start"] + cb - 1) // cb
        return self._start(MigJob(m, "migration", (n + cb - 1) // cb, done), m["state"] == fetch.UNDER,
                           fetch.run)

    def add_move(self, m):
        self.moves[m["lv"]] = m
        self.t["moves"][str(m["lv"])] = m
        self.u.sm.save()
        return self.start_move(m)

    def start_move(self, m):
        done, total = move.steps_of(m, self.cfg["copy_blocks"])
        return self._start(MigJob(m, "move", total, done), m["state"] == move.UNDER, move.run)

    def _start(self, job, running, run):
        self.u.jobs.add(job)
        if running:
            asyncio.create_task(self._guard(job, run(self, job, job.m)))
        else:
            job.state = DONE
        return job

    async def _guard(self, job, coro):
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception as e:   # a bug must not leave the job "running" for ever
            job.state = "failed"
            job.note = "error: %r" % (e,)
            self.u.warn("migration: %s: %s" % (job.name, job.note))

    def finished(self, m, job):
        job.ms = ms_since(job.t0)
        job.state = DONE
        job.pointer = job.total
        job.ev.set()

    def resume_all(self):
        for lv in sorted(self.records):
            self.start_migration(self.records[lv])
        for lv in sorted(self.moves):
            self.start_move(self.moves[lv])

    def log_level(self, rec):
        lv = self.t["levels"]
        lv.append(rec)
        while len(lv) > MAX_LEVELS:
            lv.pop(0)


def staged_ranges(bm, start, n):
    """[[first, last]] of the staged addresses (inclusive)."""
    out = []
    i = core.next_set(bm, 0, n)
    while i >= 0:
        j = core.next_clear(bm, i, n)
        j = n if j < 0 else j
        out.append([start + i, start + j - 1])
        i = core.next_set(bm, j, n) if j < n else -1
    return out
