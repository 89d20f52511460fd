# One sparing (seed 001): a faulty drive of a RAID5 group copied to a spare (the 1st
# control unit: Fig 6 S14, Fig 26), host I/O during the copy (2nd: Figs 8, 12, 17,
# 22-24, 27-29) and the feedback of the updates afterwards (3rd: Figs 9, 13, 18).
#
# The object stands in for the faulty member in RAID (Raid.standin): RAID never writes
# the faulty drive and reads it only when its block cannot be rebuilt.  A block RAID
# writes for the faulty member goes through to the spare (spec 9), or, when only the
# faulty drive's data is diverted (E5/E6), into the backup area.
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
from firmware import core, wire
from firmware.cache import CLEAN, key_of
from firmware.features.sparing.area import bits_from_hex, bits_hex
from firmware.jobs import DONE, PAUSED, Job
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
        self.copy_mode = cfg.get("copy", "direct")
        self.faulty_only = bool(cfg.get("faulty_only", False))
        self.tb = _gcd(mgr.tb, g["chunk"])      # a track never spans two chunks
        self.bs = u.bs
        self.rows = g["rows"]
        self.ntracks = (self.rows + self.tb - 1) // self.tb
        self.vols = sorted([v for v in u.sm.t["volumes"] if v["group"] == self.gid], key=lambda v: v["id"])
        self.vol = {}
        self.vbm = {}
        for v in self.vols:
            self.vol[v["id"]] = v
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
        self.fpaused = bool(cfg.get("feedback_paused", False))
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
        if self.area.kind == "workdisk":
            row, m, _ = locate(self.g, glba)
            return (self.g["members"][m], row // self.tb)
        return (v["id"], (glba - v["start"]) // self.tb)

    def glbas(self, key):
        """The group blocks of a (volume or disk) track, in track order."""
        tb = self.tb
        t = key[1]
        if self.area.kind == "workdisk":
            m = self.g["members"].index(key[0])
            return [row_blocks(self.g, r)[m] for r in range(t * tb, min(self.rows, t * tb + tb))]
        v = self.vol[key[0]]
        s = v["start"] + t * tb
        return list(range(s, s + min(tb, v["blocks"] - t * tb)))

    def track_len(self, key):
        if self.faulty_only:
            return min(self.tb, self.rows - key[1] * self.tb)
        return len(self.glbas(key))

    # ---- the stand-in for the faulty member (Raid.standin) ----------------------------
    async def read(self, g, row, into, first):
        if first:
            if self.faulty_only and self.area is not None:      # S204/S227/S256
                key = (self.drive, row // self.tb)
                if self.area.has(key):
                    return await self.area.load_block(key, row % self.tb, into)
            return None
        if core.bit_test(self.bad, row):
            return None
        if core.bit_test(self.cur, row) or (row < self.ptr and not core.bit_test(self.wt, row)):
            return await self.u.dka.read(self.spare, row, 1, into)
        return None

    async def write(self, g, row, data):
        if self.faulty_only and self.area is not None:
            st = await self._divert(row, data)
            self.mgr.persist()      # before the destage marks the cache slot clean
            if st is not None:
                return st
        return await self._through(row, data)

    async def _through(self, row, data):
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
            self._spare_error(row)
        return wire.OK      # the block also lives in its stripe's parity

    def _spare_error(self, row):                                             # S290
        core.bit_set(self.bad, row)
        core.bit_clear(self.cur, row)
        if row not in self.swe:
            self.swe.append(row)
            self.u.warn("group %d: spare drive %d write error at row %d" % (self.gid, self.spare, row))
        self.u.sm.save()

    def _lost_row(self, row):                                                # S293
        core.bit_set(self.bad, row)
        if row not in self.lost:
            self.lost.append(row)
            self.u.warn("group %d: row %d of drive %d lost (double failure)" % (self.gid, row, self.drive))
        self.u.sm.save()

    async def _divert(self, row, data):
        """E5/E6: the faulty drive's block (data or parity) goes to the backup area
        (S205/S206, S232-S234, S260-S262); None: write it through to the spare."""
        area = self.area
        tb = self.tb
        t = row // tb
        i = row % tb
        key = (self.drive, t)
        if self.phase != COPYING:
            if area.has(key):
                await self.feed_key(key)
            return None
        n = self.track_len(key)
        bs = self.bs
        buf = self.wbuf
        has = area.has(key)
        if not has and not area.space(key):
            return None                                                      # S230/S231
        buf[i * bs:(i + 1) * bs] = data
        raid = self.u.raid
        for j in range(n):
            if j == i:
                continue
            dst = buf[j * bs:(j + 1) * bs]
            if has:
                st = await area.load_block(key, j, dst)
            else:
                st = await raid._read_held(self.g, t * tb + j, self.member, dst)
            if st not in GOOD:
                return None
        if has and not area.space(key):          # E2 journal full: the whole track to the spare
            for j in range(n):
                await self._through(t * tb + j, buf[j * bs:(j + 1) * bs])
            area.drop(key)
            self.stats["overflow"] += 1
            return wire.OK
        st = await area.store(key, buf, n)
        if st not in GOOD:
            if has:
                area.drop(key)
                for j in range(n):
                    await self._through(t * tb + j, buf[j * bs:(j + 1) * bs])
                return wire.OK
            return None
        self.stats["diverted"] += 1
        return wire.OK

    # ---- host I/O while the copy runs (E1-E3 with every write diverted) ---------------
    def _cache_put(self, glba, src):
        c = self.u.cache
        s = c.lookup(key_of(self.gid, glba))
        if s >= 0:
            c.slot[s][:] = src
            if c.state[s] != CLEAN:
                c.mark_dirty(s)

    async def host_write(self, v, lba, count, data):
        st = await self._host_write(v, lba, count, data)
        self.mgr.persist()          # the tables this write depends on, before its reply
        return st

    async def _host_write(self, v, lba, count, data):
        from firmware import cha

        u = self.u
        raid = u.raid
        bs = self.bs
        over = []
        async with raid.lock:
            area = self.area
            if self.phase != COPYING:            # feedback running: this track first, then the group
                if self.phase == FEEDBACK:
                    for i in range(count):
                        key = self.key_of(v, v["start"] + lba + i)
                        if area.has(key):
                            await self.feed_key(key)
                # a bit the feedback cleared must be in SM before this write can reach
                # the group: a reset must not feed the older track again over it
                self.mgr.persist()
                return None
            i = 0
            while i < count:
                glba = v["start"] + lba + i
                key = self.key_of(v, glba)
                gl = self.glbas(key)
                covered = {}
                j = i
                while j < count:
                    gj = v["start"] + lba + j
                    if self.key_of(v, gj) != key:
                        break
                    covered[gl.index(gj)] = j
                    j += 1
                n = len(gl)
                has = area.has(key)
                done = False
                if has or area.space(key):
                    st = await self._assemble(key, gl, covered, data, has)
                    if st not in GOOD:
                        if has:
                            return st
                    elif (has and not area.space(key)) or await area.store(key, self.tbuf, n) not in GOOD:
                        if has:
                            # S86/S87 (journal full) or a failed backup write (I32): the
                            # whole merged track to the group, the bit cleared
                            over.append((gl[0], n, bytes(self.tbuf[:n * bs])))
                            area.drop(key)
                            done = True
                    else:                                # S42/S43, S88-S90, S143-S148
                        self.stats["diverted"] += 1
                        done = True
                if done:
                    for idx in covered:
                        off = covered[idx]
                        self._cache_put(gl[idx], data[off * bs:(off + 1) * bs])
                else:                                                        # S86 / S149
                    over.append((glba, j - i, data[i * bs:j * bs]))
                i = j
            self.mgr.persist()      # bits cleared for an overflow: saved before its data goes on
        if over:
            g = self.g
            for glba, n, blk in over:
                self.stats["overflow"] += 1
                await cha.write_blocks(u, g, glba, n, blk)
            if u.write_through:
                await cha.destage(u)
        return wire.OK

    async def _assemble(self, key, gl, covered, data, has):
        """Fig 4B: the whole current track in tbuf, the written blocks merged in."""
        bs = self.bs
        buf = self.tbuf
        c = self.u.cache
        raid = self.u.raid
        n = len(gl)
        for idx in range(n):
            dst = buf[idx * bs:(idx + 1) * bs]
            if idx in covered:
                off = covered[idx]
                dst[:] = data[off * bs:(off + 1) * bs]
                continue
            s = c.lookup(key_of(self.gid, gl[idx]))
            if s >= 0:
                dst[:] = c.slot[s]
                continue
            if has:
                st = await self.area.load_block(key, idx, dst)
            else:
                st = await raid.read_block(self.g, gl[idx], dst)
            if st not in GOOD:
                return st
        return wire.OK

    async def host_read(self, v, lba, count, out):
        area = self.area
        base = v["start"] + lba
        if not any(area.has(self.key_of(v, base + i)) for i in range(count)):
            return None          # nothing diverted here: the normal path (faulty drive rebuilt)
        u = self.u
        c = u.cache
        bs = self.bs
        async with u.raid.lock:
            for i in range(count):
                glba = base + i
                dst = out[i * bs:(i + 1) * bs]
                s = c.lookup(key_of(self.gid, glba))
                if s >= 0:
                    dst[:] = c.slot[s]
                    continue
                key = self.key_of(v, glba)
                if area.has(key):                                            # S40 / S82-S83 / S142
                    st = await area.load_block(key, self.glbas(key).index(glba), dst)
                else:                                                        # S41 / S84 / S150
                    st = await u.raid.read_block(self.g, glba, dst)
                if st not in GOOD:
                    return st
        return wire.OK

    # ---- the copy (Fig 6 S14, Fig 26) ---------------------------------------------------
    async def _source(self, row, buf):
        raid = self.u.raid
        dka = self.u.dka
        if self.copy_mode == "reconstruct":
            st = await raid.reconstruct(self.g, row, self.member, buf)       # S282-S285
            if st in GOOD:
                self.stats["rebuilt"] += 1
                return st
            self.stats["faulty_reads"] += 1
            return await dka.read(self.drive, row, 1, buf)                   # S291/S292
        self.stats["faulty_reads"] += 1
        st = await dka.read(self.drive, row, 1, buf)
        if st in GOOD:
            self.stats["copied"] += 1
            return st
        st = await raid.reconstruct(self.g, row, self.member, buf)
        if st in GOOD:
            self.stats["rebuilt"] += 1
        return st

    async def run(self):
        """The copy, from self.ptr (0, or the saved pointer after a reset)."""
        job = self.job
        raid = self.u.raid
        buf = self.cbuf
        every = max(1, self.rows // 64)
        while self.ptr < self.rows:                                          # S281, S288/S289
            await job.gate()
            async with raid.lock:
                if self.mgr.active.get(self.gid) is not self:
                    return
                row = self.ptr
                if core.bit_test(self.wt, row):      # I11: the spare already has it
                    self.stats["skipped"] += 1
                else:
                    st = await self._source(row, buf)
                    if st in GOOD:
                        if await self.u.dka.write(self.spare, row, 1, buf) not in GOOD:   # S286/S287
                            self._spare_error(row)
                    else:
                        self._lost_row(row)
                self.ptr = row + 1
                job.pointer = self.ptr
                if self.ptr % every == 0:
                    self.u.sm.dirty = True
        job.state = DONE
        job.note = "copied drive %d to drive %d: %d lost, %d spare write errors" % (
            self.drive, self.spare, len(self.lost), len(self.swe))
        await self.feedback()

    # ---- feedback (Figs 9, 13, 18; S188) ------------------------------------------------
    async def apply(self, key, buf, n):
        """An update to the normal members and the spare (never the faulty drive); E5:
        the faulty drive's track to the spare only."""
        bs = self.bs
        if self.faulty_only:
            base = key[1] * self.tb
            for i in range(n):
                await self._through(base + i, buf[i * bs:(i + 1) * bs])
            return wire.OK
        gl = self.glbas(key)
        worst = wire.OK
        for i in range(n):
            st = await self.u.raid.write_block(self.g, gl[i], buf[i * bs:(i + 1) * bs])
            if st not in GOOD:
                worst = st
        return worst

    async def feed_key(self, key):
        n = self.track_len(key)
        st = wire.OK
        for i in range(n):
            st = await self.area.load_block(key, i, self.tbuf[i * self.bs:(i + 1) * self.bs])
            if st not in GOOD:
                break
        if st in GOOD:
            await self.apply(key, self.tbuf, n)
            self.stats["fed"] += 1
        self.area.drop(key)

    async def feedback(self, resume=False):
        """Feed the updates back; resume: after a reset, from the saved pointer (the
        journal's records are walked again from the same place; the other areas keep
        only the updates not fed back yet)."""
        u = self.u
        raid = u.raid
        async with raid.lock:
            items = self.area.items() if self.area is not None else []
            if resume:
                if self.area is not None and self.area.kind == "journal":
                    items = items[self.fb_ptr:]
                else:
                    self.fb_total = self.fb_ptr + len(items)
            else:
                self.phase = FEEDBACK                                        # S35/S77/S137 YES
                self.fb_total = len(items)
                self.fb_ptr = 0
                u.sm.save()
        job = Job("feedback%d" % self.gid, "feedback", self.fb_total, self.fb_ptr, self.fpaused)
        job.persist = {}
        self.fjob = job
        u.jobs.add(job)
        for key, ref in items:
            await job.gate()
            async with raid.lock:
                area = self.area
                if area.applies(key, ref):
                    n = self.track_len(key)
                    st = await area.load_item(key, ref, self.tbuf, n)
                    if st in GOOD:
                        await self.apply(key, self.tbuf, n)
                        self.stats["fed"] += 1
                    area.done(key, ref)
                else:
                    self.stats["discarded"] += 1                             # S111
                self.fb_ptr += 1
                job.pointer = self.fb_ptr
                u.sm.dirty = True
        async with raid.lock:
            if self.area is not None:
                for key, ref in self.area.items():    # anything that slipped in meanwhile
                    if self.area.applies(key, ref):
                        await self.feed_key(key)
            self.finish()
        job.state = DONE
        job.note = "%d updates fed back, %d discarded" % (self.stats["fed"], self.stats["discarded"])

    def finish(self):
        """S37/S79/S139: release the area; the spare takes the faulty drive's place."""
        u = self.u
        g = self.g
        m = self.member
        mgr = self.mgr
        if self.area is not None:
            self.area.release()
        u.raid.standin.pop(self.gid, None)
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
        mgr.finished(self)
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
