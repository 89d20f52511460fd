# One sparing (seed 001): a faulty drive of a RAID5 group copied to a spare.  This is
# its state and addressing; the work is in copier.py (the copy, Fig 6 S14, Fig 26),
# standin.py (RAID's view of the faulty member), stages.py (host I/O during the copy,
# Figs 8, 12, 17) and feedback.py (the updates fed back, Figs 9, 13, 18).
#
# Board resets.  The sparing's state (phase, copy and feedback pointers, the bitmaps
# wt / cur / bad / the differential bits, lost rows, the area) goes into SM before every
# save (state(), run by Manager.sync).  A change that something acknowledged depends on
# is saved before that acknowledgement: a diverted host write (bit, journal record, T7
# row) before its reply; a block the faulty member's stand-in diverts or writes through
# before the destage marks the cache slot clean; a fed-back track's cleared bit before a
# host write to it is taken by the normal path.  The copy pointer is saved lazily: after
# a reset the copy goes on from the saved pointer and copies the rows since again, which
# is harmless because a row written through to the spare above the saved pointer is
# saved in wt first (I11: the copy skips it).  The feedback goes on from its pointer.
# Rows (lost, spare write errors) are 0-based, as the drives' addresses.
from firmware import core, volmap, wire
from firmware.features.sparing.bits import bits_from_hex, bits_hex
from firmware.jobs import PAUSED, Job
from firmware.raid import GOOD, locate, row_blocks

COPYING = "copying"
FEEDBACK = "feedback"
FINISHED = "done"


def _gcd(a, b):
    while b:
        a, b = b, a % b
    return a


