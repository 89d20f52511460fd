# The pair tables of seed 003 E5 / E6: pair management (830) and group tables (820) from
# fixed pools, shared by the features that copy an area of an LV between units: remote
# copy (its LV(S) is the COPY SOURCE) and migration (its new LV is the COPY DESTINATION).
#
# SM table "pairtables" (persisted; readable as u.table("pairtables")):
#   "830"  {use, owner, 831 other controller#, 832 other LV#, 833 own LV#, 834 copy start,
#          835 copy end, 836 state, 837 copy pointer, ...}: the owner's own fields follow
#          (remote copy: path, bits, why, paused, copied, scanned).
#   "820"  {use, owner, lv, 804, entries: [830# or -1 per group of the LV]}.
# Table 800's 804 / 805 of an LV are those of the 820 in use that names it (805 = the
# 820's number), NULL (None) when none does.  A pool is as large as the largest size a
# feature asks for (each feature has a `pairs` and a `groups` setting); it grows at
# attach and never shrinks, so a table's number stays the same across resets.
from firmware import ldev

NONE = -1
SIMPLEX = "SIMPLEX"
SOURCE = "COPY SOURCE"
DEST = "COPY DESTINATION"


def free_pair():
    return {"use": 0, "owner": "", "831": NONE, "832": NONE, "833": NONE, "834": 0, "835": 0, "836": SIMPLEX,
            "837": 0, "path": NONE, "bits": "", "why": "", "paused": False, "copied": 0, "scanned": 0}


def free_group():
    return {"use": 0, "owner": "", "lv": NONE, "804": None, "entries": []}


def pools(u, pairs, groups):
    """The SM table, made or grown to hold `pairs` 830s and `groups` 820s."""
    t = u.sm.t.get("pairtables")
    if t is None:
        t = {"830": [], "820": []}
        u.sm.t["pairtables"] = t
    grown = False
    while len(t["830"]) < pairs:
        t["830"].append(free_pair())
        grown = True
    while len(t["820"]) < groups:
        t["820"].append(free_group())
        grown = True
    if grown:
        u.sm.save()
    return t


def free_index(tbl):
    """The lowest free table of a pool, or -1."""
    for i in range(len(tbl)):
        if not tbl[i]["use"]:
            return i
    return -1


def group_size(em, group_blocks):
    """Blocks per group (I-5.2): a cylinder for a mainframe type, else group_blocks."""
    tb, heads = ldev.EMULATIONS.get(em, (1, 0))
    return tb * heads if heads else group_blocks


def groups_of(t, owner, role):
    """LV# -> 820# of the 820s in use of `owner` with 804 = role."""
    out = {}
    for k in range(len(t["820"])):
        g = t["820"][k]
        if g["use"] and g.get("owner", owner) == owner and g.get("804", role) == role:
            out[g["lv"]] = k
    return out


def group_of(t, lv):
    """The 820# in use that names LV lv (whoever owns it), or -1."""
    for k in range(len(t["820"])):
        g = t["820"][k]
        if g["use"] and g["lv"] == lv:
            return k
    return -1


def other_use(t, lv, own=-1):
    """Why LV lv cannot take another pair: the 820# in use (not `own`) that names it,
    as a message; None when there is none."""
    gi = group_of(t, lv)
    if gi >= 0 and gi != own:
        return "LV %d is a %s (group table %d)" % (lv, t["820"][gi]["804"], gi)
    return None


def fill_group(t, gi, owner, role, v, gs, pi, a, b):
    """820 gi names pair pi for the groups of a..b of LV v (taken first when free)."""
    g = t["820"][gi]
    if not g["use"]:
        g.update({"use": 1, "owner": owner, "lv": v["id"], "804": role,
                  "entries": [NONE] * ((ldev.capacity(v) + gs - 1) // gs)})
    for n in range(a // gs, b // gs + 1):
        g["entries"][n] = pi


def release(t, gi, pi):
    """830 pi back to the pool, its entries in 820 gi cleared, and the 820 back too when
    it names no pair any more (804 = 805 = NULL)."""
    g = t["820"][gi]
    g["entries"] = [NONE if e == pi else e for e in g["entries"]]
    if all(e == NONE for e in g["entries"]):
        t["820"][gi] = free_group()
    t["830"][pi] = free_pair()


def hit(t, gi, gs, lba, count, out):
    """The 830#s that 820 gi names for the groups of lba..lba+count-1 (805 -> 820 ->
    830), appended to `out` (the caller's list: no allocation per I/O)."""
    ents = t["820"][gi]["entries"]
    g = lba // gs
    last = (lba + count - 1) // gs
    while g <= last and g < len(ents):
        i = ents[g]
        if i != NONE and i not in out:
            out.append(i)
        g += 1
    return out


def table_800(u):
    """804 / 805 of every LV, from the 820s."""
    t = u.sm.t.get("pairtables") or {"820": []}
    out = []
    for v in u.sm.t["volumes"]:
        k = group_of(t, v["id"])
        out.append({"lv": v["id"], "804": t["820"][k]["804"] if k >= 0 else None, "805": k if k >= 0 else None})
    return out
