"""Host-side helpers for the parity storage unit (seed 000, firmware/features/parity_unit/).

The bench's view of the parity group: each unit's storage area read through its volumes
(what the unit's host would read), the parity the parity unit should hold (XOR of the data
units, shorter units padded with zeros), a unit losing all its data, and the Fig 33
frames counted on the links.
"""
from __future__ import annotations

import os
from pathlib import Path

from firmware import core, wire

RIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "rigs", "parity.toml")


def area(u) -> bytes:
    """The unit's storage area: its volumes, in declaration order, read through its cache."""
    return b"".join(u.read(v["id"], 0, v["blocks"]) for v in u.desc.get("volume", []))


def area_blocks(u) -> int:
    return sum(v["blocks"] for v in u.desc.get("volume", []))


def write_area(u, ab: int, data: bytes):
    """Host write at area block ab (crossing volumes if needed)."""
    bs = u.block_size
    a0 = 0
    for v in u.desc.get("volume", []):
        n = len(data) // bs
        if n == 0:
            return
        if a0 <= ab < a0 + v["blocks"]:
            k = min(n, a0 + v["blocks"] - ab)
            u.write(v["id"], ab - a0, data[:k * bs])
            data = data[k * bs:]
            ab += k
        a0 += v["blocks"]
    if data:
        raise ValueError("write beyond the unit's area")


def xor_of(areas: list[bytes], nbytes: int) -> bytes:
    """XOR of the areas, each padded with zeros (or cut) to nbytes."""
    acc = bytearray(nbytes)
    for a in areas:
        a = a[:nbytes]
        buf = bytearray(nbytes)
        buf[:len(a)] = a
        core.xor_acc(acc, buf)
    return bytes(acc)


def drive_area(u) -> bytes:
    """The unit's storage area as its simulated drives hold it after a FLUSH (RAID1
    groups: the first member), without going through the unit's read path."""
    groups = {g["id"]: g for g in u.desc.get("group", [])}
    out = []
    for v in u.desc.get("volume", []):
        u.flush(v["id"])
        g = groups[v["group"]]
        if g["level"] != 1:
            raise ValueError("drive_area reads RAID1 volumes only")
        out.append(u.drives[g["members"][0]].read_raw(v.get("start", 0), v["blocks"]))
    return b"".join(out)


def bad_blocks(pu, dus, only=None) -> list[int]:
    """Parity blocks of the parity unit that are not the XOR of the data units' blocks
    (blocks listed in `only`, default all), from the simulated drives."""
    t720 = pu.table("parity_720")
    L = t720["block_length"]
    np_ = t720["blocks"]
    areas = [drive_area(u) for u in dus]
    want = xor_of([a[:len(a) // L * L] for a in areas], np_ * L)   # a short tail is in no block (I1)
    have = drive_area(pu)[:np_ * L]
    blocks = range(np_) if only is None else only
    return [n for n in blocks if want[n * L:(n + 1) * L] != have[n * L:(n + 1) * L]]


def lose_data(u, fill: int = 0xEE):
    """The unit loses its data: the board is cut off, every drive is replaced by one full
    of `fill`, and its battery-backed cache (if the board has one) is gone too.  Its
    tables (SM) survive, and the board boots again."""
    u.kill()
    wipe(u, fill)
    u.start(configure=False)


def wipe(u, fill: int = 0xEE):
    """A dead board's data is gone: every drive full of `fill`, no battery-backed cache."""
    for d in u.drives:
        d.write_raw(0, bytes([fill]) * (d.blocks * d.bs))
    for f in Path(u.launcher.state_dir).glob("cache.nv*"):
        f.unlink()


def paths(u) -> dict:
    """The unit's parity_paths table as {(unit at the other end, procedure): (sent, received)}."""
    return {(r["unit"], r["procedure"]): (r["sent"], r["received"]) for r in u.table("parity_paths")}


def down(u, unit: int) -> dict | None:
    """The parity unit's parity_down row of a data unit (None if it has none)."""
    rows = [r for r in u.table("parity_down") if r["unit"] == unit]
    return rows[0] if rows else None


def pblock_frames(u, since: int = 0, served: bool | None = None) -> int:
    """Fig 33 frames carrying a parity block that the unit's board sent since trace index
    `since`: served=True only copies it sent on request (PBLOCK responses), False only
    frames it pushed (write deltas, read-sends, restored blocks), None both."""
    n = 0
    for r in list(u.link.trace)[since:]:
        if r.dir != "rx" or (r.kind & 0x7F) != wire.K_PBLOCK or not (wire.CH_PEER <= r.ch < wire.CH_MGMT):
            continue
        if r.n <= wire.PBLK_HEAD_LEN + 1:          # a request for a block, or a bare status
            continue
        if served is None or served == bool(r.kind & wire.RESP):
            n += 1
    return n


def trace_mark(u) -> int:
    return len(u.link.trace)