class Spare:
    def __init__(self, mgr, g, m, spare, paused):
        u = mgr.u
        cfg = mgr.cfg
        self.mgr = mgr
        self.u = u
        self.g = g
        self.gid = g["id"]
        self.member = m
        self.drive = g["members"][m]
        self.spare = spare
        self.copy_mode = cfg.copy
        self.faulty_only = cfg.faulty_only
        self.tb = _gcd(mgr.tb, g["chunk"])      # a track never spans two chunks
        self.bs = u.bs
        self.rows = g["rows"]
        self.ntracks = (self.rows + self.tb - 1) // self.tb
        # volumes of the group: one extent each (settings.validate), at gstart[id]
        self.vols = sorted([v for v in u.sm.t["volumes"] if volmap.on_group(v, self.gid)], key=lambda v: v["id"])
        self.vol = {}
        self.gstart = {}
        self.vbm = {}
        for v in self.vols:
            self.vol[v["id"]] = v
            self.gstart[v["id"]] = volmap.contiguous(v)[1]
            self.vbm[v["id"]] = core.bitmap_new(self.vtracks(v["id"]))
        self.dbm = core.bitmap_new(self.ntracks)    # E5: the faulty drive's tracks
        self.wt = core.bitmap_new(self.rows)        # written through to the spare (spec 9)
        self.cur = core.bitmap_new(self.rows)       # ... and the spare took it
        self.bad = core.bitmap_new(self.rows)       # the spare's block is not valid
        self.lost = []
        self.swe = []
        self.phase = COPYING
        self.ptr = 0
        self.fb_ptr = 0
        self.fb_total = 0
        self.area = None
        self.tbuf = memoryview(bytearray(self.tb * self.bs))
        self.wbuf = memoryview(bytearray(self.tb * self.bs))
        self.cbuf = memoryview(bytearray(self.bs))
        self.stats = {"copied": 0, "rebuilt": 0, "skipped": 0, "faulty_reads": 0, "diverted": 0,
                      "overflow": 0, "fed": 0, "discarded": 0, "through": 0}
        self.job = Job("sparing%d" % self.gid, "sparing", self.rows, 0, paused)
        self.job.persist = {}   # mgmt saves SM on pause / resume; state() records the flag
        self.fjob = None
        self.fpaused = cfg.feedback_paused
        self.saved_ptr = 0      # the copy pointer as last saved in SM

    # ---- persistence (SM "sparing_state") --------------------------------------------
    def state(self):
        """The sparing as JSON for SM (bitmaps as hex); run before every save."""
        self.saved_ptr = self.ptr
        vbm = {}
        for vid in self.vbm:
            vbm[str(vid)] = bits_hex(self.vbm[vid])
        fj = self.fjob
        return {"group": self.gid, "member": self.member, "drive": self.drive, "spare": self.spare,
                "phase": self.phase, "ptr": self.ptr, "fb_ptr": self.fb_ptr, "fb_total": self.fb_total,
                "paused": self.job.state == PAUSED,
                "fpaused": (fj.state == PAUSED) if fj is not None else self.fpaused,
                "wt": bits_hex(self.wt), "cur": bits_hex(self.cur), "bad": bits_hex(self.bad),
                "dbm": bits_hex(self.dbm), "vbm": vbm, "lost": self.lost, "swe": self.swe,
                "stats": self.stats, "area": self.area.state() if self.area is not None else None}

    def load(self, st):
        """Boot: take the saved state back (the area is restored by the manager)."""
        self.phase = st["phase"]
        self.ptr = self.saved_ptr = st["ptr"]
        self.job.pointer = self.ptr
        self.fb_ptr = st["fb_ptr"]
        self.fb_total = st["fb_total"]
        self.fpaused = st["fpaused"]
        self.wt = bits_from_hex(st["wt"], self.rows)
        self.cur = bits_from_hex(st["cur"], self.rows)
        self.bad = bits_from_hex(st["bad"], self.rows)
        self.dbm = bits_from_hex(st["dbm"], self.ntracks)
        for vid in self.vbm:
            self.vbm[vid] = bits_from_hex(st["vbm"].get(str(vid)), self.vtracks(vid))
        self.lost = st["lost"]
        self.swe = st["swe"]
        for k in st["stats"]:
            self.stats[k] = st["stats"][k]

    # ---- keys and tracks ------------------------------------------------------------
    def vtracks(self, vid):
        return (self.vol[vid]["blocks"] + self.tb - 1) // self.tb

    def bitmap(self, key):
        if self.faulty_only:
            return self.dbm
        return self.vbm.get(key[0])

    def key_of(self, v, glba):
        """The area key of group block glba of volume v: (disk, track) for a work disk,
        else (volume, track)."""
        if self.area.kind == "workdisk":
            row, m, _ = locate(self.g, glba)
            return (self.g["members"][m], row // self.tb)
        return (v["id"], (glba - self.gstart[v["id"]]) // self.tb)

    def glbas(self, key):
        """The group blocks of a (volume or disk) track, in track order."""
        tb = self.tb
        t = key[1]
        if self.area.kind == "workdisk":
            m = self.g["members"].index(key[0])
            return [row_blocks(self.g, r)[m] for r in range(t * tb, min(self.rows, t * tb + tb))]
        v = self.vol[key[0]]
        s = self.gstart[key[0]] + t * tb
        return list(range(s, s + min(tb, v["blocks"] - t * tb)))

    def track_len(self, key):
        if self.faulty_only:
            return min(self.tb, self.rows - key[1] * self.tb)
        return len(self.glbas(key))

    # ---- the spare --------------------------------------------------------------------
    async def through(self, row, data):
        """The faulty member's new block goes to the spare, never to the faulty drive."""
        if not core.bit_test(self.wt, row):
            core.bit_set(self.wt, row)
            if row >= self.saved_ptr:
                # after a reset the copy passes this row again: it must know the spare
                # has the newer block (I11), or it would copy the stale one over it
                self.u.sm.save()
        self.stats["through"] += 1
        st = await self.u.dka.write(self.spare, row, 1, data)
        if st in GOOD:
            core.bit_set(self.cur, row)
            core.bit_clear(self.bad, row)
        else:
            self.spare_error(row)
        return wire.OK      # the block also lives in its stripe's parity

    def spare_error(self, row):                                              # S290
        core.bit_set(self.bad, row)
        core.bit_clear(self.cur, row)
        if row not in self.swe:
            self.swe.append(row)
            self.u.warn("group %d: spare drive %d write error at row %d" % (self.gid, self.spare, row))
        self.u.sm.save()

    def lost_row(self, row):                                                 # S293
        core.bit_set(self.bad, row)
        if row not in self.lost:
            self.lost.append(row)
            self.u.warn("group %d: row %d of drive %d lost (double failure)" % (self.gid, row, self.drive))
        self.u.sm.save()

    # ---- the end (S37/S79/S139) ---------------------------------------------------------
    def finish(self):
        """Release the area; the spare takes the faulty drive's place."""
        u = self.u
        g = self.g
        m = self.member
        if self.area is not None:
            self.area.release()
        self.mgr.stand_down(self)
        g["members"][m] = self.spare
        if m in g["failed"]:
            g["failed"].remove(m)
        g["state"] = "normal" if not g["failed"] else "degraded"
        drives = u.sm.t["drives"]
        drives[self.spare]["state"] = "normal"
        if drives[self.drive]["state"] != "failed":
            drives[self.drive]["state"] = "removed"
        for row in range(self.rows):
            if core.bit_test(self.bad, row):
                g.setdefault("invalid", []).append([m, row])
        self.phase = FINISHED
        self.mgr.finished(self)
        u.warn("group %d: sparing of drive %d onto drive %d complete (%d rows lost, %d spare write errors)"
               % (self.gid, self.drive, self.spare, len(self.lost), len(self.swe)))
        u.sm.save()

    def info(self):
        a = self.area
        d = {"group": self.gid, "drive": self.drive, "spare": self.spare, "member": self.member,
             "phase": self.phase, "copy": self.copy_mode, "backup": a.kind if a is not None else "none",
             "faulty_only": self.faulty_only, "track_blocks": self.tb, "rows": self.rows,
             "copy_pointer": self.ptr, "feedback_pointer": self.fb_ptr, "feedback_total": self.fb_total,
             "lost": list(self.lost), "spare_write_errors": list(self.swe), "stats": dict(self.stats)}
        if self.faulty_only and a is not None:
            d["disk_bitmap"] = "".join("1" if a.has((self.drive, t)) else "0" for t in range(self.ntracks))
        if a is not None and a.kind == "journal":
            d["journal_searched"] = a.searched
            d["journal_fetched"] = a.fetched
        return d
