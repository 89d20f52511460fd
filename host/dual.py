"""Two boards, one unit: a rig unit with `controllers = 2` (docs/dual.md).

Controller A and controller B are each a board of their own (their own process, pty,
link, state folder); both serve the SAME simulated drives (the unit's SimDrive
objects, whose lock serialises the two boards' requests).  The rig joins the two
boards by a peer path of their own, after the unit's `[[path]]`s (so the user's paths
keep their numbers); the board definition tells each board which controller it is and
which peer path leads to its sibling.

The unit's rig API (write, read, mgmt, table, ...) goes to the master controller, A
by default (`with u.via("B"):` sends the host I/O to B, which passes it on to the
master while it is standby); when that board is down (killed, or its link lost) the unit tells the
other one to take over (the seed's error controller 900) and goes on there.

    u = rig.unit("u0")
    u.write(0, 0, data)                       # on A, mirrored into B's cache
    u.ctrl_table("B", "dual_cache")           # B's copy of the dirty blocks
    u.kill_controller("A")                    # SIGKILL of A's board; B takes over
    u.restart_controller("A")                 # A boots, resynchronises, takes over again
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

from firmware import wire
from host.boards import launcher_for
from host.link import LinkError, StatusError
from host.rig import RigError, Unit

LETTERS = "AB"
# management ops that change nothing: no mirror barrier after them
READ_ONLY = ("info", "table", "dual_block", "dual_sync", "dual_takeover", "trace", "peer_ping")


class Controller:
    """One board of a dual unit."""

    def __init__(self, unit: "DualUnit", index: int):
        self.index = index
        self.letter = LETTERS[index]
        board = copy.deepcopy(unit.board)
        self.launcher = launcher_for(board, unit.state_dir / f"board{self.letter}", unit.name)
        self.link = None
        self.port = None
        self.hello: dict = {}
        self.fenced = False        # killed: nothing it sent may still reach a drive

    def up(self) -> bool:
        return self.link is not None and not self.link.closed and self.launcher.alive()


class DualUnit(Unit):
    def __init__(self, desc: dict, *a, **kw):
        super().__init__(desc, *a, **kw)
        feats = self.config.setdefault("features", [])
        if "dual" not in feats:
            feats.insert(0, "dual")
        if self.board.get("kind") in ("serial", "labgrid"):
            raise RigError(f"unit {self.name}: controllers = 2 runs on launched boards only "
                           f"(emulator, cpython, inprocess), not {self.board['name']} by URL")
        self.sibling = 0           # the rig sets it: the peer path between A and B
        self.sibling_cut = False   # a fault: the path between A and B answers PATH_DOWN
        self.ctrls = [Controller(self, 0), Controller(self, 1)]
        self._via = None           # a controller the host I/O is sent to (via())
        self.launcher = self.ctrls[0].launcher
        self.active = 0

    # the link of the controller the rig API talks to (the master)
    @property
    def link(self):
        ctrls = self.__dict__.get("ctrls")
        return ctrls[self.active].link if ctrls else None

    @link.setter
    def link(self, value):
        pass                       # each controller keeps its own

    def ctrl(self, which) -> Controller:
        return self.ctrls[LETTERS.index(which) if isinstance(which, str) else which]

    # ---- lifecycle -------------------------------------------------------------
    def start(self, configure: bool = True, timeout: float = 30.0):
        for c in self.ctrls:
            self.start_controller(c.letter, configure, timeout)
        self.find_master(timeout)
        return self

    def start_controller(self, which, configure: bool = True, timeout: float = 30.0):
        c = self.ctrl(which)
        c.launcher.board["dual"] = {"controller": c.index, "sibling": self.sibling}
        c.fenced = False
        c.port, c.link = self._open(c.launcher, f"{self.name}.{c.letter}", self._drive_handler(c))
        c.link.peer_handler = self._peer_handler(c)
        o = self.ctrls[1 - c.index]
        if o.up():   # the sibling forgets what it remembers of this board's old numbering
            o.link.send(wire.CH_LINK, wire.K_PEER_RESET, 0, bytes([self.sibling]))
        c.hello = self._boot(c.link, c.launcher, timeout)
        if configure and not c.hello.get("configured"):
            c.link.mgmt("configure", config=self.config)
        return c

    def find_master(self, timeout: float = 60.0) -> str:
        """Wait until one controller reports itself master; the rig API goes there."""
        def master(_):
            for c in self.ctrls:
                if c.up() and c.link.mgmt("table", name="dual")["table"]["role"] == "master":
                    return c
            return None
        c = self.wait_for(master, timeout, what="a master controller")
        self._set_active(c.index)
        o = self.ctrls[1 - c.index]
        if o.up():     # and the other one in step with it
            self.wait_for(lambda _: o.link.mgmt("table", name="dual")["table"]["role"] == "standby", timeout,
                          what=f"controller {o.letter} standby")
        return c.letter

    def _set_active(self, i: int):
        self.active = i
        if self.fabric:        # the other units' peer paths lead to the master now
            self.fabric.attach(self)
            for c in self.ctrls:
                if c.link is not None:
                    c.link.peer_handler = self._peer_handler(c)

    def master(self) -> str:
        return LETTERS[self.active]

    def stop(self):
        for c in self.ctrls:
            if c.link:
                c.link.close()
                c.link = None
            c.launcher.stop()

    def kill(self):
        for c in self.ctrls:
            self._power_off(c)

    def restart(self, timeout: float = 30.0):
        self.kill()
        return self.start(configure=False, timeout=timeout)

    def _power_off(self, c: Controller):
        c.fenced = True
        c.launcher.kill()
        if c.link:
            c.link.close()
            c.link = None

    def kill_controller(self, which):
        """SIGKILL one board; if it was the master, the other takes over."""
        c = self.ctrl(which)
        self._power_off(c)
        if c.index == self.active:
            self.failover()

    def restart_controller(self, which, timeout: float = 60.0):
        """Boot a killed controller again: it rejoins (resync); A takes the master role back."""
        c = self.start_controller(which, configure=False, timeout=timeout)
        want = "master" if c.index == 0 else "standby"
        self.wait_for(lambda _: self.ctrl_table(c.letter, "dual")["role"] == want, timeout,
                      what=f"controller {c.letter} {want}")
        return self.find_master(timeout)

    def failover(self):
        """The master is down: the error controller's notice to the other one."""
        dead = self.ctrls[self.active]
        o = self.ctrls[1 - self.active]
        if not o.up():
            raise LinkError(f"{self.name}: both controllers are down")
        if dead.launcher.alive():
            self._power_off(dead)        # a master that stopped answering is cut off first
        dead.fenced = True
        o.link.mgmt("dual_takeover")
        self._set_active(o.index)

    # ---- the boards' drive and peer traffic -------------------------------------
    def _drive_handler(self, c: Controller):
        def serve(d: int, kind: int, payload: bytes):
            if d >= len(self.drives):
                return wire.E_NOT_READY, b""
            drv = self.drives[d]
            held = drv.faults.held
            if held is not None:
                held.wait()
            if c.fenced:                 # a killed board's request, released late: never applied
                return wire.E_NOT_READY, b""
            return drv.serve(kind, payload)
        return serve

    def _peer_handler(self, c: Controller):
        return lambda link, k, kind, seq, payload, low=-1: self._route(c, k, kind, seq, payload, low)

    def _route(self, c: Controller, k: int, kind: int, seq: int, payload: bytes, low: int = -1):
        if c.fenced:                     # what a killed board sent last goes nowhere
            return
        if k != self.sibling:
            if self.fabric and c.index == self.active:
                self.fabric.route(self.name, k, kind, seq, payload, low)
            elif getattr(self.fabric, "from_standby", None) and self.fabric.from_standby(self, c.link, k, kind, seq,
                                                                                          payload):
                pass                     # a standby's port frame (online backup's fabric)
            elif not kind & wire.RESP:
                c.link.send(wire.CH_PEER + k, kind | wire.RESP, seq, bytes([wire.E_PATH_DOWN]))
            return
        o = self.ctrls[1 - c.index]
        if not o.up() or o.fenced or self.sibling_cut:
            if not kind & wire.RESP and c.link is not None:
                c.link.send(wire.CH_PEER + k, kind | wire.RESP, seq, bytes([wire.E_PATH_DOWN]))
            return
        o.link.send_raw(wire.pack(wire.CH_PEER + self.sibling, kind, seq, payload, low))

    # ---- the rig API on the master, re-routed when it is down ----------------------
    @contextmanager
    def via(self, which):
        """Send the rig API's host I/O to this controller (a standby passes it on to the
        master) while the block runs: `with u.via("B"): h.write(0, 0, 4)`."""
        self._via = self.ctrl(which)
        try:
            yield self
        finally:
            self._via = None

    def _up(self):
        if self._via is not None:
            if not self._via.up():
                raise LinkError(f"{self.name}: controller {self._via.letter} is down")
            return self._via.link
        c = self.ctrls[self.active]
        if not c.up():
            self.failover()
            c = self.ctrls[self.active]
        return c.link

    def _rerouted(self, fn):
        for _ in range(3):
            try:
                return fn()
            except LinkError:
                if self._via is not None or self.ctrls[self.active].up():
                    raise
                self.failover()
            except StatusError as e:
                if e.status != wire.E_STATE or self._via is not None:
                    raise
                before = self.active
                self.find_master()
                if self.active == before:
                    raise
        return fn()

    def write(self, vol: int, lba: int, data: bytes, port: int = 0):
        return self._rerouted(lambda: Unit.write(self, vol, lba, data, port))

    def read(self, vol: int, lba: int, count: int, port: int = 0) -> bytes:
        return self._rerouted(lambda: Unit.read(self, vol, lba, count, port))

    def flush(self, vol: int = 0, port: int = 0):
        return self._rerouted(lambda: Unit.flush(self, vol, port))

    def mgmt(self, op: str, **args) -> dict:
        r = self._rerouted(lambda: self._up().mgmt(op, **args))
        if op not in READ_ONLY and not (op == "job" and args.get("action", "info") == "info"):
            self.ctrls[self.active].link.mgmt("dual_sync")   # the change is on the standby before we return
        return r

    def ctrl_mgmt(self, which, op: str, **args) -> dict:
        c = self.ctrl(which)
        if not c.up():
            raise LinkError(f"{self.name}: controller {c.letter} is down")
        return c.link.mgmt(op, **args)

    def ctrl_table(self, which, name: str):
        return self.ctrl_mgmt(which, "table", name=name)["table"]

    def cached_block(self, which, group: int, block: int) -> dict:
        """One block as controller `which`'s cache holds it: state, seq, data (bytes)."""
        r = self.ctrl_mgmt(which, "dual_block", group=group, block=block)
        r["data"] = bytes.fromhex(r["data"])
        return r
