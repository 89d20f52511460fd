"""The demo: an emulated RAID5 unit under a verifying workload; a drive fails, degraded
I/O goes on, the unit rebuilds onto its spare while the workload keeps running, and
every block is verified at the end."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from host.hostio import Workload
from host.liveview import LiveView
from host.rig import Rig

DEMO_RIG = Path(__file__).resolve().parent.parent / "rigs" / "demo.toml"


def _drive_table(u) -> Table:
    t = Table(title=f"unit {u.name}: drives")
    for c in ("drive", "state", "reads", "writes", "errors (harness)", "controller counters"):
        t.add_column(c)
    sm = u.table("drives")
    hc = u.drive_counters()
    for d in sm:
        io = {k: v for k, v in d["io"].items() if v}
        t.add_row(str(d["id"]), d["state"], str(hc[d["id"]]["reads"]), str(hc[d["id"]]["writes"]),
                  str(hc[d["id"]]["errors"]), " ".join(f"{k}={v}" for k, v in io.items()))
    return t


def run(board: str = "emulator", rig_path: str | Path = DEMO_RIG, ops: int = 300, fail_drive: int = 1,
        console: Console | None = None, live: bool = False) -> dict:
    con = console or Console()
    t0 = time.monotonic()
    with Rig.load(rig_path, board=board) as rig, LiveView(rig, con, enabled=live):
        u = rig.unit()
        h = rig.host()
        vols = u.table("volumes")
        con.print(f"[bold]storlab demo[/] rig [cyan]{rig.name}[/] on board [cyan]{u.board['name']}[/] "
                  f"({u.hello.get('impl')}, core {u.hello.get('core')}); "
                  f"group 0 = RAID5 of drives {u.table('groups')[0]['members']} + spare "
                  f"{u.table('groups')[0]['spares']}")

        # 1. fill both volumes and run a verifying workload
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=con) as prog:
            total = sum(v["blocks"] for v in vols)
            task = prog.add_task("fill volumes", total=total)
            for v in vols:
                for lba in range(0, v["blocks"], 4):
                    n = min(4, v["blocks"] - lba)
                    h.write(v["id"], lba, n)
                    prog.advance(task, n)
            wl = [Workload(h, v["id"], v["blocks"], seed=v["id"] + 1) for v in vols]
            task = prog.add_task("verifying workload", total=ops)
            for i in range(ops):
                wl[i % len(wl)].step()
                prog.advance(task)
        u.flush()

        # 2. a drive dies; the unit notices on its next I/O and keeps serving, degraded
        con.print(f"[red]drive {fail_drive} fails[/] (stops answering)")
        u.inject(fail_drive, "fail")
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=con) as prog:
            task = prog.add_task("degraded workload", total=ops)
            for i in range(ops):
                wl[i % len(wl)].step()
                prog.advance(task)
        u.flush()
        g = u.table("groups")[0]
        con.print(f"group 0 is [yellow]{g['state']}[/]: failed member(s) {g['failed']}")

        # 3. rebuild onto the spare, with the workload still running
        if not g["rebuild"]:
            u.rebuild(0)
        stop = threading.Event()
        steps = [0]

        def background():
            while not stop.is_set():
                wl[steps[0] % len(wl)].step()
                steps[0] += 1

        th = threading.Thread(target=background, daemon=True)
        th.start()
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeRemainingColumn(), console=con) as prog:
            task = prog.add_task("rebuild onto spare", total=g["rows"])
            while True:
                j = u.job("rebuild0")
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
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=con) as prog:
            task = prog.add_task("verify every block", total=sum(v["blocks"] for v in vols))
            for v in vols:
                for lba in range(0, v["blocks"], 8):
                    n = min(8, v["blocks"] - lba)
                    bad += h.read(v["id"], lba, n)
                    prog.advance(task, n)
        bad += sum(w.bad for w in wl)

        g = u.table("groups")[0]
        cache = u.table("cache")
        link = u.table("link")
        mem = u.table("mem")
        con.print(_drive_table(u))
        s = Table(title="summary", show_header=False)
        s.add_row("group 0", f"{g['state']}, members {g['members']}, spares {g['spares']}")
        s.add_row("host ops", f"{h.ops['writes']} writes, {h.ops['reads']} reads, "
                              f"{h.verifier.checked} blocks verified")
        s.add_row("bad blocks", f"[{'green' if bad == 0 else 'red'}]{bad}[/]")
        s.add_row("cache", f"{cache['read_hits']} read hits / {cache['read_misses']} misses, "
                           f"{cache['destaged']} destaged")
        s.add_row("link", f"{link['frames']} frames in, {link['tx_frames']} out, {link['dropped']} dropped")
        s.add_row("board heap", f"{mem['live'] // 1024} KiB live after GC, of a {mem['heap'] // 1024} KiB heap")
        s.add_row("time", f"{time.monotonic() - t0:.1f} s")
        con.print(s)
        for m in h.verifier.mismatches[:10]:
            con.print(f"[red]{m}[/]")
        return {"bad": bad, "checked": h.verifier.checked, "group": g, "mem": mem}
