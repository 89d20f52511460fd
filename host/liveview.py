"""A live view of a running rig (rich): drives with their state and counters, RAID
groups, copy pairs with their state and dirty-track counts, background jobs with
progress bars, recent warnings.

    with LiveView(rig):          # redraws in place while the block runs
        run_workload(rig)

It polls each unit through the same management requests as everything else (one at a
time, a few times a second), so it can run beside a demo or workload from the CLI:
`storlab demo --live`, `storlab live --rig FILE`.
"""
from __future__ import annotations

import threading
import time

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

STATE_STYLE = {"normal": "green", "good": "green", "done": "green", "running": "cyan", "rebuilding": "cyan",
               "sparing": "cyan", "spare": "blue", "paused": "yellow", "degraded": "yellow", "faulty": "yellow",
               "failed": "red", "lost": "red"}


def _styled(state) -> Text:
    s = str(state)
    return Text(s, style=STATE_STYLE.get(s, ""))


def snapshot(rig, warnings: int = 8) -> dict:
    """Everything the view shows, read from the rig now."""
    out = {"t": time.monotonic(), "units": {}}
    for name, u in rig.units.items():
        d: dict = {"board": u.board.get("name"), "impl": u.hello.get("impl")}
        try:
            have = u.mgmt("info")["tables"]
            for t in ("drives", "groups", "jobs", "warnings"):
                d[t] = u.table(t) if t in have else []
            d["pairs"] = {t: u.table(t) for t in have if t.endswith("pairs")}
            d["harness"] = u.drive_counters()
            d["link"] = u.link.counters() if hasattr(u.link, "counters") else {}
            d["logs"] = list(u.link.logs)[-warnings:]
        except Exception as e:  # a board that is restarting or gone: say so, keep going
            d["error"] = f"{type(e).__name__}: {e}"
        out["units"][name] = d
    return out


def _drives(name, d) -> Table:
    t = Table(title=f"{name}: drives", expand=True, title_justify="left")
    for c in ("drive", "state", "reads", "writes", "blocks r/w", "errors", "controller io"):
        t.add_column(c, justify="right" if c not in ("state", "controller io") else "left")
    hc = d.get("harness", [])
    for dr in d.get("drives", []):
        i = dr["id"]
        h = hc[i] if i < len(hc) else {}
        io = " ".join(f"{k}={v}" for k, v in (dr.get("io") or {}).items() if v)
        t.add_row(str(i), _styled(dr.get("state")), str(h.get("reads", "")), str(h.get("writes", "")),
                  f"{h.get('blocks_read', '')}/{h.get('blocks_written', '')}",
                  Text(str(h.get("errors", 0)), style="red" if h.get("errors") else ""), io)
    return t


def _groups(name, d) -> Table:
    t = Table(title=f"{name}: RAID groups", expand=True, title_justify="left")
    for c in ("group", "level", "state", "members", "failed", "spares", "rebuild"):
        t.add_column(c)
    for g in d.get("groups", []):
        rb = g.get("rebuild")
        rbt = f"member {rb['member']} -> drive {rb['spare']} at row {rb['pointer']}/{g.get('rows')}" if rb else ""
        t.add_row(str(g["id"]), f"RAID{g.get('level')}", _styled(g.get("state")), str(g.get("members")),
                  str(g.get("failed")), str(g.get("spares")), rbt)
    return t


def _pairs(name, d) -> Table | None:
    rows = [(tbl, p) for tbl, ps in d.get("pairs", {}).items() for p in ps if p.get("use", 1)]
    if not rows:
        return None
    t = Table(title=f"{name}: pairs", expand=True, title_justify="left")
    for c in ("table", "slot", "original -> copy", "state", "dirty tracks"):
        t.add_column(c)
    for tbl, p in rows:
        counts = p.get("set") or {}
        dirty = " ".join(f"{k}={v}" for k, v in counts.items()) if counts else str(p.get("dirty", ""))
        t.add_row(tbl, str(p.get("slot", p.get("id", ""))), f"{p.get('orig', '?')} -> {p.get('copy', '?')}",
                  _styled(p.get("state")), dirty)
    return t


def _jobs(name, d) -> Table | None:
    jobs = d.get("jobs", [])
    if not jobs:
        return None
    t = Table(title=f"{name}: background jobs", expand=True, title_justify="left")
    for c in ("job", "kind", "state", "progress", "", "note"):
        t.add_column(c)
    for j in jobs:
        total = max(1, int(j.get("total") or 1))
        done = min(total, int(j.get("pointer") or 0))
        t.add_row(j.get("name", ""), j.get("kind", ""), _styled(j.get("state")),
                  ProgressBar(total=total, completed=done, width=30), f"{done}/{total} ({100 * done // total}%)",
                  j.get("note", ""))
    return t


def render(snap: dict):
    parts = []
    for name, d in snap["units"].items():
        head = f"[bold]unit {name}[/] on {d.get('board')} ({d.get('impl')})"
        if "error" in d:
            parts.append(Panel(f"[red]{d['error']}[/]", title=head, title_align="left"))
            continue
        link = d.get("link") or {}
        if link:
            head += (f"  link: {link.get('frames', 0)} frames in, {link.get('retransmits', 0)} resent, "
                     f"{link.get('bad_crc', 0) + link.get('bad_cobs', 0)} bad")
        body = [x for x in (_drives(name, d), _groups(name, d), _pairs(name, d), _jobs(name, d)) if x is not None]
        warns = list(d.get("warnings", []))[-6:]
        if warns:
            body.append(Text("recent warnings:\n" + "\n".join(f"  {w}" for w in warns), style="yellow"))
        parts.append(Panel(Group(*body), title=head, title_align="left"))
    return Group(*parts)


class LiveView:
    """Redraws the rig's state in place (rich Live) from a polling thread."""

    def __init__(self, rig, console: Console | None = None, interval: float = 0.5, enabled: bool = True):
        self.rig = rig
        self.console = console or Console()
        self.interval = interval
        self.enabled = enabled
        self.last: dict | None = None
        self.polls = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._live: Live | None = None

    def poll(self):
        self.last = snapshot(self.rig)
        self.polls += 1
        return self.last

    def _run(self):
        # Only rich's own refresh thread draws (it asks for self._view): this thread just
        # reads the rig, so it never holds a console lock while it waits for the board.
        while not self._stop.is_set():
            try:
                self._view = render(self.poll())
            except Exception as e:  # never take the workload down with the view
                self._view = Text(f"live view: {e!r}", style="red")
            self._stop.wait(self.interval)

    def start(self):
        if not self.enabled:
            return self
        self._view = Text("reading the rig...")
        self._live = Live(console=self.console, get_renderable=lambda: self._view, auto_refresh=True,
                          refresh_per_second=4, transient=False, redirect_stdout=False, redirect_stderr=False)
        self._live.start()
        self._thread = threading.Thread(target=self._run, name="liveview", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if not self._thread:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        try:
            self._view = render(self.poll())
        except Exception:
            pass
        self._live.stop()
        if not self.console.is_terminal:
            self.console.line()     # the last view printed once, without its final newline
        self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
