"""The live view shows a running rig: drives, RAID groups, jobs with progress, warnings;
it runs beside a workload without disturbing it."""
import io
import threading

from conftest import rig_desc
from rich.console import Console

from host.hostio import Workload
from host.liveview import LiveView, render, snapshot


def text_of(renderable) -> str:
    con = Console(file=io.StringIO(), width=160, color_system=None)
    con.print(renderable)
    return con.file.getvalue()


def test_live_view_shows_drive_states_groups_job_progress_and_warnings(make_rig):
    rig = make_rig(rig_desc(), board="inprocess")
    u, h = rig.unit(), rig.host()
    for lba in range(0, 64, 4):
        h.write(0, lba, 4)
    u.flush()
    u.fail_drive(1)
    u.rebuild(0, paused=True)
    u.job("rebuild0", "step", n=16)
    u.wait_for(lambda x: x.job("rebuild0")["pointer"] == 16, what="16 rows rebuilt")
    snap = snapshot(rig)
    out = text_of(render(snap))
    drives = {d["id"]: d["state"] for d in snap["units"]["u0"]["drives"]}
    assert drives == {0: "normal", 1: "failed", 2: "normal", 3: "normal", 4: "rebuilding"}
    assert "unit u0 on inprocess" in out
    assert "failed" in out and "rebuilding" in out and "RAID5" in out
    assert "member 1 -> drive 4 at row 16/64" in out
    assert "rebuild0" in out and "16/64 (25%)" in out and "paused" in out
    assert "drive 1 failed (operator)" in out


def test_live_view_runs_beside_a_workload(make_rig):
    rig = make_rig(rig_desc(), board="emulator")
    h = rig.host()
    con = Console(file=io.StringIO(), width=140, force_terminal=True)
    wl = Workload(h, 0, 128, seed=3)
    with LiveView(rig, con, interval=0.05) as view:
        done = threading.Event()

        def work():      # 150 steps, and on until the view has polled 3 times meanwhile
            n = 0
            while n < 150 or (view.polls < 3 and n < 100000):
                wl.step()
                n += 1
            done.set()

        t = threading.Thread(target=work)
        t.start()
        t.join(timeout=300)
    assert done.is_set() and wl.bad == 0
    assert view.polls >= 3
    assert "error" not in view.last["units"]["u0"]
    assert h.ops["writes"] + h.ops["reads"] >= 150
    assert "u0: drives" in con.file.getvalue()
