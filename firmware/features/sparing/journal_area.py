# E2 (seed 001, Figs 10-13) and its E4 sharing (Figs 19, 20A): journals on work volumes.
# Each primary volume gets a W-VOL in T4 (S72-S75); a write appends a record {journal
# address, volume, address, data} at the terminal address (S88-S90, Fig 11C), or, with
# no space, goes to the primary with its bit 0 (S85-S87); a read of an updated track
# searches the journal newest first (S82/S83); the feedback applies the records newest
# first, a record only while its bit is 1 (Fig 13 as corrected, S111).
# Journal addresses and tracks are 0-based; `terminal` counts the records (the address
# of the next one; 0 = empty).  Every method runs with the RAID lock held.
from firmware import wire
from firmware.features.sparing.bits import TrackBits
from firmware.features.sparing.blocks import read_run, write_run
from firmware.raid import GOOD


class JournalArea(TrackBits):
    kind = "journal"

    @classmethod
    def reserve(cls, mgr, sp):
        a = cls(mgr, sp)
        for o in a.owners():
            w = a.find()
            if w is not None:
                a.take(o, w)
        if not a.wv_of:
            return None                     # S72/S74 NO: no backup area
        return a

    @classmethod
    def restore(cls, mgr, sp, st):
        a = cls(mgr, sp)
        by_id = {}
        for w in mgr.wvols:
            by_id[w["wvol"]] = w
        for owner, wid in st["wv_of"]:
            if wid in by_id:
                a.wv_of[owner] = by_id[wid]
        a.mine = [by_id[wid] for wid in st["mine"] if wid in by_id]
        a.searched = st.get("searched", 0)
        a.fetched = st.get("fetched", 0)
        return a

    def __init__(self, mgr, sp):
        self.mgr = mgr
        self.sp = sp
        self.wv_of = {}       # owner (volume id, or -1 for the faulty drive) -> W-VOL
        self.mine = []        # W-VOLs this sparing has records in, in reservation order
        self.searched = 0
        self.fetched = 0

    def state(self):
        return {"kind": self.kind, "wv_of": [[o, self.wv_of[o]["wvol"]] for o in self.wv_of],
                "mine": [w["wvol"] for w in self.mine], "searched": self.searched, "fetched": self.fetched}

    def owners(self):
        if self.sp.faulty_only:
            return [-1]
        return [v["id"] for v in self.sp.vols]

    def owner(self, key):
        return -1 if self.sp.faulty_only else key[0]

    def find(self):
        """S73/S74: the first unused W-VOL in number order; when none is left, with share
        (E4, Fig 20A) the first in use with space, else one this sparing holds with space."""
        wv = self.mgr.wvols
        for w in wv:
            if not w["primaries"] and w["terminal"] < w["capacity"]:
                return w
        for w in wv:
            if w["terminal"] < w["capacity"] and (w in self.mine or (self.mgr.cfg.share and w["primaries"])):
                return w
        return None

    def take(self, owner, w):
        """S75: register the W-VOL for the owner's primary volumes in T4."""
        self.wv_of[owner] = w
        self.mgr.unsaved = True
        vids = [v["id"] for v in self.sp.vols] if owner == -1 else [owner]
        for vid in vids:
            if vid not in w["primaries"]:
                w["primaries"].append(vid)
        if w not in self.mine:
            self.mine.append(w)

    def space(self, key):                                                    # S85
        o = self.owner(key)
        w = self.wv_of.get(o)
        if w is not None and w["terminal"] < w["capacity"]:
            return True
        if self.mgr.cfg.switch_work_volume:     # variant: another W-VOL with space
            w = self.find()
            if w is not None:
                self.take(o, w)
                return True
        return False

    def _base(self, w, jaddr):
        return w["start"] + jaddr * self.mgr.tb

    async def store(self, key, buf, n):
        w = self.wv_of[self.owner(key)]
        jaddr = w["terminal"]
        st = await write_run(self.sp.u.dka, w["drive"], self._base(w, jaddr), n, buf, self.sp.bs)   # S89
        if st not in GOOD:
            return st
        self.mgr.seq += 1
        w["recs"][jaddr] = [self.mgr.seq, self.sp.gid, key[0], key[1]]
        w["terminal"] = jaddr + 1                                            # S90
        self.mark(key)                                                       # S88 (unsaved)
        return wire.OK

    def _find(self, key):
        """S82: search from the terminal address back (newest first)."""
        best = None
        gid = self.sp.gid
        for w in self.mine:
            j = w["terminal"] - 1
            while j >= 0:
                r = w["recs"][j]
                self.searched += 1
                if r[1] == gid and r[2] == key[0] and r[3] == key[1]:
                    if best is None or r[0] > best[0]:
                        best = (r[0], w, j)
                    break
                j -= 1
        return best

    async def load_block(self, key, i, into):
        f = self._find(key)
        if f is None:
            return wire.E_DATA_LOST
        self.fetched += 1                                                    # S83
        return await self.sp.u.dka.read(f[1]["drive"], self._base(f[1], f[2]) + i, 1, into)

    def items(self):
        """Fig 13: this sparing's records newest first, across its W-VOLs (I20)."""
        out = []
        gid = self.sp.gid
        for w in self.mine:
            for j in range(w["terminal"] - 1, -1, -1):
                r = w["recs"][j]
                if r is not None and r[1] == gid:
                    out.append((r[0], (r[2], r[3]), w, j))
        out.sort(key=lambda x: -x[0])
        return [(x[1], (x[2], x[3])) for x in out]

    async def load_item(self, key, ref, buf, n):
        w, j = ref
        self.fetched += 1                                                    # S102/S107
        return await read_run(self.sp.u.dka, w["drive"], self._base(w, j), n, buf, self.sp.bs)

    def done(self, key, ref):
        self.drop(key)                                                       # S104/S110

    def release(self):
        """S79: remove the primaries from T4; a W-VOL with none left is released."""
        vids = [v["id"] for v in self.sp.vols]
        for w in self.mine:
            w["primaries"] = [p for p in w["primaries"] if p not in vids]
            if not w["primaries"]:
                w["terminal"] = 0
                for j in range(w["capacity"]):
                    w["recs"][j] = None
        self.wv_of = {}
        self.mine = []
