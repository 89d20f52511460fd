"""Scenarios shared by tests, benchmarks and the CLI: deterministic sequences of host
I/O, faults and management commands on a started rig."""
from __future__ import annotations

from host.hostio import Workload


def raid5_life(rig, fail_drive: int = 1, ops: int = 60, unit: str | None = None) -> dict:
    """Fill, random verified I/O, a member fails, degraded I/O, rebuild onto the
    spare (paused and stepped part-way, with writes landing mid-rebuild), verify all.
    Deterministic: same host I/O in the same order on any board."""
    u = rig.unit(unit)
    h = rig.host()
    vols = u.table("volumes")
    for v in vols:
        for lba in range(0, v["blocks"], 4):
            h.write(v["id"], lba, min(4, v["blocks"] - lba))
    wl = [Workload(h, v["id"], v["blocks"], seed=v["id"] + 7) for v in vols]
    for i in range(ops):
        wl[i % len(wl)].step()
    u.flush()
    u.inject(fail_drive, "fail")
    for i in range(ops):
        wl[i % len(wl)].step()
    u.flush()
    degraded = u.table("groups")[0]
    u.rebuild(0, paused=True)
    rows = degraded["rows"]
    u.job("rebuild0", "step", n=rows // 3)
    u.wait_for(lambda x: x.job("rebuild0")["pointer"] == rows // 3, what="rebuild steps")
    midway = u.job("rebuild0")
    for i in range(ops):
        wl[i % len(wl)].step()
    u.flush()
    u.job("rebuild0", "resume")
    done = u.wait_job("rebuild0")
    u.flush()
    bad = sum(w.bad for w in wl)
    for v in vols:
        bad += h.verify_all(v["id"], v["blocks"])
    return {"bad": bad, "checked": h.verifier.checked, "degraded": degraded, "midway": midway,
            "job": done, "group": u.table("groups")[0]}
