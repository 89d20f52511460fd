"""The rig description's schema: every key the harness itself reads, its type, its
default and what it means.  `Rig` checks each description against it (unknown keys
are refused with the nearest valid name), and the table in docs/rig.md is generated
from it:

    python -m host.rigschema            # print the generated section
    python -m host.rigschema --write    # rewrite it in docs/rig.md

A unit's firmware feature sections (FEATURE_SECTIONS) go to the firmware as they are;
the firmware validates them itself.
"""
from __future__ import annotations

import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from firmware import features as _features

# Unit keys passed straight to the firmware with its configuration: the features to
# load, and each feature's own settings.  The one list of them.
FEATURE_SECTIONS = ("features",) + _features.BUILT   # the firmware's own list: one source of truth


@dataclass(frozen=True)
class Key:
    type: str               # int, str, bool, list[int], table, tables
    default: object = None  # None: required (or computed: see `note`)
    doc: str = ""
    choices: tuple = ()
    required: bool = False
    note: str = ""          # the default, in words, when it is computed


SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "rig": Key("table", doc="the rig as a whole", default={}),
        "unit": Key("tables", doc="storage units, one `[[unit]]` each", default=[]),
        "host": Key("tables", doc="host computers, one `[[host]]` each", default=[]),
        "path": Key("tables", doc="links between units (peer channels), one `[[path]]` each", default=[]),
        "labgrid": Key("table", doc="the labgrid farm of units on `NAME@labgrid:PLACE` boards", default={}),
    },
    "rig": {
        "name": Key("str", "rig", "the rig's name (state folder prefix, traces)"),
        "block_size": Key("int", 4096, "bytes per block, every unit of the rig (a power of two, 512..65536)"),
    },
    "unit": {
        "name": Key("str", required=True, doc="the unit's name (`rig.unit(NAME)`)"),
        "board": Key("str", "emulator", "a board in boards/, or NAME@URL (`--board` overrides it)"),
        "drives": Key("int", 0, "number of simulated drives"),
        "drive_blocks": Key("int", 1024, "blocks per drive"),
        "drive_sizes": Key("list[int]", note="`drives` x `drive_blocks`",
                           doc="blocks of each drive, instead of `drives` and `drive_blocks`"),
        "backing": Key("str", "file", "sparse files in the rig's state folder, or host memory",
                       choices=("file", "memory")),
        "cache_mode": Key("str", "write-back", "acknowledge writes in the cache, or once on the drives",
                          choices=("write-back", "write-through")),
        "fault_seed": Key("int", 0, "seed of the host <-> board link's fault injection"),
        "controllers": Key("int", 1, "boards in the unit: 2 is a dual-controller unit over the same drives "
                           "(docs/dual.md)", choices=(1, 2)),
        "ldev_blocks": Key("int", note="each group is one LDEV",
                           doc="LDEV capacity in blocks: groups are cut into LDEVs of this size (tables 300/310, "
                               "docs/architecture.md)"),
        "emulations": Key("list[str]", note="every type firmware/ldev.py knows",
                          doc="the emulation types this unit defines (a copy of another type is impossible)"),
        "group": Key("tables", [], "RAID groups, one `[[unit.group]]` each"),
        "volume": Key("tables", [], "logical volumes, one `[[unit.volume]]` each"),
    },
    "unit.group": {
        "id": Key("int", required=True, doc="group number, 0..255"),
        "level": Key("int", required=True, doc="1 (mirror) or 5 (rotating parity, left-symmetric)", choices=(1, 5)),
        "members": Key("list[int]", required=True, doc="drive indexes (RAID1: 2 or more, RAID5: 3 or more)"),
        "chunk": Key("int", 1, "blocks per member per stripe (RAID5)"),
        "rows": Key("int", note="the smallest member's blocks", doc="rows used on each member"),
        "spares": Key("list[int]", [], "hot spares for a rebuild"),
        "auto_rebuild": Key("bool", True, "start a rebuild onto a spare as soon as a member fails"),
    },
    "unit.volume": {
        "id": Key("int", required=True, doc="volume number, 0..65535 (the host's `vol`)"),
        "group": Key("int", note="**required** without `extents`", doc="the group it lives on"),
        "start": Key("int", 0, "first group block"),
        "blocks": Key("int", note="**required** without `extents`; with them, their sum", doc="size in blocks"),
        "emulation": Key("str", "OPEN", "the LV's emulation type (firmware/ldev.py EMULATIONS)"),
        "extents": Key("tables", note="one extent: `group`, `start`, `blocks`",
                       doc="the volume as extents on one or more groups, each `{ group, start, blocks }`, in "
                           "the volume's order"),
    },
    "unit.volume.extents": {
        "group": Key("int", required=True, doc="the group of this extent"),
        "start": Key("int", 0, "its first group block"),
        "blocks": Key("int", required=True, doc="its size in blocks"),
    },
    "host": {
        "name": Key("str", required=True, doc="the host's name (`rig.host(NAME)`)"),
        "unit": Key("str", required=True, doc="the unit whose port it is on"),
        "port": Key("int", 0, "host port number on that unit"),
        "seed": Key("int", note="the host's position in the file (0, 1, ...)",
                    doc="seed of its verifier's content"),
    },
    "path": {
        "a": Key("str", required=True, doc="one unit"),
        "b": Key("str", required=True, doc="the other unit"),
    },
    "labgrid": {
        "coordinator": Key("str", note="$LG_COORDINATOR, else 127.0.0.1:20408",
                           doc="HOST:PORT of the labgrid coordinator (boards.md)"),
        "timeout": Key("number", 30.0, "seconds for each request to the coordinator"),
    },
}

