"""The rig: storage units (each on its own board), their simulated drives, the host
computers and the paths between units, built from one description file.

Tests, the CLI, the demo and the benchmarks all build rigs through `Rig.load()`.

    with Rig.load("rigs/demo.toml", board="emulator") as rig:
        u = rig.unit("u0")
        u.write(0, 10, data)              # volume 0, LBA 10
        u.inject(2, "medium", 40, 4)      # drive 2: unreadable LBAs 40..43
        u.table("groups")                 # any SM table, as data
        u.job("rebuild0", "pause")
"""
from __future__ import annotations

import copy
import struct
import tempfile
import time
import tomllib
from pathlib import Path

from firmware import wire
from host import rigschema
from host.boards import launcher_for, load_board
from host.drives import SimDrive
from host.fabric import Fabric
from host.hostio import HostComputer
from host.link import BoardLink, LinkError, StatusError
from host.linkfaults import FaultyPort, LinkFaults

__all__ = ["Rig", "Unit", "StatusError", "LinkError", "RigError", "BoardError"]


class RigError(Exception):
    """A bad rig description (or a rig that cannot do what was asked of it)."""


class BoardError(RigError):
    """A board that did not come up."""


# unit description keys the harness itself consumes
HOST_ONLY_KEYS = ("name", "board", "drives", "drive_blocks", "drive_sizes", "backing", "cache_mode",
                  "group", "volume", "controllers")


