# LDEVs and LVs (seed 003 tables 300 and 310).  A RAID group's data address space is
# cut into LDEVs of a fixed capacity (the unit setting `ldev_blocks`; without it each
# group is one LDEV); LDEVs are numbered consecutively over the groups in id order and
# never span two groups.  An LV is a volume: its placement stays the volume's extents
# ([vstart, count, group, group block], read only through firmware/volmap.py), and
# table 300 is derived from them by cutting each extent at LDEV boundaries.
#
#   table 310 ("ldevs", SM): {"id", "group", "start", "count", "state", "use"}
#             state "free" or "used"; use = who holds it ("volume" for a configured
#             volume, a feature's name for what a feature allocated)
#   table 300 ("lvs"):       per volume {"lv", "emulation", "capacity", "blocks",
#             "entries": [{"ldev", "range": [first, last], "offset"}]} (ranges inclusive,
#             offset = where the range starts inside the LDEV; ldev -1: a group block
#             past the last whole LDEV)
#
# Features allocate LDEVs (allocate / free), make LVs on them (make_lv / delete_lv) and
# resolve addresses (resolve).  Every change is checked first; a refusal changes nothing.
# These functions mark SM dirty; a feature saves SM (u.sm.save()) once its whole change
# is made, so a reset never finds half of it.
from firmware import volmap, wire
from firmware.args import Refused, need_int, need_list

# emulation types: name -> (blocks per track, tracks per cylinder; 0 = an open system)
EMULATIONS = {"OPEN": (1, 0), "OPEN-8": (8, 0), "3390": (4, 15)}
FREE = "free"
USED = "used"


def validate(cfg, groups):
    """ldev_blocks and emulations of a configuration (raises Refused)."""
    if "ldev_blocks" in cfg:
        least = min([g["capacity"] for g in groups]) if groups else 1 << 40
        need_int(cfg, "ldev_blocks", 1, least)
    for e in need_list(cfg, "emulations", []):
        if not isinstance(e, str) or e not in EMULATIONS:
            raise Refused("emulations: unknown type %r (known: %s)" % (e, ", ".join(sorted(EMULATIONS))))


def defined(cfg):
    """The emulation types this unit defines."""
    return cfg.get("emulations") or sorted(EMULATIONS)


def build(cfg, groups, vols):
    """Table 310 of a configuration, and each volume's emulation type (raises Refused)."""
    validate(cfg, groups)
    size = cfg.get("ldev_blocks")
    out = []
    for g in sorted(groups, key=lambda g: g["id"]):
        n = size or g["capacity"]
        at = 0
        while at + n <= g["capacity"]:
            out.append({"id": len(out), "group": g["id"], "start": at, "count": n, "state": FREE, "use": ""})
            at += n
    given = cfg.get("volumes", [])
    for i in range(len(vols)):
        v = vols[i]
        em = given[i].get("emulation", "OPEN") if isinstance(given[i], dict) else "OPEN"
        if not isinstance(em, str) or em not in defined(cfg):
            raise Refused("volume %d: emulation %r is not defined here (defined: %s)"
                          % (v["id"], em, ", ".join(defined(cfg))))
        v["emulation"] = em
        for e in v["extents"]:
            for d in out:
                if d["group"] == e[2] and d["start"] < e[3] + e[1] and e[3] < d["start"] + d["count"]:
                    d["state"] = USED
                    d["use"] = "volume"
    return out


def ldevs(u):
    return u.sm.t.setdefault("ldevs", [])


def get(u, n):
    t = ldevs(u)
    if 0 <= n < len(t):
        return t[n]
    return None


def ldev_at(u, gid, glba):
    """The LDEV holding group block glba of group gid, or None."""
    for d in ldevs(u):
        if d["group"] == gid and d["start"] <= glba < d["start"] + d["count"]:
            return d
    return None


def volume(u, vid):
    for v in u.sm.t.get("volumes", []):
        if v["id"] == vid:
            return v
    return None


def need_volume(u, cmd, key="volume"):
    vid = cmd.get(key)
    v = volume(u, vid) if isinstance(vid, int) and not isinstance(vid, bool) else None
    if v is None:
        raise Refused(wire.E_NO_VOLUME, "no volume %r" % (vid,))
    return v


def capacity(v):
    """Table 303's capacity of an LV (a copy destination keeps its source's)."""
    return v.get("capacity", v["blocks"])


def entries(u, v):
    """Table 300's entries of volume v, in address order."""
    out = []
    for e in v["extents"]:
        a = e[0]
        g = e[3]
        end = e[0] + e[1]
        while a < end:
            d = ldev_at(u, e[2], g)
            n = end - a
            if d is not None:
                n = min(n, d["start"] + d["count"] - g)
            out.append({"ldev": d["id"] if d is not None else -1, "range": [a, a + n - 1],
                        "offset": g - d["start"] if d is not None else g})
            a += n
            g += n
    out.sort(key=lambda x: x["range"][0])
    return out


def lv_info(u, v):
    return {"lv": v["id"], "emulation": v.get("emulation", "OPEN"), "capacity": capacity(v),
            "blocks": v["blocks"], "entries": entries(u, v)}


def table_300(u):
    return [lv_info(u, v) for v in u.sm.t.get("volumes", [])]


