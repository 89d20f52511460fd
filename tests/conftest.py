import copy
import os
import random
import shutil
import signal
import struct
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from firmware import wire  # noqa: E402
from host.rig import Rig  # noqa: E402

BASE_UNIT = {
    "name": "u0",
    "drives": 5,
    "drive_blocks": 64,
    "backing": "memory",
    "group": [{"id": 0, "level": 5, "members": [0, 1, 2, 3], "chunk": 2, "spares": [4],
               "auto_rebuild": False}],
    "volume": [{"id": 0, "group": 0, "blocks": 128}, {"id": 1, "group": 0, "start": 128, "blocks": 64}],
}


def rig_desc(unit=None, block_size=4096, **unit_changes):
    u = copy.deepcopy(unit or BASE_UNIT)
    u.update(unit_changes)
    return {"rig": {"name": "t", "block_size": block_size}, "unit": [u],
            "host": [{"name": "h0", "unit": u["name"], "port": 0}]}


def have_micropython():
    return bool(shutil.which("micropython") or os.access(Path(sys.executable).parent / "micropython", os.X_OK))


# Every process this session starts inherits this mark, and so do theirs: a board left
# running (even one whose parent died and which was adopted) is found by it.
SESSION_MARK = "STORLAB_TEST_SESSION"
os.environ[SESSION_MARK] = "%d-%s" % (os.getpid(), os.urandom(4).hex())


def board_processes():
    """[(pid, command line)] of the live board processes (the micropython binary, or
    firmware.main under any interpreter) started by this test session or its children."""
    out = []
    if not os.path.isdir("/proc"):
        return out
    mark = ("%s=%s" % (SESSION_MARK, os.environ[SESSION_MARK])).encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                argv = f.read().split(b"\0")
            if not (b"firmware.main" in argv or b"micropython" in [os.path.basename(a) for a in argv[:2]]):
                continue
            with open("/proc/%s/environ" % name, "rb") as f:
                if mark not in f.read().split(b"\0"):
                    continue
            with open("/proc/%s/stat" % name) as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    continue      # exited; its parent (or whoever adopted it) reaps it
        except OSError:
            continue              # gone meanwhile, or not ours to look at
        out.append((int(name), b" ".join(argv).decode(errors="replace").strip()))
    return out


def _left_behind(before, timeout=10.0):
    """Board processes not in `before` still running after `timeout` s (they are killed)."""
    end = time.monotonic() + timeout
    while True:
        left = [p for p in board_processes() if p[0] not in before]
        if not left or time.monotonic() > end:
            break
        time.sleep(0.05)
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


@pytest.fixture(autouse=True)
def no_board_left_behind():
    """Each test: every board process it started has ended when it is over."""
    before = {pid for pid, _ in board_processes()}
    yield
    left = _left_behind(before)
    assert not left, "board processes left running: %s" % left


@pytest.fixture(scope="session", autouse=True)
def no_board_left_at_the_end():
    yield
    left = _left_behind(set())
    assert not left, "board processes left running at the end of the session: %s" % left


@pytest.fixture
def make_rig(tmp_path):
    """make_rig(desc, board) -> a started Rig, closed after the test."""
    rigs = []

    def make(desc=None, board="emulator", start=True, state=None):
        r = Rig(desc or rig_desc(), state_dir=state or tmp_path / f"rig{len(rigs)}", board=board)
        rigs.append(r)
        return r.start() if start else r

    yield make
    for r in rigs:
        r.close()


BOARDS = ["emulator", "cpython", "inprocess"]


def cut_power_at(u, when, land=True):
    """Cut the board's power at an exact point of its drive I/O: the first drive request
    for which when(drive, kind, lba) is true kills the board (SIGKILL, from the link's
    reader thread, before the board hears back).  With land=True that request reaches
    its drive first; no request after it does.  Returns an Event, set once the board is
    dead; then call u.kill() and u.start(configure=False) as after any power cut."""
    dead = threading.Event()
    serve = u.link.drive_handler

    def handler(d, kind, payload):
        if dead.is_set():
            return wire.E_NOT_READY, b""      # nobody is listening: nothing lands any more
        lba, _ = struct.unpack_from(wire.DIO_HEAD, payload)
        if not when(d, kind, lba):
            return serve(d, kind, payload)
        out = serve(d, kind, payload) if land else (wire.E_NOT_READY, b"")
        u.launcher.kill()
        dead.set()
        return out

    u.link.drive_handler = handler
    return dead


class DriveGates:
    """Hold chosen drive requests of a link: hold((drive, kind, lba), ...) makes each
    such request wait until release(); `arrived` and `landed` record (drive, kind, lba)
    of every request that reached the handler and of every one served.  Each drive gets
    a thread of its own (a held request stops its drive only).  With power_off() set,
    nothing lands any more (a board whose power went: cut its process first)."""

    def __init__(self, link):
        self.link = link
        self.serve = link.drive_handler
        self.gates = {}
        self.arrived, self.landed = set(), set()
        self.off = threading.Event()
        link.drive_blocks = lambda d: True
        link.drive_handler = self._handle

    def hold(self, *keys):
        for k in keys:
            self.gates[k] = threading.Event()

    def release(self, *keys):
        for k in keys or list(self.gates):
            self.gates[k].set()

    def power_off(self):
        self.off.set()
        self.release()

    def close(self):
        self.release()
        self.link.drive_handler = self.serve

    def _handle(self, d, kind, payload):
        key = (d, kind, struct.unpack_from(wire.DIO_HEAD, payload)[0])
        self.arrived.add(key)
        gate = self.gates.get(key)
        if gate is not None:
            assert gate.wait(120), key
        if self.off.is_set():
            return wire.E_NOT_READY, b""
        out = self.serve(d, kind, payload)
        self.landed.add(key)
        return out


def rows_not_whole(u, g) -> list[int]:
    """Rows of RAID5 group g whose blocks on the members' drives (read from the drives
    themselves) do not XOR to zero: their parity disagrees with their data."""
    imgs = [u.drives[d].image() for d in g["members"]]
    bs = u.block_size
    bad = []
    for row in range(g["rows"]):
        acc = int.from_bytes(imgs[0][row * bs:(row + 1) * bs], "little")
        for img in imgs[1:]:
            acc ^= int.from_bytes(img[row * bs:(row + 1) * bs], "little")
        if acc:
            bad.append(row)
    return bad


def random_blocks(n, seed, bs=512):
    """n blocks of seeded random bytes (the same for the same seed, on any machine)."""
    return random.Random(seed).randbytes(n * bs)


def status_of(fn, *a, **kw):
    """The status of the StatusError that fn(*a, **kw) must raise."""
    from host.link import StatusError

    with pytest.raises(StatusError) as e:
        fn(*a, **kw)
    return e.value.status
