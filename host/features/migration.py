"""Host-side helpers for the migration feature (seed 003 E2 migration with on-demand
fetch, E3 placement on a RAID group, E4 levelling): its ops and tables on a rig `Unit`.

    from host.features import migration as mg
    mg.assign(new, 1, 64)                          # 710: LV 1 on unused LDEVs
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    mg.step(new, "mig1", 2)                        # two copy steps of copy_blocks addresses
    mg.migration(new, 1)["306"]                    # the copy pointer
    mg.place(new, 0, 0, 31, group=1)               # {"range": [0, 31], "job": "mv0", ...}
    mg.clock(new, 1000)                            # the period ends: levelling moves
"""
from __future__ import annotations

RIG = "rigs/migration.toml"


def assign(u, lv: int, capacity: int, emulation: str = "OPEN", group: int | None = None,
           mapped: bool = True) -> dict:
    """710: LV lv of `capacity` blocks on the lowest unused LDEVs (mapped=False: on none
    yet; place() maps its areas)."""
    args = {"lv": lv, "capacity": capacity, "emulation": emulation, "mapped": mapped}
    if group is not None:
        args["group"] = group
    return u.mgmt("mig_assign", **args)


def migrate(u, lv: int, peer: int, src_lv: int, start: int, end: int, paused: bool = False, **kw) -> dict:
    return u.mgmt("migrate", lv=lv, peer=peer, src_lv=src_lv, start=start, end=end, paused=paused, **kw)


def place(u, lv: int, start: int, end: int, group: int, paused: bool = False) -> dict:
    return u.mgmt("place", lv=lv, start=start, end=end, group=group, paused=paused)


def clock(u, ms: int) -> dict:
    return u.mgmt("mig_clock", advance=ms)


def level(u) -> dict:
    return u.mgmt("mig_level")


def step(u, job: str, n: int = 1) -> dict:
    """n more copy steps of a paused job; returns its info once they are done."""
    before = u.job(job)["pointer"]
    u.job(job, "step", n)
    def done(x):
        j = x.job(job)
        return (j["state"] == "done" or (j["budget"] == 0 and j["pointer"] >= min(before + n, j["total"]))) and j
    return u.wait_for(done, what=f"{n} steps of {job}")


def migration(u, lv: int) -> dict:
    return next(m for m in u.table("mig_migrations") if m["lv"] == lv)


def moves(u, lv: int) -> dict:
    return next(m for m in u.table("mig_moves") if m["lv"] == lv)


def entries(u, lv: int) -> list[tuple[int, list[int]]]:
    """Table 300 of LV lv: [(LDEV#, [first, last])] in address order."""
    x = next(x for x in u.table("lvs") if x["lv"] == lv)
    return [(e["ldev"], e["range"]) for e in x["entries"]]


def ldev_groups(u) -> dict[int, int]:
    return {d["id"]: d["group"] for d in u.table("ldevs")}


def period(u) -> dict:
    return u.table("mig_period")


def on_drives(u, gid: int, glba: int, n: int = 1) -> bytes:
    """Group blocks glba..glba+n-1 of group gid as its drives hold them (after a flush)."""
    from firmware.raid import locate

    u.mgmt("flush")
    g = next(x for x in u.table("groups") if x["id"] == gid)
    out = []
    for b in range(glba, glba + n):
        row, m, _ = locate(g, b)
        out.append(u.drives[g["members"][m]].read_raw(row))
    return b"".join(out)


def where(u, lv: int, lba: int) -> tuple[int, int]:
    """(group, group block) LV address lba resolves to now."""
    r = u.mgmt("lv_resolve", volume=lv, lba=lba)
    return r["group"], r["group_block"]


def events(u, name: str) -> list[list[int]]:
    """The unit's trace events `T <name> ...` (tracing on), their fields as numbers."""
    return [[int(x) for x in line.split()[2:]] for line in list(u.link.logs) if line.startswith("T %s " % name)]
