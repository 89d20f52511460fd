# Migration with the E5 tables (seed 003 E6, I-6.1 / I-6.2): a migration's 830 and 820,
# taken from the shared pools of firmware/pairtables.py (the same tables remote copy
# uses; SM "pairtables").
#
# 711 fills a free 830: owner "migration", 831 = the source controller (src_unit), 832 =
# the source LV, 833 = this LV, 834 / 835 = the area, 836 = UNDER MIGRATORY COPYING, 837 =
# 834, path = the peer path to S; and a free 820 whose entries for the groups meeting
# the area name that 830, with 804 = COPY DESTINATION (805 = the 820's number).  Host
# access goes 804 -> 805 -> 820[group] -> 830: an address of 834..835 at or past 837
# and not staged is read from S by 831 / 832 over `path` first; every other address is
# T's own.  The copy moves 837.  Completion: 804 = 805 = NULL, the 820 and the 830 back
# in the pool.  No free 830 (or no free 820) refuses the migration and changes nothing.
from firmware import pairtables, wire
from firmware.args import Refused
from firmware.pairtables import DEST, free_pair

OWNER = "migration"
UNDER = "UNDER MIGRATORY COPYING"


class Pairs:
    def __init__(self, mig):
        self.u = mig.u
        self.cfg = mig.cfg
        self.t = pairtables.pools(mig.u, mig.cfg["pairs"], mig.cfg["groups"])
        self.hits = []          # the 830#s one host I/O meets (reused: no allocation per I/O)
        self.index()

    def index(self):
        """dest: LV# -> 805 (its 820#) of the LVs under migration."""
        self.dest = pairtables.groups_of(self.t, OWNER, DEST)

    def gsize(self, v):
        return pairtables.group_size(v.get("emulation", "OPEN"), self.cfg["group_blocks"])

    def check(self, v):
        """Refuse (nothing changed) unless LV v could take an 830 and an 820 now."""
        why = pairtables.other_use(self.t, v["id"])
        if why:
            raise Refused(wire.E_STATE, why)
        if pairtables.free_index(self.t["830"]) < 0:
            raise Refused(wire.E_NO_TABLE, "no free pair (830) table in the pool")
        if pairtables.free_index(self.t["820"]) < 0:
            raise Refused(wire.E_NO_TABLE, "no free group (820) table in the pool")

    def take(self, v, m):
        """711: the 830 and the 820 of migration record m (check() first, with no wait
        between); m["830"] = the 830#."""
        self.check(v)
        pi = pairtables.free_index(self.t["830"])
        gi = pairtables.free_index(self.t["820"])
        p = free_pair()
        p.update({"use": 1, "owner": OWNER, "831": m["src_unit"], "832": m["src_lv"], "833": v["id"],
                  "834": m["start"], "835": m["end"], "836": UNDER, "837": m["start"], "path": m["peer"]})
        self.t["830"][pi] = p
        pairtables.fill_group(self.t, gi, OWNER, DEST, v, self.gsize(v), pi, m["start"], m["end"])
        m["830"] = pi
        self.index()
        return pi

    def pair(self, m):
        return self.t["830"][m["830"]]

    def done(self, m):
        """Completion: 804 = 805 = NULL, the 820 and the 830 back in the pool."""
        pairtables.release(self.t, self.dest[m["lv"]], m["830"])
        self.index()

    def route(self, v, lba, n):
        """804 = COPY DESTINATION -> 805 -> 820[group] -> the 830#s an I/O of lba..lba+n-1
        meets (a list reused by the next call), or None for an LV not under migration."""
        k = self.dest.get(v["id"])
        if k is None:
            return None
        h = self.hits
        while h:
            h.pop()
        return pairtables.hit(self.t, k, self.gsize(v), lba, n, h)

    def view(self, m):
        """The 830# and 805 of a record while it holds them."""
        k = self.dest.get(m["lv"])
        return {"830": m.get("830") if k is not None else None, "805": k}
