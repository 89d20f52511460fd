"""storlab: the command line.

  storlab demo [--board emulator|cpython|inprocess] [--rig FILE] [--scenario rebuild|sparing|all]
  storlab tables --rig FILE [--board B] [--table NAME]
  storlab boards
  storlab deploy BOARD [--port URL] [--rig FILE] [--keep] [--export]
  storlab typecheck [BOARD ...] [--install]
  storlab live --rig FILE [--board B] [--ops N] [--fail DRIVE]
  storlab trace record|replay|export ...
"""
from __future__ import annotations

import argparse
import json
import sys

from host import farm
from host.boards import BOARDS_DIR, load_board


def main(argv=None):
    ap = argparse.ArgumentParser(prog="storlab", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="RAID5 unit: workload, drive failure, rebuild, verify")
    d.add_argument("--board", default="emulator")
    d.add_argument("--rig", default=None)
    d.add_argument("--ops", type=int, default=300)
    d.add_argument("--scenario", default="rebuild", choices=["rebuild", "sparing", "all"],
                   help="rebuild: a drive dies and is rebuilt; sparing: a failing drive is copied "
                        "to the spare before it dies (seed 001); all: both")
    t = sub.add_parser("tables", help="start a rig and print its units' SM tables as JSON")
    t.add_argument("--rig", required=True)
    t.add_argument("--board", default=None)
    t.add_argument("--table", default=None)
    sub.add_parser("boards", help="list the board definitions")
    r = sub.add_parser("reliability", help="link faults, board resets, fuzzing and model runs: the figures")
    r.add_argument("--board", default="emulator")
    r.add_argument("--fuzz", type=int, default=5000, help="fuzz inputs (the dedicated run: 100000)")
    r.add_argument("--kills", type=int, default=5)
    r.add_argument("--ops", type=int, default=150, help="workload ops through the faulty link")
    r.add_argument("--model-steps", type=int, default=300)
    r.add_argument("--json", default=None, help="also write the figures here")
    add_tool_commands(sub)
    farm.add_parser(sub)
    d.add_argument("--live", action="store_true", help="show the live view of the rig while the demo runs")
    a = ap.parse_args(argv)
    if a.cmd == "farm":
        return farm.run(a)
    if a.cmd in TOOL_COMMANDS:
        return run_tool_command(a)

    if a.cmd == "demo":
        from host import demo

        kw = {"rig_path": a.rig} if a.rig else {}
        bad = 0
        if a.scenario in ("rebuild", "all"):
            bad += demo.run(board=a.board, ops=a.ops, live=a.live, **kw)["bad"]
        if a.scenario in ("sparing", "all"):
            from host import demo_sparing

            res = demo_sparing.run(board=a.board, **kw)
            bad += res["bad"] + res["faulty_writes"]
        return 0 if bad == 0 else 1
    if a.cmd == "tables":
        from host.rig import Rig

        with Rig.load(a.rig, board=a.board) as rig:
            out = {name: (u.table(a.table) if a.table else u.tables()) for name, u in rig.units.items()}
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    if a.cmd == "reliability":
        from host import reliability

        figures = reliability.run_all(board=a.board, fuzz=a.fuzz, kills=a.kills, ops=a.ops,
                                      model_steps=a.model_steps, progress=print)
        print(reliability.report(figures))
        if a.json:
            with open(a.json, "w") as f:
                json.dump(figures, f, indent=1)
        return 0 if reliability.mismatches(figures) == 0 else 1
    if a.cmd == "boards":
        for p in sorted(BOARDS_DIR.glob("*.toml")):
            b = load_board(str(p))
            print(f"{b['name']:14} {b['kind']:10} slots={b.get('cache_slots')} "
                  f"payload={b.get('max_payload')}  {b.get('description', '')}")
        return 0
    return 2


# ---- boards, farms and tools: deploy, typecheck, live, trace -------------------
TOOL_COMMANDS = ("deploy", "typecheck", "live", "trace")


