"""Host side of the online backup (seed 004): the FC-style fabric, hosts and a tape device
on it, and the feature's management ops on a rig `Unit`.

Every node of the fabric has an AL-PA: each port of a unit's controller (settings
`online_backup.ports`), each host (`FcHost`) and each backup device (`TapeDevice`).  A
frame (wire kind FC on the port's link channel, head `wire.FC_HEAD`) carries its source
and destination AL-PA; the fabric delivers it by the destination:

    fab = FcFabric(rig)                          # wraps the rig's unit fabric
    tape = fab.add(TapeDevice(0x20, TapeDrive(tmp / "t0"), accept=[0x01, 0x02]))
    h = fab.add(FcHost(0x10))
    h.login(0x01); h.write(0x01, lu=0, lba=0, data=...); h.logout(0x01)
    backup(u, lu=0, dest=0x20, paused=True); step(u, 2)
    tape.seen      # [("LOGIN", 0x01), ("DATA", 0x01, 0, 0, 4), ...]

A port's frames to a device (a backup's initiator task) are answered by the device in
the link reader's thread; a copy the board sends again (no answer in time) gets the
remembered answer, and the device sees each frame once.
"""
from __future__ import annotations

import struct
import threading
from collections import OrderedDict

from firmware import wire
from firmware.features.online_backup import fc
from host.features.tape import Record, TapeDrive, restore  # noqa: F401  (re-exported)
from host.link import LinkError, StatusError

RECENT = 256


class TapeDevice:
    """A tape device on the fabric: Login checked against `accept` (initiator AL-PAs),
    DATA appended to the tape as records at the frame's LU / LBA, Logout.  `seen` is
    every frame it was sent, in order."""

    def __init__(self, alpa: int, tape: TapeDrive, accept=(), block_size: int = 512):
        self.alpa = alpa
        self.tape = tape
        self.accept = set(accept)
        self.block_size = block_size
        self.sessions: set[int] = set()
        self.seen: list[tuple] = []
        self.lock = threading.Lock()

    def handle(self, op, src, lu, lba, n, data) -> tuple[int, bytes]:
        with self.lock:
            if op == fc.LOGIN:
                if src not in self.accept:
                    self.seen.append(("LOGIN_REFUSED", src))
                    return wire.E_LOGIN_REFUSED, b""
                self.sessions.add(src)
                self.seen.append(("LOGIN", src))
                return wire.OK, b""
            if src not in self.sessions:
                self.seen.append(("NO_SESSION", src, fc.OPS.get(op, op)))
                return wire.E_NOT_LOGGED_IN, b""
            if op == fc.LOGOUT:
                self.sessions.discard(src)
                self.seen.append(("LOGOUT", src))
                return wire.OK, b""
            if op != fc.DATA or len(data) != n * self.block_size:
                self.seen.append(("BAD", src, op))
                return wire.E_BAD_PARAM, b""
            self.tape.write(Record(lu, lba, self.block_size, bytes(data), "from 0x%02x" % src))
            self.seen.append(("DATA", src, lu, lba, n))
            return wire.OK, b""

    def image(self, lu: int, blocks: int) -> bytes:
        return restore(self.tape.records(), lu, blocks, self.block_size)

    def data_frames(self):
        return [s for s in self.seen if s[0] == "DATA"]


