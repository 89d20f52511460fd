"""`storlab status` and `storlab tables`: a unit's state for a person (in the manner of
`mdadm --detail`: each group, its members and their states, rebuild and copy progress,
then cache, errors and warnings) or as data for a script.

The unit is either one of a rig's (started and configured from its file) or a running
board reached at BOARD@URL, which is only read: management requests, no drives served.
"""
from __future__ import annotations

import contextlib
import json

from rich.console import Group
from rich.table import Table
from rich.text import Text

BASE_TABLES = ("config", "drives", "groups", "volumes", "warnings", "boot", "jobs", "cache", "link", "raid", "mem")


class AttachedUnit:
    """A running board with the firmware on it, at NAME@URL: read-only management."""

    def __init__(self, spec: str, timeout: float = 10.0):
        import tempfile
        from pathlib import Path

        from host.boards import launcher_for, load_board
        from host.link import BoardLink

        self.board = load_board(spec)
        self.name = spec.partition("@")[0]
        self._tmp = tempfile.TemporaryDirectory(prefix="storlab-attach-")
        # the board's own launcher reaches it: a serial URL, or a labgrid place
        self.launcher = launcher_for(self.board, Path(self._tmp.name), self.name)
        try:
            ser = self.launcher.start()
        except BaseException:
            self._tmp.cleanup()
            raise
        self.link = BoardLink(ser, self.name, max_payload=self.board.get("max_payload", 65535))
        self.link.announce()      # a new host end: the board forgets the old one's request numbers
        try:
            self.hello = self.link.mgmt("info", timeout=timeout)
        except BaseException:
            self.close()
            raise

    def mgmt(self, op: str, **args) -> dict:
        return self.link.mgmt(op, **args)

    def table(self, name: str):
        return self.mgmt("table", name=name)["table"]

    def close(self):
        self.link.close()
        self.launcher.stop()
        self._tmp.cleanup()


@contextlib.contextmanager
def open_target(rig_path: str | None, board: str | None, attach: str | None):
    """Yield the units to look at: a rig's (started from its file) or one attached board."""
    if attach:
        u = AttachedUnit(attach)
        try:
            yield [u]
        finally:
            u.close()
        return
    from host.rig import Rig

    with Rig.load(rig_path, board=board) as rig:
        yield list(rig.units.values())


def gather(u) -> dict:
    """Everything the status view shows, as data."""
    info = u.mgmt("info")
    have = list(info.get("tables", []))
    d: dict = {"board": info.get("board"), "impl": info.get("impl"), "core": info.get("core"),
               "boots": info.get("boots"), "configured": info.get("configured"), "features": info.get("features", [])}
    for t in BASE_TABLES:
        if t in have or t in ("cache", "raid"):
            try:
                d[t] = u.table(t)
            except Exception:   # a table this firmware does not keep
                d[t] = None
    d["feature_tables"] = {t: u.table(t) for t in have if t not in BASE_TABLES}
    return d


def _size(blocks: int, bs: int) -> str:
    n = blocks * bs
    for unit, k in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= k:
            return f"{n / k:.2f} {unit}"
    return f"{n} B"


def _extents(v: dict) -> str:
    """Where a volume lives: its extents [volume block, blocks, group, group block]."""
    ext = v.get("extents") or [[0, v.get("blocks", 0), v.get("group"), v.get("start", 0)]]
    return " + ".join(f"group {g} blocks {st}..{st + n - 1}" for _at, n, g, st in ext)


def group_state(g: dict, jobs: list) -> str:
    """The group's state in mdadm's words."""
    st = g.get("state")
    words = {"normal": ["clean"], "degraded": ["clean", "degraded"], "rebuilding": ["clean", "degraded"],
             "failed": ["FAILED"]}.get(st, [str(st)])
    if g.get("rebuild"):
        running = any(j.get("name") == f"rebuild{g['id']}" and j.get("state") == "paused" for j in jobs)
        words.append("recovering (paused)" if running else "recovering")
    return ", ".join(words)


