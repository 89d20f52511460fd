"""Board farms on labgrid: boards taken as places through a labgrid coordinator, and
emulated boards exported to one.

  FarmClient    a session with a labgrid coordinator (labgrid's own ClientSession, its
                event loop in a thread of its own): places, who holds them, acquire, release
  FarmLauncher  the launcher of a rig unit whose board is "NAME@labgrid:PLACE": acquires
                the place, opens its NetworkSerialPort (RFC 2217), releases the place when
                the unit stops; if the place's exporter goes, the link fails naming the place
  FarmExport    `storlab farm export`: emulated boards, each one's pty behind ser2net,
                published by a labgrid-exporter as NetworkSerialPort resources
  Coordinator   a labgrid-coordinator on 127.0.0.1 (a farm tried on one machine, the tests)

labgrid itself is imported only when a farm is used.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import serial

from host.boards import Launcher, load_board, need_tool, with_parent

DEFAULT_COORDINATOR = "127.0.0.1:20408"   # labgrid's default (LG_COORDINATOR overrides it)
RIG_KEYS = ("coordinator", "timeout")      # what a rig's [labgrid] section may say
SERIAL_CLS = "NetworkSerialPort"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FarmError(Exception):
    pass


class PlaceHeld(FarmError):
    """The place is acquired by another user."""

    def __init__(self, place: str, holder: str, since: float, me: str):
        self.place, self.holder = place, holder
        host, _, user = holder.partition("/")
        when = datetime.fromtimestamp(since).strftime("%Y-%m-%d %H:%M:%S") if since else "?"
        super().__init__(f"labgrid place {place} is held by {user} on {host} (since {when}); "
                         f"ask them to release it (labgrid-client -p {place} release) or to let you "
                         f"use it too (labgrid-client -p {place} allow {me})")


def coordinator_address(given: str | None = None) -> str:
    """HOST:PORT of the coordinator: given, else $LG_COORDINATOR, else labgrid's default."""
    addr = str(given or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR).strip()
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise FarmError(f"labgrid coordinator address {addr!r} is not HOST:PORT (e.g. {DEFAULT_COORDINATOR})")
    return addr


def tool(name: str) -> str:
    """A console script of this environment, else from PATH."""
    return need_tool(name, FarmError, "pip install 'storlab[farm]', or pip install labgrid")


def serial_url(args: dict) -> str:
    """The pyserial URL of a NetworkSerialPort's arguments (host, port, protocol)."""
    host, port = args.get("host"), args.get("port")
    if not host or not port:
        raise FarmError(f"NetworkSerialPort without host and port: {args}")
    proto = args.get("protocol", "rfc2217")
    if proto == "rfc2217":
        # ser2net does not acknowledge modem-control changes on a pty (an emulated board);
        # not waiting for those acknowledgements is harmless on a real port
        return f"rfc2217://{host}:{port}?ign_set_control"
    if proto == "raw":
        return f"socket://{host}:{port}"
    raise FarmError(f"NetworkSerialPort {host}:{port}: unknown protocol {proto!r} (rfc2217, raw)")


def _labgrid():
    try:
        import grpc
        from labgrid.remote import client
        from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2
        from labgrid.util.proxy import proxymanager
    except ImportError as e:
        raise FarmError(f"labgrid is not installed ({e}): pip install 'storlab[farm]'") from None
    return grpc, client, pb2, proxymanager


