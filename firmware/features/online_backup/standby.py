# The online backup on the standby controller of a two-controller unit (seed 004: both
# controllers' ports serve; "a total of four ports"): its ports only.  They run the
# Fig 12 dispatcher, take host Logins (the allow-list and 640 from the mirrored SM) and
# serve host commands through the I/O path, which passes them on to the master (feature
# dual).  Each command they take is reported to the master (COUNT), which keeps their
# load records 450 / 460 and 610 / 620 with its own (remote.py), so the master's port
# choice ranks all four ports.  When the master's backup goes out on one of these ports,
# it sends each step here (R_LOGIN, R_DATA, R_LOGOUT) and this port's initiator task
# does the Login, the data and the Logout (Fig 13).  No job, no op: those run on the
# master; the whole feature attaches here when this controller becomes master.
from firmware import peer, wire
from firmware.args import Refused
from firmware.features.online_backup import fc, hostcmd, state
from firmware.features.online_backup.ports import Port, put, record


class StandbyPorts:
    standby_part = True      # the dual feature attaches the whole feature in its place

    def __init__(self, u, st):
        self.u = u
        self.st = st
        state.init(u.sm, st)
        self.sib = u.board["dual"]["sibling"]
        self.sch = wire.CH_PEER + self.sib
        self.ports = []
        for i in range(len(st["alpas"])):
            self.ports.append(Port(self, i, st["names"][i], st["alpas"][i], wire.CH_PEER + st["fc_channel"] + i))
        self.inits = {}          # port AL-PA -> the initiator task working for the master
        self.into = bytearray(4)
        self.c = {"reported": 0, "report_lost": 0, "logins": 0, "chunks": 0, "logouts": 0}

    @property
    def sm(self):            # the mirrored SM image is replaced whole: read it each time
        return self.u.sm.t["ob"]

    def role(self, name):
        return self.sm["t640"].get(name, "both")

    def port(self, name):
        for p in self.ports:
            if p.name == name:
                return p
        return None

    def detach(self):
        """The role changes: the ports' sessions end; the master's initiator tasks here
        end without a Logout (the new master logs in again)."""
        for p in self.ports:
            p.fail()
        for init in self.inits.values():
            init.abort()
        self.inits = {}

    # ---- what hostcmd.serve asks of its owner ---------------------------------------
    async def serve(self, port, req, h):
        await hostcmd.serve(self, port, req, h)

    def host_backup(self, lu, dest):
        raise Refused(wire.E_STATE, "controller %s is standby: a backup instruction goes to a port of the master"
                      % self.st["controller"])

    async def count(self, port, op, lu, lba, n):
        """The master counts it (COUNT): 450 / 460 of this port, 610 / 620."""
        st, _ = await peer.request(self.u, self.sch, wire.K_FC, fc.head(fc.COUNT, port.alpa, 0, lu, lba, n, op),
                                   b"", self.into)
        self.c["reported" if st == wire.OK else "report_lost"] += 1

    async def online_begin(self):
        return None              # priority 670 is the master's (its backup, its clock)

    def online_end(self):
        return None

    # ---- frames -----------------------------------------------------------------------
    async def frame(self, u, req, p):
        h = fc.parse(p)
        if h is None:
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        if req.ch == self.sch:
            return await self.for_master(req, h, p)
        k = req.ch - self.ports[0].ch
        if k < 0 or k >= len(self.ports):
            return u.link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_CHANNEL)
        await self.ports[k].frame(req, h)

    async def for_master(self, req, h, p):
        """R_LOGIN / R_DATA / R_LOGOUT: the master's backup on one of these ports."""
        link = self.u.link
        op, src, dst, _, lu, lba, n = h
        port = None
        for q in self.ports:
            if q.alpa == src:
                port = q
        if port is None or not port.up:
            return link.respond(req.ch, req.kind, req.seq, wire.E_PATH_DOWN)
        if op == fc.R_LOGIN:
            init = port.initiator(dst)
            port.request_initiator(init)      # Fig 12 1101 / 1102 on this port
            await init.ready.wait()
            if init.state == "logged_in":
                self.inits[src] = init
                self.c["logins"] += 1
            return link.respond(req.ch, req.kind, req.seq, init.login_st)
        init = self.inits.get(src)
        if init is None or init.dest != dst:
            return link.respond(req.ch, req.kind, req.seq, wire.E_NOT_LOGGED_IN)
        if op == fc.R_LOGOUT:
            self.inits.pop(src, None)
            await init.end()
            self.c["logouts"] += 1
            return link.respond(req.ch, req.kind, req.seq, wire.OK)
        if op != fc.R_DATA:
            return link.respond(req.ch, req.kind, req.seq, wire.E_UNKNOWN_KIND)
        if len(p) != wire.FC_HEAD_LEN + n * self.u.bs:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        put(port.ti, dst, "WR", lu, lba, n)
        st = await init.send(lu, lba, n, p[wire.FC_HEAD_LEN:])
        if st == wire.OK:
            self.c["chunks"] += 1
        link.respond(req.ch, req.kind, req.seq, st)


def attach(u, reg, st):
    sp = StandbyPorts(u, st)
    reg.peer_kind(wire.K_FC, sp.frame)

    def rec(i, which):
        return lambda u: getattr(sp.ports[i], which) if i < len(sp.ports) else record()
    for num, i, which in ((410, 0, "ti"), (420, 0, "hr"), (430, 1, "ti"), (440, 1, "hr")):
        reg.table("ob_%d" % num, rec(i, which))
    reg.table("ob_ports", lambda u: [p.info() for p in sp.ports])
    reg.table("ob_standby", lambda u: dict(sp.c))
    for p in sp.ports:
        reg.task(p.dispatcher())
    return sp