MEMBER_STATE = {"normal": "active sync", "failed": "faulty", "rebuilding": "spare rebuilding", "spare": "spare",
                "faulty": "active sync, faulty (sparing)", "sparing": "spare (copy target)"}


def render(name: str, d: dict):
    bs = (d.get("config") or {}).get("block_size", 4096)
    out = []
    head = Text.assemble((f"unit {name}", "bold"), f"  board {d.get('board')} ({d.get('impl')}, core "
                         f"{d.get('core')}), boot {d.get('boots')}, "
                         f"{'configured' if d.get('configured') else 'NOT configured'}")
    out.append(head)
    cfg = d.get("config") or {}
    out.append(Text(f"  block size {bs}, cache {cfg.get('cache_mode', 'write-back')}"
                    + (f", features: {', '.join(d['features'])}" if d.get("features") else "")))
    drives = {x["id"]: x for x in d.get("drives") or []}
    jobs = d.get("jobs") or []
    for g in d.get("groups") or []:
        members = g.get("members", [])
        failed = set(g.get("failed") or [])
        spares = g.get("spares") or []
        rb = g.get("rebuild")
        extra = set(spares) | ({rb.get("spare")} if rb else set())
        kv = [("Raid Level", f"raid{g.get('level')}"),
              ("Array Size", f"{g.get('capacity')} blocks ({_size(g.get('capacity', 0), bs)})"),
              ("Used Dev Size", f"{g.get('rows')} blocks ({_size(g.get('rows', 0), bs)})"),
              ("Raid Devices", str(len(members))),
              ("Total Devices", str(len(set(members) | extra))),
              ("State", group_state(g, jobs)),
              ("Active Devices", str(len([m for m in members if m not in failed]))),
              ("Failed Devices", str(len(failed))),
              ("Spare Devices", str(len(extra - set(members))))]
        if g.get("level") == 5:
            kv.append(("Chunk Size", f"{g.get('chunk')} blocks ({_size(g.get('chunk', 1), bs)})"))
        if rb:
            rows = max(1, g.get("rows") or 1)
            kv.append(("Rebuild Status", f"{100 * rb.get('pointer', 0) // rows}% complete (row {rb.get('pointer')} "
                                         f"of {rows}), member {rb.get('member')} onto drive {rb.get('spare')}"))
        kv.append(("Auto Rebuild", "yes" if g.get("auto_rebuild") else "no"))
        t = Table(title=f"group {g['id']}", title_justify="left", show_header=False, box=None, padding=(0, 1))
        t.add_column(justify="right", style="bold")
        t.add_column()
        for k, v in kv:
            style = "red" if k == "State" and ("degraded" in v or "FAILED" in v) else ""
            t.add_row(f"{k} :", Text(v, style=style))
        m = Table(box=None, padding=(0, 2))
        for c in ("Number", "Drive", "State", "Blocks"):
            m.add_column(c, justify="right" if c != "State" else "left")
        for i, dr in enumerate(members):
            st = "faulty" if dr in failed else MEMBER_STATE.get(drives.get(dr, {}).get("state"), "?")
            m.add_row(str(i), str(dr), Text(st, style="red" if "faulty" in st else ""),
                      str(drives.get(dr, {}).get("blocks", "")))
        for s in spares + ([rb["spare"]] if rb and rb.get("spare") not in spares + members else []):
            m.add_row("-", str(s), MEMBER_STATE.get(drives.get(s, {}).get("state"), "spare"),
                      str(drives.get(s, {}).get("blocks", "")))
        out += [Text(""), t, Text(""), m]
    vols = d.get("volumes") or []
    if vols:
        out.append(Text("\nvolumes: " + "; ".join(f"{v['id']} ({_size(v['blocks'], bs)}) on " + _extents(v)
                                                   for v in vols)))
    live = [j for j in jobs if j.get("state") not in ("done",)]
    if jobs:
        out.append(Text("jobs: " + "; ".join(
            f"{j.get('name')} {j.get('state')} {j.get('pointer', 0)}/{j.get('total', '?')}"
            + (f" ({100 * int(j.get('pointer') or 0) // max(1, int(j.get('total') or 1))}%)" if j.get("total") else "")
            for j in jobs) + ("" if live else " (all done)")))
    for tname, rows in (d.get("feature_tables") or {}).items():
        if tname.endswith("pairs") and isinstance(rows, list):
            for p in rows:
                if isinstance(p, dict) and p.get("use", 1):
                    dirty = " ".join(f"{k}={v}" for k, v in (p.get("set") or {}).items()) or p.get("dirty", "")
                    out.append(Text(f"{tname}: {p.get('slot', p.get('id', ''))} {p.get('orig', '?')} -> "
                                    f"{p.get('copy', '?')}, {p.get('state')}, dirty tracks {dirty}"))
        if tname == "sparing" and rows:
            for s in rows:
                out.append(Text(f"sparing: drive {s.get('drive')} -> spare {s.get('spare')}, {s.get('phase')}, copy "
                                f"{s.get('copy_pointer')}/{s.get('rows')} rows", style="yellow"))
    c = d.get("cache")
    if c:
        out.append(Text(f"cache: {c.get('slots')} slots, {c.get('used')} used, {c.get('dirty')} dirty"
                        f"{', non-volatile' if c.get('nv') else ''}; read hits {c.get('read_hits')} / misses "
                        f"{c.get('read_misses')}, destaged {c.get('destaged')}, evictions {c.get('evictions')}"))
    errs = [f"drive {x['id']}: " + " ".join(f"{k}={v}" for k, v in (x.get("io") or {}).items() if k not in ("r", "w")
                                            and v)
            for x in drives.values() if any(v for k, v in (x.get("io") or {}).items() if k not in ("r", "w"))]
    r = {k: v for k, v in (d.get("raid") or {}).items() if k not in ("row_sets", "lock_waits")}   # not errors
    if any(r.values()):
        errs.append(" ".join(f"{k}={v}" for k, v in r.items()))
    lk = d.get("link") or {}
    if lk.get("dropped"):
        errs.append(f"link: {lk.get('dropped')} frames dropped")
    out.append(Text("errors: " + ("; ".join(errs) if errs else "none")))
    warns = list(d.get("warnings") or [])
    out.append(Text("warnings: " + ("none" if not warns else f"{len(warns)}, latest:"),
                    style="yellow" if warns else ""))
    for w in warns[-5:]:
        out.append(Text(f"  {w}", style="yellow"))
    return Group(*out)


def problems(d: dict) -> list[str]:
    """What is not as it should be: a group not in its normal state (empty: none)."""
    out = []
    for g in d.get("groups") or []:
        if g.get("state") != "normal":
            out.append(f"group {g['id']} is {g.get('state')}")
    return out


def table_view(title: str, value):
    """Any SM table for a person: rows of dicts as a table, a dict as key / value pairs."""
    def cell(v) -> str:
        return v if isinstance(v, str) else json.dumps(v)

    if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
        cols: list[str] = []
        for x in value:
            cols += [k for k in x if k not in cols]
        if len(cols) > 6:        # too wide for a row each: one key / value block per entry
            return Group(*[table_view(f"{title} [{i}]", x) for i, x in enumerate(value)])
        t = Table(title=title, title_justify="left")
        for c in cols:
            t.add_column(c)
        for x in value:
            t.add_row(*[cell(x.get(c, "")) for c in cols])
        return t
    if isinstance(value, dict):
        t = Table(title=title, title_justify="left", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        for k, v in value.items():
            t.add_row(str(k), cell(v))
        return t
    return Text(f"{title}: {'(empty)' if value in ([], {}, None) else cell(value)}")
