# Backup areas for the host writes that arrive while a failing drive is copied to its
# spare (seed 001): E1 an unused RAID group paired volume for volume (T2), E2 journals
# on work volumes (T4), E3 work disks with the differential management table (T5-T7).
#
# An area keeps whole tracks under a key: (volume, track) for a volume's tracks (E1,
# E2), (disk, track) for a drive's tracks (E3; and E5/E6, where only the faulty drive's
# tracks are kept).  Tracks are numbered from 0 here; the tables show them from 1, as
# the seed's figures do (journal and work addresses too; terminal 0 = empty).
# Every method runs with the RAID lock held.
#
# Persistence: an area's own state (state() / restore()) and the manager's tables (T4
# records, T6, T7) go into the SM table "sparing_state" before every save; a change
# marks the manager unsaved (mgr.unsaved) and the caller saves before it acknowledges
# anything that depends on it (see firmware/features/sparing/job.py).
import binascii

from firmware import core, wire
from firmware.raid import GOOD

BACKING_UP = "UPDATE DATA BEING BACKED UP"


def bits_text(bm, n):
    return "".join("1" if core.bit_test(bm, i) else "0" for i in range(n))


def bits_hex(bm):
    return binascii.hexlify(bm).decode()


def bits_from_hex(text, nbits):
    """A core bitmap of nbits from its hex form (an empty bitmap if it does not fit)."""
    bm = core.bitmap_new(nbits)
    raw = binascii.unhexlify(text or "")
    if len(raw) == len(bm):
        bm[:] = raw
    return bm


class _Bits:
    """Differential bits kept by the sparing: a bitmap per volume (tracks) or, when
    only the faulty drive is diverted, one bitmap of its tracks."""

    def has(self, key):
        bm = self.sp.bitmap(key)
        return bm is not None and core.bit_test(bm, key[1])

    def _set(self, key):
        core.bit_set(self.sp.bitmap(key), key[1])
        self.mgr.unsaved = True

    def drop(self, key):
        bm = self.sp.bitmap(key)
        if bm is not None and core.bit_test(bm, key[1]):
            core.bit_clear(bm, key[1])
            self.mgr.unsaved = True

    def applies(self, key, ref):
        return self.has(key)