class Unit:
    """One storage unit as the host sees it: board, link, drives, and the rig API."""

    on_record = None   # fn(link, dir, ch, kind, seq, payload) given to each new link (host.trace)

    def __init__(self, desc: dict, block_size: int, state_dir: Path, board_override: str | None = None,
                 labgrid: dict | None = None):
        self.desc = desc
        self.name = desc["name"]
        self.block_size = block_size
        self.board = load_board(board_override or desc.get("board", "emulator"))
        if self.board.get("kind") == "labgrid":    # the rig's [labgrid] section: the coordinator
            self.board.setdefault("labgrid", dict(labgrid or {}))
        if block_size > self.board.get("max_block_size", 1 << 30):
            raise RigError(f"unit {self.name}: block size {block_size} exceeds board "
                           f"{self.board['name']}'s max_block_size {self.board['max_block_size']}")
        self.state_dir = Path(state_dir) / self.name
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.launcher = launcher_for(self.board, self.state_dir / "board", self.name)
        self.link: BoardLink | None = None
        self.hello: dict = {}
        nd = desc.get("drives", 0)
        blocks = desc.get("drive_blocks", 1024)
        backing = desc.get("backing", "file")
        sizes = desc.get("drive_sizes") or [blocks] * nd
        self.drives = [SimDrive(i, sizes[i], block_size,
                                str(self.state_dir / f"drive{i}.img") if backing == "file" else None)
                       for i in range(len(sizes))]
        self.config = {
            "block_size": block_size,
            "cache_mode": desc.get("cache_mode", "write-back"),
            "drives": [{"blocks": d.blocks} for d in self.drives],
            "groups": copy.deepcopy(desc.get("group", [])),
            "volumes": copy.deepcopy(desc.get("volume", [])),
        }
        # anything else in the unit's description (features and their settings) goes to
        # the firmware as part of its configuration
        for k, v in desc.items():
            if k not in HOST_ONLY_KEYS:
                self.config[k] = copy.deepcopy(v)
        self.fabric: Fabric | None = None
        self.link_faults = LinkFaults()     # faults on the host <-> board link (see set_link_faults)
        self.fault_seed = desc.get("fault_seed", 0)

    # ---- lifecycle -----------------------------------------------------------
    def start(self, configure: bool = True, timeout: float = 30.0):
        self.port, self.link = self._open(self.launcher, self.name, self._serve_drive)
        if self.fabric:
            self.fabric.attach(self)
        self.hello = self._boot(self.link, self.launcher, timeout)
        if configure and not self.hello.get("configured"):
            self.mgmt("configure", config=self.config)
        return self

    def _open(self, launcher, name: str, drive_handler):
        """Start a board and open its link: (port, link)."""
        ser = launcher.start()
        mp = self.board.get("max_payload", wire.MAX_PAYLOAD)
        port = FaultyPort(ser, self.link_faults, seed=self.fault_seed)
        link = BoardLink(port, name, max_payload=mp, drive_handler=drive_handler)
        link.drive_blocks = lambda d: d < len(self.drives) and self.drives[d].faults.blocks()
        link.on_record = self.on_record
        link.announce()
        return port, link

    def _boot(self, link: BoardLink, launcher, timeout: float) -> dict:
        """The board's hello (BoardError, with its console's last line, if it does not boot)."""
        by_url = self.board.get("kind") in ("serial", "labgrid")
        try:
            return link.wait_hello(min(timeout, 1.0) if by_url else timeout)
        except LinkError:
            if not by_url:
                log = self._board_log(launcher)
                last = ([x for x in log.splitlines() if x.strip()] or ["no answer"])[-1].strip()
                e = BoardError(f"unit {self.name} on board {self.board['name']} did not boot: {last}")
                e.log = log          # the board's whole console output
                raise e from None
            return link.mgmt("info", timeout=timeout)   # it booted before we attached: ask

    def _board_log(self, launcher=None) -> str:
        get = getattr(launcher or self.launcher, "stderr_text", None)
        return (get() or "").strip()[-2000:] if get else ""

    def stop(self):
        if self.link:
            self.link.close()
            self.link = None
        self.launcher.stop()

    def kill(self):
        """Cut the board's power: no chance to save anything."""
        self.launcher.kill()
        if self.link:
            self.link.close()
            self.link = None

    def restart(self, timeout: float = 30.0):
        """Kill the board and boot it again; it resumes from its persisted SM."""
        self.kill()
        return self.start(configure=False, timeout=timeout)

    def close(self):
        self.stop()
        for d in self.drives:
            d.close()

    # ---- drives ----------------------------------------------------------------
    def _serve_drive(self, d: int, kind: int, payload: bytes):
        if d >= len(self.drives):
            return wire.E_NOT_READY, b""
        return self.drives[d].serve(kind, payload)

    def inject(self, drive: int, fault: str, start: int = 0, count: int | None = None, seconds: float = 0.0):
        """Inject a fault on a simulated drive (see host.drives)."""
        self.drives[drive].inject(fault, start, count, seconds)

    def set_link_faults(self, **rates):
        """Faults on this unit's serial link, both directions: corrupt (per byte), drop,
        duplicate, delay (per frame), delay_s.  No argument: a clean link again."""
        f = self.link_faults
        for k in ("corrupt", "drop", "duplicate", "delay"):
            setattr(f, k, 0.0)
        for k, v in rates.items():
            if not hasattr(f, k):
                raise ValueError(f"unknown link fault {k!r}")
            setattr(f, k, v)

    def drive_counters(self) -> list[dict]:
        return [dict(d.counters) for d in self.drives]

    # ---- host I/O ----------------------------------------------------------------
    def _up(self) -> BoardLink:
        link = self.link
        if link is None:
            raise LinkError(f"{self.name}: the board is down")
        return link

    def _io_chunk(self) -> int:
        return max(1, (self._up().max_payload - wire.IO_HEAD_LEN - 1) // self.block_size)

    def write(self, vol: int, lba: int, data: bytes, port: int = 0):
        bs = self.block_size
        if len(data) % bs:
            raise ValueError(f"write of {len(data)} bytes is not a whole number of {bs}-byte blocks")
        n = len(data) // bs
        step = self._io_chunk()
        for i in range(0, n, step):
            k = min(step, n - i)
            head = struct.pack(wire.IO_HEAD, vol, lba + i, k)
            st, _ = self._up().request(wire.CH_HOST + port, wire.K_WRITE, head + data[i * bs:(i + k) * bs])
            if st != wire.OK:
                raise StatusError(st, f"{self.name}: write vol {vol} lba {lba + i} x{k}")

    def start_io(self, op: str, vol: int, lba: int, arg, port: int = 0):
        """Send one READ (arg = block count) or WRITE (arg = data) frame now and return
        its handle for finish_io(); any number may be outstanding (queue depth)."""
        if op == "w":
            n = len(arg) // self.block_size
            body = struct.pack(wire.IO_HEAD, vol, lba, n) + arg
            return self._up().start(wire.CH_HOST + port, wire.K_WRITE, body)
        return self._up().start(wire.CH_HOST + port, wire.K_READ, struct.pack(wire.IO_HEAD, vol, lba, arg))

    def finish_io(self, w, timeout: float = 30.0) -> bytes:
        """The answer to start_io(): the data read (b"" for a write); StatusError if refused."""
        st, data = self._up().finish(w, timeout)
        if st not in (wire.OK, wire.RECOVERED):
            raise StatusError(st, f"{self.name}: {wire.kind_name(w.sent_kind)} seq {w.seq}")
        return data

    def read(self, vol: int, lba: int, count: int, port: int = 0) -> bytes:
        out = []
        step = self._io_chunk()
        for i in range(0, count, step):
            k = min(step, count - i)
            st, data = self._up().request(wire.CH_HOST + port, wire.K_READ,
                                         struct.pack(wire.IO_HEAD, vol, lba + i, k))
            if st not in (wire.OK, wire.RECOVERED):
                raise StatusError(st, f"{self.name}: read vol {vol} lba {lba + i} x{k}")
            out.append(data)
        return b"".join(out)

    def volinfo(self, vol: int, port: int = 0) -> tuple[int, int]:
        st, data = self.link.request(wire.CH_HOST + port, wire.K_VOLINFO, struct.pack("<H", vol))
        if st != wire.OK:
            raise StatusError(st, f"{self.name}: volinfo {vol}")
        return struct.unpack("<II", data)

    def flush(self, vol: int = 0, port: int = 0):
        st, _ = self.link.request(wire.CH_HOST + port, wire.K_FLUSH, struct.pack("<H", vol), timeout=120)
        if st != wire.OK:
            raise StatusError(st, f"{self.name}: flush")

    # ---- management -------------------------------------------------------------
    def mgmt(self, op: str, **args) -> dict:
        return self._up().mgmt(op, **args)

    def table(self, name: str):
        return self.mgmt("table", name=name)["table"]

    def tables(self) -> dict:
        return {t: self.table(t) for t in self.mgmt("info")["tables"]}

    def fail_drive(self, d: int, why: str = "operator"):
        self.mgmt("fail_drive", drive=d, why=why)

    def rebuild(self, group: int, spare: int = -1, paused: bool = False):
        """Start a rebuild of the group's failed member (paused: wait for step/resume)."""
        self.mgmt("rebuild", group=group, spare=spare, paused=paused)

    def job(self, name: str, action: str = "info", n: int = 1) -> dict:
        return self.mgmt("job", name=name, action=action, n=n)["job"]

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.05, what: str = "condition"):
        """Poll predicate(unit) until it is true; return its value."""
        end = time.monotonic() + timeout
        while True:
            v = predicate(self)
            if v:
                return v
            if time.monotonic() > end:
                raise TimeoutError(f"{self.name}: {what} not reached within {timeout} s")
            time.sleep(interval)

    def wait_job(self, name: str, timeout: float = 120.0) -> dict:
        return self.wait_for(lambda u: (j := u.job(name))["state"] in ("done", "failed") and j,
                             timeout, what=f"job {name} finished")


