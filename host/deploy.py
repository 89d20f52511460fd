"""storlab deploy: put the firmware on a MicroPython board, start it, attach to it.

  build   mpy-cross compiles every firmware module for the board's architecture
          (`mpy_arch` in boards/NAME.toml) into a staging folder, with the board's
          board.json and a main.py that starts the firmware at boot
  copy    mpremote copies the staging folder onto the board's filesystem
  reset   the board restarts into main.py (`[deploy] reset`: "hard" = mpremote reset,
          "soft" = mpremote soft-reset, "exec" = main started through the raw REPL, for
          the unix port, which has no soft reset)
  attach  a rig reaches the running board as "NAME@PORT" (see host.boards.load_board)

Everything that differs between boards is data in boards/*.toml; this module has no
per-board code.  The emulated board (EmulatedBoard) is the unix port in a subprocess
whose console is a pty: its filesystem is a folder, its USB port the pty's slave.
Ser2net exports any such port as rfc2217://127.0.0.1:PORT, the way a board farm
exports the boards plugged into its machines.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tty
from pathlib import Path

import serial

from host.boards import FIRMWARE_KEYS, FIRMWARE_ROOT, load_board, micropython_binary, need_tool, with_parent

# Modules that only the host runs (the CPython C-core binding): never sent to a board.
HOST_ONLY = ("firmware/core/cffi_backend.py",)
# mpy-cross -march for the machine this runs on ("host" in a board file: the emulator)
HOST_ARCH = {"x86_64": "x64", "amd64": "x64", "i686": "x86", "i386": "x86", "armv7l": "armv7m"}
# Removes the old firmware folder first: a stale .py would shadow the new .mpy.
CLEAN = ("import os\n"
         "def _rm(p):\n"
         "    try:\n"
         "        for e in os.ilistdir(p):\n"
         "            q = p + '/' + e[0]\n"
         "            if e[1] == 0x4000:\n"
         "                _rm(q)\n"
         "            else:\n"
         "                os.remove(q)\n"
         "        os.rmdir(p)\n"
         "    except OSError:\n"
         "        pass\n"
         "_rm('firmware')\n")


class DeployError(Exception):
    pass


def tool(name: str) -> str:
    """A console script of this environment, else from PATH."""
    return need_tool(name, DeployError)


def deploy_settings(board: dict) -> dict:
    d = dict(board.get("deploy") or {})
    if not d:
        raise DeployError(f"board {board.get('name')!r} (kind {board.get('kind')}) has no [deploy] "
                          f"section: the firmware is not deployed to it")
    return d


def mpy_arch(board: dict) -> str:
    arch = board.get("mpy_arch") or deploy_settings(board).get("mpy_arch")
    if arch == "host":
        m = platform.machine().lower()
        if m not in HOST_ARCH:
            raise DeployError(f"no mpy-cross architecture known for this machine ({m})")
        return HOST_ARCH[m]
    if not arch:
        raise DeployError(f"board {board.get('name')!r} names no mpy_arch")
    return arch


def board_json(board: dict, unit: str) -> dict:
    d = {k: board[k] for k in FIRMWARE_KEYS if k in board}
    d["unit"] = unit
    return d


def main_py(board: dict) -> str:
    wait = int(deploy_settings(board).get("boot_wait_ms", 0))
    lines = ["# Written by storlab deploy: start the storage firmware at boot."]
    if wait:
        lines += ["import time", "",
                  "time.sleep_ms(%d)  # a window for Ctrl-C before the firmware takes the console" % wait]
    lines += ["import firmware.main  # noqa: F401", ""]
    return "\n".join(lines)


def build(board: dict, out: Path, unit: str = "u0") -> list[dict]:
    """Compile the firmware for the board into out/; return [{path, bytes, source_bytes}]."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    arch = mpy_arch(board)
    cross = tool("mpy-cross")
    files = []
    for src in sorted((FIRMWARE_ROOT / "firmware").rglob("*.py")):
        rel = src.relative_to(FIRMWARE_ROOT).as_posix()
        if rel in HOST_ONLY:
            continue
        dst = out / rel[:-3]
        dst = dst.with_name(dst.name + ".mpy")
        dst.parent.mkdir(parents=True, exist_ok=True)
        # -s: the name in tracebacks, as on the host
        r = subprocess.run([cross, f"-march={arch}", "-s", rel, "-o", str(dst), str(src)],
                           capture_output=True, text=True)
        if r.returncode:
            raise DeployError(f"mpy-cross {rel}: {r.stderr.strip() or r.stdout.strip()}")
        files.append({"path": dst.relative_to(out).as_posix(), "bytes": dst.stat().st_size,
                      "source_bytes": src.stat().st_size})
    (out / "board.json").write_text(json.dumps(board_json(board, unit)))
    (out / "main.py").write_text(main_py(board))
    for name in ("board.json", "main.py"):
        n = (out / name).stat().st_size
        files.append({"path": name, "bytes": n, "source_bytes": n})
    return files


