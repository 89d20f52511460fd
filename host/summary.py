"""The summary the demos end with: the drives table and the summary table, built in
one place, each row kept both as text (for the console) and as data (for `--json`)."""
from __future__ import annotations

import time

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from host.rig import Rig, RigError


def bar(con, pct: bool = False) -> Progress:
    """The demos' progress bars: a count, or a percentage with the time remaining."""
    cols = [TextColumn("{task.description:28}"), BarColumn()]
    cols += [TextColumn("{task.percentage:>3.0f}%"), TimeRemainingColumn()] if pct else \
        [TextColumn("{task.completed}/{task.total}")]
    return Progress(*cols, console=con)


def load_checked(rig_path, board: str, check) -> Rig:
    """The demo's rig, started; check(rig) raising RigError closes it again."""
    rig = Rig.load(rig_path, board=board)
    try:
        check(rig)
    except RigError:
        rig.close()
        raise
    return rig


def fill_volumes(h, vols: list[dict], con, step: int) -> None:
    """Write every block of every volume once, `step` blocks per write, with a bar."""
    with bar(con) as prog:
        task = prog.add_task("fill volumes", total=sum(v["blocks"] for v in vols))
        for v in vols:
            for lba in range(0, v["blocks"], step):
                n = min(step, v["blocks"] - lba)
                h.write(v["id"], lba, n)
                prog.advance(task, n)


def drive_rows(u) -> list[dict]:
    """Each drive: the controller's view (state, its I/O counters) and the harness's."""
    hc = u.drive_counters()
    out = []
    for d in u.table("drives"):
        h = hc[d["id"]] if d["id"] < len(hc) else {}
        out.append({"drive": d["id"], "state": d["state"], "reads": h.get("reads", 0), "writes": h.get("writes", 0),
                    "errors": h.get("errors", 0), "controller": {k: v for k, v in (d.get("io") or {}).items() if v}})
    return out


def drive_table(u, rows: list[dict] | None = None) -> Table:
    t = Table(title=f"unit {u.name}: drives")
    for c in ("drive", "state", "reads", "writes", "errors (harness)", "controller counters"):
        t.add_column(c)
    for r in rows if rows is not None else drive_rows(u):
        t.add_row(str(r["drive"]), r["state"], str(r["reads"]), str(r["writes"]), str(r["errors"]),
                  " ".join(f"{k}={v}" for k, v in r["controller"].items()))
    return t


def heap_text(mem: dict) -> str:
    """The board's heap, where the implementation has one to report (MicroPython)."""
    if "live" in mem and "heap" in mem:
        return f"{mem['live'] // 1024} KiB live after GC, of a {mem['heap'] // 1024} KiB heap"
    return "not reported by this implementation (no MicroPython heap)"


class Summary:
    """Rows of label / text, with the same facts as data under `data`."""

    def __init__(self, title: str = "summary"):
        self.title = title
        self.rows: list[tuple[str, str]] = []
        self.data: dict = {}

    def add(self, label: str, text: str, key: str | None = None, value=None):
        self.rows.append((label, text))
        if key is not None:
            self.data[key] = value
        return self

    def group(self, g: dict, extra: str | None = None):
        tail = extra if extra is not None else f", spares {g['spares']}"
        return self.add(f"group {g['id']}", f"RAID{g['level']} {g['state']}, members {g['members']}{tail}",
                        "group", g)

    def host(self, h):
        return self.add("host ops", f"{h.ops['writes']} writes, {h.ops['reads']} reads, "
                                    f"{h.verifier.checked} blocks verified", "host",
                        {"writes": h.ops["writes"], "reads": h.ops["reads"], "checked": h.verifier.checked})

    def bad(self, bad: int):
        return self.add("bad blocks", f"[{'green' if bad == 0 else 'red'}]{bad}[/]", "bad", bad)

    def unit_state(self, u):
        cache = u.table("cache") or {}
        link = u.table("link") or {}
        mem = u.table("mem") or {}
        if cache:
            self.add("cache", f"{cache.get('read_hits', 0)} read hits / {cache.get('read_misses', 0)} misses, "
                              f"{cache.get('destaged', 0)} destaged", "cache", cache)
        if link:
            self.add("link", f"{link.get('frames', 0)} frames in, {link.get('tx_frames', 0)} out, "
                             f"{link.get('dropped', 0)} dropped", "link", link)
        return self.add("board heap", heap_text(mem), "mem", mem)

    def elapsed(self, t0: float):
        s = time.monotonic() - t0
        return self.add("time", f"{s:.1f} s", "seconds", round(s, 2))

    def table(self) -> Table:
        t = Table(title=self.title, show_header=False)
        for label, text in self.rows:
            t.add_row(label, text)
        return t


def show(con, u, summary: Summary, verifier=None, drives: list[dict] | None = None):
    """Print the drives table, the summary and the first mismatches."""
    con.print(drive_table(u, drives))
    con.print(summary.table())
    for m in (verifier.mismatches[:10] if verifier else []):
        con.print(f"[red]{m}[/]")