class _Connection:
    """One labgrid ClientSession with a coordinator, its event loop in a thread of its own,
    shared by every FarmClient of this process for that coordinator: the coordinator tells
    its clients apart by their TCP connection, which gRPC shares within a process."""

    def __init__(self, address: str, timeout: float):
        _, client, _, proxymanager = _labgrid()
        self.address = address
        self.clients: list[FarmClient] = []
        conn = self

        class Session(client.ClientSession):
            async def on_resource_changed(self, *a):
                await super().on_resource_changed(*a)
                conn.changed()

            async def on_place_changed(self, *a):
                await super().on_place_changed(*a)
                conn.changed()

            async def on_place_deleted(self, *a):
                await super().on_place_deleted(*a)
                conn.changed()

        self.loop = asyncio.new_event_loop()
        self.session = None
        started = threading.Event()
        self.error: BaseException | None = None

        def run():
            asyncio.set_event_loop(self.loop)
            try:
                # made in this thread: gRPC's channel belongs to the loop of the thread it is made in
                self.session = Session(proxymanager.get_grpc_address(address, default_port=20408),
                                       self.loop, args=argparse.Namespace())
                self.loop.run_until_complete(asyncio.wait_for(self.session.start(), timeout))
            except BaseException as e:   # noqa: B036 - handed to the caller
                self.error = e
            started.set()
            if self.error is None:
                self.loop.run_forever()
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

        self.thread = threading.Thread(target=run, name=f"labgrid-client-{address}", daemon=True)
        self.thread.start()
        started.wait()
        if self.error is not None:
            self.thread.join(timeout)
            raise FarmError(f"no labgrid coordinator answers at {address}: "
                            f"{str(self.error) or type(self.error).__name__}") from None

    def usable(self) -> bool:
        return self.thread.is_alive() and not self.session.stopping.is_set()

    def changed(self):
        for c in list(self.clients):
            for w in list(c.watchers):
                try:
                    w()
                except Exception:   # a watcher's bug must not stop the session
                    pass

    def close(self, timeout: float):
        if not self.thread.is_alive():
            return

        async def stop():
            await self.session.stop()
            await self.session.close()
        try:
            asyncio.run_coroutine_threadsafe(stop(), self.loop).result(timeout)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout)


_CONNECTIONS: dict[str, _Connection] = {}
_CONNECTIONS_LOCK = threading.Lock()
_IN_USE: dict[tuple[str, str], "FarmLauncher"] = {}    # (coordinator, place) -> the unit on it


