# E1 (seed 001, Figs 2, 3, 5, 8, 9): an unused RAID group takes the host writes while a
# failing drive is copied.  Secondary volumes of the same number and sizes at the same
# places of the sub group, paired with the primaries in T2 with the status UPDATE DATA
# BEING BACKED UP and no initial copy (S32/S33); a written track goes whole to the
# secondary, its bit set (S42/S43); the feedback walks the pairs' bitmaps (Fig 9).
# With faulty_only (E5) the faulty drive's blocks go to the same member slot of the sub
# group at the same address (I26).  Every method runs with the RAID lock held.
from firmware import volmap, wire
from firmware.features.sparing.bits import TrackBits, bits_text
from firmware.features.sparing.blocks import write_run
from firmware.raid import GOOD

BACKING_UP = "UPDATE DATA BEING BACKED UP"


def unused_group(mgr, g):
    """S32: the first group (number order) holding no volume and no other sparing's
    secondaries, of g's geometry and healthy."""
    used = []
    for v in mgr.u.sm.t["volumes"]:
        used.extend(volmap.groups_of(v))
    for other in mgr.active.values():
        if other.area is not None and other.area.kind == "group":
            used.append(other.area.sub["id"])
    for s in sorted(mgr.u.sm.t["groups"], key=lambda x: x["id"]):
        if (s["id"] == g["id"] or s["id"] in used or s["level"] != g["level"]
                or len(s["members"]) != len(g["members"]) or s["chunk"] != g["chunk"]
                or s["rows"] < g["rows"] or s["failed"] or s["state"] != "normal"):
            continue
        return s
    return None


class GroupArea(TrackBits):
    kind = "group"

    @classmethod
    def reserve(cls, mgr, sp):
        s = unused_group(mgr, sp.g)
        return None if s is None else cls(mgr, sp, s)

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
            sid = nxt + k if ids is None else ids[k]
            # a volume entry as SM keeps them: the primary's range, on the sub group
            sec = {"id": sid, "blocks": v["blocks"], "extents": [[0, v["blocks"], sub["id"], sp.gstart[v["id"]]]]}
            self.pairs.append({"primary": v["id"], "secondary": sid, "status": BACKING_UP, "sec": sec})

    def state(self):
        return {"kind": self.kind, "sub": self.sub["id"], "secondaries": [p["secondary"] for p in self.pairs]}

    def secondaries(self):
        """The secondary volume entries (T1 shows them on the sub group while paired)."""
        return [p["sec"] for p in self.pairs]

    def space(self, key):
        return True

    async def store(self, key, buf, n):
        sp = self.sp
        bs = sp.bs
        if sp.faulty_only:                   # I26: the same member slot of the sub group
            st = await write_run(sp.u.dka, self.sub["members"][sp.member], key[1] * sp.tb, n, buf, bs)
            if st not in GOOD:
                return st
        else:
            gl = sp.glbas(key)
            for i in range(n):                                               # S43
                st = await sp.u.raid.write_block(self.sub, gl[i], buf[i * bs:(i + 1) * bs])
                if st not in GOOD:
                    return st
        self.mark(key)                                                       # S42
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
            self.set_tracks(sp.dbm, sp.ntracks, sp.drive, out)
            return out
        for p in self.pairs:
            vid = p["primary"]
            self.set_tracks(sp.vbm[vid], sp.vtracks(vid), vid, out)
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