def mpremote(port: str, board: dict, *words: str, cwd: Path | None = None, timeout: float = 120.0) -> str:
    """Run `mpremote connect PORT [board's connect words] WORDS...`; return its output."""
    cmd = [tool("mpremote"), "connect", port, *deploy_settings(board).get("mpremote", []), *words]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if r.returncode:
        shown = " ".join("<code>" if "\n" in w else w for w in cmd[1:])
        raise DeployError(f"mpremote {shown} failed ({r.returncode}): {(r.stderr or r.stdout).strip()[-800:]}")
    return r.stdout


def copy(board: dict, port: str, staging: Path) -> str:
    """Replace the board's firmware folder, board.json and main.py with the staging folder's."""
    staging = Path(staging)
    return mpremote(port, board, "exec", CLEAN, "+", "fs", "cp", "-r", "firmware", "board.json", "main.py", ":./",
                    cwd=staging)


def board_files(board: dict, port: str) -> list[str]:
    """Every file on the board's filesystem under firmware/, plus board.json and main.py."""
    code = ("import os\n"
            "def _ls(p):\n"
            "    for e in os.ilistdir(p):\n"
            "        q = e[0] if p == '.' else p + '/' + e[0]\n"
            "        if e[1] == 0x4000:\n"
            "            _ls(q)\n"
            "        elif q.startswith('firmware/') or q in ('board.json', 'main.py'):\n"
            "            print(q)\n"
            "_ls('.')\n")
    return sorted(x.strip() for x in mpremote(port, board, "exec", code).splitlines() if x.strip())


def reset(board: dict, port: str, emulated: "EmulatedBoard | None" = None):
    how = deploy_settings(board).get("reset", "hard")
    if how == "exec":
        if emulated is None:
            raise DeployError(f"board {board['name']!r} starts main through its REPL: deploy to it "
                              f"through an EmulatedBoard (storlab deploy {board['name']})")
        emulated.start_main()
    elif how in ("hard", "soft"):
        mpremote(port, board, "reset" if how == "hard" else "soft-reset")
    else:
        raise DeployError(f"board {board['name']!r}: unknown reset {how!r} (hard, soft, exec)")
    time.sleep(float(deploy_settings(board).get("settle_s", 0)))


def deploy(board, port: str | None = None, unit: str = "u0", staging: Path | None = None,
           emulated: "EmulatedBoard | None" = None) -> dict:
    """Build, copy, reset.  Returns what was done, with the time of each step."""
    board = load_board(board)
    port = port or (emulated.port if emulated else board.get("url"))
    if not port:
        raise DeployError(f"board {board['name']!r}: no port given and none in its board file")
    tmp = None
    if staging is None:
        tmp = tempfile.TemporaryDirectory(prefix="storlab-deploy-")
        staging = Path(tmp.name) / "staging"
    try:
        t0 = time.monotonic()
        files = build(board, staging, unit)
        t1 = time.monotonic()
        copy(board, port, staging)
        t2 = time.monotonic()
        reset(board, port, emulated)
        t3 = time.monotonic()
    finally:
        if tmp:
            tmp.cleanup()
    return {"board": board["name"], "port": port, "unit": unit, "arch": mpy_arch(board), "files": files,
            "build_s": t1 - t0, "copy_s": t2 - t1, "reset_s": t3 - t2,
            "attach": f"{board['name']}@{port}"}


