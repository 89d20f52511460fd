# One FC-style port of a controller (seed 004, Fig 2, 4, 5, 12, 14) and its RAM 400 records:
#   ti  transfer instruction 410 / 430: port_id (destination), command, cache_adr
#   hr  host request 420 / 440: port_id (the requesting host), command, cache_adr
#   load  port load 450 / 460: io (451), amount (452, writes x4), access (453)
# The dispatcher (Fig 12) wakes when controller 300 sets a transfer request or a Login
# arrives: 1101 transfer request? -> 1102 an initiator task; else 1103 Login? -> 1104 a
# target task; back to 1101.  It never waits for a task it made.
import asyncio

from firmware import wire
from firmware.features.online_backup import fc
from firmware.features.online_backup.initiator import Initiator

SEQ = "sequential"
RANDOM = "random"
TRACE_MAX = 32


def record():
    return {"port_id": None, "command": [None, 0, 0, 0], "cache_adr": [None, 0, 0]}


def put(rec, peer, op, lu, lba, n):
    """Fill a 410-440 record in place (no allocation per command): the peer's AL-PA,
    the command (RD / WR, lu, lba, n) and the cache address of the data."""
    rec["port_id"] = peer
    c = rec["command"]
    c[0] = op
    c[1] = lu
    c[2] = lba
    c[3] = n
    a = rec["cache_adr"]
    a[0] = "CACHE"
    a[1] = lu
    a[2] = lba


class Waiter:
    """A Login waiting for its target task's verdict."""

    def __init__(self):
        self.st = wire.E_LOGIN_REFUSED
        self.ev = asyncio.Event()


class Session:
    """A peer logged in on a port: its commands go to its target task, in order."""

    def __init__(self, alpa):
        self.alpa = alpa
        self.q = []
        self.ev = asyncio.Event()


class Port:
    def __init__(self, ob, idx, name, alpa, ch):
        self.ob = ob
        self.idx = idx
        self.name = name
        self.alpa = alpa
        self.ch = ch              # the link channel (wire.CH_PEER + n) of this port
        self.up = True
        self.ti = record()
        self.hr = record()
        self.load = {"io": 0, "amount": 0, "access": None}
        self.prev = None          # (lu, lba, count) of the previous host command
        self.sessions = {}        # alpa -> Session
        self.logins = []          # [(alpa, Waiter)] not yet given a target task
        self.ti_req = None        # an initiator task asked for by controller 300
        self.tasks = []           # live tasks: [kind, peer]
        self.trace = []           # [(step, info)] the dispatcher's decisions (newest last)
        self.ev = asyncio.Event()

    def note(self, step, info):
        self.trace.append([step, info])
        if len(self.trace) > TRACE_MAX:
            self.trace.pop(0)

    # ---- load accounting (Fig 5, 6) ---------------------------------------------
    def count(self, op, lu, lba, n):
        """A host command controller 300 takes from 420/440: 451, 452, 453 and 610/620."""
        amount = n * 4 if op == fc.WRITE else n
        p = self.prev
        seq = p is not None and p[0] == lu and lba == p[1] + p[2]
        self.prev = (lu, lba, n)
        ld = self.load
        ld["io"] += 1
        ld["amount"] += amount
        ld["access"] = SEQ if seq else RANDOM
        tot = self.ob.ctl_load(self)
        tot["io"] += 1
        tot["amount"] += amount

    def clear(self):
        self.load["io"] = 0
        self.load["amount"] = 0
        self.load["access"] = None

    def info(self):
        return {"name": self.name, "alpa": self.alpa, "up": self.up, "role": self.ob.role(self.name),
                "sessions": sorted(self.sessions), "tasks": [list(t) for t in self.tasks],
                "trace": [list(t) for t in self.trace]}

    # ---- Fig 12 ---------------------------------------------------------------------
    def initiator(self, dest):
        """An initiator task for this port to `dest` (not started)."""
        return Initiator(self, dest)

    def request_initiator(self, init):
        """Controller 300 sets a transfer request in 410/430 for this port."""
        self.ti["port_id"] = init.dest
        self.ti_req = init
        self.ev.set()

    async def dispatcher(self):
        while True:
            await self.ev.wait()
            self.ev.clear()
            while True:
                if self.ti_req is not None:
                    init = self.ti_req
                    self.ti_req = None
                    self.note(1101, "transfer request to 0x%02x" % init.dest)
                    self.note(1102, "initiator task")
                    asyncio.create_task(self._run("initiator", init.dest, init.run()))
                    continue
                self.note(1101, "no transfer request")
                if self.logins:
                    alpa, w = self.logins.pop(0)
                    self.note(1103, "Login from 0x%02x" % alpa)
                    self.note(1104, "target task")
                    asyncio.create_task(self._run("target", alpa, self.target(alpa, w)))
                    continue
                self.note(1103, "no Login")
                break

    async def _run(self, kind, peer, coro):
        t = [kind, peer]
        self.tasks.append(t)
        try:
            await coro
        finally:
            self.tasks.remove(t)

    # ---- Fig 14: the target task ---------------------------------------------------------
    async def target(self, alpa, w):
        """1301 the Login checked against the allow-list in 600 (and the port's role);
        1302 the peer's commands; 1303 its Logout."""
        ob = self.ob
        if alpa not in ob.sm["allow"]:
            return self._refuse(w, "0x%02x not on the allow-list" % alpa)
        if ob.role(self.name) == "backup":
            return self._refuse(w, "port %s is for backup only" % self.name)
        s = Session(alpa)
        self.sessions[alpa] = s
        self.note(1301, "Login of 0x%02x accepted" % alpa)
        w.st = wire.OK
        w.ev.set()
        while self.up:
            while not s.q:
                s.ev.clear()
                await s.ev.wait()
                if not self.up:
                    return
            req, h, done = s.q.pop(0)
            if h[0] == fc.LOGOUT:
                self.sessions.pop(alpa, None)
                self.note(1303, "Logout of 0x%02x" % alpa)
                ob.u.link.respond(req.ch, req.kind, req.seq, wire.OK)
                done.set()
                return
            try:
                await ob.serve(self, req, h)
            finally:
                done.set()

    def _refuse(self, w, why):
        self.note(1301, "Login refused: " + why)
        w.st = wire.E_LOGIN_REFUSED
        w.ev.set()

    def fail(self):
        """The port goes down: its sessions end (hosts log in again elsewhere)."""
        self.up = False
        link = self.ob.u.link
        for s in self.sessions.values():
            for req, _, done in s.q:
                link.respond(req.ch, req.kind, req.seq, wire.E_PATH_DOWN)
                done.set()
            s.q = []
            s.ev.set()
        self.sessions = {}

    async def frame(self, req, h):
        """A K_FC request that arrived on this port (a link worker runs this)."""
        u = self.ob.u
        op, src = h[0], h[1]
        if not self.up:
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_PATH_DOWN)
        if op == fc.LOGIN:
            if src in self.sessions:    # a second Login of a logged-in peer: ACC, no task
                return u.link.respond(req.ch, req.kind, req.seq, wire.OK)
            w = Waiter()
            self.logins.append((src, w))
            self.ev.set()
            await w.ev.wait()
            return u.link.respond(req.ch, req.kind, req.seq, w.st)
        s = self.sessions.get(src)
        if s is None:
            self.note(1302, "%s from 0x%02x without a session" % (fc.OPS.get(op, op), src))
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_NOT_LOGGED_IN)
        done = asyncio.Event()
        s.q.append((req, h, done))
        s.ev.set()
        await done.wait()