def add_tool_commands(sub):
    p = sub.add_parser("deploy", help="compile the firmware (mpy-cross), copy it to a board (mpremote), "
                                      "reset it and attach to it")
    p.add_argument("board", help="a board in boards/ (emulator: a fresh emulated board is started)")
    p.add_argument("--port", default=None, help="the board's serial port or URL (default: its board file's url)")
    p.add_argument("--unit", default="u0", help="the unit name written to the board's board.json")
    p.add_argument("--rig", default=None, help="after deploying, run a verifying workload on this rig "
                                               "(its first unit is the deployed board)")
    p.add_argument("--ops", type=int, default=200)
    p.add_argument("--state", default=None, help="the emulated board's folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the emulated board running until Ctrl-C")
    p.add_argument("--export", action="store_true", help="also export the board's port with ser2net (rfc2217)")
    p = sub.add_parser("typecheck", help="mypy on the firmware against each board's MicroPython stubs")
    p.add_argument("boards", nargs="*", help="boards to check (default: every board with [typecheck] stubs)")
    p.add_argument("--install", action="store_true", help="install the stubs first (pip, into .venv/stubs/BOARD)")
    p = sub.add_parser("live", help="a verifying workload (with a drive failure and rebuild) under the live view")
    p.add_argument("--rig", default=None)
    p.add_argument("--board", default=None)
    p.add_argument("--ops", type=int, default=400)
    p.add_argument("--fail", type=int, default=1, help="drive to fail halfway (-1: none)")
    p = sub.add_parser("trace", help="record a scenario's frames, replay a trace, export it as a timeline")
    ts = p.add_subparsers(dest="trace_cmd", required=True)
    r = ts.add_parser("record", help="run the RAID5 life scenario on a rig, recording every frame")
    r.add_argument("out")
    r.add_argument("--rig", default=None)
    r.add_argument("--board", default=None)
    r.add_argument("--ops", type=int, default=60)
    r = ts.add_parser("replay", help="replay a trace against a fresh rig; compare drive contents and tables")
    r.add_argument("trace")
    r.add_argument("--board", default=None)
    r = ts.add_parser("export", help="Chrome/Perfetto trace JSON (ui.perfetto.dev, chrome://tracing)")
    r.add_argument("trace")
    r.add_argument("out")


def _demo_rig():
    from host.demo import DEMO_RIG

    return DEMO_RIG


def run_tool_command(a) -> int:
    if a.cmd == "deploy":
        from host.deploy import DeployError

        try:
            return _deploy(a)
        except DeployError as e:
            print(f"storlab deploy: {e}", file=sys.stderr)
            return 2
    if a.cmd == "typecheck":
        from host import typecheck

        return typecheck.main(a.boards, a.install)
    if a.cmd == "live":
        return _live(a)
    return _trace(a)


def _deploy(a) -> int:
    import tempfile
    import time
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from host import deploy

    con = Console()
    board = load_board(a.board)
    settings = deploy.deploy_settings(board)
    tmp = None
    emulated = None
    s2n = None
    try:
        if settings.get("reset") == "exec":
            if a.port:
                con.print(f"[red]{a.board} is an emulated board: storlab deploy starts it (no --port)[/]")
                return 2
            if a.state is None:
                tmp = tempfile.TemporaryDirectory(prefix="storlab-board-")
            state = Path(a.state or tmp.name)
            emulated = deploy.EmulatedBoard(board, state / "flash", a.unit)
            con.print(f"emulated {board['name']} board powered on at [cyan]{emulated.power_on()}[/] "
                      f"(filesystem {state / 'flash'})")
        rep = deploy.deploy(board, a.port, a.unit, emulated=emulated)
        t = Table(title=f"deployed to {rep['board']} at {rep['port']} (mpy-cross -march={rep['arch']})")
        t.add_column("file")
        t.add_column("bytes", justify="right")
        t.add_column("source bytes", justify="right")
        for f in rep["files"]:
            t.add_row(f["path"], str(f["bytes"]), str(f["source_bytes"]))
        t.add_row("[bold]total", str(sum(f["bytes"] for f in rep["files"])),
                  str(sum(f["source_bytes"] for f in rep["files"])))
        con.print(t)
        con.print(f"build {rep['build_s']:.2f} s, copy {rep['copy_s']:.2f} s, reset {rep['reset_s']:.2f} s")
        attach = rep["attach"]
        if a.export:
            s2n = deploy.Ser2net([rep["port"]], Path(tempfile.mkdtemp(prefix="storlab-ser2net-"))).start()
            attach = f"{board['name']}@{s2n.url()}"
        con.print(f"attach a rig with board [cyan]{attach}[/]")
        bad = 0
        if a.rig:
            from host.rig import Rig
            from host.scenarios import raid5_life

            t0 = time.monotonic()
            with Rig.load(a.rig, board=attach) as rig:
                u = rig.unit()
                con.print(f"unit {u.name}: {u.hello}")
                res = raid5_life(rig, ops=a.ops)
                bad = res["bad"]
                con.print(f"verifying workload with a drive failure and rebuild: {res['checked']} blocks "
                          f"checked, [{'green' if bad == 0 else 'red'}]{bad} bad[/], "
                          f"{time.monotonic() - t0:.1f} s; heap {u.table('mem')}")
        else:
            import serial

            from host.link import BoardLink

            with serial.serial_for_url(attach.partition("@")[2], timeout=0.05) as ser:
                link = BoardLink(ser, a.unit, max_payload=board.get("max_payload", 65535))
                try:
                    con.print(f"the board answers: {link.mgmt('info', timeout=10)}")
                finally:
                    link.close()
        if a.keep and emulated:
            con.print("running; Ctrl-C to power the board off")
            try:
                while emulated.alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return 0 if bad == 0 else 1
    finally:
        if s2n:
            s2n.stop()
        if emulated:
            emulated.power_off()
        if tmp:
            tmp.cleanup()


