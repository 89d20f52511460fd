"""Host-side helpers for the mirror with sub-host access (seed 002,
firmware/features/mirror/): the two volumes read from the drives, the trace events of
the job chain, the peer frames a unit sent."""
from __future__ import annotations

import os

from firmware import wire

RIG = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "rigs", "mirror.toml")
MSG_HEAD = 12     # firmware/features/mirror/chain.py HL


def flush(u) -> bool:
    """Destage the unit's cache; True when no slot is dirty afterwards (writes still
    arriving from the pair's background work may have dirtied slots again meanwhile)."""
    r = u.link.mgmt("flush", check=False)
    return r["_status"] == wire.OK and r.get("dirty") == 0


def on_drives(u, vol: int = 0) -> bytes:
    """The volume as the unit's first RAID1 member holds it after a flush (flushed
    again while background writes keep slots dirty)."""
    for _ in range(100):
        if flush(u):
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


def record(path, board: str = "emulator", state_dir=None) -> list[str]:
    """Record a trace of the pair (rigs/mirror.toml): a sub-host write, a main-host
    write, a sub-host read that overlaps nothing; with the firmware's trace events.
    Returns the chain as lines "unit: job step ..." / "unit: PEER n bytes" in order."""
    import random
    import tempfile

    from host import trace
    from host.rig import Rig

    rig = Rig(desc(), state_dir=state_dir or tempfile.mkdtemp(prefix="mirror-trace-"), board=board)
    rec = trace.Recorder(rig, path)
    try:
        rig.start()
        main, sub = rig.unit("main"), rig.unit("sub")
        for u in (main, sub):
            u.mgmt("trace", on=True)
        rnd = random.Random(0)
        sub.write(0, 4, rnd.randbytes(2 * 4096))
        main.write(0, 8, rnd.randbytes(4096))
        sub.read(0, 20, 1)
    finally:
        rec.close()
        rig.close()
    out = []
    for r in trace.read(path)[1]:
        if r.get("event") == "trace" and r["text"].startswith("mirror "):
            out.append(f"{r['unit']}: {r['text'][len('mirror '):]}")
        elif r.get("kind") == "PEER" and r.get("dir") == "rx" and not r.get("status"):
            out.append(f"{r['unit']}: PEER {r['len']} bytes")
    return out


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(prog="python -m host.features.mirror",
                                 description="record a trace of the mirrored pair's job chain (seed 002)")
    ap.add_argument("out", help="the trace file to write (JSON Lines; storlab trace export reads it)")
    ap.add_argument("--board", default="emulator", help="board of both units")
    a = ap.parse_args()
    print("\n".join(record(a.out, a.board)))