TITLES = {"": "top level", "rig": "[rig]", "unit": "[[unit]]", "unit.group": "[[unit.group]]",
          "unit.volume": "[[unit.volume]]", "unit.volume.extents": "extents = [{ ... }] of a [[unit.volume]]",
          "host": "[[host]]", "path": "[[path]]", "labgrid": "[labgrid]"}


def _type_ok(k: Key, v) -> bool:
    if k.type == "int":
        return isinstance(v, int) and not isinstance(v, bool)
    if k.type == "str":
        return isinstance(v, str)
    if k.type == "bool":
        return isinstance(v, bool)
    if k.type == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if k.type == "list[int]":
        return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    if k.type == "list[str]":
        return isinstance(v, list) and all(isinstance(x, str) for x in v)
    if k.type == "table":
        return isinstance(v, dict)
    if k.type == "tables":
        return isinstance(v, list) and all(isinstance(x, dict) for x in v)
    return True


def nearest(word: str, choices) -> str | None:
    m = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return m[0] if m else None


def _line(text: str | None, key: str, after: int = 0) -> int | None:
    """The line (1-based) where `key = ...` is first written at or after line `after`."""
    if not text:
        return None
    pat = re.compile(r"^\s*[\"']?" + re.escape(key) + r"[\"']?\s*=|[{,]\s*" + re.escape(key) + r"\s*=")
    lines = text.splitlines()
    for i in range(max(0, after - 1), len(lines)):
        if pat.search(lines[i].split("#")[0]):
            return i + 1
    return None


def _header_line(text: str | None, header: str, nth: int) -> int:
    """Line of the nth (0-based) `[[header]]` / `[header]` in the text (0 if not found)."""
    if not text:
        return 0
    seen = 0
    for i, line in enumerate(text.splitlines()):
        s = line.strip()
        if s in (f"[[{header}]]", f"[{header}]"):
            if seen == nth:
                return i + 1
            seen += 1
    return 0