class FarmClient:
    """A client of a labgrid coordinator.  labgrid's ClientSession keeps the places and
    resources up to date from the coordinator's stream, in a thread of its own, so the view
    stays current between calls; watchers (fn(), called in that thread) see every change."""

    def __init__(self, address: str | None = None, timeout: float = 30.0):
        self.grpc, _, self.pb2, _ = _labgrid()
        self.address = coordinator_address(address)
        self.timeout = timeout
        self.watchers: list = []
        self.closed = False
        with _CONNECTIONS_LOCK:
            conn = _CONNECTIONS.get(self.address)
            if conn is None or not conn.usable():
                conn = _CONNECTIONS[self.address] = _Connection(self.address, timeout)
            conn.clients.append(self)
        self.conn = conn
        self.session = conn.session
        self.loop = conn.loop

    # ---- plumbing -------------------------------------------------------------
    def _run(self, coro, timeout: float | None = None):
        if self.closed:
            raise FarmError(f"the session with the labgrid coordinator at {self.address} is closed")
        if self.session.stopping.is_set():
            coro.close()
            raise FarmError(f"lost the labgrid coordinator at {self.address}")
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout or self.timeout)
        except TimeoutError:
            fut.cancel()
            raise FarmError(f"the labgrid coordinator at {self.address} did not answer within "
                            f"{timeout or self.timeout} s") from None
        except self.grpc.aio.AioRpcError as e:
            raise FarmError(f"labgrid coordinator at {self.address}: {e.details()}") from None

    def _rpc(self, method: str, request):
        """One of the coordinator's gRPC calls (made in the session's thread), then a sync:
        the session has seen its effect when this returns."""
        async def run():
            await getattr(self.session.stub, method)(request)
            await self._sync()
        return self._run(run())

    async def _sync(self):
        if not await self.session.sync_with_coordinator():
            raise FarmError(f"lost the labgrid coordinator at {self.address}")

    def call(self, fn, *args):
        """fn(*args) in the session's thread (where its state changes), after a sync with
        the coordinator: what it sees includes everything sent before."""
        async def run():
            await self._sync()
            return fn(*args)
        return self._run(run())

    def me(self) -> str:
        return f"{self.session.gethostname()}/{self.session.getuser()}"

    # ---- the farm's state (in the session's thread) ------------------------------
    def _place(self, name: str):
        places = self.session.places
        if name in places:
            return places[name]
        for p in places.values():
            if name in p.aliases:
                return p
        known = ", ".join(sorted(places)) or "none"
        raise FarmError(f"no labgrid place {name!r} on the coordinator at {self.address} (places: {known})")

    def _entries(self, place, acquired_only: bool = False) -> list[dict]:
        """The resources the place matches (or holds), each as a dict."""
        out = []
        held = {tuple(r) for r in place.acquired_resources}
        for exporter, groups in sorted(self.session.resources.items()):
            for group, resources in sorted(groups.items()):
                for rname, entry in sorted(resources.items()):
                    if not entry.data.get("cls"):
                        continue        # deleted (its exporter left)
                    path = (exporter, group, entry.cls, rname)
                    match = place.getmatch(path)
                    if match is None or (acquired_only and path not in held):
                        continue
                    out.append({"path": "/".join(path), "exporter": exporter, "cls": entry.cls,
                                "name": match.rename or rname, "avail": bool(entry.data.get("avail")),
                                "acquired": entry.data.get("acquired"), "args": entry.args,
                                "proxy_required": bool(entry.extra.get("proxy_required"))})
        return out

    def _describe(self, place) -> dict:
        return {"name": place.name, "aliases": sorted(place.aliases), "comment": place.comment,
                "acquired": place.acquired, "changed": place.changed, "allowed": sorted(place.allowed),
                "matches": [str(m) for m in place.matches],
                "acquired_resources": ["/".join(r) for r in place.acquired_resources],
                "resources": self._entries(place)}

    def places(self) -> list[dict]:
        """Every place: name, who holds it (acquired: "HOST/USER" or None), since when
        (changed), its matching resources (path, cls, avail, args)."""
        return self.call(lambda: [self._describe(p) for _, p in sorted(self.session.places.items())])

    def place(self, name: str) -> dict:
        return self.call(lambda: self._describe(self._place(name)))

    def exported(self, exporter: str) -> dict:
        """{group: {resource name: {"cls", "avail", "args"}}} that an exporter publishes."""
        def get():
            groups = self.session.resources.get(exporter, {})
            return {g: {n: {"cls": e.cls, "avail": bool(e.data.get("avail")), "args": e.args}
                        for n, e in rs.items() if e.data.get("cls")} for g, rs in groups.items()}
        return self.call(get)

    # ---- changing it --------------------------------------------------------------
    def acquire(self, name: str) -> tuple[dict, bool]:
        """Acquire the place (or use it if it is already ours, or we are allowed on it).
        Returns (its NetworkSerialPort as a dict, whether we acquired it now)."""
        me = self.me()

        def check():
            place = self._place(name)
            if place.acquired and place.acquired != me and me not in place.allowed:
                raise PlaceHeld(place.name, place.acquired, place.changed, me)
            ports = [r for r in self._entries(place) if r["cls"] == SERIAL_CLS]
            if not ports:
                if not place.matches:
                    why = (f"it matches no resource (labgrid-client -p {place.name} add-match "
                           f"EXPORTER/GROUP/{SERIAL_CLS})")
                else:
                    found = ", ".join(r["path"] for r in self._entries(place))
                    why = (f"its matches ({', '.join(str(m) for m in place.matches)}) find "
                           + (f"only {found}" if found else "nothing on the coordinator (is its exporter running?)"))
                raise FarmError(f"labgrid place {place.name} has no {SERIAL_CLS}: {why}")
            return place.name, bool(place.acquired)

        real, held = self.call(check)
        took = False
        if not held:
            try:
                self._rpc("AcquirePlace", self.pb2.AcquirePlaceRequest(placename=real))
            except FarmError:
                self.call(check)        # taken in the meantime: says by whom
                raise
            took = True

        def port():
            place = self._place(real)
            ports = [dict(r, place=real) for r in self._entries(place, acquired_only=bool(place.acquired))
                     if r["cls"] == SERIAL_CLS]
            if len(ports) != 1:
                raise FarmError(f"labgrid place {real} holds {len(ports)} {SERIAL_CLS} resources "
                                f"({', '.join(r['path'] for r in ports) or 'none'}): one is needed")
            if ports[0]["proxy_required"]:
                raise FarmError(f"labgrid place {real}: its exporter {ports[0]['exporter']} runs isolated "
                                f"(its ports only through an SSH proxy), which storlab does not do")
            if not ports[0]["avail"]:
                raise FarmError(f"labgrid place {real}: {ports[0]['path']} is not available "
                                f"(its exporter {ports[0]['exporter']} is offline?)")
            return ports[0]

        try:
            return self.call(port), took
        except BaseException:
            if took:
                self.release(real)
            raise

    def release(self, name: str):
        """Release the place (by name or alias) if it is acquired."""
        def held():
            p = self._place(name)
            return p.name if p.acquired else None
        real = self.call(held)
        if real:
            self._rpc("ReleasePlace", self.pb2.ReleasePlaceRequest(placename=real))

    def create_place(self, name: str, pattern: str, comment: str = "") -> bool:
        """Create the place with one match (EXPORTER/GROUP/CLS) unless it exists; True if created."""
        if self.call(lambda: name in self.session.places):
            return False
        self._rpc("AddPlace", self.pb2.AddPlaceRequest(name=name))
        self._rpc("AddPlaceMatch", self.pb2.AddPlaceMatchRequest(placename=name, pattern=pattern))
        if comment:
            self._rpc("SetPlaceComment", self.pb2.SetPlaceCommentRequest(placename=name, comment=comment))
        return True

    def wait_for(self, predicate, timeout: float, what: str, alive=None):
        """Wait until predicate(self) is true (it is tried again at every change the
        coordinator reports); alive() false ends the wait early."""
        changed = threading.Event()
        w = changed.set
        self.watchers.append(w)
        try:
            end = time.monotonic() + timeout
            while True:
                changed.clear()
                v = predicate(self)
                if v:
                    return v
                if alive is not None and not alive():
                    raise FarmError(f"{what}: gave up (what it waited for has stopped)")
                if time.monotonic() > end:
                    raise FarmError(f"{what}: not within {timeout} s")
                changed.wait(0.5)
        finally:
            self.watchers.remove(w)

    def close(self):
        if self.closed:
            return
        self.closed = True
        with _CONNECTIONS_LOCK:
            conn = self.conn
            conn.clients.remove(self)
            last = not conn.clients
            if last and _CONNECTIONS.get(self.address) is conn:
                del _CONNECTIONS[self.address]
        if last:
            conn.close(self.timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- a rig unit on a farm's place ---------------------------------------------------
class FarmPort:
    """The place's serial port: once the place is lost (its exporter gone, the place
    released or deleted) every read and write fails, naming the place."""

    def __init__(self, ser, launcher: "FarmLauncher"):
        self.serial = ser
        self.launcher = launcher

    def _lost(self, e: Exception | None = None) -> str:
        return f"labgrid place {self.launcher.place}: {self.launcher.lost or e or 'lost'}"

    @property
    def in_waiting(self):
        if self.launcher.lost:
            raise serial.SerialException(self._lost())
        try:
            return self.serial.in_waiting
        except Exception as e:
            raise serial.SerialException(self._lost(e)) from e

    def read(self, n=1):
        if self.launcher.lost:
            raise serial.SerialException(self._lost())
        try:
            return self.serial.read(n)
        except Exception as e:
            raise serial.SerialException(self._lost(e)) from e

    def write(self, data):
        from host.link import LinkError

        if self.launcher.lost:
            raise LinkError(f"{self.launcher.unit_name}: link lost: {self._lost()}")
        try:
            return self.serial.write(data)
        except Exception as e:
            raise LinkError(f"{self.launcher.unit_name}: link lost: {self._lost(e)}") from e

    @property
    def is_open(self):
        return self.serial.is_open

    def close(self):
        self.serial.close()


class FarmLauncher(Launcher):
    """A board in a labgrid farm: `NAME@labgrid:PLACE`, the coordinator from the rig's
    [labgrid] section (coordinator = "HOST:PORT"), else $LG_COORDINATOR."""

    def __init__(self, board: dict, state_dir: Path, unit_name: str):
        super().__init__(board, state_dir, unit_name)
        self.place = board["place"]
        cfg = dict(board.get("labgrid") or {})
        unknown = sorted(set(cfg) - set(RIG_KEYS))
        if unknown:
            raise FarmError(f"[labgrid]: unknown key(s) {', '.join(unknown)} (known: {', '.join(RIG_KEYS)})")
        t = cfg.get("timeout", 30.0)
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0:
            raise FarmError(f"[labgrid] timeout = {t!r}: a number of seconds above 0, for each request "
                            f"to the coordinator")
        self.timeout = float(t)
        self.address = coordinator_address(cfg.get("coordinator"))
        self.client: FarmClient | None = None
        self.took = False        # we acquired the place (and release it when the unit stops)
        self.lost = ""
        self.resource: dict | None = None
        self.url = None
        self.acquire_s = None

    def start(self):
        self.lost = ""
        key = (self.address, self.place)
        with _CONNECTIONS_LOCK:
            other = _IN_USE.setdefault(key, self)
        if other is not self:
            raise FarmError(f"labgrid place {self.place} is already in use by unit {other.unit_name} "
                            f"(one board per unit)")
        try:
            if self.client is None:
                self.client = FarmClient(self.address, self.timeout)
            # again at a restart: the port may have moved, or its exporter gone
            t0 = time.monotonic()
            self.resource, took = self.client.acquire(self.place)
            if took:
                self.acquire_s = time.monotonic() - t0     # acquire and find the port
            self.took = self.took or took
            if self._check not in self.client.watchers:
                self.client.watchers.append(self._check)
            self.url = serial_url(self.resource["args"])
            ser = serial.serial_for_url(self.url, baudrate=self.board.get("serial", {}).get("baudrate", 115200),
                                        timeout=0.05)
        except Exception as e:
            self.stop()
            if isinstance(e, FarmError):
                raise
            raise FarmError(f"labgrid place {self.place}: {e}") from e
        return FarmPort(ser, self)

    def _check(self):
        """In the session's thread, at every change: is the place still ours, with its port?"""
        if self.lost or self.resource is None:
            return
        s = self.client.session
        place = s.places.get(self.resource["place"])
        exporter, group, _, rname = self.resource["path"].split("/")
        entry = s.resources.get(exporter, {}).get(group, {}).get(rname)
        me = self.client.me()
        if place is None:
            self.lost = "the place was deleted from the coordinator"
        elif place.acquired is None:
            self.lost = "the place was released (labgrid-client release --kick?)"
        elif place.acquired != me and me not in place.allowed:
            self.lost = f"the place is now held by {place.acquired}"
        elif entry is None or not entry.data.get("cls"):
            self.lost = f"its exporter {exporter} has left the coordinator"
        elif not entry.data.get("avail"):
            self.lost = f"its {SERIAL_CLS} {self.resource['path']} is no longer available"
        elif entry.args != self.resource["args"]:
            self.lost = f"its {SERIAL_CLS} moved to {serial_url(entry.args)}"

    def alive(self) -> bool:
        return not self.lost

    def kill(self):
        """A farm's board has no power switch here: the place stays ours, only the port closes."""

    def stop(self):
        with _CONNECTIONS_LOCK:
            if _IN_USE.get((self.address, self.place)) is self:
                del _IN_USE[(self.address, self.place)]
        c = self.client
        if c is None:
            return
        self.client = None
        try:
            if self._check in c.watchers:
                c.watchers.remove(self._check)
            if self.took:
                c.release(self.place)
        finally:
            self.took = False
            self.resource = None
            c.close()


# ---- emulated boards exported to a farm ------------------------------------------
class FarmExport:
    """Emulated boards (the real MicroPython binary running the firmware from this
    repository), each one's pty behind ser2net on 127.0.0.1, and a labgrid-exporter that
    publishes each as a resource group GROUP with a NetworkSerialPort.  If any of them
    stops (the labgrid-exporter above all), the rest are stopped too: a board the
    coordinator no longer accounts for must not stay reachable."""

    def __init__(self, groups: list[str], coordinator: str | None = None, workdir: Path | None = None,
                 board="emulator", name: str | None = None):
        from host.deploy import Ser2net

        self.groups = list(groups)
        if not self.groups:
            raise FarmError("name at least one board to export")
        for g in self.groups:
            if not NAME_RE.match(g):
                raise FarmError(f"board name {g!r}: letters, digits, '.', '_' and '-' only (it names a "
                                f"resource group and a place)")
        if len(set(self.groups)) != len(self.groups):
            raise FarmError(f"board names given twice: {' '.join(self.groups)}")
        self.board = load_board(board)
        if self.board.get("kind") != "emulator":
            raise FarmError(f"board {self.board.get('name')!r} is a {self.board.get('kind')} board: storlab farm "
                            f"export runs emulated boards; export real ones with labgrid-exporter and a "
                            f"USBSerialPort (docs/boards.md)")
        if Ser2net.binary() is None:
            raise FarmError("ser2net is not installed (Debian: apt-get install ser2net)")
        self.coordinator = coordinator_address(coordinator)
        self.name = name or f"storlab-{socket.gethostname()}"
        if not NAME_RE.match(self.name):
            raise FarmError(f"exporter name {self.name!r}: letters, digits, '.', '_' and '-' only")
        self._tmp = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="storlab-farm-")
            workdir = self._tmp.name
        self.workdir = Path(workdir)
        self.boards: list = []
        self.ser2net = None
        self.proc: subprocess.Popen | None = None
        self.created: list[str] = []

    def config(self) -> str:
        """The labgrid-exporter's resource configuration (YAML)."""
        out = []   # no comments: labgrid reads it as a Jinja2 template, with "#" for its statements
        for i, g in enumerate(self.groups):
            out += [f"{g}:",
                    f"  {SERIAL_CLS}:",
                    "    host: 127.0.0.1",
                    f"    port: {self.ser2net.ports[i]}",
                    f"    speed: {self.board.get('serial', {}).get('baudrate', 115200)}",
                    "    protocol: rfc2217"]
        return "\n".join(out) + "\n"

    def pattern(self, group: str) -> str:
        return f"{self.name}/{group}/{SERIAL_CLS}"

    def start(self, create_places: bool = False, timeout: float = 120.0):
        from host.deploy import EmulatedBoard, Ser2net

        self.workdir.mkdir(parents=True, exist_ok=True)
        exporter = tool("labgrid-exporter")
        with FarmClient(self.coordinator) as client:   # fails at once if there is no coordinator
            try:
                for g in self.groups:
                    b = EmulatedBoard(self.board, self.workdir / g / "flash", unit=g)
                    self.boards.append(b)
                    b.power_on(source=True)
                self.ser2net = Ser2net([b.port for b in self.boards], self.workdir / "ser2net").start()
                cfg = self.workdir / "exporter.yaml"
                cfg.write_text(self.config())
                self.log = open(self.workdir / "labgrid-exporter.log", "ab")
                self.proc = subprocess.Popen(with_parent([exporter, "--coordinator", self.coordinator, "--name",
                                                          self.name, "--hostname", "127.0.0.1", str(cfg)]),
                                             stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                             start_new_session=True)

                def published(c):
                    got = c.exported(self.name)
                    return all(got.get(g, {}).get(SERIAL_CLS, {}).get("avail") for g in self.groups)
                client.wait_for(published, timeout, f"exporter {self.name}'s boards on the coordinator",
                                alive=lambda: self.proc.poll() is None)
                if create_places:
                    for g in self.groups:
                        if client.create_place(g, self.pattern(g), f"emulated {self.board['name']} board"):
                            self.created.append(g)
            except BaseException as e:
                why = self.dead()
                self.stop()
                if why and not isinstance(e, KeyboardInterrupt):
                    raise FarmError(f"{e}: {why}") from None
                raise
        return self

    def url(self, i: int = 0) -> str:
        return self.ser2net.url(i)

    def dead(self) -> str:
        """What has stopped, if anything."""
        if self.proc is not None and self.proc.poll() is not None:
            last = [x for x in self.exporter_log().splitlines() if x.strip()][-3:]
            return (f"labgrid-exporter exited ({_exit(self.proc.returncode)})"
                    + (f": {' / '.join(last)}" if self.proc.returncode > 0 else ""))
        if self.ser2net is not None and self.ser2net.proc.poll() is not None:
            return f"ser2net exited ({_exit(self.ser2net.proc.returncode)})"
        for g, b in zip(self.groups, self.boards):
            if b.proc is not None and not b.alive():
                return f"board {g} stopped: {b.stderr_text()[-300:].strip()}"
        return ""

    def exporter_log(self) -> str:
        try:
            return (self.workdir / "labgrid-exporter.log").read_text(errors="replace")
        except OSError:
            return ""

    def wait(self, interval: float = 0.5) -> str:
        """Until something stops; returns what."""
        while True:
            why = self.dead()
            if why:
                return why
            time.sleep(interval)

    def stop(self):
        p, self.proc = self.proc, None
        if p is not None:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
            self.log.close()
        if self.ser2net is not None:
            self.ser2net.stop()
            self.ser2net = None
        for b in self.boards:
            b.power_off()
        self.boards = []
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"status {rc}"


