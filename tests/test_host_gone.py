"""A board whose host went away exits by itself: the harness (the host end of the pty)
is killed abruptly, idle or while the board's answers fill the pty, and the board
process, emulator or CPython, saves its shared memory and exits instead of looping on a
dead port.  (Every test also checks it leaves no board process behind: conftest.)"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, board_processes, have_micropython, rig_desc

pytestmark = pytest.mark.skipif(not (have_micropython() and os.path.isdir("/proc")),
                                reason="needs the micropython binary and /proc")

# The harness: a rig in a process of its own; it prints its board's pid once the
# board is in the state asked, then waits to be killed.
HARNESS = r"""
import array, fcntl, json, os, struct, sys, termios, threading
sys.path.insert(0, sys.argv[1])
from firmware import wire
from host.rig import Rig

desc, state, board, mode = json.loads(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rig = Rig(desc, state_dir=state, board=board).start()
u = rig.unit()
u.write(0, 0, bytes(4096 * 8))
if mode == "pty full":
    # a second handle on the pty, then the link closed: nobody reads the board's answers
    fd = os.open(u.launcher.url, os.O_RDWR | os.O_NOCTTY)
    u.link.close()
    for i in range(40):     # 40 READs of 3 blocks: 480 KiB of answers, far more than a pty holds
        seq = 1000 + i
        os.write(fd, wire.pack(wire.CH_HOST, wire.K_READ, seq, struct.pack(wire.IO_HEAD, 0, 0, 3), seq))
    queued = array.array("i", [0])
    while queued[0] < 2048:   # answers are piling up unread
        threading.Event().wait(0.01)
        fcntl.ioctl(fd, termios.FIONREAD, queued)
print(u.launcher.proc.pid, flush=True)
threading.Event().wait()
"""


def _gone(pid):
    """True once pid has exited (a zombie counts: whoever adopted it may not reap it)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.mark.parametrize("mode", ["idle", "pty full"])
@pytest.mark.parametrize("board", ["emulator", "cpython"])
def test_a_board_whose_host_is_killed_exits_by_itself(tmp_path, board, mode):
    state = tmp_path / "rig"
    harness = subprocess.Popen([sys.executable, "-c", HARNESS, str(ROOT), json.dumps(rig_desc()), str(state),
                                board, mode], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        line = harness.stdout.readline()
        assert line.strip().isdigit(), "the harness did not start its board"
        pid = int(line)
        assert pid in [p for p, _ in board_processes()]
        harness.send_signal(signal.SIGKILL)       # the host goes away: no close, no goodbye
        harness.wait(30)
        end = time.monotonic() + 60               # generous: the machine may be loaded
        while not _gone(pid):
            assert time.monotonic() < end, "board %d still running %s after its host died" % (pid, mode)
            time.sleep(0.05)
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(30)
    log = (state / "u0" / "board" / "stderr.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-2000:]      # a clean exit, not a crash on the dead port
    with open(state / "u0" / "board" / "sm.json") as f:
        assert "config" in json.load(f)["tables"]    # its shared memory saved and whole
