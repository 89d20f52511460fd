"""Host-side helpers for the volume-copy feature (seed 003 E7 / E8 / E9): the management
ops on a rig `Unit`, the tables, bitmaps, track I/O and copy-job stepping.

    from host.features import volcopy as vc
    vc.pair_create(u, 0, 1, paused=True)       # table 1310, generation copy held
    vc.step(u, "vcgen0", 3)                    # three track copies, then held again
    vc.pair(u, 0)["G"]                         # [[3, 11]]: set-track ranges (inclusive)
    vc.pair_split(u, 0, 1); vc.wait_state(u, 1310, 0, vc.DIV_DONE)
    vc.extent_update(u, 0, 1, [[2, 5]])

Addresses are tracks (track_blocks blocks each, from the unit's `volcopy` settings).
"""
from __future__ import annotations

import binascii

from firmware.features.volcopy.state import (  # noqa: F401  (re-exported state names)
    DIV_DONE,
    GEN_DONE,
    T_AREA,
    T_PAIR,
    T_XPAIR,
    UNDER_DIV,
    UNDER_GEN,
    UNDER_XCPL,
    UNDER_XDIV,
    XDIV_DONE,
)

TABLE_NAMES = {T_PAIR: "vc_pairs", T_AREA: "vc_area_pairs", T_XPAIR: "vc_extent_pairs"}


# ---- commands ---------------------------------------------------------------------
def pair_create(u, orig: int, copy: int, paused: bool = False) -> dict:
    """E7 PairCreate (table 1310)."""
    return u.mgmt("PairCreate", orig=orig, copy=copy, paused=paused)


def pair_split(u, orig: int, copy: int, paused: bool = False) -> dict:
    return u.mgmt("PairSplit", orig=orig, copy=copy, paused=paused)


def extent_update(u, orig: int, copy: int, extents, paused: bool = False) -> dict:
    return u.mgmt("ExtentUpdate", orig=orig, copy=copy, extents=[list(e) for e in extents], paused=paused)


def area_pair_create(u, orig: int, copy: int, areas, paused: bool = False) -> dict:
    """E8 PairCreate with (start, end) areas (table 2310, one slot per area)."""
    return u.mgmt("AreaPairCreate", orig=orig, copy=copy, areas=[list(a) for a in areas], paused=paused)


def area_pair_split(u, orig: int, copy: int, start: int, end: int, paused: bool = False) -> dict:
    return u.mgmt("AreaPairSplit", orig=orig, copy=copy, start=start, end=end, paused=paused)


def extent_pair_create(u, orig: int, copy: int, paused: bool = False) -> dict:
    """E9 PairCreate (table 3109)."""
    return u.mgmt("ExtentPairCreate", orig=orig, copy=copy, paused=paused)


def extent_split(u, orig: int, copy: int, extents, paused: bool = False) -> dict:
    return u.mgmt("ExtentSplit", orig=orig, copy=copy, extents=[list(e) for e in extents], paused=paused)


def extent_couple(u, orig: int, copy: int, paused: bool = False) -> dict:
    return u.mgmt("ExtentCouple", orig=orig, copy=copy, paused=paused)


def pair_delete(u, table: int, orig: int, copy: int, **area) -> dict:
    return u.mgmt("PairDelete", table=table, orig=orig, copy=copy, **area)


# ---- tables and bitmaps -------------------------------------------------------------
def table(u, tbl: int = T_PAIR) -> list[dict]:
    return u.table(TABLE_NAMES[tbl])


def pair(u, slot: int, tbl: int = T_PAIR) -> dict:
    return table(u, tbl)[slot]


def area_pair(u, slot: int) -> dict:
    return table(u, T_AREA)[slot]


def extent_pair(u, slot: int) -> dict:
    return table(u, T_XPAIR)[slot]


def info(u) -> dict:
    return u.table("vc_stats")


def track_blocks(u) -> int:
    return info(u)["track_blocks"]


def bitmap(u, tbl: int, slot: int, name: str) -> bytes:
    """A whole bitmap (bit i in byte i >> 3, mask 1 << (i & 7)), read in pages."""
    out = []
    off = 0
    while True:
        r = u.mgmt("VcBitmap", table=tbl, slot=slot, name=name, offset=off)
        page = binascii.unhexlify(r["hex"])
        out.append(page)
        off += len(page)
        if not page or off >= r["bytes"]:
            return b"".join(out)


def set_tracks(bm: bytes, nbits: int) -> list[int]:
    return [i for i in range(nbits) if bm[i >> 3] >> (i & 7) & 1]


# ---- track I/O --------------------------------------------------------------------
def read_tracks(u, vol: int, first: int, last: int | None = None) -> bytes:
    """Tracks first..last (inclusive) of a volume, through the controller."""
    tb = track_blocks(u)
    last = first if last is None else last
    blocks, _ = u.volinfo(vol)
    a = first * tb
    b = min((last + 1) * tb, blocks)
    return u.read(vol, a, b - a)


def write_track(u, vol: int, t: int, data: bytes):
    u.write(vol, t * track_blocks(u), data)


# ---- copies -----------------------------------------------------------------------
def step(u, job: str, n: int = 1, timeout: float = 30.0) -> dict:
    """Let a paused copy make n more track copies; wait until it has (or is done)."""
    before = u.job(job)["copied"]
    u.job(job, "step", n=n)

    def stepped(x):
        j = x.job(job)
        if j["copied"] >= before + n or j["state"] not in ("paused", "running"):
            return j
        return None

    return u.wait_for(stepped, timeout, what=f"{job}: {n} more copies")


def wait_state(u, tbl: int, slot: int, state: str, timeout: float = 60.0) -> dict:
    return u.wait_for(lambda x: (p := pair(x, slot, tbl))["state"] == state and p, timeout,
                      what=f"table {tbl} slot {slot} {state}")
