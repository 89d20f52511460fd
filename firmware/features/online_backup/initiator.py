# The initiator task (seed 004, Fig 13): 1201 Login to the destination, 1202 the data,
# 1203 Logout.  Controller 300 hands it one chunk at a time (send()); the task sends
# it as a DATA frame from its port and reports the destination's status.  A refused
# Login ends the task with no data and no Logout; a port that goes down ends it ABORTED
# (nothing more is sent).
import asyncio
import struct

from firmware import peer, wire
from firmware.features.online_backup import fc

END = "end"


class Initiator:
    def __init__(self, port, dest):
        self.port = port
        self.dest = dest
        self.state = "new"        # new -> logged_in | refused -> ended | aborted
        self.login_st = None
        self.ready = asyncio.Event()
        self.box = None           # (lu, lba, n, data) or END
        self.go = asyncio.Event()
        self.done = asyncio.Event()
        self.st = wire.OK
        self.into = bytearray(4)
        self.hb = bytearray(wire.FC_HEAD_LEN)   # the frame head, filled in place per frame

    async def _send(self, op, lu=0, lba=0, n=0, data=b""):
        p = self.port
        struct.pack_into(wire.FC_HEAD, self.hb, 0, op, p.alpa, self.dest, 0, lu, lba, n)
        st, _ = await peer.request(p.ob.u, p.ch, wire.K_FC, self.hb, data, self.into)
        return st

    async def run(self):
        p = self.port
        st = await self._send(fc.LOGIN)
        self.login_st = st
        if st != wire.OK:
            self.state = "refused"
            p.note(1201, "Login to 0x%02x refused: %s" % (self.dest, wire.status_name(st)))
            self.ready.set()
            return
        self.state = "logged_in"
        p.note(1201, "Login to 0x%02x" % self.dest)
        self.ready.set()
        while True:
            while self.box is None:
                self.go.clear()
                await self.go.wait()
            box = self.box
            self.box = None
            if not p.up:
                self.state = "aborted"
                self.st = wire.E_PATH_DOWN
                self.done.set()
                return
            if box == END:
                await self._send(fc.LOGOUT)
                p.note(1203, "Logout from 0x%02x" % self.dest)
                self.state = "ended"
                self.done.set()
                return
            lu, lba, n, data = box
            self.st = await self._send(fc.DATA, lu, lba, n, data)
            self.done.set()

    async def send(self, lu, lba, n, data):
        """One chunk out (1202); the destination's status."""
        if self.state != "logged_in":
            return wire.E_PATH_DOWN
        self.done.clear()
        self.box = (lu, lba, n, data)
        self.go.set()
        await self.done.wait()
        return self.st

    def abort(self):
        """The port went down: the task ends without sending anything more."""
        if self.state == "logged_in" and not self.port.up:
            self.box = END
            self.go.set()

    async def end(self):
        """The backup is over on this port (or leaves it): 1203 Logout."""
        if self.state != "logged_in":
            return
        self.done.clear()
        self.box = END
        self.go.set()
        await self.done.wait()