def _live(a) -> int:
    from rich.console import Console

    from host.hostio import Workload
    from host.liveview import LiveView
    from host.rig import Rig

    con = Console()
    with Rig.load(a.rig or _demo_rig(), board=a.board) as rig, LiveView(rig, con):
        u = rig.unit()
        h = rig.host()
        wl = [Workload(h, v["id"], v["blocks"], seed=v["id"] + 1) for v in u.table("volumes")]
        for i in range(a.ops):
            wl[i % len(wl)].step()
            if i == a.ops // 2 and a.fail >= 0:
                u.inject(a.fail, "fail")
            if i > a.ops // 2 and i % 10 == 0:   # the unit noticed: rebuild onto a spare
                for g in u.table("groups"):
                    if g["state"] == "degraded" and not g.get("rebuild") and g["spares"]:
                        u.rebuild(g["id"])
        u.flush()
        for j in u.table("jobs"):
            u.wait_job(j["name"], timeout=600)
        bad = sum(w.bad for w in wl)
    if not con.is_terminal:
        con.line()
    con.print(f"{h.verifier.checked} blocks verified, {bad} bad")
    return 0 if bad == 0 else 1


def _trace(a) -> int:
    from rich.console import Console

    from host import trace

    con = Console()
    if a.trace_cmd == "record":
        from host.rig import Rig
        from host.scenarios import raid5_life

        rig = Rig.load(a.rig or _demo_rig(), board=a.board)
        rec = trace.Recorder(rig, a.out)
        try:
            rig.start()
            res = raid5_life(rig, ops=a.ops)
            rec.end(trace.state_of(rig))
        finally:
            rec.close()
            rig.close()
        con.print(f"{rec.frames} frames recorded to {a.out}; workload: {res['checked']} blocks checked, "
                  f"{res['bad']} bad")
        return 0 if res["bad"] == 0 else 1
    if a.trace_cmd == "replay":
        import tempfile
        from collections import Counter

        _, records = trace.read(a.trace)
        ends = [r["state"] for r in records if r.get("event") == "end"]
        with tempfile.TemporaryDirectory(prefix="storlab-replay-") as d:
            res = trace.replay(a.trace, state_dir=d, board=a.board)
            try:
                state = trace.state_of(res["rig"])
            finally:
                res["rig"].close()
        by_ch = Counter(x["ch"] for x in res["differ"])
        con.print(f"replayed {res['requests']} requests: {res['same']} answered as recorded, "
                  f"{len(res['differ'])} otherwise {dict(by_ch) or ''}")
        if not ends:
            con.print("the trace has no recorded end state to compare with")
            return 0
        same = state == ends[-1]
        con.print(f"drive contents and state tables: [{'green' if same else 'red'}]"
                  f"{'identical to the recorded run' if same else 'DIFFERENT from the recorded run'}[/]")
        return 0 if same else 1
    n = trace.export_chrome(a.trace, a.out)
    con.print(f"{n} trace events written to {a.out} (open in ui.perfetto.dev or chrome://tracing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
