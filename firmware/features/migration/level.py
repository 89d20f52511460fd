# Levelling (seed 003 E4): from one period's figures, which LDEVs move to which RAID group.
#
# A group's utilization is the sum of its LDEVs' (stats.group_utilization).  While the
# spread (max - min over the groups) is at least `spread`, the first qualifying move is
# taken, greedy and deterministic: groups A by utilization, highest first (ties: lower
# number); A's movable LDEVs by utilization, highest first (ties: lower number); the
# target B != A is a group the LDEV's access pattern allows, with a free LDEV left and
# U(B) + u < U(A) (so no move raises the highest utilization); of those the lowest U(B)
# (ties: lower number).  Stop when none qualifies or after max_moves.
#
# Access pattern: R = random reads + writes, Q = sequential reads + writes; RANDOM when
# R >= share% of R + Q, SEQUENTIAL when Q >= share%, else MIXED (also with no I/O).
# RANDOM goes only to RAID1 groups (response time), SEQUENTIAL only to RAID5 (throughput),
# MIXED anywhere.
RANDOM = "RANDOM"
SEQUENTIAL = "SEQUENTIAL"
MIXED = "MIXED"


def pattern(d, share):
    r = d["random_read"] + d["random_write"]
    q = d["seq_read"] + d["seq_write"]
    if r + q == 0:
        return MIXED
    if 100 * r >= share * (r + q):
        return RANDOM
    if 100 * q >= share * (r + q):
        return SEQUENTIAL
    return MIXED


def allowed(pat, level):
    if pat == RANDOM:
        return level == 1
    if pat == SEQUENTIAL:
        return level == 5
    return True


def plan(last, movable, free, cfg):
    """[(ldev, from group, to group, utilization, pattern)] for the period `last`
    (stats.end_period's record).  movable(ldev) says whether an LDEV may move; free is
    {gid: free LDEVs} (used up as moves take them)."""
    util = {}
    level = {}
    for g in last["groups"]:
        util[g["group"]] = g["utilization"]
        level[g["group"]] = g["level"]
    free = dict(free)
    gids = sorted(util)
    moved = []
    out = []
    while len(out) < cfg["max_moves"] and gids:
        us = [util[g] for g in gids]
        if max(us) - min(us) < cfg["spread"]:
            break
        mv = _first(last, util, level, free, gids, moved, movable, cfg["share"])
        if mv is None:
            break
        ld, a, b, u, pat = mv
        util[a] -= u
        util[b] += u
        free[b] -= 1
        moved.append(ld)
        out.append(mv)
    return out


def _first(last, util, level, free, gids, moved, movable, share):
    for a in sorted(gids, key=lambda g: (-util[g], g)):
        mine = [d for d in last["ldevs"] if d["group"] == a and d["utilization"] > 0
                and d["ldev"] not in moved and movable(d["ldev"])]
        for d in sorted(mine, key=lambda d: (-d["utilization"], d["ldev"])):
            u = d["utilization"]
            pat = pattern(d, share)
            best = None
            for b in gids:
                if b == a or free.get(b, 0) < 1 or not allowed(pat, level[b]) or util[b] + u >= util[a]:
                    continue
                if best is None or util[b] < util[best]:
                    best = b
            if best is not None:
                return d["ldev"], a, best, u, pat
    return None
