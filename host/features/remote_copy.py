"""Host-side helpers for remote copy (seed 003 E1 / E5, firmware/features/remote_copy/):
the rig, the trace events of a forwarded write with the time the harness received them,
and the failover utility of step 603 / 1004 on a simple file-entry layout.

The file-entry layout (a VTOC / i-node table stand-in).  A directory of DIR_BLOCKS
blocks starts at a block the caller names (`dir_lba`):

    block dir_lba:  magic b"RCDIR1\\0\\0", then u32 entries, u32 reserved
    entries:        ENTRY (32 bytes) each, packed after the 16-byte header over the
                    directory's blocks: name (20 bytes, NUL padded), start u32 (first
                    block of the file), blocks u32, flags u32 (1 = in use)

A file is one extent start..start+blocks-1 of the volume.  `erase_outside()` keeps an
entry only when its whole extent and the directory itself lie inside the copied areas;
the others are erased (flags = 0, name cleared): their data outside the areas never
reached the copy destination (seed I-1.12).
"""
from __future__ import annotations

import os
import struct

from firmware import wire

RIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "rigs",
                   "remote_copy.toml")
MAGIC = b"RCDIR1\0\0"
HEADER = struct.Struct("<8sII")
ENTRY = struct.Struct("<20sIII")
DIR_BLOCKS = 1
IN_USE = 1


def desc(s: dict | None = None, t: dict | None = None) -> dict:
    """rigs/remote_copy.toml as a description, with keys of the units' remote_copy
    settings (or, under "unit", of the units themselves) changed."""
    import tomllib

    with open(RIG, "rb") as f:
        d = tomllib.load(f)
    for u, change in zip(d["unit"], (s, t)):
        for k, val in (change or {}).items():
            if k == "unit":
                u.update(val)
            else:
                u["remote_copy"][k] = val
    return d


def events(u, since: int = 0) -> list[list[str]]:
    """The unit's remote copy trace events ("T rc <stage> ..."), as field lists."""
    return [line.split()[2:] for line in list(u.link.logs)[since:] if line.startswith("T rc ")]


def timed_events(u) -> list[tuple[float, list[str]]]:
    """(time the harness received it, fields) of the unit's remote copy trace events:
    the k-th log frame of the link's trace is the k-th log line (aligned from the end)."""
    recs = [r.t for r in list(u.link.trace) if r.dir == "rx" and r.ch == wire.CH_LOG]
    lines = list(u.link.logs)
    n = min(len(recs), len(lines))
    out = []
    for t, line in zip(recs[len(recs) - n:], lines[len(lines) - n:]):
        if line.startswith("T rc "):
            out.append((t, line.split()[2:]))
    return out


# ---- the file-entry layout --------------------------------------------------------------
def format_dir(u, vol: int, dir_lba: int, files: list[tuple[str, int, int]]):
    """Write a directory of files [(name, start, blocks)] at dir_lba."""
    bs = u.block_size
    raw = bytearray(DIR_BLOCKS * bs)
    HEADER.pack_into(raw, 0, MAGIC, len(files), 0)
    if HEADER.size + len(files) * ENTRY.size > len(raw):
        raise ValueError("%d entries do not fit %d directory blocks" % (len(files), DIR_BLOCKS))
    for k, (name, start, blocks) in enumerate(files):
        ENTRY.pack_into(raw, HEADER.size + k * ENTRY.size, name.encode(), start, blocks, IN_USE)
    u.write(vol, dir_lba, bytes(raw))


def read_dir(u, vol: int, dir_lba: int) -> list[dict]:
    raw = u.read(vol, dir_lba, DIR_BLOCKS)
    magic, n, _ = HEADER.unpack_from(raw, 0)
    if magic != MAGIC:
        raise ValueError("no directory at block %d of volume %d" % (dir_lba, vol))
    out = []
    for k in range(n):
        name, start, blocks, flags = ENTRY.unpack_from(raw, HEADER.size + k * ENTRY.size)
        out.append({"name": name.rstrip(b"\0").decode(), "start": start, "blocks": blocks, "in_use": bool(flags)})
    return out


def _inside(areas, a: int, b: int) -> bool:
    return any(lo <= a and b <= hi for lo, hi in areas)


def erase_outside(u, vol: int, dir_lba: int, areas: list[list[int]]) -> list[str]:
    """Step 603: erase the entries of files not wholly inside the copied areas; the
    names erased.  The directory itself must lie inside an area (else it was not copied)."""
    if not _inside(areas, dir_lba, dir_lba + DIR_BLOCKS - 1):
        raise ValueError("the directory at block %d is outside the copied areas %s" % (dir_lba, areas))
    bs = u.block_size
    raw = bytearray(u.read(vol, dir_lba, DIR_BLOCKS))
    _, n, _ = HEADER.unpack_from(raw, 0)
    erased = []
    for k in range(n):
        at = HEADER.size + k * ENTRY.size
        name, start, blocks, flags = ENTRY.unpack_from(raw, at)
        if flags & IN_USE and not _inside(areas, start, start + blocks - 1):
            erased.append(name.rstrip(b"\0").decode())
            ENTRY.pack_into(raw, at, b"", 0, 0, 0)
    u.write(vol, dir_lba, bytes(raw[:DIR_BLOCKS * bs]))
    return erased


def failover(t, lvs: list[int], dir_lba: int | None = None, lv: int | None = None) -> dict:
    """Figs 6 / 12 on the destination unit t: read the failover information (601), merge
    the LV(T)s and extend them to the source's capacity (602), erase the file entries
    outside the areas (603, when the volume has a directory), take the LV over (604)."""
    info = t.mgmt("rc_failover_info", volume=lvs[0])
    args = {"volumes": lvs}
    if lv is not None:
        args["lv"] = lv
    ext = t.mgmt("rc_extend", **args) if (info["extend"] or len(lvs) > 1) else {"lv": lvs[0], "areas": info["areas"]}
    took = t.mgmt("rc_takeover", volume=ext["lv"])
    erased = erase_outside(t, ext["lv"], dir_lba, took["areas"]) if dir_lba is not None else []
    return {"lv": ext["lv"], "info": info, "extend": ext, "takeover": took, "erased": erased}
