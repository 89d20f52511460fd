"""Host-side helpers for the mirror with sub-host access (seed 002,
firmware/features/mirror/): the two volumes read from the drives, the trace events of
the job chain, the peer frames a unit sent."""
from __future__ import annotations

import os
import struct

from firmware import wire

RIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "rigs", "mirror.toml")
MSG_HEAD = 12     # firmware/features/mirror/chain.py HL


def flush(u, vol: int = 0) -> bool:
    """Destage the unit's cache; False if writes still arriving left slots dirty (the
    board answers DATA_LOST then: a flush counts the slots dirty after its destage)."""
    st, _ = u.link.request(wire.CH_HOST, wire.K_FLUSH, struct.pack("<H", vol), timeout=120)
    return st == wire.OK


def on_drives(u, vol: int = 0) -> bytes:
    """The volume as the unit's first RAID1 member holds it after a flush (flushed
    again while background writes keep slots dirty)."""
    for _ in range(100):
        if flush(u, vol):
            break
    else:
        raise RuntimeError(f"{u.name}: the cache never came clean")
    v = [x for x in u.desc["volume"] if x["id"] == vol][0]
    return u.drives[0].read_raw(v.get("start", 0), v["blocks"])


def events(u) -> list[list[str]]:
    """The mirror trace events the unit logged: [job, step, lba, count, ...]."""
    return [line.split()[2:] for line in list(u.link.logs) if line.startswith("T mirror ")]


def peer_frames(u, since: int = 0) -> list[int]:
    """Payload lengths of the PEER requests the unit's board sent since trace index since."""
    return [r.n for r in list(u.link.trace)[since:]
            if r.dir == "rx" and r.kind == wire.K_PEER and wire.CH_PEER <= r.ch < wire.CH_MGMT]


def desc(main: dict | None = None, sub: dict | None = None) -> dict:
    """rigs/mirror.toml as a rig description, with settings of the units' mirror tables
    changed (a value None removes the setting)."""
    import tomllib

    with open(RIG, "rb") as f:
        d = tomllib.load(f)
    for u, change in zip(d["unit"], (main, sub)):
        for k, val in (change or {}).items():
            if val is None:
                u["mirror"].pop(k, None)
            else:
                u["mirror"][k] = val
    return d


def settled(main, sub) -> bool:
    """Both volumes equal on the drives and nothing of the sub unit's left in flight."""
    return not sub.table("mirror_515") and not sub.table("mirror_514") and on_drives(main) == on_drives(sub)


def desc_sym(mode: str = "sync") -> dict:
    """Example 3: symmetric volumes, the main unit's the exclusive main volume."""
    d = desc()
    for u, (ex, host, out) in zip(d["unit"], (("main", 101, 0), ("sub", 102, 1))):
        u["mirror"] = {"role": "sym", "volume": 0, "peer_volume": 0, "out_peer": out, "exclusive": ex,
                       "host": host, "mode": mode}
        u["volume"] = u["volume"][:1]
    return d


def desc_swapped() -> dict:
    """[0082]: the communication volume attached to unit 301 instead: every function
    exchanged (301 forwards over 202, 302 holds the volume the others copy from and
    copies back over 203)."""
    d = desc()
    a, b = d["unit"]
    a["mirror"], b["mirror"] = dict(b["mirror"], out_peer=0), dict(a["mirror"], out_peer=1)
    for k in ("drive_blocks", "volume"):
        a[k], b[k] = b[k], a[k]
    return d