class EmulatedBoard:
    """A MicroPython dev board emulated by the unix port.

    Its filesystem is `flash` (the process's working folder, the only entry on its
    module path) and its USB port is a pty whose slave path is `port`: mpremote, ser2net
    or a rig open it as they would /dev/ttyACM0.  power_on() leaves it at its REPL, ready
    for deploy; power_on(source=True) runs the firmware straight from this repository.
    The board holds the pty's slave open itself, so clients may come and go."""

    def __init__(self, board, flash: Path, unit: str = "u0"):
        self.board = load_board(board)
        self.flash = Path(flash)
        self.unit = unit
        self.proc: subprocess.Popen | None = None
        self.master = -1
        self.slave = -1
        self.port = ""

    def power_on(self, source: bool = False) -> str:
        self.flash.mkdir(parents=True, exist_ok=True)
        master, slave = os.openpty()
        tty.setraw(slave)
        env = dict(os.environ)
        cmd = [micropython_binary()]
        if self.board.get("heap"):
            cmd += ["-X", f"heapsize={self.board['heap']}"]
        if source:
            (self.flash / "board.json").write_text(json.dumps(board_json(self.board, self.unit)))
            env["MICROPYPATH"] = f".frozen:{FIRMWARE_ROOT}"
            cmd += ["-m", "firmware.main"]
            os.set_blocking(master, False)   # the firmware's stream reads return what has arrived
        else:
            env["MICROPYPATH"] = ".:.frozen"  # the board's own filesystem, nothing of the host's
        self.log = open(self.flash.parent / f"{self.flash.name}.stderr.log", "ab")
        self.proc = subprocess.Popen(with_parent(cmd), stdin=master, stdout=master, stderr=self.log, cwd=self.flash,
                                     env=env, close_fds=True, start_new_session=True)
        self.master, self.slave = master, slave
        self.port = os.ttyname(slave)
        if not source:
            self._expect_prompt()
        return self.port

    def _expect_prompt(self, timeout: float = 10.0):
        with serial.Serial(self.port, timeout=0.1) as ser:
            end = time.monotonic() + timeout
            got = b""
            ser.write(b"\r")
            while not got.endswith(b">>> ") and time.monotonic() < end:
                got += ser.read(256)
            if not got.endswith(b">>> "):
                raise DeployError(f"emulated board: no REPL prompt ({got[-200:]!r}); {self.stderr_text()}")

    def start_main(self, code: str = "import main", timeout: float = 10.0):
        """The emulated board's reset: run main through the raw REPL, and leave the REPL
        there (no Ctrl-B), so the firmware owns the console from its first byte on."""
        with serial.Serial(self.port, timeout=0.1) as ser:
            ser.write(b"\r\x03\x03")
            time.sleep(0.05)
            ser.reset_input_buffer()
            ser.write(b"\r\x01")
            self._read_until(ser, b"raw REPL; CTRL-B to exit\r\n>", timeout)
            ser.write(code.encode() + b"\x04")
            self._read_until(ser, b"OK", timeout)
            # From here on the firmware reads the console: its stream reads must return
            # what has arrived (the REPL needed blocking reads).  Nothing has been sent to
            # it yet, so it cannot be inside a read.
            os.set_blocking(self.master, False)

    def _read_until(self, ser, token: bytes, timeout: float):
        end = time.monotonic() + timeout
        got = b""
        while token not in got:
            if time.monotonic() > end or not self.alive():
                raise DeployError(f"emulated board: waited for {token!r}, got {got[-300:]!r}; {self.stderr_text()}")
            got += ser.read(256)

    def alive(self) -> bool:
        return bool(self.proc and self.proc.poll() is None)

    def stderr_text(self) -> str:
        try:
            return (self.flash.parent / f"{self.flash.name}.stderr.log").read_text(errors="replace")[-1000:]
        except OSError:
            return ""

    def power_off(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)
        self.master = self.slave = -1
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.power_off()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ser2net:
    """ser2net exporting serial ports as RFC 2217 on 127.0.0.1 (what a farm's exporter
    does with the boards plugged into its machine).  `url(i)` is what a rig attaches to."""

    def __init__(self, devices: list[str], workdir: Path, ports: list[int] | None = None):
        self.devices = list(devices)
        self.workdir = Path(workdir)
        self.ports = ports or [free_port() for _ in devices]
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str | None:
        return shutil.which("ser2net") or next((p for p in ("/usr/sbin/ser2net", "/usr/local/sbin/ser2net")
                                                if os.access(p, os.X_OK)), None)

    def config(self) -> str:
        out = ["%YAML 1.1", "---"]
        for i, (dev, port) in enumerate(zip(self.devices, self.ports)):
            out += [f"connection: &board{i}",
                    f"    accepter: telnet(rfc2217),tcp(nodelay),127.0.0.1,{port}",
                    f"    connector: serialdev,{dev},115200n81,local",
                    "    options:",
                    "      kickolduser: true",
                    ""]
        return "\n".join(out)

    def url(self, i: int = 0) -> str:
        # ser2net does not acknowledge modem-control changes on a pty
        return f"rfc2217://127.0.0.1:{self.ports[i]}?ign_set_control"

    def start(self, timeout: float = 10.0):
        exe = self.binary()
        if not exe:
            raise DeployError("ser2net is not installed (Debian: apt-get install ser2net)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "ser2net.yaml"
        cfg.write_text(self.config())
        self.log = open(self.workdir / "ser2net.log", "ab")
        self.proc = subprocess.Popen(with_parent([exe, "-n", "-d", "-c", str(cfg), "-P",
                                                  str(self.workdir / "ser2net.pid")]),
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + timeout
        for port in self.ports:
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if self.proc.poll() is not None or time.monotonic() > end:
                        log = (self.workdir / "ser2net.log").read_text(errors="replace")[-500:]
                        raise DeployError(f"ser2net did not listen on {port}: {log}") from None
                    time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