class Coordinator:
    """A labgrid-coordinator listening on 127.0.0.1 (port 0: one the system picks), in a
    folder of its own, where it keeps places.yaml."""

    def __init__(self, workdir: Path, port: int = 0):
        self.workdir = Path(workdir)
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.address = ""

    def start(self, timeout: float = 60.0):
        self.workdir.mkdir(parents=True, exist_ok=True)
        logpath = self.workdir / "coordinator.log"
        self.log = open(logpath, "ab")
        start = logpath.stat().st_size
        self.proc = subprocess.Popen(with_parent([tool("labgrid-coordinator"), "--listen", f"127.0.0.1:{self.port}"]),
                                     stdout=self.log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                     start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            m = re.search(rb"listening on 127\.0\.0\.1:(\d+)", logpath.read_bytes()[start:])
            if m:
                self.address = f"127.0.0.1:{int(m.group(1))}"
                return self
            if self.proc.poll() is not None or time.monotonic() > end:
                text = logpath.read_bytes()[start:].decode(errors="replace")[-800:]
                self.stop()
                raise FarmError(f"labgrid-coordinator did not start listening: {text}")
            time.sleep(0.05)

    def stop(self):
        p, self.proc = self.proc, None
        if p is None:
            return
        if p.poll() is None:
            p.terminate()        # a graceful shutdown (at most 5 s)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- the command line: storlab farm [export] ----------------------------------------
def add_parser(subparsers):
    p = subparsers.add_parser("farm", help="a labgrid board farm: list its places and who holds them; "
                                           "export emulated boards to it")
    p.add_argument("--coordinator", default=None, help="HOST:PORT of the labgrid coordinator "
                                                       f"(default: $LG_COORDINATOR, else {DEFAULT_COORDINATOR})")
    p.add_argument("--json", action="store_true", help="print the places as JSON")
    fs = p.add_subparsers(dest="farm_cmd")
    e = fs.add_parser("export", help="run emulated boards as a labgrid exporter (each board's pty behind "
                                     "ser2net) until Ctrl-C")
    e.add_argument("boards", nargs="*", default=["emu-0"], metavar="NAME",
                   help="one emulated board per name; it is the resource group (default: emu-0)")
    e.add_argument("--coordinator", default=argparse.SUPPRESS, help="as above")
    e.add_argument("--board", default="emulator", help="the emulated board (a board file of kind emulator)")
    e.add_argument("--name", default=None, help="the exporter's name (default: storlab-HOSTNAME)")
    e.add_argument("--create-places", action="store_true",
                   help="create a place per board (same name, matching its NetworkSerialPort) unless it exists")
    e.add_argument("--state", default=None, help="folder for the boards and configuration (default: temporary)")


def run(args) -> int:
    try:
        if args.farm_cmd == "export":
            return _export(args)
        return _list(args)
    except FarmError as e:
        print(f"storlab farm: {e}", file=sys.stderr)
        return 2


def _list(args) -> int:
    with FarmClient(args.coordinator) as c:
        places = c.places()
        me = c.me()
    if args.json:
        json.dump(places, sys.stdout, indent=1)
        print()
        return 0
    print(f"labgrid coordinator {c.address}: {len(places)} place(s); you are {me}")
    rows = [("PLACE", "HELD BY", "SINCE", "SERIAL PORT", "EXPORTER")]
    for p in places:
        ports = [r for r in p["resources"] if r["cls"] == SERIAL_CLS]
        port = ", ".join(serial_url(r["args"]).partition("?")[0] + ("" if r["avail"] else " (offline)")
                         for r in ports) or "-"
        since = datetime.fromtimestamp(p["changed"]).strftime("%Y-%m-%d %H:%M:%S") if p["acquired"] else ""
        rows.append((p["name"], p["acquired"] or "free", since, port,
                     ", ".join(sorted({r["exporter"] for r in ports})) or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    return 0


def _export(args) -> int:
    exp = FarmExport(args.boards, args.coordinator, Path(args.state) if args.state else None,
                     board=args.board, name=args.name)

    def stop(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        exp.start(create_places=args.create_places)
        print(f"exporter {exp.name} on the labgrid coordinator {exp.coordinator}: "
              f"{len(exp.groups)} emulated {exp.board['name']} board(s)")
        for i, g in enumerate(exp.groups):
            if g in exp.created:
                place = "place created"
            elif args.create_places:
                place = "place already there"
            else:
                place = f"its place: labgrid-client -p {g} create; labgrid-client -p {g} add-match {exp.pattern(g)}"
            print(f"  {g}  {exp.url(i).partition('?')[0]}  ({exp.boards[i].port}; {place})")
        print(f"labgrid-exporter pid {exp.proc.pid}; configuration {exp.workdir / 'exporter.yaml'}")
        print("ready; Ctrl-C stops", flush=True)
        why = exp.wait()
        print(f"storlab farm export: {why}; boards withdrawn", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        exp.stop()
