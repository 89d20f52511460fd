# What migration needs of the LV/LDEV layer (firmware/ldev.py) beyond its own calls: a
# quick LDEV lookup for the statistics stages, and remapping part of an LV's address
# range onto another place (a rearrangement moves an LDEV's data that way, step by step).
from firmware import ldev


class Resolver:
    """LDEV number of a group block without a search: the LDEVs of one group are
    consecutive and equal (firmware/ldev.py cuts every group from block 0)."""

    def __init__(self, u):
        self.u = u
        self.by_group = {}      # gid -> (first LDEV#, capacity, number of LDEVs)
        self.gid_of = []
        for d in ldev.ldevs(u):
            g = d["group"]
            if g not in self.by_group:
                self.by_group[g] = (d["id"], d["count"], 0)
            first, cap, n = self.by_group[g]
            self.by_group[g] = (first, cap, n + 1)
            self.gid_of.append(g)
        self.levels = []
        for g in sorted(u.sm.t["groups"], key=lambda g: g["id"]):
            self.levels.append((g["id"], g["level"]))

    def count(self):
        return len(self.gid_of)

    def at(self, gid, glba):
        """(LDEV#, the group block where it ends), or (-1, end of the unmapped run)."""
        r = self.by_group.get(gid)
        if r is None:
            return -1, glba + 1
        first, cap, n = r
        k = glba // cap
        if k >= n:
            return -1, glba + 1
        return first + k, (k + 1) * cap

    def group(self, n):
        return self.gid_of[n]

    def groups(self):
        """[(gid, RAID level)] in id order."""
        return self.levels


def remap(v, a, n, gid, glba):
    """LV addresses a..a+n-1 of v now live at group gid, blocks glba.. (v's extents are
    cut around them and neighbours that continue each other are joined again)."""
    out = []
    end = a + n
    for e in v["extents"]:
        s, k = e[0], e[1]
        if s + k <= a or s >= end:
            out.append(e)
            continue
        if s < a:
            out.append([s, a - s, e[2], e[3]])
        if s + k > end:
            out.append([end, s + k - end, e[2], e[3] + end - s])
    out.append([a, n, gid, glba])
    out.sort(key=lambda e: e[0])
    joined = []
    for e in out:
        if joined:
            p = joined[-1]
            if p[0] + p[1] == e[0] and p[2] == e[2] and p[3] + p[1] == e[3]:
                p[1] += e[1]
                continue
        joined.append(e)
    v["extents"] = joined