def resolve(u, v, lba):
    """(entry index, LDEV#, offset in the LDEV, group, group block) of LV address lba."""
    ents = entries(u, v)
    for i in range(len(ents)):
        x = ents[i]
        if x["range"][0] <= lba <= x["range"][1]:
            gid, glba = volmap.locate(v, lba)
            return i, x["ldev"], x["offset"] + lba - x["range"][0], gid, glba
    raise Refused(wire.E_OUT_OF_RANGE, "volume %d has no address %r" % (v["id"], lba))


def unmapped(v, lba, count):
    """The first address of lba..lba+count-1 no extent maps, or -1."""
    a = lba
    end = lba + count
    while a < end:
        for e in v["extents"]:
            if e[0] <= a < e[0] + e[1]:
                a = e[0] + e[1]
                break
        else:
            return a
    return -1


# ---- allocation for features ------------------------------------------------------
def free_ids(u, group=None):
    return [d["id"] for d in ldevs(u) if d["state"] == FREE and (group is None or d["group"] == group)]


def allocate(u, n, owner, group=None, size=None):
    """The n lowest-numbered free LDEVs (of `group` when given; of capacity `size` when
    given), now used by `owner`; Refused(NO_SPACE) and nothing changes if too few."""
    ids = [i for i in free_ids(u, group) if size is None or ldevs(u)[i]["count"] == size]
    if n < 1 or len(ids) < n:
        raise Refused(wire.E_NO_SPACE, "%d free LDEVs%s, %d needed"
                      % (len(ids), "" if group is None else " on group %d" % group, n))
    for i in ids[:n]:
        d = ldevs(u)[i]
        d["state"] = USED
        d["use"] = owner
    u.sm.dirty = True
    return ids[:n]


def free(u, ids):
    """Give LDEVs back (none may be part of a volume's extents)."""
    for i in ids:
        d = get(u, i)
        if d is None:
            raise Refused("no LDEV %r" % (i,))
        for v in u.sm.t.get("volumes", []):
            for e in v["extents"]:
                if e[2] == d["group"] and e[3] < d["start"] + d["count"] and d["start"] < e[3] + e[1]:
                    raise Refused(wire.E_STATE, "LDEV %d holds part of volume %d" % (i, v["id"]))
    for i in ids:
        d = ldevs(u)[i]
        d["state"] = FREE
        d["use"] = ""
    u.sm.dirty = True


def free_lv_id(u, lo=0):
    used = [v["id"] for v in u.sm.t.get("volumes", [])]
    n = lo
    while n in used:
        n += 1
    return n


def extents_on(u, ids, at, count=None):
    """Extents mapping LV addresses from `at` in order over LDEVs `ids` (count: how many
    addresses in all; default every block of them)."""
    ext = []
    left = count
    for i in ids:
        d = ldevs(u)[i]
        n = d["count"] if left is None else min(left, d["count"])
        if n <= 0:
            break
        ext.append([at, n, d["group"], d["start"]])
        at += n
        if left is not None:
            left -= n
    return ext


def make_lv(u, vid, ext, emulation="OPEN", capacity=None, owner=""):
    """A new volume (LV) with these extents; its number must be unused."""
    if volume(u, vid) is not None:
        raise Refused(wire.E_STATE, "volume %d exists" % vid)
    v = {"id": vid, "blocks": max([e[0] + e[1] for e in ext]), "extents": ext, "emulation": emulation}
    if capacity is not None:
        v["capacity"] = capacity
    if owner:
        v["owner"] = owner
    u.sm.t["volumes"].append(v)
    u.sm.dirty = True
    return v


def ldevs_of(u, v):
    out = []
    for x in entries(u, v):
        if x["ldev"] >= 0 and x["ldev"] not in out:
            out.append(x["ldev"])
    return out


def delete_lv(u, v, release=True):
    """Remove volume v; its LDEVs become free when `release`."""
    ids = ldevs_of(u, v)
    u.sm.t["volumes"].remove(v)
    if release:
        free(u, ids)
    u.sm.dirty = True


# ---- management ops (firmware/mgmt.py) -----------------------------------------------
def op(u, cmd):
    """lv_resolve / ldev_alloc / ldev_free: (status, reply); raises Refused."""
    name = cmd.get("op")
    if name == "lv_resolve":
        v = need_volume(u, cmd)
        lba = need_int(cmd, "lba", 0)
        if lba >= v["blocks"]:
            raise Refused(wire.E_OUT_OF_RANGE, "volume %d has %d blocks" % (v["id"], v["blocks"]))
        e, d, off, gid, glba = resolve(u, v, lba)
        return wire.OK, {"volume": v["id"], "lba": lba, "entry": e, "ldev": d, "offset": off,
                         "group": gid, "group_block": glba}
    if name == "ldev_alloc":
        n = need_int(cmd, "n", 1, 1 << 16)
        group = cmd.get("group")
        if group is not None and u.group(group) is None:
            raise Refused("no group %r" % (group,))
        owner = cmd.get("owner", "operator")
        if not isinstance(owner, str) or not owner:
            raise Refused("owner must be a name")
        got = allocate(u, n, owner, group)
        u.sm.save()
        return wire.OK, {"ldevs": got}
    ids = need_list(cmd, "ldevs")
    for i in ids:
        d = get(u, i) if isinstance(i, int) and not isinstance(i, bool) else None
        if d is None or d["state"] != USED:
            raise Refused("LDEV %r is not allocated" % (i,))
    free(u, ids)
    u.sm.save()
    return wire.OK, {"ldevs": ids}


OPS = ("lv_resolve", "ldev_alloc", "ldev_free")
