"""The demo: an emulated RAID5 unit under a verifying workload; a drive fails, degraded
I/O goes on, the unit rebuilds onto its spare while the workload keeps running, and
every block is verified at the end."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Console

from host.hostio import Workload
from host.liveview import LiveView
from host.rig import Rig, RigError
from host.summary import Summary, bar, drive_rows, fill_volumes, load_checked, show

DEMO_RIG = Path(__file__).resolve().parent.parent / "rigs" / "demo.toml"


def check_rig(rig: Rig, fail_drive: int | None = None, need_spare: bool = True, what: str = "the demo"):
    """Refuse, before any board starts, a rig the scenario cannot run on."""
    if not rig.units:
        raise RigError(f"rig {rig.name}: {what} needs a [[unit]]")
    u = rig.unit()
    if not rig.hosts:
        raise RigError(f"rig {rig.name}: {what} needs a [[host]] on unit {u.name} (none in the rig file)")
    groups = u.desc.get("group") or []
    if not groups:
        raise RigError(f"rig {rig.name}: {what} needs a [[unit.group]] on unit {u.name}")
    g = groups[0]
    if not u.desc.get("volume"):
        raise RigError(f"rig {rig.name}: {what} needs a [[unit.volume]] on unit {u.name}")
    if need_spare and not g.get("spares"):
        raise RigError(f"rig {rig.name}: {what} rebuilds onto a spare: group {g['id']} of unit {u.name} has none")
    if fail_drive is not None and fail_drive not in g["members"]:
        raise RigError(f"drive {fail_drive} is not a member of group {g['id']} of unit {u.name} "
                       f"(members: {', '.join(map(str, g['members']))})")


def run(board: str = "emulator", rig_path: str | Path = DEMO_RIG, ops: int = 300, fail_drive: int = 1,
        console: Console | None = None, live: bool = False) -> dict:
    con = console or Console()
    t0 = time.monotonic()
    rig = load_checked(rig_path, board, lambda r: check_rig(r, fail_drive))
    with rig, LiveView(rig, con, enabled=live):
        u = rig.unit()
        h = rig.host()
        vols = u.table("volumes")
        g0 = u.table("groups")[0]
        gid = g0["id"]
        con.print(f"[bold]storlab demo[/] rig [cyan]{rig.name}[/] on board [cyan]{u.board['name']}[/] "
                  f"({u.hello.get('impl')}, core {u.hello.get('core')}); "
                  f"group {gid} = RAID{g0['level']} of drives {g0['members']} + spare {g0['spares']}")

        # 1. fill both volumes and run a verifying workload
        fill_volumes(h, vols, con, 4)
        with bar(con) as prog:
            wl = [Workload(h, v["id"], v["blocks"], seed=v["id"] + 1) for v in vols]
            task = prog.add_task("verifying workload", total=ops)
            for i in range(ops):
                wl[i % len(wl)].step()
                prog.advance(task)
        u.flush()

        # 2. a drive dies; the unit notices on its next I/O and keeps serving, degraded
        con.print(f"[red]drive {fail_drive} fails[/] (stops answering)")
        u.inject(fail_drive, "fail")
        with bar(con) as prog:
            task = prog.add_task("degraded workload", total=ops)
            for i in range(ops):
                wl[i % len(wl)].step()
                prog.advance(task)
        u.flush()
        g = u.table("groups")[0]
        if not g["failed"]:
            # the workload never reached the dead drive: the service processor blocks it
            u.fail_drive(fail_drive, "not answering")
            g = u.table("groups")[0]
        con.print(f"group {gid} is [yellow]{g['state']}[/]: failed member(s) {g['failed']}")

        # 3. rebuild onto the spare, with the workload still running
        if not g["rebuild"]:
            u.rebuild(gid)
        job_name = f"rebuild{gid}"
        stop = threading.Event()
        steps = [0]

        def background():
            while not stop.is_set():
                wl[steps[0] % len(wl)].step()
                steps[0] += 1

        th = threading.Thread(target=background, daemon=True)
        th.start()
        with bar(con, pct=True) as prog:
            task = prog.add_task("rebuild onto spare", total=g["rows"])
            while True:
                j = u.job(job_name)
                prog.update(task, completed=j["pointer"])
                if j["state"] in ("done", "failed"):
                    break
                time.sleep(0.1)
        stop.set()
        th.join()
        con.print(f"rebuild {j['state']}: {j['note']}; {steps[0]} workload ops ran during it")
        u.flush()

        # 4. verify every block of every volume
        bad = 0
        with bar(con) as prog:
            task = prog.add_task("verify every block", total=sum(v["blocks"] for v in vols))
            for v in vols:
                for lba in range(0, v["blocks"], 8):
                    n = min(8, v["blocks"] - lba)
                    bad += h.read(v["id"], lba, n)
                    prog.advance(task, n)
        bad += sum(w.bad for w in wl)

        g = u.table("groups")[0]
        summ = Summary().group(g).host(h).bad(bad).unit_state(u).elapsed(t0)
        drives = drive_rows(u)
        show(con, u, summ, h.verifier, drives)
        return {"scenario": "rebuild", "rig": rig.name, "board": u.board["name"], "impl": u.hello.get("impl"),
                "bad": bad, "checked": h.verifier.checked, "failed_drive": fail_drive,
                "rebuild": {"state": j["state"], "note": j.get("note"), "ops_during": steps[0]},
                "drives": drives, "mismatches": h.verifier.mismatches[:10], **summ.data}
