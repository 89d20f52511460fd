# The sibling controller's ports, as the master sees them (seed 004, 3.7: "a total of four
# ports"; a two-controller unit whose controller B has ports of its own).  The standby's
# ports serve hosts (standby.py) and report every host command they take (COUNT), so the
# master counts 450 / 460 of those ports and 610 / 620 with the same code as its own
# (Port.count); they rank with its own ports.  When the backup goes out on one of them,
# the master's initiator here sends each step to the standby (R_LOGIN, R_DATA,
# R_LOGOUT), whose initiator task on that port does the Login, the data and the Logout.
import asyncio
import struct

from firmware import peer, wire
from firmware.features.online_backup import fc
from firmware.features.online_backup.ports import Port

LOST = (wire.E_PATH_DOWN, wire.E_TIMEOUT)


class RemotePort(Port):
    """A port of the standby controller: its load records here, its frames there."""

    def __init__(self, ob, idx, name, alpa, sib):
        Port.__init__(self, ob, idx, name, alpa, wire.CH_PEER + sib)
        self.remote = True

    def _dual(self):
        return self.ob.u.features.get("dual")

    @property
    def up(self):
        """The standby is in step, and no step sent to it since went unanswered."""
        d = self._dual()
        return d is not None and d.peer_up and self.lost_at != d.peer_epoch

    @up.setter
    def up(self, v):
        d = self._dual()
        self.lost_at = d.peer_epoch if (not v and d is not None) else -1

    def initiator(self, dest):
        return RemoteInitiator(self, dest)

    def request_initiator(self, init):
        self.ti["port_id"] = init.dest
        asyncio.create_task(init.run())

    def fail(self):
        self.up = False


class RemoteInitiator:
    """The Initiator interface (initiator.py) for a port of the standby."""

    def __init__(self, port, dest):
        self.port = port
        self.dest = dest
        self.state = "new"
        self.login_st = None
        self.ready = asyncio.Event()
        self.hb = bytearray(wire.FC_HEAD_LEN)
        self.into = bytearray(4)

    async def _ask(self, op, lu=0, lba=0, n=0, data=b""):
        p = self.port
        struct.pack_into(wire.FC_HEAD, self.hb, 0, op, p.alpa, self.dest, 0, lu, lba, n)
        st, _ = await peer.request(p.ob.u, p.ch, wire.K_FC, self.hb, data, self.into)
        if st in LOST:
            p.fail()              # the standby is gone: the backup goes on elsewhere
        return st

    async def run(self):
        st = await self._ask(fc.R_LOGIN)
        self.login_st = st
        self.state = "logged_in" if st == wire.OK else "refused"
        self.ready.set()

    async def send(self, lu, lba, n, data):
        if self.state != "logged_in":
            return wire.E_PATH_DOWN
        st = await self._ask(fc.R_DATA, lu, lba, n, data)
        if st in LOST:
            self.state = "aborted"
        return st

    def abort(self):
        self.state = "aborted"

    async def end(self):
        if self.state != "logged_in":
            return
        await self._ask(fc.R_LOGOUT)
        self.state = "ended"


def ports(ob):
    """The sibling's ports (none on a one-controller unit, or when B takes A's AL-PAs)."""
    st = ob.st
    d = ob.u.board.get("dual")
    if not st["sibling_alpas"] or not isinstance(d, dict):
        return []
    return [RemotePort(ob, i, st["sibling_names"][i], st["sibling_alpas"][i], d["sibling"])
            for i in range(len(st["sibling_alpas"]))]


def on_count(ob, req, h):
    """COUNT from the standby: its port took a host command; count it here."""
    op, src, _, flags, lu, lba, n = h
    for p in ob.remote:
        if p.alpa == src:
            p.count(flags, lu, lba, n)
            return ob.u.link.respond(req.ch, req.kind, req.seq, wire.OK)
    ob.u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_PARAM)
