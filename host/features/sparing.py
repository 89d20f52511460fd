"""The sparing demo (seed 001): a drive of an emulated RAID5 unit collects errors under a
verifying workload until the controller judges it faulty and copies it to the spare;
the host keeps writing (into journals on work volumes) the whole time; the updates are
fed back; every block is verified and the faulty drive was never written again."""
from __future__ import annotations

import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from firmware.features.sparing import TYPES
from host.demo import check_rig
from host.hostio import Workload
from host.liveview import LiveView
from host.rig import RigError
from host.summary import Summary, bar, drive_rows, fill_volumes, load_checked, show

SPARING_RIG = Path(__file__).resolve().parents[2] / "rigs" / "sparing.toml"


def _t3_table(u) -> Table:
    t = Table(title="T3: error management (count / threshold)")
    t.add_column("drive")
    rows = u.table("T3")
    types = list(TYPES)
    for k in types:
        t.add_column(k.replace("_", " "))
    for r in rows:
        t.add_row(str(r["drive"]), *[f"{r['n'][k]} / {r['th'][k]}" for k in types])
    return t


def _check(rig, faulty: int) -> None:
    check_rig(rig, faulty, what="the sparing demo")
    if "sparing" not in (rig.unit().desc.get("features") or []):
        raise RigError(f"rig {rig.name}: the sparing demo needs features = [\"sparing\"] and a [unit.sparing] "
                       f"section on unit {rig.unit().name} (as in rigs/sparing.toml)")


def run(board: str = "emulator", rig_path: str | Path = SPARING_RIG, ops: int = 200, faulty: int = 2,
        console: Console | None = None, live: bool = False) -> dict:
    con = console or Console()
    t0 = time.monotonic()
    rig = load_checked(rig_path, board, lambda r: _check(r, faulty))
    with rig, LiveView(rig, con, enabled=live):
        u = rig.unit()
        h = rig.host()
        vols = u.table("volumes")
        g = u.table("groups")[0]
        con.print(f"[bold]storlab demo: proactive sparing[/] on board [cyan]{u.board['name']}[/] "
                  f"({u.hello.get('impl')}); group {g['id']} = RAID{g['level']} of drives {g['members']} + spare "
                  f"{g['spares']}; "
                  f"writes during the copy go to journals on work volumes")
        wl = [Workload(h, v["id"], v["blocks"], seed=v["id"] + 1) for v in vols]
        fill_volumes(h, vols, con, 3)
        u.flush()
        u.restart()              # a cold cache: reads reach the drives

        # 1. drive `faulty` starts to go bad: ECC-corrected reads everywhere, a few
        #    unreadable blocks; the workload runs until the controller starts sparing
        con.print(f"[yellow]drive {faulty} starts failing[/]: corrected read errors, 2 unreadable blocks")
        u.inject(faulty, "recovered")
        u.inject(faulty, "medium", start=100, count=1)
        u.inject(faulty, "medium", start=200, count=1)
        steps = 0
        with bar(con) as prog:
            task = prog.add_task("workload until sparing", total=ops)
            while not u.table("sparing") and steps < 20 * ops:
                wl[steps % len(wl)].step()
                steps += 1
                prog.update(task, completed=min(ops, steps))
        sp = u.table("sparing")[0]
        w_faulty = u.drives[faulty].counters["writes"]
        con.print(f"after {steps} ops drive {sp['drive']} is judged faulty: sparing onto drive {sp['spare']} "
                  f"({sp['copy']} copy, backup {sp['backup']})")
        con.print(_t3_table(u))

        # 2. the copy (held at row 0 by start_paused) and the feedback run while the
        #    workload goes on; every access to the faulty drive is logged from here
        stop = threading.Event()
        during = [0]
        u.drives[faulty].accesses = []
        u.job("sparing0", "resume")

        def background():
            while not stop.is_set():
                wl[during[0] % len(wl)].step()
                during[0] += 1

        th = threading.Thread(target=background, daemon=True)
        th.start()
        with bar(con) as prog:
            tc = prog.add_task("copy to the spare", total=sp["rows"])
            tf = prog.add_task("feedback of the updates", total=1)
            while True:
                s = u.table("sparing")[0]
                prog.update(tc, completed=s["copy_pointer"])
                if s["phase"] != "copying":
                    prog.update(tf, total=max(1, s["feedback_total"]),
                                completed=s["feedback_pointer"] if s["feedback_total"] else 1)
                if s["phase"] == "done":
                    break
                time.sleep(0.05)
        stop.set()
        th.join()
        u.flush()
        host_reads_faulty = 0   # reads of the faulty drive other than the copy's own
        s = u.table("sparing")[0]

        # 3. verify every block
        bad = sum(w.bad for w in wl)
        with bar(con) as prog:
            task = prog.add_task("verify every block", total=sum(v["blocks"] for v in vols))
            for v in vols:
                for lba in range(0, v["blocks"], 3):
                    n = min(3, v["blocks"] - lba)
                    bad += h.read(v["id"], lba, n)
                    prog.advance(task, n)
        copy_reads = s["stats"]["faulty_reads"]
        faulty_reads = len([a for a in u.drives[faulty].accesses if a[0] == "r"])
        host_reads_faulty = faulty_reads - copy_reads
        g = u.table("groups")[0]
        summ = Summary().group(g, f" (drive {faulty} replaced by {s['spare']})")
        summ.add("copy", f"{s['rows']} rows: {s['stats']['copied']} copied, {s['stats']['rebuilt']} rebuilt, "
                         f"{s['stats']['skipped']} already on the spare; lost {s['lost']}, "
                         f"spare write errors {s['spare_write_errors']}", "copy", s["stats"])
        summ.add("writes during the copy", f"{s['stats']['diverted']} tracks to the journals, "
                                           f"{s['stats']['overflow']} to the group; {during[0]} workload ops",
                 "ops_during_copy", during[0])
        summ.add("feedback", f"{s['stats']['fed']} tracks fed back, {s['stats']['discarded']} older records "
                             f"discarded; journal searched {s.get('journal_searched', 0)} records")
        faulty_writes = u.drives[faulty].counters["writes"] - w_faulty
        summ.add(f"drive {faulty} after the start", f"{faulty_writes} writes, "
                                                    f"{host_reads_faulty} reads other than the copy's")
        summ.add("T4 after", ", ".join(f"W-VOL {w['wvol']}: {w['primaries'] or 'released'}" for w in u.table("T4")))
        summ.host(h).bad(bad).elapsed(t0)
        drives = drive_rows(u)
        show(con, u, summ, h.verifier, drives)
        return {"scenario": "sparing", "rig": rig.name, "board": u.board["name"], "impl": u.hello.get("impl"),
                "bad": bad, "checked": h.verifier.checked, "faulty_drive": faulty, "sparing": s,
                "faulty_writes": faulty_writes, "host_reads_faulty": host_reads_faulty, "drives": drives,
                "mismatches": h.verifier.mismatches[:10], **summ.data}
