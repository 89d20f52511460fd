"""storlab: the command line.  `storlab COMMAND --help` for each command's options;
docs/cli.md for all of them, with examples.

Exit status: 0 ok; 1 data mismatch or a check failed; 2 usage or configuration error
(bad option, rig file, job file); 3 board or link failure; 4 internal error (a bug:
rerun with --debug for the traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from host import farm
from host.boards import BOARDS_DIR, load_board

ROOT = Path(__file__).resolve().parent.parent
DEMO_RIG = ROOT / "rigs" / "demo.toml"
SPARING_RIG = ROOT / "rigs" / "sparing.toml"
SCENARIOS = {"rebuild": "a drive dies, degraded I/O, rebuild onto the spare under load, verify every block",
             "sparing": "a failing drive is copied to the spare before it dies (seed 001; rigs/sparing.toml)",
             "all": "both, one after the other"}
TABLES = ("config", "drives", "groups", "volumes", "warnings", "boot", "jobs", "cache", "link", "raid", "mem")

OK, FAILED, USAGE, BOARD, INTERNAL = 0, 1, 2, 3, 4
EXIT_CODES = {OK: "ok", FAILED: "data mismatch, or a check failed", USAGE: "usage or configuration error",
              BOARD: "board or link failure", INTERNAL: "internal error (rerun with --debug)"}


class CliError(Exception):
    """An error for the user: one line, and the exit status it ends with."""

    def __init__(self, msg: str, code: int = USAGE):
        super().__init__(msg)
        self.code = code


def board_names() -> list[str]:
    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def board_arg(s: str) -> str:
    """--board: a board in boards/, a board file, or NAME@URL (a board with the firmware on it)."""
    name = s.partition("@")[0]
    if name in board_names() or (name.endswith(".toml") and Path(name).exists()):
        if "@" in s and not s.partition("@")[2]:
            raise argparse.ArgumentTypeError(f"{s!r}: no URL after '@' (NAME@URL, e.g. rp2040@/dev/ttyACM0)")
        try:
            load_board(s)
        except (ValueError, OSError) as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return s
    raise argparse.ArgumentTypeError(f"no board {name!r} (choose from {', '.join(board_names())}, "
                                     f"or NAME@URL)")


def count_arg(least: int):
    def parse(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{s!r} is not a whole number") from None
        if v < least:
            raise argparse.ArgumentTypeError(f"{v}: must be at least {least}")
        return v
    parse.__name__ = f"integer >= {least}"
    return parse


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help (none shown for flags and options without one)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """Usage errors in one line, like every other error."""

    def error(self, message):
        where = self.prog.removeprefix("storlab").strip()
        self.exit(USAGE, f"storlab: error: {where + ': ' if where else ''}{message} (see `{self.prog} --help`)\n")


def _epilog() -> str:
    boards = ", ".join(board_names())
    return (f"boards: {boards} (or NAME@URL: a board with the firmware on it, at a pyserial URL)\n"
            f"scenarios (demo --scenario): " + "; ".join(f"{k}: {v}" for k, v in SCENARIOS.items()) + "\n"
            f"tables: {', '.join(TABLES)}, and each feature's own (sparing: T3, T4, sparing; volcopy: pairs, ...)\n"
            "exit status: " + "; ".join(f"{k} {v}" for k, v in EXIT_CODES.items()))


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="storlab", description=__doc__.split("\n\n")[0], epilog=_epilog(),
                                 formatter_class=Formatter)
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = ap.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    def cmd(name, help_, **kw):
        p = sub.add_parser(name, help=help_, description=help_, formatter_class=Formatter, epilog=_epilog(), **kw)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
        return p

    def rig_opts(p, rig_default=DEMO_RIG, rig_help="the rig description (TOML; docs/rig.md)"):
        p.add_argument("--rig", default=str(rig_default.relative_to(ROOT)) if rig_default else None, help=rig_help)
        p.add_argument("--board", type=board_arg, default=None,
                       help="run every unit on this board instead of the rig file's (a name in boards/, or NAME@URL)")

    d = cmd("demo", "RAID unit under a verifying workload: a drive fails, degraded I/O, rebuild onto the "
                    "spare, every block verified")
    d.add_argument("--board", type=board_arg, default="emulator", help="the board every unit runs on")
    d.add_argument("--rig", default=None, help="the rig description (default: rigs/demo.toml, for --scenario "
                                               "sparing rigs/sparing.toml)")
    d.add_argument("--ops", type=count_arg(1), default=300, help="workload operations in each phase")
    d.add_argument("--scenario", default="rebuild", choices=list(SCENARIOS), help="what happens: see below")
    d.add_argument("--live", action="store_true", help="show the live view of the rig while the demo runs")
    d.add_argument("--json", action="store_true", help="print the results as JSON on stdout (the human "
                                                       "view goes to stderr)")

    p = cmd("live", "a verifying workload with a drive failure and a rebuild, under the live view")
    rig_opts(p)
    p.add_argument("--ops", type=count_arg(1), default=400, help="workload operations")
    p.add_argument("--fail", type=count_arg(-1), default=1, help="member drive to fail halfway (-1: none)")
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")

    p = cmd("run", "run a workload from a fio job file against a rig: IOPS, bandwidth, latency "
                   "percentiles, every block verified (docs/cli.md)")
    p.add_argument("jobfile", help="fio job file (ini: [global] and one section per job; fault sections)")
    rig_opts(p)
    p.add_argument("--output-format", choices=["normal", "json", "json+normal"], default="normal",
                   help="fio's: the text summary, fio's JSON, or both")
    p.add_argument("--section", action="append", default=None, help="run only this job (repeatable), as fio's")

    p = cmd("status", "the state of a unit, as mdadm --detail shows an array: groups, members, rebuild and "
                      "copy progress, cache, errors, warnings")
    p.add_argument("target", nargs="?", default=None,
                   help="a rig file (its units are started and configured), or BOARD@URL: a running board "
                        "(read only; default: --rig)")
    rig_opts(p)
    p.add_argument("--json", action="store_true", help="the same as JSON, for scripts")

    t = cmd("tables", "print a unit's SM tables (all, or one)")
    t.add_argument("target", nargs="?", default=None, help="a rig file, or BOARD@URL: a running board (read only; "
                                                           "default: --rig)")
    rig_opts(t)
    t.add_argument("--table", default=None, help="only this table (see the list below)")
    t.add_argument("--json", action="store_true", help="raw JSON instead of tables")

    cmd("boards", "list the board definitions (boards/*.toml)")

    r = cmd("reliability", "link faults, board resets, fuzzing and model runs: the figures and a verdict")
    r.add_argument("--board", type=board_arg, default="emulator", help="the board the runs use")
    r.add_argument("--fuzz", type=count_arg(0), default=5000, help="fuzz inputs (the dedicated run: 100000)")
    r.add_argument("--kills", type=count_arg(0), default=5, help="board kills mid-write and mid-rebuild")
    r.add_argument("--ops", type=count_arg(1), default=150, help="workload ops through the faulty link")
    r.add_argument("--model-steps", type=count_arg(0), default=300, help="random steps against the golden model")
    r.add_argument("--iodepth", type=count_arg(1), default=1,
                   help="requests outstanding at once in the link-fault, reset and model runs (the model's "
                        "batches on two host ports)")
    r.add_argument("--json", default=None, metavar="FILE", help="also write the figures to this file")

    p = cmd("deploy", "compile the firmware (mpy-cross), copy it to a board (mpremote), reset it and attach to it")
    p.add_argument("board", help=f"a board in boards/ ({', '.join(board_names())}; emulator: a fresh emulated "
                                 f"board is started)")
    p.add_argument("--port", default=None, help="the board's serial port or URL (default: its board file's url)")
    p.add_argument("--unit", default="u0", help="the unit name written to the board's board.json")
    p.add_argument("--rig", default=None, help="after deploying, run a verifying workload on this rig "
                                               "(its first unit is the deployed board)")
    p.add_argument("--ops", type=count_arg(1), default=200, help="workload ops of the verifying run (--rig)")
    p.add_argument("--state", default=None, help="the emulated board's folder (default: a temporary one)")
    p.add_argument("--keep", action="store_true", help="keep the emulated board running until Ctrl-C")
    p.add_argument("--export", action="store_true", help="also export the board's port with ser2net (rfc2217)")

    p = cmd("typecheck", "mypy on the firmware against each board's MicroPython stubs")
    p.add_argument("boards", nargs="*", help="boards to check (default: every board with [typecheck] stubs)")
    p.add_argument("--install", action="store_true", help="install the stubs first (pip, into .venv/stubs/BOARD)")

    p = cmd("trace", "record a scenario's frames, replay a trace, export it as a timeline")
    ts = p.add_subparsers(dest="trace_cmd", required=True, metavar="ACTION")
    r = ts.add_parser("record", help="run the RAID5 life scenario on a rig, recording every frame",
                      formatter_class=Formatter)
    r.add_argument("out", help="the trace file to write (JSON Lines)")
    rig_opts(r)
    r.add_argument("--ops", type=count_arg(1), default=60, help="workload ops in each phase of the scenario")
    r = ts.add_parser("replay", help="replay a trace against a fresh rig; compare drive contents and tables",
                      formatter_class=Formatter)
    r.add_argument("trace", help="a trace file written by `storlab trace record`")
    r.add_argument("--board", type=board_arg, default=None, help="replay on this board (default: the recorded one)")
    r = ts.add_parser("export", help="Chrome/Perfetto trace JSON (ui.perfetto.dev, chrome://tracing)",
                      formatter_class=Formatter)
    r.add_argument("trace", help="a trace file")
    r.add_argument("out", help="the JSON file to write")
    farm.add_parser(sub)                   # storlab farm: host/farm.py
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = build_parser()
    a = ap.parse_args(argv)
    debug = getattr(a, "debug", False) or bool(os.environ.get("STORLAB_DEBUG"))
    try:
        return COMMANDS[a.cmd](a)
    except KeyboardInterrupt:
        print("storlab: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if debug:
            raise
        code, msg = classify(e)
        for line in msg.splitlines() or [""]:
            print(f"storlab: error: {line}", file=sys.stderr)
        if code == INTERNAL:
            print("storlab: this is a bug in storlab; rerun with --debug for the traceback", file=sys.stderr)
        return code


def classify(e: BaseException) -> tuple[int, str]:
    """The exit status and the one-line message for an exception."""
    import serial

    from host.link import LinkError, StatusError
    from host.rig import BoardError, RigError

    if isinstance(e, CliError):
        return e.code, str(e)
    if isinstance(e, BoardError):
        return BOARD, str(e)
    if isinstance(e, RigError):
        return USAGE, str(e)
    if isinstance(e, StatusError):
        if e.name == "INTERNAL" or "MemoryError" in str(e):
            return BOARD, f"the board failed: {e}"
        if ": configure:" in str(e):
            return USAGE, f"the unit refused the rig's configuration: {e}"
        return BOARD, f"the unit answered with an error: {e}"
    if isinstance(e, (LinkError, serial.SerialException, TimeoutError, ConnectionError)):
        return BOARD, f"board or link failure: {e}"
    if isinstance(e, FileNotFoundError):
        return USAGE, str(e) if not e.filename else f"{e.filename}: no such file"
    if isinstance(e, OSError):
        return USAGE, f"{e.filename or ''}: {e.strerror or e}"
    try:
        from host.fio import JobFileError
    except ImportError:   # pragma: no cover
        JobFileError = ()   # noqa: N806
    if JobFileError and isinstance(e, JobFileError):
        return USAGE, str(e)
    try:
        from host.deploy import DeployError
    except ImportError:   # pragma: no cover
        DeployError = ()   # noqa: N806
    if DeployError and isinstance(e, DeployError):
        return BOARD, f"deploy: {e}"
    return INTERNAL, f"{type(e).__name__}: {e}"


# ---- output helpers ---------------------------------------------------------------
def console(json_out: bool = False):
    """The human view: on stdout, or on stderr when stdout carries JSON."""
    from rich.console import Console

    return Console(stderr=json_out, highlight=False)


def verdict(con, ok: bool, text: str):
    con.print(f"[{'bold green' if ok else 'bold red'}]{'PASS' if ok else 'FAIL'}[/]: {text}")


def print_json(data):
    json.dump(data, sys.stdout, indent=1, default=str)
    print()


def _rig_path(a) -> str:
    return a.rig or str(DEMO_RIG)


# ---- commands -----------------------------------------------------------------------
def cmd_demo(a) -> int:
    from host import demo
    from host.features import sparing as demo_sparing

    con = console(a.json)
    results = []
    if a.scenario in ("rebuild", "all"):
        results.append(demo.run(board=a.board, ops=a.ops, live=a.live, console=con,
                                **({"rig_path": a.rig} if a.rig else {})))
    if a.scenario in ("sparing", "all"):
        rig = a.rig if a.rig and a.scenario == "sparing" else SPARING_RIG
        results.append(demo_sparing.run(board=a.board, ops=a.ops, live=a.live, console=con, rig_path=rig))
    bad = sum(r["bad"] + r.get("faulty_writes", 0) for r in results)
    checked = sum(r["checked"] for r in results)
    ok = bad == 0
    if a.json:
        print_json({"ok": ok, "bad": bad, "checked": checked, "scenarios": results})
    detail = "".join(f"; drive {r['faulty_drive']} written {r['faulty_writes']} times after it was judged faulty"
                     for r in results if r.get("faulty_writes"))
    verdict(con, ok, f"{checked} blocks verified, {sum(r['bad'] for r in results)} bad{detail}")
    return OK if ok else FAILED


def cmd_live(a) -> int:
    from host.hostio import Workload
    from host.liveview import LiveView
    from host.rig import Rig, RigError

    con = console(a.json)
    rig = Rig.load(_rig_path(a), board=a.board)
    try:
        if not rig.hosts:
            raise RigError(f"rig {rig.name}: live needs a [[host]] (none in {_rig_path(a)})")
        u = rig.unit()
        members = [m for g in u.desc.get("group", []) for m in g.get("members", [])]
        if a.fail >= 0 and a.fail not in members:
            raise RigError(f"--fail {a.fail}: no such member drive on unit {u.name} "
                           f"(members: {', '.join(map(str, members)) or 'none'}; -1: fail none)")
    except RigError:
        rig.close()
        raise
    rebuilt = []
    with rig, LiveView(rig, con):
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
                        rebuilt.append(g["id"])
        u.flush()
        for j in u.table("jobs"):
            u.wait_job(j["name"], timeout=600)
        bad = sum(w.bad for w in wl)
        groups = u.table("groups")
        checked = h.verifier.checked
        mismatches = h.verifier.mismatches[:10]
    if a.json:
        print_json({"ok": bad == 0, "bad": bad, "checked": checked, "ops": a.ops, "failed_drive": a.fail,
                    "rebuilt_groups": rebuilt, "groups": groups, "mismatches": mismatches})
    for m in mismatches:
        con.print(f"[red]{m}[/]")
    verdict(con, bad == 0, f"{checked} blocks verified, {bad} bad; groups: "
                           + ", ".join(f"{g['id']} {g['state']}" for g in groups))
    return OK if bad == 0 else FAILED


def cmd_run(a) -> int:
    from host import fio
    from host.rig import Rig

    jobs = fio.load(a.jobfile, sections=a.section)      # errors before any board starts
    con = console(a.output_format == "json")
    rig = Rig.load(_rig_path(a), board=a.board)
    try:
        plan = fio.plan(jobs, rig)
    except BaseException:
        rig.close()
        raise
    with rig:
        res = fio.run(plan, rig, progress=console(True))     # progress bars on stderr: stdout is fio's
    if a.output_format in ("json", "json+normal"):
        print_json(res.json())
    if a.output_format in ("normal", "json+normal"):
        print(res.text())
    con.print()
    verdict(con, res.ok(), res.verdict())
    return OK if res.ok() else FAILED


def _target(a):
    """status / tables: (rig or None, attached unit or None)."""
    target = a.target
    if target and "@" in target and not target.endswith(".toml"):
        try:
            board_arg(target)
        except argparse.ArgumentTypeError as e:
            raise CliError(f"{a.cmd}: {e}") from None
        return None, target
    if target is None and a.board and "@" in a.board and a.rig == str(DEMO_RIG.relative_to(ROOT)):
        return None, a.board
    return target or _rig_path(a), None


def cmd_status(a) -> int:
    from host import status

    rig_path, attach = _target(a)
    with status.open_target(rig_path, a.board, attach) as units:
        data = {u.name: status.gather(u) for u in units}
    if a.json:
        print_json(data)
    else:
        con = console()
        for name, d in data.items():
            con.print(status.render(name, d))
    bad = [f"unit {n}: {w}" for n, d in data.items() for w in status.problems(d)]
    if not a.json:
        verdict(console(), not bad, "; ".join(bad) if bad else "every group of every unit is in its normal state")
    return OK if not bad else FAILED


def cmd_tables(a) -> int:
    from host import status
    from host.link import StatusError

    rig_path, attach = _target(a)
    out = {}
    with status.open_target(rig_path, a.board, attach) as units:
        for u in units:
            names = u.mgmt("info").get("tables", [])
            if a.table:
                try:
                    out[u.name] = {a.table: u.table(a.table)}
                except StatusError as e:
                    if e.name != "BAD_PARAM":
                        raise
                    raise CliError(f"unit {u.name} has no table {a.table!r} (its tables: "
                                   f"{', '.join(names + [t for t in ('cache', 'raid') if t not in names])})") from None
            else:
                out[u.name] = {t: u.table(t) for t in names}
    if a.json:
        print_json(out if not a.table else {n: t[a.table] for n, t in out.items()})
        return OK
    con = console()
    for name, tables in out.items():
        for t, v in tables.items():
            con.print(status.table_view(f"unit {name}: {t}", v))
    return OK


def cmd_boards(a) -> int:
    from rich.table import Table

    t = Table(title="boards (boards/*.toml; --board NAME, or NAME@URL for a board with the firmware on it)")
    for c in ("board", "kind", "cache slots", "frame payload", "description"):
        t.add_column(c)
    for p in sorted(BOARDS_DIR.glob("*.toml")):
        b = load_board(str(p))
        t.add_row(b["name"], b["kind"], str(b.get("cache_slots")), str(b.get("max_payload")), b.get("description", ""))
    console().print(t)
    return OK


def cmd_reliability(a) -> int:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from host import reliability

    con = console()
    phases = {"link_faults": a.ops, "resets": a.kills, "fuzz": a.fuzz, "model": a.model_steps}
    with Progress(TextColumn("{task.description:44}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=con, transient=False) as prog:
        tasks = {k: prog.add_task(k.replace("_", " "), total=max(1, v)) for k, v in phases.items()}
        current = [None]

        def say(msg):
            if current[0]:
                prog.update(tasks[current[0]], completed=prog.tasks[tasks[current[0]]].total)
            current[0] = next(k for k in phases if msg.startswith(k.replace("_", " ").replace("resets", "board")))
            prog.update(tasks[current[0]], description=msg.rstrip(" .")[:44])

        def tick(phase, done, total=None):
            prog.update(tasks[phase], completed=done, **({"total": total} if total else {}))

        figures = reliability.run_all(board=a.board, fuzz=a.fuzz, kills=a.kills, ops=a.ops,
                                      model_steps=a.model_steps, progress=say, tick=tick, iodepth=a.iodepth)
        for k in tasks.values():
            prog.update(k, completed=prog.tasks[k].total)
    print(reliability.report(figures))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    n = reliability.mismatches(figures)
    verdict(con, n == 0, f"{n} mismatches (goal 0): " + ", ".join(
        f"{k.replace('_', ' ')} {figures[k].get('seconds', 0):.1f} s" for k in phases if k in figures))
    return OK if n == 0 else FAILED


def cmd_typecheck(a) -> int:
    from host import typecheck

    for b in a.boards:
        if b not in board_names():
            raise CliError(f"no board {b!r} (choose from {', '.join(board_names())})")
    return typecheck.main(a.boards, a.install)


def cmd_deploy(a) -> int:
    import tempfile
    import time

    from rich.table import Table

    from host import deploy

    if a.board not in board_names():
        raise CliError(f"no board {a.board!r} (choose from {', '.join(board_names())})")
    con = console()
    board = load_board(a.board)
    settings = deploy.deploy_settings(board)
    tmp = None
    emulated = None
    s2n = None
    try:
        if settings.get("reset") == "exec":
            if a.port:
                raise CliError(f"{a.board} is an emulated board: storlab deploy starts it (no --port)")
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
            from host.demo import check_rig
            from host.rig import Rig
            from host.scenarios import raid5_life

            t0 = time.monotonic()
            rig = Rig.load(a.rig, board=attach)
            try:
                check_rig(rig, 1, what="deploy --rig")
            except BaseException:
                rig.close()
                raise
            with rig:
                u = rig.unit()
                con.print(f"unit {u.name}: {u.hello}")
                res = raid5_life(rig, ops=a.ops)
                bad = res["bad"]
                con.print(f"verifying workload with a drive failure and rebuild: {res['checked']} blocks "
                          f"checked, [{'green' if bad == 0 else 'red'}]{bad} bad[/], "
                          f"{time.monotonic() - t0:.1f} s; heap {u.table('mem')}")
            verdict(con, bad == 0, f"deployed to {rep['board']}; {res['checked']} blocks verified, {bad} bad")
        else:
            import serial

            from host.link import BoardLink

            with serial.serial_for_url(attach.partition("@")[2], timeout=0.05) as ser:
                link = BoardLink(ser, a.unit, max_payload=board.get("max_payload", 65535))
                try:
                    info = link.mgmt("info", timeout=10)
                    con.print(f"the board answers: {info}")
                finally:
                    link.close()
            verdict(con, True, f"deployed to {rep['board']}; it answers as {info.get('impl')} "
                               f"(core {info.get('core')})")
        if a.keep and emulated:
            con.print("running; Ctrl-C to power the board off")
            try:
                while emulated.alive():
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
        return OK if bad == 0 else FAILED
    finally:
        if s2n:
            s2n.stop()
        if emulated:
            emulated.power_off()
        if tmp:
            tmp.cleanup()


def cmd_trace(a) -> int:
    from host import trace

    con = console()
    if a.trace_cmd == "record":
        from host.demo import check_rig
        from host.rig import Rig
        from host.scenarios import raid5_life

        rig = Rig.load(_rig_path(a), board=a.board)
        try:
            check_rig(rig, 1, what="trace record")
        except BaseException:
            rig.close()
            raise
        rec = trace.Recorder(rig, a.out)
        try:
            with con.status("recording the RAID5 life scenario ..."):
                rig.start()
                res = raid5_life(rig, ops=a.ops)
                rec.end(trace.state_of(rig))
        finally:
            rec.close()
            rig.close()
        ok = res["bad"] == 0
        verdict(con, ok, f"{rec.frames} frames recorded to {a.out}; workload: {res['checked']} blocks checked, "
                         f"{res['bad']} bad")
        return OK if ok else FAILED
    if a.trace_cmd == "replay":
        import tempfile
        from collections import Counter

        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        try:
            _, records = trace.read(a.trace)
        except (ValueError, KeyError) as e:
            raise CliError(f"{a.trace}: not a storlab trace ({e})") from None
        ends = [r["state"] for r in records if r.get("event") == "end"]
        with tempfile.TemporaryDirectory(prefix="storlab-replay-") as d:
            with Progress(TextColumn("replaying"), BarColumn(), TextColumn("{task.completed}/{task.total} records"),
                          TimeRemainingColumn(), console=con) as prog:
                task = prog.add_task("replay", total=len(records))
                res = trace.replay(a.trace, state_dir=d, board=a.board,
                                   progress=lambda i: prog.update(task, completed=i + 1))
            try:
                state = trace.state_of(res["rig"])
            finally:
                res["rig"].close()
        by_ch = Counter(x["ch"] for x in res["differ"])
        con.print(f"replayed {res['requests']} requests: {res['same']} answered as recorded, "
                  f"{len(res['differ'])} otherwise {dict(by_ch) or ''}")
        if res["differ"]:
            x = next((x for x in res["differ"] if x["ch"] != "mgmt"), res["differ"][0])
            con.print(f"first differing answer: record {x['index']}, unit {x['unit']} {x['ch']} {x['kind']}: "
                      f"recorded {x['recorded']}, replayed {x['replayed']}")
        if not ends:
            verdict(con, True, "replayed; the trace has no recorded end state to compare with")
            return OK
        diff = trace.first_difference(ends[-1], state)
        if diff:
            con.print(f"first difference in the end state: {diff}")
        verdict(con, diff is None, "drive contents and state tables "
                + ("identical to the recorded run" if diff is None else "DIFFERENT from the recorded run"))
        return OK if diff is None else FAILED
    n = trace.export_chrome(a.trace, a.out)
    verdict(con, True, f"{n} trace events written to {a.out} (open in ui.perfetto.dev or chrome://tracing)")
    return OK


COMMANDS = {"demo": cmd_demo, "live": cmd_live, "run": cmd_run, "status": cmd_status, "tables": cmd_tables,
            "boards": cmd_boards, "reliability": cmd_reliability, "typecheck": cmd_typecheck, "deploy": cmd_deploy,
            "trace": cmd_trace, "farm": farm.run}


if __name__ == "__main__":
    sys.exit(main())
