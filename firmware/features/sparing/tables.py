# The sparing's readable tables (seed 001), as the seed's figures show them: T1 RAID
# configuration (Fig 2), T2 pairing (Fig 3), T3 error management (Fig 4), T4 work
# volumes (Fig 11, 20A) and their journals (Fig 11C), T5 disks (Fig 15A), T6 work disks
# (Fig 15C, 20B), T7 differential management (Fig 16); the sparings and their records.
# Every row, track and address is 0-based (as the drives' addresses); a terminal counts
# the records (0 = empty).
from firmware import volmap
from firmware.features.sparing.bits import bits_text
from firmware.features.sparing.group_area import BACKING_UP


def t1(mgr):
    """[{group, volumes: [{id, blocks}], disks, level}]; E1 secondaries on the sub group."""
    secs = {}
    for sp in mgr.active.values():
        a = sp.area
        if a is not None and a.kind == "group":
            secs[a.sub["id"]] = a.secondaries()
    out = []
    vols = mgr.u.sm.t["volumes"]
    for g in sorted(mgr.u.sm.t["groups"], key=lambda x: x["id"]):
        on = sorted([v for v in vols if volmap.on_group(v, g["id"])], key=lambda v: v["id"]) + secs.get(g["id"], [])
        out.append({"group": g["id"], "volumes": [{"id": v["id"], "blocks": v["blocks"]} for v in on],
                    "disks": list(g["members"]), "level": "RAID%d" % g["level"]})
    return out


def t2(mgr):
    out = []
    for p in mgr.cfg.pairs:
        out.append({"primary": p["primary"], "secondary": p["secondary"],
                    "status": p.get("status", "DUPLEX"), "bitmap": ""})
    for gid in sorted(mgr.active):
        a = mgr.active[gid].area
        if a is not None and a.kind == "group":
            out.extend(a.t2_rows())
    return out


def t4(mgr):
    out = []
    for w in mgr.wvols:
        bms = {}
        for sp in mgr.active.values():
            for vid in w["primaries"]:
                if vid in sp.vbm and not sp.faulty_only:
                    bms[str(vid)] = bits_text(sp.vbm[vid], sp.vtracks(vid))
        out.append({"wvol": w["wvol"], "capacity": w["capacity"], "primaries": list(w["primaries"]),
                    "terminal": w["terminal"], "bitmaps": bms})
    return out


def journal(mgr):
    what = "disk" if mgr.cfg.faulty_only else "volume"
    out = []
    for w in mgr.wvols:
        recs = []
        for j in range(w["terminal"]):
            r = w["recs"][j]
            if r is not None:
                recs.append({"jaddr": j, what: r[2], "address": r[3]})
        out.append({"wvol": w["wvol"], "records": recs})
    return out


def t5(mgr):
    backing = []
    for sp in mgr.active.values():
        if sp.area is not None:
            backing.extend(sp.g["members"])
    return [{"disk": d["id"], "capacity": d["blocks"],
             "status": BACKING_UP if d["id"] in backing else "NULL"} for d in mgr.u.sm.t["drives"]]


def t6(mgr):
    return [{"disk": w["disk"], "capacity": w["capacity"], "status": w["status"],
             "mains": list(w["mains"]), "terminal": w["terminal"]} for w in mgr.wdisks]


def t7(mgr):
    rows = [r[:4] for r in mgr.t7]
    return {"rows": rows, "terminal": rows[-1][3] + 1 if rows else 0}


def records(mgr, what):
    """lost_data / spare_write_errors: [{group, drive, row}] (the faulty drive's lost
    rows, the spare's rows it could not write)."""
    out = []
    for d in mgr.sparings():
        for row in (d["lost"] if what == "lost" else d["spare_write_errors"]):
            out.append({"group": d["group"], "drive": d["drive"] if what == "lost" else d["spare"], "row": row})
    return out


def svp(mgr):
    return {"mode": mgr.cfg.mode, "terminated": mgr.terminated,
            "warnings": mgr.u.sm.t["sparing_warnings"], "t3": mgr.u.sm.t["T3"]}


def register(reg, mgr):
    reg.table("T1", lambda u: t1(mgr))
    reg.table("T2", lambda u: t2(mgr))
    reg.table("T3", lambda u: u.sm.t["T3"])
    reg.table("T4", lambda u: t4(mgr))
    reg.table("journal", lambda u: journal(mgr))
    reg.table("T5", lambda u: t5(mgr))
    reg.table("T6", lambda u: t6(mgr))
    reg.table("T7", lambda u: t7(mgr))
    reg.table("sparing", lambda u: mgr.sparings())
    reg.table("sparing_warnings", lambda u: u.sm.t["sparing_warnings"])
    reg.table("lost_data", lambda u: records(mgr, "lost"))
    reg.table("spare_write_errors", lambda u: records(mgr, "swe"))
    reg.table("svp", lambda u: svp(mgr))