class GroupArea(_Bits):
    """E1: an unused RAID group; secondary volumes of the same number and sizes at the
    same places, status UPDATE DATA BEING BACKED UP, no initial copy (Figs 2, 3, 8, 9)."""

    kind = "group"

    @classmethod
    def reserve(cls, mgr, sp):
        g = sp.g
        used = set()
        for v in mgr.u.sm.t["volumes"]:
            used.add(v["group"])
        for other in mgr.active.values():
            if other.area is not None and other.area.kind == "group":
                used.add(other.area.sub["id"])
        for s in sorted(mgr.u.sm.t["groups"], key=lambda x: x["id"]):    # S32
            if (s["id"] == g["id"] or s["id"] in used or s["level"] != g["level"]
                    or len(s["members"]) != len(g["members"]) or s["chunk"] != g["chunk"]
                    or s["rows"] < g["rows"] or s["failed"] or s["state"] != "normal"):
                continue
            return cls(mgr, sp, s)
        return None

    @classmethod
    def restore(cls, mgr, sp, st):
        sub = mgr.u.group(st["sub"])
        if sub is None or len(st["secondaries"]) != len(sp.vols):
            return None
        return cls(mgr, sp, sub, st["secondaries"])

    def __init__(self, mgr, sp, sub, ids=None):
        self.mgr = mgr
        self.sp = sp
        self.sub = sub
        self.pairs = []
        nxt = mgr.next_volume_id() if ids is None else 0
        for k in range(len(sp.vols)):                                        # S33
            v = sp.vols[k]
            sec = {"id": nxt + k if ids is None else ids[k], "group": sub["id"], "start": v["start"],
                   "blocks": v["blocks"]}
            self.pairs.append({"primary": v["id"], "secondary": sec["id"], "status": BACKING_UP,
                               "vol": v, "sec": sec})

    def state(self):
        return {"kind": self.kind, "sub": self.sub["id"], "secondaries": [p["secondary"] for p in self.pairs]}

    def space(self, key):
        return True

    async def store(self, key, buf, n):
        sp = self.sp
        bs = sp.bs
        if sp.faulty_only:                   # I26: the same member slot of the sub group
            d = self.sub["members"][sp.member]
            for i in range(n):
                st = await sp.u.dka.write(d, key[1] * sp.tb + i, 1, buf[i * bs:(i + 1) * bs])
                if st not in GOOD:
                    return st
        else:
            gl = sp.glbas(key)
            for i in range(n):                                               # S43
                st = await sp.u.raid.write_block(self.sub, gl[i], buf[i * bs:(i + 1) * bs])
                if st not in GOOD:
                    return st
        self._set(key)                                                       # S42
        return wire.OK

    async def load_block(self, key, i, into):
        sp = self.sp
        if sp.faulty_only:
            return await sp.u.dka.read(self.sub["members"][sp.member], key[1] * sp.tb + i, 1, into)
        return await sp.u.raid.read_block(self.sub, sp.glbas(key)[i], into)   # S40

    def items(self):
        """Fig 9: each pair in primary-volume order, tracks from the first (S51-S55)."""
        sp = self.sp
        out = []
        if sp.faulty_only:
            bm = sp.dbm
            t = core.next_set(bm, 0, sp.ntracks)
            while t >= 0:
                out.append(((sp.drive, t), None))
                t = core.next_set(bm, t + 1, sp.ntracks)
            return out
        for p in self.pairs:
            vid = p["primary"]
            bm = sp.vbm[vid]
            nt = sp.vtracks(vid)
            t = core.next_set(bm, 0, nt)
            while t >= 0:
                out.append(((vid, t), None))
                t = core.next_set(bm, t + 1, nt)
        return out

    async def load_item(self, key, ref, buf, n):
        bs = self.sp.bs
        for i in range(n):
            st = await self.load_block(key, i, buf[i * bs:(i + 1) * bs])
            if st not in GOOD:
                return st
        return wire.OK

    def done(self, key, ref):
        self.drop(key)       # spec 9: Fig 9 never clears the bit; clear it after the copy

    def release(self):
        self.pairs = []      # S37: pairs and secondary volumes deleted

    def t2_rows(self):
        sp = self.sp
        rows = []
        for p in self.pairs:
            vid = p["primary"]
            rows.append({"primary": vid, "secondary": p["secondary"], "status": p["status"],
                         "bitmap": bits_text(sp.vbm[vid], sp.vtracks(vid))})
        return rows