def check(desc: dict, source: str | None = None, text: str | None = None) -> list[str]:
    """Every problem with a rig description, each as one line naming the file and line
    when known; [] if it is valid."""
    out: list[str] = []
    where = f"{source}:" if source else ""

    def say(section: str, item: str, key: str | None, msg: str, start: int = 0):
        line = _line(text, key, start) if key else (start or None)
        loc = f"{where}{line}:" if (source and line) else where
        out.append(f"{loc} {item}{msg}".strip() if loc else f"{item}{msg}")

    def walk(section: str, d: dict, item: str, start: int = 0, feature_ok: bool = False):
        schema = SCHEMA[section]
        for key, v in d.items():
            k = schema.get(key)
            if k is None:
                if feature_ok and key in FEATURE_SECTIONS:
                    continue
                valid = list(schema) + (list(FEATURE_SECTIONS) if feature_ok else [])
                near = nearest(key, valid)
                hint = f" (did you mean {near!r}?)" if near else f" (valid: {', '.join(valid)})"
                say(section, item, key, f"unknown key {key!r}{hint}", start)
                continue
            if not _type_ok(k, v):
                say(section, item, key, f"{key} must be {_type_words(k)}, got {v!r}", start)
                continue
            if k.choices and v not in k.choices:
                say(section, item, key, f"{key} must be one of {', '.join(map(repr, k.choices))}, got {v!r}",
                    start)
        for key, k in schema.items():
            if k.required and key not in d:
                say(section, item, None, f"missing key {key!r} ({k.doc})", start)

    walk("", desc, "")
    if isinstance(desc.get("rig"), dict):
        walk("rig", desc["rig"], "[rig]: ", _header_line(text, "rig", 0))
    # [labgrid] is checked by the farm's launcher (host/farm.py) when a unit is on a farm
    counts: dict[str, int] = {}
    for sect in ("unit", "host", "path"):
        items = desc.get(sect)
        if not isinstance(items, list):
            continue
        for i, d in enumerate(items):
            if not isinstance(d, dict):
                continue
            start = _header_line(text, sect, i)
            name = d.get("name", i) if sect != "path" else f"{d.get('a')}-{d.get('b')}"
            walk(sect, d, f"{sect} {name}: ", start, feature_ok=(sect == "unit"))
            if sect != "unit":
                continue
            board = d.get("board")
            if isinstance(board, str) and not _board_known(board):
                known = _board_names()
                near = nearest(board.partition("@")[0], known)
                say(sect, f"{sect} {name}: ", "board", f"no board {board!r} ("
                    + (f"did you mean {near!r}? " if near else "") + f"boards: {', '.join(known)})", start)
            for sub in ("group", "volume"):
                for j, sd in enumerate(d.get(sub) or []):
                    if isinstance(sd, dict):
                        n = counts[sub] = counts.get(sub, -1) + 1
                        item = f"unit {name} {sub} {sd.get('id', j)}: "
                        at = _header_line(text, f"unit.{sub}", n)
                        walk(f"unit.{sub}", sd, item, at)
                        if sub != "volume":
                            continue
                        ext = sd.get("extents")
                        if isinstance(ext, list):
                            for e in ext:
                                if isinstance(e, dict):
                                    walk("unit.volume.extents", e, item + "extent: ", at)
                        else:
                            for key in ("group", "blocks"):
                                if key not in sd:
                                    say("unit.volume", item, None, f"missing key {key!r} (or extents)", at)
    return out


def _board_names() -> list[str]:
    from host.boards import BOARDS_DIR

    return sorted(p.stem for p in BOARDS_DIR.glob("*.toml"))


def _board_known(board: str) -> bool:
    name = board.partition("@")[0]
    return name in _board_names() or (name.endswith(".toml") and Path(name).exists())


def _type_words(k: Key) -> str:
    return {"int": "an integer", "str": "a string", "bool": "true or false", "list[int]": "a list of integers",
            "list[str]": "a list of strings", "table": "a table", "tables": "a list of tables",
            "number": "a number"}.get(k.type, k.type)


# ---- the generated section of docs/rig.md -------------------------------------------
BEGIN = "<!-- rig schema: generated by `python -m host.rigschema --write`; do not edit by hand -->"
END = "<!-- end of the generated rig schema -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "rig.md"


def _default_words(k: Key) -> str:
    if k.required:
        return "**required**"
    if k.note:
        return k.note
    if isinstance(k.default, bool):
        return "`true`" if k.default else "`false`"
    if isinstance(k.default, str):
        return f'`"{k.default}"`'
    return f"`{k.default!r}`".replace("'", '"')


def markdown() -> str:
    lines = [BEGIN, ""]
    for section, keys in SCHEMA.items():
        if section == "":
            continue
        lines += [f"**`{TITLES[section]}`**", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        for name, k in keys.items():
            doc = k.doc + (f" (one of {', '.join(f'`{c}`' for c in k.choices)})" if k.choices else "")
            lines.append(f"| `{name}` | {k.type} | {_default_words(k)} | {doc} |")
        lines.append("")
    lines += ["`[labgrid]` is checked by the farm (host/farm.py) when a unit is on a `NAME@labgrid:PLACE` board.",
              "Firmware feature sections of a `[[unit]]`, passed to the firmware as they are "
              "(it validates them): " + ", ".join(f"`{s}`" for s in FEATURE_SECTIONS) + ".",
              "Any other key is refused, with the nearest valid name.", "", END]
    return "\n".join(lines)


def doc_section(text: str) -> str | None:
    """The generated section as it stands in a document's text (None if absent)."""
    a, b = text.find(BEGIN), text.find(END)
    if a < 0 or b < 0:
        return None
    return text[a:b + len(END)]


def write_doc(path: Path = DOC) -> bool:
    text = path.read_text()
    cur = doc_section(text)
    if cur is None:
        raise SystemExit(f"{path}: no generated section ({BEGIN!r} ... {END!r})")
    new = text.replace(cur, markdown())
    path.write_text(new)
    return new != text


if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        print(f"{DOC}: {'updated' if write_doc() else 'already up to date'}")
    else:
        print(markdown())
