# Online backup over FC-style ports (seed 004): the ports of a controller with AL-PA port
# IDs, the port dispatcher of Fig 12 with its initiator (Fig 13) and target (Fig 14)
# tasks, load records 410-460 / 610-620, the backup as a job (630) on the lightest port,
# duplexing and split, parallel copy and backup (650), priority (670) and the timer
# (660) on the harness's clock.  docs/online_backup.md describes it.
import asyncio

from firmware import wire
from firmware.features.online_backup import fc, hostcmd, ops, remote, standby, state
from firmware.features.online_backup.backup import Backup
from firmware.features.online_backup.pairs import Pairs
from firmware.features.online_backup.ports import Port, record
from firmware.features.online_backup.sched import Sched

STANDBY = True   # a standby controller attaches its ports only (standby.py)


def validate(cfg, tables):
    state.settings(cfg)


class OnlineBackup:
    def __init__(self, u, st):
        self.u = u
        self.st = st
        self.sm = state.init(u.sm, st)
        self.clock_ev = asyncio.Event()
        self.ports = []
        for i in range(len(st["alpas"])):
            self.ports.append(Port(self, i, st["names"][i], st["alpas"][i], wire.CH_PEER + st["fc_channel"] + i))
        self.remote = remote.ports(self)     # the standby controller's ports
        self.sched = Sched(self)
        self.pairs = Pairs(self)
        self.backup = Backup(self)

    def port(self, name):
        for p in self.ports + self.remote:
            if p.name == name:
                return p
        return None

    def role(self, name):
        return self.sm["t640"].get(name, "both")

    def ctl_load(self, port):
        """610 or 620: the totals of the port's controller."""
        return self.sm["t610"] if port.name[0] == "A" else self.sm["t620"]

    def clear_loads(self):
        for p in self.ports + self.remote:
            p.clear()
        for k in ("t610", "t620"):
            self.sm[k]["io"] = 0
            self.sm[k]["amount"] = 0

    def detach(self):
        self.backup.stopped = True
        self.pairs.stopped = True
        for p in self.ports:
            p.fail()

    # ---- frames on the ports -------------------------------------------------------------
    async def frame(self, u, req, p):
        h = fc.parse(p)
        k = req.ch - self.ports[0].ch if self.ports else -1
        if h is None:
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        if self.remote and req.ch == self.remote[0].ch:      # from the standby controller
            if h[0] == fc.COUNT:
                return remote.on_count(self, req, h)
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
        if k < 0 or k >= len(self.ports):
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_CHANNEL)
        await self.ports[k].frame(req, h)

    async def serve(self, port, req, h):
        await hostcmd.serve(self, port, req, h)

    def host_backup(self, lu, dest):
        self.backup.request(lu, dest, "host")

    async def count(self, port, op, lu, lba, n):
        port.count(op, lu, lba, n)

    async def online_begin(self):
        await self.sched.online_begin()

    def online_end(self):
        self.sched.online_end()

    # ---- tables ---------------------------------------------------------------------------
    def tables(self, reg):
        def rec(i, which):
            def fn(u):
                if i >= len(self.ports):
                    return record() if which != "load" else None
                return getattr(self.ports[i], which)
            return fn
        for num, i, which in ((410, 0, "ti"), (420, 0, "hr"), (430, 1, "ti"), (440, 1, "hr"),
                              (450, 0, "load"), (460, 1, "load")):
            reg.table("ob_%d" % num, rec(i, which))
        for num in (610, 620, 630, 640, 650, 660, 670):
            reg.table("ob_%d" % num, (lambda key: lambda u: self.sm[key])("t%d" % num))
        reg.table("ob_allow", lambda u: self.sm["allow"])
        reg.table("ob_pairs", lambda u: self.sm["pairs"])
        reg.table("ob_ports", lambda u: [p.info() for p in self.ports])
        reg.table("ob_loads", lambda u: [loads(self, p) for p in self.ports + self.remote])
        reg.table("online_backup", lambda u: {"clock": self.sm["clock"], "counters": self.sm["counters"],
                                              "sched": self.sched.info(), "controller": self.st["controller"]})


def controller(u):
    """"A" or "B" when this board is one controller of a two-controller unit, else None."""
    d = u.board.get("dual")
    return "AB"[d["controller"]] if isinstance(d, dict) and d.get("controller") in (0, 1) else None


def loads(ob, p):
    """One row of table ob_loads: a port of either controller as the choice sees it."""
    r = {"name": p.name, "alpa": p.alpa, "up": p.up, "role": ob.role(p.name), "remote": p in ob.remote}
    r.update(p.load)
    return r


def attach(u, reg):
    if u.standby:
        return standby.attach(u, reg, state.settings(u.sm.t["config"], controller(u)))
    ob = OnlineBackup(u, state.settings(u.sm.t["config"], controller(u)))
    ob.tables(reg)
    ops.add(reg, ob)
    reg.peer_kind(wire.K_FC, ob.frame)
    mains = lambda v: ob.pairs.of_main(v["id"]) is not None   # noqa: E731
    subs = lambda v: ob.pairs.of_sub(v["id"]) is not None     # noqa: E731
    reg.stage("check", ob.pairs.refuse_sub, when=subs)
    reg.stage("before_cache", ob.pairs.reflect, lock=ob.pairs.lock, when=mains)
    for p in ob.ports:
        reg.task(p.dispatcher())
    t = ob.sm["t630"]
    if t["state"] in ("running", "waiting_port"):
        if t.get("copy_sub") is not None:
            ob.pairs.start_copy()
        else:
            ob.backup.start()
    return ob