class FcHost:
    """A host computer on the fabric: Login / READ / WRITE / BACKUP / Logout to a port by
    its AL-PA.  Each call returns the status (READ: and the data); none raises on a status."""

    def __init__(self, alpa: int):
        self.alpa = alpa
        self.fabric: FcFabric | None = None

    def _req(self, port: int, op: int, lu=0, lba=0, n=0, data=b"") -> tuple[int, bytes]:
        return self.fabric.send(self.alpa, port, op, lu, lba, n, data)

    def login(self, port: int) -> int:
        return self._req(port, fc.LOGIN)[0]

    def logout(self, port: int) -> int:
        return self._req(port, fc.LOGOUT)[0]

    def write(self, port: int, lu: int, lba: int, data: bytes, block_size: int = 512) -> int:
        return self._req(port, fc.WRITE, lu, lba, len(data) // block_size, data)[0]

    def read(self, port: int, lu: int, lba: int, n: int) -> tuple[int, bytes]:
        return self._req(port, fc.READ, lu, lba, n)

    def backup(self, port: int, lu: int, dest: int = 0) -> int:
        """The host's backup instruction (a standard command): back up `lu` to `dest`."""
        return self._req(port, fc.BACKUP, lu, dest)[0]


class FcFabric:
    """The FC-style fabric of a rig: ports of the units, hosts and devices by AL-PA."""

    def __init__(self, rig):
        self.rig = rig
        self.inner = rig.fabric
        self.nodes: dict[int, object] = {}
        self.ports: dict[int, tuple] = {}          # alpa -> (unit, channel, controller or None)
        self.recent: OrderedDict = OrderedDict()   # (link, k, seq) -> answer (None: on its way)
        self.lock = threading.Lock()
        for u in rig.units.values():
            s = u.config.get("online_backup")
            if s is None:
                continue
            base = wire.CH_PEER + s.get("fc_channel", 14)
            dual = hasattr(u, "ctrls")
            # a two-controller unit with ports_b: A's and B's AL-PAs, each served by its own
            # controller's board (a standby's too); without ports_b, B takes A's AL-PAs over
            for key, ctl in (("ports", "A" if dual and "ports_b" in s else s.get("controller")),
                             ("ports_b", "B")):
                for i, p in enumerate(s.get(key, [{"alpa": 1}, {"alpa": 2}] if key == "ports" else [])):
                    self.ports[p["alpa"]] = (u, base + i, ctl if dual else None)
            u.fabric = self
            if u.link is not None and not dual:   # a dual unit routes through route() itself
                self.attach(u)

    def add(self, node):
        if node.alpa in self.nodes or node.alpa in self.ports:
            raise ValueError(f"AL-PA 0x{node.alpa:02x} is taken")
        self.nodes[node.alpa] = node
        node.fabric = self
        return node

    # ---- the rig's fabric, wrapped (Unit.start calls attach) -----------------------------
    def _chans(self, unit):
        return {ch - wire.CH_PEER for (u, ch, _) in self.ports.values() if u is unit}

    def attach(self, unit):
        self.inner.attach(unit)
        if hasattr(unit, "ctrls"):     # a dual unit sets its boards' handlers (they call route())
            return
        inner = unit.link.peer_handler
        chans = self._chans(unit)

        def handler(link, k, kind, seq, payload, low=-1):
            if k in chans and kind == wire.K_FC:
                return self.from_port(unit, link, k, seq, payload)
            return inner(link, k, kind, seq, payload, low)
        unit.link.peer_handler = handler

    def route(self, src: str, k: int, kind: int, seq: int, payload: bytes, low: int = -1):
        """The rig fabric's route() (a two-controller unit routes its master's peer frames here)."""
        unit = self.rig.units[src]
        if kind == wire.K_FC and k in self._chans(unit):
            return self.from_port(unit, unit.link, k, seq, payload)
        return self.inner.route(src, k, kind, seq, payload, low)

    def from_standby(self, unit, link, k: int, kind: int, seq: int, payload: bytes) -> bool:
        """A frame the standby controller of a two-controller unit sent on a port's
        channel (its initiator task, working for the master's backup): True if taken."""
        if kind != wire.K_FC or k not in self._chans(unit):
            return False
        self.from_port(unit, link, k, seq, payload)
        return True

    def add_path(self, a, b):
        return self.inner.add_path(a, b)

    def __getattr__(self, name):          # paths, peers, peer_index ... of the rig's fabric
        return getattr(self.__dict__["inner"], name)

    def from_port(self, unit, link, k, seq, payload):
        """A request a port sent (an initiator task): delivered to its destination, a
        harness device (answered here) or another unit's port (forwarded by a thread of
        its own: that unit's answer may take a while)."""
        key = (link, k, seq)      # the link itself: a restarted board's new link never matches
        with self.lock:
            if key in self.recent:
                ans = self.recent[key]
                if ans is not None:          # None: still on its way to another unit
                    link.send(wire.CH_PEER + k, wire.K_FC | wire.RESP, seq, ans)
                return
            self.recent[key] = None
        op, src, dst, _, lu, lba, n = struct.unpack_from(wire.FC_HEAD, payload)
        node = self.nodes.get(dst)
        if dst in self.ports:
            threading.Thread(target=self._forward, args=(link, k, seq, key, dst, bytes(payload)),
                             daemon=True).start()
            return
        if node is None or not hasattr(node, "handle"):
            st, data = wire.E_PATH_DOWN, b""
        else:
            st, data = node.handle(op, src, lu, lba, n, payload[wire.FC_HEAD_LEN:])
        self._answer(link, k, seq, key, bytes([st]) + data)

    def _forward(self, link, k, seq, key, dst, payload):
        unit, ch, _ = self.ports[dst]
        try:
            st, data = unit._up().request(ch, wire.K_FC, payload)
        except LinkError:
            st, data = wire.E_PATH_DOWN, b""
        self._answer(link, k, seq, key, bytes([st]) + data)

    def _answer(self, link, k, seq, key, ans):
        with self.lock:
            self.recent[key] = ans
            while len(self.recent) > RECENT:
                self.recent.popitem(last=False)
        link.send(wire.CH_PEER + k, wire.K_FC | wire.RESP, seq, ans)

    def send(self, src: int, dst: int, op: int, lu=0, lba=0, n=0, data=b"") -> tuple[int, bytes]:
        """A frame from a host to a port: (status, data)."""
        if dst not in self.ports:
            return wire.E_PATH_DOWN, b""
        unit, ch, ctl = self.ports[dst]
        if ctl is not None:                          # a port of one controller: that board
            c = unit.ctrl(ctl)
            if not c.up():
                return wire.E_PATH_DOWN, b""
            link = c.link
        else:
            link = unit._up()
        body = fc.head(op, src, dst, lu, lba, n) + data
        for _ in range(200):
            try:
                st, out = link.request(ch, wire.K_FC, body)
            except LinkError:
                return wire.E_PATH_DOWN, b""
            if st != wire.E_BUSY:
                return st, out
        return st, out


# ---- the feature's ops and tables on a rig Unit ---------------------------------------------
def table(u, num) -> object:
    return u.table(f"ob_{num}")


def backup(u, lu: int, dest: int = 0, port: str | None = None, paused: bool = False) -> dict:
    args = {"lu": lu, "dest": dest, "paused": paused}
    if port is not None:
        args["port"] = port
    return u.mgmt("ob_backup", **args)


def refused(u, op: str, **args) -> tuple[int, str]:
    """(status, error text) of an op expected to be refused."""
    try:
        u.mgmt(op, **args)
    except StatusError as e:
        return e.status, str(e)
    raise AssertionError(f"{op} {args} was not refused")


def tick(u, seconds: int) -> int:
    return u.mgmt("ob_tick", seconds=seconds)["clock"]


def step(u, n: int = 1, job: str = "backup"):
    """Let the paused job do n more units of work and wait until they are done."""
    want = u.table("ob_630")["units"] + n
    u.job(job, "step", n=n)
    return u.wait_for(lambda x: (t := x.table("ob_630"))["units"] >= want and t, what=f"{n} steps of {job}")