class Rig:
    def __init__(self, desc: dict, state_dir: str | Path | None = None, board: str | None = None,
                 source: str | None = None, text: str | None = None):
        problems = rigschema.check(desc, source, text)
        if problems:
            raise RigError(problems[0] if len(problems) == 1 else
                           "\n".join([f"{len(problems)} problems in the rig description:"] + problems))
        self.desc = desc
        self.name = desc.get("rig", {}).get("name", "rig")
        self.block_size = desc.get("rig", {}).get("block_size", 4096)
        self._tmp = None
        if state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"storlab-{self.name}-")
            state_dir = self._tmp.name
        self.state_dir = Path(state_dir)
        self.fabric = Fabric()
        self.units: dict[str, Unit] = {}
        for ud in desc.get("unit", []):
            if ud["name"] in self.units:
                raise RigError(f"unit {ud['name']!r} defined twice")
            kind = Unit
            if ud.get("controllers", 1) == 2:
                from host.dual import DualUnit  # two boards, one unit (docs/dual.md)
                kind = DualUnit
            elif "dual" in ud.get("features", []):
                raise RigError(f"unit {ud['name']}: feature dual needs controllers = 2")
            u = kind(ud, self.block_size, self.state_dir, board, labgrid=desc.get("labgrid"))
            u.fabric = self.fabric
            self.units[u.name] = u
        for p in desc.get("path", []):
            for end in (p["a"], p["b"]):
                if end not in self.units:
                    raise RigError(f"path {p['a']}-{p['b']}: no unit {end!r}")
            self.fabric.add_path(p["a"], p["b"])
        for u in self.units.values():
            if hasattr(u, "ctrls"):     # its controllers' own path comes after the rig's
                u.sibling = len(self.fabric.peers.get(u.name, []))
        self.hosts: dict[str, HostComputer] = {}
        for i, hd in enumerate(desc.get("host", [])):
            if hd["unit"] not in self.units:
                raise RigError(f"host {hd['name']}: no unit {hd['unit']!r}")
            self.hosts[hd["name"]] = HostComputer(hd["name"], self.units[hd["unit"]],
                                                  hd.get("port", 0), seed=hd.get("seed", i))

    @classmethod
    def load(cls, path: str | Path, **kw) -> "Rig":
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise RigError(f"{path}: no such rig file") from None
        except OSError as e:
            raise RigError(f"{path}: cannot read the rig file ({e.strerror})") from None
        try:
            desc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise RigError(f"{path}: not valid TOML: {e}") from None
        return cls(desc, source=str(path), text=text, **kw)

    def unit(self, name: str | None = None) -> Unit:
        if name is None:
            return next(iter(self.units.values()))
        return self.units[name]

    def host(self, name: str | None = None) -> HostComputer:
        if name is None:
            return next(iter(self.hosts.values()))
        return self.hosts[name]

    def start(self):
        try:
            for u in self.units.values():
                u.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self):
        for u in self.units.values():
            try:
                u.close()
            except Exception:
                pass
        if self._tmp:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