class JournalArea(_Bits):
    """E2: journals on work volumes (T4; records {journal address, volume, address,
    data} appended, Fig 11C), read newest first, fed back newest first (Figs 12, 13)."""

    kind = "journal"

    @classmethod
    def reserve(cls, mgr, sp):
        a = cls(mgr, sp)
        for o in a.owners():
            w = a.find(o, True)
            if w is None:
                continue
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

    def find(self, owner, first):
        """S73/S74: the first unused W-VOL in number order, else one this sparing already
        holds with space.  With share (E4, Fig 20A) a W-VOL in use with space comes first."""
        wv = self.mgr.wvols
        if self.mgr.cfg.get("share", False):
            for w in wv:
                if w["primaries"] and w["terminal"] < w["capacity"]:
                    return w
        for w in wv:
            if not w["primaries"] and w["terminal"] < w["capacity"]:
                return w
        for w in wv:
            if w["terminal"] < w["capacity"] and w in self.mine:
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
        if self.mgr.cfg.get("switch_work_volume", False):   # variant: another W-VOL with space
            w = self.find(o, False)
            if w is not None:
                self.take(o, w)
                return True
        return False

    def _base(self, w, jaddr):
        return w["start"] + (jaddr - 1) * self.mgr.tb

    async def store(self, key, buf, n):
        w = self.wv_of[self.owner(key)]
        jaddr = w["terminal"] + 1
        d = w["drive"]
        base = self._base(w, jaddr)
        bs = self.sp.bs
        for i in range(n):                                                   # S89
            st = await self.sp.u.dka.write(d, base + i, 1, buf[i * bs:(i + 1) * bs])
            if st not in GOOD:
                return st
        self.mgr.seq += 1
        w["recs"][jaddr - 1] = [self.mgr.seq, self.sp.gid, key[0], key[1]]
        w["terminal"] = jaddr                                                # S90
        self._set(key)                                                       # S88 (unsaved)
        return wire.OK

    def _find(self, key):
        """S82: search from the terminal address back (newest first)."""
        best = None
        gid = self.sp.gid
        for w in self.mine:
            j = w["terminal"]
            while j > 0:
                r = w["recs"][j - 1]
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
            for j in range(w["terminal"], 0, -1):
                r = w["recs"][j - 1]
                if r is not None and r[1] == gid:
                    out.append((r[0], (r[2], r[3]), w, j))
        out.sort(key=lambda x: -x[0])
        return [((x[1][0], x[1][1]), (x[2], x[3])) for x in out]

    async def load_item(self, key, ref, buf, n):
        w, j = ref
        base = self._base(w, j)
        bs = self.sp.bs
        self.fetched += 1                                                    # S102/S107
        for i in range(n):
            st = await self.sp.u.dka.read(w["drive"], base + i, 1, buf[i * bs:(i + 1) * bs])
            if st not in GOOD:
                return st
        return wire.OK

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


class WorkDiskArea:
    """E3: a work disk; T7 rows {main disk, main address, work disk, work address},
    overwritten in place, appended at the terminal address (Figs 14-18)."""

    kind = "workdisk"

    @classmethod
    def reserve(cls, mgr, sp):
        wd = None
        if mgr.cfg.get("share", False):           # E4: an IN USE work disk with space
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
        return (row[3] - 1) * self.mgr.tb

    async def store(self, key, buf, n):
        mgr = self.mgr
        row = mgr.t7ix.get(key)
        new = row is None
        if new:                                                              # S146-S148
            row = [key[0], key[1] + 1, self.wd["disk"], self.wd["terminal"] + 1, self.sp.gid]
        base = self._base(row)
        bs = self.sp.bs
        for i in range(n):                                                   # S143 / S148
            st = await self.sp.u.dka.write(row[2], base + i, 1, buf[i * bs:(i + 1) * bs])
            if st not in GOOD:
                return st
        if new:
            mgr.t7.append(row)
            mgr.t7ix[key] = row
            self.wd["terminal"] = row[3]
            mgr.unsaved = True
        return wire.OK

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
        return [((r[0], r[1] - 1), r) for r in self.mgr.t7 if r[4] == gid]

    async def load_item(self, key, ref, buf, n):
        bs = self.sp.bs
        base = self._base(ref)
        for i in range(n):
            st = await self.sp.u.dka.read(ref[2], base + i, 1, buf[i * bs:(i + 1) * bs])
            if st not in GOOD:
                return st
        return wire.OK

    def done(self, key, ref):
        self.drop(key)                                                       # S163

    def release(self):
        """S139: the group's disks leave T6; a work disk with none left is UNUSED."""
        for r in [r for r in self.mgr.t7 if r[4] == self.sp.gid]:
            self.drop((r[0], r[1] - 1))
        wd = self.wd
        wd["mains"] = [d for d in wd["mains"] if d not in self.sp.g["members"] and d != self.sp.drive]
        if not wd["mains"]:
            wd["status"] = "UNUSED"
            wd["terminal"] = 0


KINDS = {"group": GroupArea, "journal": JournalArea, "workdisk": WorkDiskArea}
