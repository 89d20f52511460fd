# The backup as a job (seed 004, Fig 7, 3.7-3.12): one at a time, its progress in 630
# (631 lu, 632 bp, 633 cp), persisted, so a reset resumes it from 632.  Each unit of
# work is one chunk of table 670's size, never past 633, sent by the initiator task of
# one of the backup's ports (round robin when it is spread); a port that refuses or
# loses the Login is replaced by the next candidate.  With parallel control (650) the
# units alternate: a copy step stages main -> sub (633 moves), a backup chunk sends the
# staged data as it is (632 moves, the sub is never read back).
import asyncio

from firmware import cha, store, wire
from firmware.args import Refused
from firmware.features.online_backup import choose
from firmware.features.online_backup.ports import put
from firmware.features.online_backup.state import check_alpa, fresh_630
from firmware.jobs import DONE, FAILED, Job

RUNNING = "running"
ACTIVE = (RUNNING, "waiting_port")


class Backup:
    def __init__(self, ob):
        self.ob = ob
        self.inits = {}        # port name -> Initiator
        self.rr = 0
        self.job = None
        self.stopped = False
        bs = ob.u.bs
        self.max_chunk = max(1, (ob.u.link.max_payload - 16) // bs)
        self.buf = bytearray(self.max_chunk * bs)
        self.stage = bytearray(2 * self.max_chunk * bs)   # parallel: staged, not yet sent
        self.smv = memoryview(self.stage)
        self.mv = memoryview(self.buf)

    @property
    def t(self):
        return self.ob.sm["t630"]

    def busy(self):
        return self.t["state"] in ACTIVE

    def chunk(self):
        return min(self.ob.sm["t670"]["chunk"], self.max_chunk)

    def choose_ports(self, pinned=None):
        ob = self.ob
        if pinned is not None:
            return [pinned]
        ranked = choose.rank(ob)
        if not ranked:
            return []
        sp = choose.spread(ob, ranked)
        return [p.name for p in (sp or ranked[:1])]

    # ---- starting -------------------------------------------------------------------
    def check_port(self, name):
        p = self.ob.port(name)
        if p is None:
            raise Refused("no port %r (ports: %s)" % (name, ", ".join([q.name for q in self.ob.ports])))
        if self.ob.role(name) == "online":
            raise Refused(wire.E_STATE, "port %s is for online processing only (640)" % name)
        if not p.up:
            raise Refused(wire.E_PATH_DOWN, "port %s is down" % name)

    def request(self, lu, dest, origin, port=None, paused=False):
        """Start a backup of LU `lu` to AL-PA `dest` (0: 650's); raises Refused."""
        ob = self.ob
        v = cha.volume(ob.u, lu)
        if v is None:
            raise Refused(wire.E_NO_VOLUME, "no volume %r" % (lu,))
        dest = dest or ob.sm["t650"]["dest"]
        if not dest:
            raise Refused("no backup destination (give dest, or set 650's)")
        check_alpa(dest, "dest")
        if self.busy():
            raise Refused(wire.E_BUSY, "630 is in use (%s of LU %r)" % (self.t["state"], self.t["lu"]))
        pair = ob.pairs.of_sub(lu)
        if pair is not None and pair["state"] == "copying":
            raise Refused(wire.E_BUSY, "LU %d is the sub of a pair still copying" % lu)
        if port is not None:
            self.check_port(port)
        ports = self.choose_ports(port)
        if not ports:
            raise Refused(wire.E_STATE, "no port for backup (640 roles, ports down)")
        if pair is not None and pair["state"] == "duplex":
            ob.pairs.split_pair(pair)      # the sub is backed up as it is at the suspension
        t = fresh_630()
        t.update(lu=lu, bp=0, cp=v["blocks"], state=RUNNING, dest=dest, ports=ports, pinned=port,
                 origin=origin, paused=bool(paused))
        ob.sm["t630"] = t
        ob.u.sm.save()
        self.start()
        return t

    def start_parallel(self, main, sub, dest, origin, paused):
        """650 parallel control: the copy main -> sub and the backup of sub together."""
        ports = self.choose_ports()
        if not ports:
            raise Refused(wire.E_STATE, "no port for backup (640 roles, ports down)")
        t = fresh_630()
        t.update(lu=sub, bp=0, cp=0, state=RUNNING, dest=dest, ports=ports, origin=origin,
                 paused=bool(paused), parallel=True, main=main)
        self.ob.sm["t630"] = t
        self.ob.u.sm.save()
        self.start()

    def start(self):
        """Run the backup of 630 (also at boot: from 632; staged data is gone, so a
        parallel run copies again from 632)."""
        t = self.t
        if t["parallel"]:
            t["cp"] = t["bp"]
        v = cha.volume(self.ob.u, t["lu"])
        job = Job("backup", "backup", v["blocks"] if v else 0, t["bp"], t["paused"])
        job.persist = t
        self.job = self.ob.u.jobs.add(job)
        self.inits = {}
        self.ob.sched.started()
        asyncio.create_task(self.run(job, v))

    # ---- running --------------------------------------------------------------------
    async def run(self, job, v):
        ob = self.ob
        t = self.t
        if v is None:
            return self.finish(job, FAILED, "LU %r is gone" % (t["lu"],))
        total = v["blocks"]
        main = cha.volume(ob.u, t["main"]) if t["parallel"] else None
        while t["bp"] < total:
            await job.gate()
            if self.stopped or t is not self.ob.sm["t630"]:
                return
            if main is not None and t["cp"] < total and t["cp"] - t["bp"] < self.chunk():
                await ob.pairs.copy_step(main, v, t, self.smv[(t["cp"] - t["bp"]) * ob.u.bs:])
                job.note = "copy step to %d" % t["cp"]
                t["units"] += 1
                continue
            await ob.sched.backup_begin()
            try:
                st = await self.one_chunk(v, t, main is not None)
            finally:
                ob.sched.backup_end()
            if st is not None:
                return self.finish(job, FAILED, st)
            job.pointer = t["bp"]
            t["units"] += 1
        for name in list(self.inits):
            await self.inits.pop(name).end()
        if main is not None:
            ob.pairs.copy_done(t)
        self.finish(job, DONE, "")

    def finish(self, job, state, reason):
        t = self.t
        t["state"] = "done" if state == DONE else "failed"
        t["reason"] = reason
        job.state = state
        job.note = reason
        job.ev.set()
        self.ob.u.sm.save()

    async def one_chunk(self, v, t, staged):
        """One chunk from 632, never past 633; None, or the reason the backup failed."""
        ob = self.ob
        bs = ob.u.bs
        bp = t["bp"]
        n = min(self.chunk(), t["cp"] - bp)
        if n <= 0:
            return None
        init = await self.initiator(t)
        if init is None:
            return "LOGIN_REFUSED: no port got a Login at 0x%02x" % t["dest"]
        c = ob.sm["counters"]
        if staged:
            data = self.smv[:n * bs]
            c["sent_from_copy"] += n
        else:
            data = self.mv[:n * bs]
            st = await store.read_vol(ob.u, v, bp, n, data)
            if st != wire.OK and st != wire.RECOVERED:
                return "read of LU %d at %d: %s" % (t["lu"], bp, wire.status_name(st))
            c["backup_reads"] += n
        p = init.port
        put(p.ti, t["dest"], "WR", t["lu"], bp, n)
        st = await init.send(t["lu"], bp, n, data)
        if st != wire.OK:
            self.inits.pop(p.name, None)
            if not p.up:                  # another port continues from 632 (5, port error)
                self.replace(t, p.name)
                return None
            return "DATA to 0x%02x from %s: %s" % (t["dest"], p.name, wire.status_name(st))
        if staged:
            rest = (t["cp"] - bp - n) * bs
            self.smv[:rest] = self.smv[n * bs:n * bs + rest]
        t["bp"] = bp + n
        c["chunks"] += 1
        ob.u.sm.dirty = True
        return None

    async def initiator(self, t):
        """The logged-in initiator task of the next port of the backup (round robin);
        a refused Login moves the backup to the next candidate."""
        ob = self.ob
        tried = []
        while True:
            ports = t["ports"]
            if not ports:
                return None
            name = ports[self.rr % len(ports)]
            self.rr += 1
            init = self.inits.get(name)
            if init is not None and init.state == "logged_in" and init.port.up:
                return init
            p = ob.port(name)
            if p is not None and p.up:
                init = p.initiator(t["dest"])
                p.request_initiator(init)
                await init.ready.wait()
                if init.state == "logged_in":
                    self.inits[name] = init
                    return init
            tried.append(name)
            self.replace(t, name, tried)

    def replace(self, t, name, tried=()):
        """Port `name` leaves the backup; when it was the last one, the best other
        candidate takes over (a pinned port is unpinned once it fails)."""
        ports = t["ports"]
        if name in ports:
            ports.remove(name)
        old = self.inits.pop(name, None)
        if old is not None:
            old.abort()
        if t["pinned"] == name:
            t["pinned"] = None
        if not ports:
            for q in choose.rank(self.ob):
                if q.name not in tried and q.name != name:
                    ports.append(q.name)
                    break
        self.ob.u.sm.dirty = True

    # ---- switching (3.8) --------------------------------------------------------------
    async def switch_check(self):
        """Move a running, unpinned backup to a lighter port, or spread it over light
        ports; the ports it leaves log out (their initiator tasks end)."""
        t = self.t
        if t["state"] not in ACTIVE or t["pinned"]:
            return
        ob = self.ob
        ranked = choose.rank(ob)
        if not ranked:
            return
        sp = choose.spread(ob, ranked)
        if sp is not None:
            new = [p.name for p in sp]
        else:
            cur = [ob.port(n) for n in t["ports"] if ob.port(n) is not None and ob.port(n).up]
            best = ranked[0]
            if len(cur) == 1 and choose.weight(best) >= choose.weight(cur[0]):
                new = [cur[0].name]
            else:
                new = [best.name]
        if new == t["ports"]:
            return
        t["ports"] = new
        ob.u.sm.dirty = True
        for name in list(self.inits):
            if name not in new:
                await self.inits.pop(name).end()

