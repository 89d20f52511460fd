# Duplexing and split (seed 004, 3.11, 3.12): a pair main -> sub of the same size.
#   copying  the copy job copies main to sub from block 0 (633 moves); host writes to
#            main are reflected to sub (not during a parallel run: "the duplexed state
#            is temporarily suspended" while the backup runs)
#   duplex   every host write to main is reflected to sub
#   split    suspended: sub is frozen as it was at the split; a backup of it is the image
#            at the suspension point
# Host writes to a paired sub are refused (STATE).  The reflection runs in the write's
# before_cache stage under the pairs' lock, which a copy step holds too, so a copy
# never puts an older block over a newer reflected one.
import asyncio

from firmware import cha, store, wire
from firmware.args import Refused
from firmware.features.online_backup.state import fresh_630
from firmware.jobs import DONE, Job

COPYING = "copying"
DUPLEX = "duplex"
SPLIT = "split"


class Pairs:
    def __init__(self, ob):
        self.ob = ob
        self.lock = asyncio.Lock()
        self.stopped = False

    @property
    def all(self):
        return self.ob.sm["pairs"]

    def of_sub(self, lu):
        for p in self.all:
            if p["sub"] == lu:
                return p
        return None

    def of_main(self, lu):
        for p in self.all:
            if p["main"] == lu:
                return p
        return None

    def find(self, main, sub):
        for p in self.all:
            if p["main"] == main and p["sub"] == sub:
                return p
        return None

    # ---- commands -------------------------------------------------------------------
    def duplex(self, main, sub, origin, paused=False):
        """A duplexing request: 650 decides whether the backup of sub runs in parallel."""
        ob = self.ob
        u = ob.u
        vm = cha.volume(u, main)
        vs = cha.volume(u, sub)
        if vm is None or vs is None:
            raise Refused(wire.E_NO_VOLUME, "no volume %r" % (main if vm is None else sub,))
        if main == sub or vm["blocks"] != vs["blocks"]:
            raise Refused("main and sub must be two volumes of one size (%d: %d, %d: %d blocks)"
                          % (main, vm["blocks"], sub, vs["blocks"]))
        old = self.find(main, sub)
        for p in self.all:
            if p is not old and (main in (p["main"], p["sub"]) or sub in (p["main"], p["sub"])):
                raise Refused(wire.E_STATE, "volume already in pair %d -> %d" % (p["main"], p["sub"]))
        if old is not None and old["state"] != SPLIT:
            raise Refused(wire.E_STATE, "pair %d -> %d is %s" % (main, sub, old["state"]))
        if ob.backup.busy():
            raise Refused(wire.E_BUSY, "630 is in use (%s of LU %r)" % (ob.sm["t630"]["state"], ob.sm["t630"]["lu"]))
        t650 = ob.sm["t650"]
        if t650["parallel"] and not t650["dest"]:
            raise Refused("650 asks for parallel control but has no backup destination")
        if old is not None:
            self.all.remove(old)
        self.all.append({"main": main, "sub": sub, "state": COPYING})
        if t650["parallel"]:
            ob.backup.start_parallel(main, sub, t650["dest"], origin, paused)
            return
        t = fresh_630()
        t.update(cp=0, state="running", origin=origin, paused=bool(paused), main=main, copy_sub=sub)
        ob.sm["t630"] = t
        u.sm.save()
        self.start_copy()

    def split(self, main, sub):
        p = self.find(main, sub)
        if p is None:
            raise Refused(wire.E_NO_VOLUME, "no pair %r -> %r" % (main, sub))
        if p["state"] != DUPLEX:
            raise Refused(wire.E_STATE, "pair %d -> %d is %s, not duplex" % (main, sub, p["state"]))
        self.split_pair(p)

    def split_pair(self, p):
        p["state"] = SPLIT
        self.ob.u.sm.save()

    # ---- the copy ---------------------------------------------------------------------
    def start_copy(self):
        t = self.ob.sm["t630"]
        vm = cha.volume(self.ob.u, t["main"])
        job = Job("copy", "copy", vm["blocks"] if vm else 0, t["cp"], t["paused"])
        job.persist = t
        self.ob.u.jobs.add(job)
        asyncio.create_task(self.run_copy(job, t, vm, cha.volume(self.ob.u, t["copy_sub"])))

    async def run_copy(self, job, t, vm, vs):
        ob = self.ob
        buf = ob.backup.smv
        while t["cp"] < vm["blocks"]:
            await job.gate()
            if self.stopped or t is not ob.sm["t630"]:
                return
            await self.copy_step(vm, vs, t, buf)
            job.pointer = t["cp"]
            t["units"] += 1
        p = self.find(t["main"], t["copy_sub"])
        if p is not None:
            p["state"] = DUPLEX
        t["state"] = "done"
        job.state = DONE
        job.ev.set()
        ob.u.sm.save()

    async def copy_step(self, vm, vs, t, into):
        """copy_chunk blocks of main from 633 into `into` and onto sub; 633 moves."""
        ob = self.ob
        bs = ob.u.bs
        cp = t["cp"]
        n = min(ob.st["copy_chunk"], ob.backup.max_chunk, vm["blocks"] - cp)
        data = into[:n * bs]
        async with self.lock:
            st = await store.read_vol(ob.u, vm, cp, n, data)
            if st == wire.OK or st == wire.RECOVERED:
                st = await store.write_vol(ob.u, vs, cp, n, data)
        ob.sm["counters"]["copy_reads"] += n
        if st != wire.OK:
            ob.u.warn("online_backup: copy %d -> %d at %d: %s" % (vm["id"], vs["id"], cp, wire.status_name(st)))
        t["cp"] = cp + n
        ob.u.sm.dirty = True

    def copy_done(self, t):
        """The parallel run's copy is complete: the pair stays split (the backup's image)."""
        p = self.find(t["main"], t["lu"])
        if p is not None:
            p["state"] = SPLIT

    # ---- the I/O path's stages ------------------------------------------------------------
    def reflects(self, v):
        p = self.of_main(v["id"])
        if p is None or p["state"] == SPLIT:
            return False
        t = self.ob.sm["t630"]
        return not (t["parallel"] and t["main"] == p["main"] and t["state"] == "running")

    async def reflect(self, u, v, lba, count, data):
        p = self.of_main(v["id"])
        if p is None or not self.reflects(v):
            return None
        st = await store.write_vol(u, cha.volume(u, p["sub"]), lba, count, data)
        return None if st == wire.OK else st

    async def refuse_sub(self, u, v, lba, count, data):
        return wire.E_STATE if self.of_sub(v["id"]) is not None else None
