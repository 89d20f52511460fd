# Online backup over FC-style ports (seed 004): the ports of a controller with AL-PA port
# IDs, the port dispatcher of Fig 12 with its initiator (Fig 13) and target (Fig 14)
# tasks, load records 410-460 / 610-620, the backup as a job (630) on the lightest port,
# duplexing and split, parallel copy and backup (650), priority (670) and the timer
# (660) on the harness's clock.  docs/online_backup.md describes it.
import asyncio

from firmware import cha, iopath, wire
from firmware.args import Refused
from firmware.features.online_backup import fc, ops, state
from firmware.features.online_backup.backup import Backup
from firmware.features.online_backup.pairs import Pairs
from firmware.features.online_backup.ports import Port, put, record
from firmware.features.online_backup.sched import Sched


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
        self.sched = Sched(self)
        self.pairs = Pairs(self)
        self.backup = Backup(self)

    def port(self, name):
        for p in self.ports:
            if p.name == name:
                return p
        return None

    def role(self, name):
        return self.sm["t640"].get(name, "both")

    def ctl_load(self, port):
        """610 or 620: the totals of the port's controller."""
        return self.sm["t610"] if port.name[0] == "A" else self.sm["t620"]

    def clear_loads(self):
        for p in self.ports:
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
        if k < 0 or k >= len(self.ports):
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_CHANNEL)
        await self.ports[k].frame(req, h)

    async def serve(self, port, req, h):
        """Controller 300 serves a command of a target task (records 420/440)."""
        u = self.u
        link = u.link
        op, src, _, _, lu, lba, n = h
        if op == fc.BACKUP:
            try:
                self.backup.request(lu, lba, "host")
                st = wire.OK
            except Refused as e:
                st = e.status
            return link.respond(req.ch, req.kind, req.seq, st)
        if op not in (fc.READ, fc.WRITE, fc.DATA):
            return link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_KIND)
        v = cha.volume(u, lu)
        if v is None:
            return link.respond(req.ch, req.kind, req.seq, wire.E_NO_VOLUME)
        if n == 0 or lba + n > v["blocks"]:
            return link.respond(req.ch, req.kind, req.seq, wire.E_OUT_OF_RANGE)
        nbytes = n * u.bs
        p = req.payload()
        if op != fc.READ and len(p) != wire.FC_HEAD_LEN + nbytes:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        if op == fc.READ and nbytes + 1 > link.max_payload:
            return link.respond(req.ch, req.kind, req.seq, wire.E_TOO_LONG)
        put(port.hr, src, "RD" if op == fc.READ else "WR", lu, lba, n)
        if op != fc.DATA:             # backup data from another unit is not host load
            port.count(op, lu, lba, n)
        await self.sched.online_begin()
        try:
            if op == fc.READ:
                out = req.mv[:nbytes]
                st = await iopath.read(u, v, lba, n, out)
                return link.respond(req.ch, req.kind, req.seq, st, out if st == wire.OK else b"")
            st = await iopath.write(u, v, lba, n, p[wire.FC_HEAD_LEN:])
            link.respond(req.ch, req.kind, req.seq, st)
        finally:
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
        reg.table("online_backup", lambda u: {"clock": self.sm["clock"], "counters": self.sm["counters"],
                                              "sched": self.sched.info(), "controller": self.st["controller"]})


def controller(u):
    """"A" or "B" when this board is one controller of a two-controller unit, else None."""
    d = u.board.get("dual")
    return "AB"[d["controller"]] if isinstance(d, dict) and d.get("controller") in (0, 1) else None


def attach(u, reg):
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
