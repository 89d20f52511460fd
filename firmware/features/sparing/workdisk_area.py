# E3 (seed 001, Figs 14-18) and its E4 sharing (Fig 20B): a work disk with the
# differential management table T7.  A row {main disk, main address, work disk, work
# address} per updated track of a member disk (S146-S148), overwritten in place
# (S143), read back for a read of that track (S142); no space: the write goes to the
# main disks (S149).  The feedback writes every row of the group back and deletes it
# (Fig 18).  Addresses are 0-based (main address = track of the main disk, work address
# = record slot of track_blocks blocks); the work disk's terminal counts its slots in use.
# Every method runs with the RAID lock held.
from firmware.features.sparing.blocks import read_run, write_run
from firmware.raid import GOOD


class WorkDiskArea:
    kind = "workdisk"

    @classmethod
    def reserve(cls, mgr, sp):
        wd = None
        if mgr.cfg.share:                         # E4: an IN USE work disk with space
            for w in mgr.wdisks:
                if w["status"] == "IN USE" and w["terminal"] < w["capacity"]:
                    wd = w
                    break
        if wd is None:
            for w in mgr.wdisks:                  # S133/S134
                if w["status"] == "UNUSED":
                    wd = w
                    break
        if wd is None:
            return None
        wd["status"] = "IN USE"                   # S135
        for d in sp.g["members"]:
            if d not in wd["mains"]:
                wd["mains"].append(d)
        return cls(mgr, sp, wd)

    @classmethod
    def restore(cls, mgr, sp, st):
        for w in mgr.wdisks:
            if w["disk"] == st["disk"]:
                return cls(mgr, sp, w)
        return None

    def __init__(self, mgr, sp, wd):
        self.mgr = mgr
        self.sp = sp
        self.wd = wd

    def state(self):
        return {"kind": self.kind, "disk": self.wd["disk"]}

    def has(self, key):                                                      # S140
        return key in self.mgr.t7ix

    def applies(self, key, ref):
        return self.mgr.t7ix.get(key) is ref

    def space(self, key):                                                    # S145
        return key in self.mgr.t7ix or self.wd["terminal"] < self.wd["capacity"]

    def _base(self, row):
        return row[3] * self.mgr.tb

    async def store(self, key, buf, n):
        mgr = self.mgr
        row = mgr.t7ix.get(key)
        new = row is None
        if new:                                                              # S146-S148
            row = [key[0], key[1], self.wd["disk"], self.wd["terminal"], self.sp.gid]
        st = await write_run(self.sp.u.dka, row[2], self._base(row), n, buf, self.sp.bs)   # S143 / S148
        if st not in GOOD:
            return st
        if new:
            mgr.t7.append(row)
            mgr.t7ix[key] = row
            self.wd["terminal"] = row[3] + 1
            mgr.unsaved = True
        return st

    async def load_block(self, key, i, into):                               # S142
        row = self.mgr.t7ix[key]
        return await self.sp.u.dka.read(row[2], self._base(row) + i, 1, into)

    def drop(self, key):
        row = self.mgr.t7ix.pop(key, None)
        if row is not None:
            self.mgr.t7.remove(row)
            self.mgr.unsaved = True

    def items(self):
        """Fig 18: every registered block of this group (S161), in T7 order."""
        gid = self.sp.gid
        return [((r[0], r[1]), r) for r in self.mgr.t7 if r[4] == gid]

    async def load_item(self, key, ref, buf, n):
        return await read_run(self.sp.u.dka, ref[2], self._base(ref), n, buf, self.sp.bs)

    def done(self, key, ref):
        self.drop(key)                                                       # S163

    def release(self):
        """S139: the group's disks leave T6; a work disk with none left is UNUSED."""
        for r in [r for r in self.mgr.t7 if r[4] == self.sp.gid]:
            self.drop((r[0], r[1]))
        wd = self.wd
        wd["mains"] = [d for d in wd["mains"] if d not in self.sp.g["members"] and d != self.sp.drive]
        if not wd["mains"]:
            wd["status"] = "UNUSED"
            wd["terminal"] = 0
