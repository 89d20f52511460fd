# The sparing manager (seed 001): the error management table T3 and its judgement
# (Fig 6 S11-S13; Fig 7 S23/S24 in manual mode), the start of a sparing (S14, S25/S27)
# with its backup area (area.py), the W-VOLs (T4) and work disks (T6) and T7, and their
# persistence across board resets.
#
# Board resets: everything a sparing needs (the W-VOLs, work disks, T7 and journal
# order, each active sparing's state, finished sparings' records) is put into the SM
# table "sparing_state" before every save (sync); at attach the active sparings come
# back: each stands in for its faulty member in RAID again (the unit's Raid is built
# anew on every configure and boot) and its copy or feedback goes on from its pointer.
from firmware import volmap, wire
from firmware.features.sparing import area as areas
from firmware.features.sparing.copier import run
from firmware.features.sparing.feedback import feedback
from firmware.features.sparing.job import COPYING, FEEDBACK, Spare
from firmware.features.sparing.settings import TYPES, Settings
from firmware.features.sparing.standin import StandIn
from firmware.jobs import DONE, FAILED

MAX_WARNINGS = 32


class Manager:
    def __init__(self, u, reg):
        self.u = u
        self.reg = reg
        cfg = Settings(u.sm.t["config"].get("sparing") or {})
        self.cfg = cfg
        self.tb = cfg.tb
        self.active = {}         # group id -> Spare
        self.done = []           # finished sparings' info (their records stay readable)
        self.unsaved = False     # sparing tables changed since the last SM save
        self.spared = []         # drives that spared (or are sparing): once only (I7)
        self.seq = 0             # journal record order across W-VOLs
        self.terminated = False  # Fig 7 S26
        self.warned = []         # [drive, type] pairs warned about (S24 once each)
        self.wvols = []
        for w in cfg.work_volumes:
            cap = w.get("tracks", 8)
            self.wvols.append({"wvol": w["id"], "drive": w["drive"], "start": w.get("start", 0),
                               "capacity": cap, "primaries": [], "terminal": 0, "recs": [None] * cap})
        self.wvols.sort(key=lambda w: w["wvol"])
        drives = u.sm.t["drives"]
        self.wdisks = []
        for d in cfg.work_disks:
            self.wdisks.append({"disk": d, "capacity": drives[d]["blocks"] // self.tb, "status": "UNUSED",
                                "mains": [], "terminal": 0})
        self.t7 = []             # [main disk, main address, work disk, work address, group]
        self.t7ix = {}
        sm = u.sm.t
        if "T3" not in sm:
            sm["T3"] = []
        sm.setdefault("sparing_warnings", [])
        self.t3 = {}
        for r in sm["T3"]:
            self.t3[r["drive"]] = r
        for d in self.in_use():
            self._t3_row(d)
        self.t3tab = sm["T3"]
        self.load(sm.get("sparing_state"))

    # ---- persistence ----------------------------------------------------------------------
    def load(self, ps):
        """The manager's tables as saved (the settings decide which W-VOLs and work
        disks exist; their contents come back)."""
        if not ps:
            return
        self.seq = ps["seq"]
        self.terminated = ps["terminated"]
        self.warned = ps["warned"]
        self.spared = ps["spared"]
        self.done = ps["done"]
        saved = {}
        for w in ps["wvols"]:
            saved[w["wvol"]] = w
        for w in self.wvols:
            o = saved.get(w["wvol"])
            if o is not None and o["capacity"] == w["capacity"]:
                w["primaries"] = o["primaries"]
                w["terminal"] = o["terminal"]
                w["recs"] = o["recs"]
        saved = {}
        for w in ps["wdisks"]:
            saved[w["disk"]] = w
        for w in self.wdisks:
            o = saved.get(w["disk"])
            if o is not None:
                w["status"] = o["status"]
                w["mains"] = o["mains"]
                w["terminal"] = o["terminal"]
        self.t7 = ps["t7"]
        for r in self.t7:
            self.t7ix[(r[0], r[1])] = r

    def ours(self):
        """False once a configure has replaced the SM tables this manager was built on."""
        return self.u.sm.t.get("T3") is self.t3tab

    def sync(self):
        """Before every SM save: the sparing tables and each active sparing as JSON."""
        if not self.ours():
            return
        self.u.sm.t["sparing_state"] = {
            "seq": self.seq, "terminated": self.terminated, "warned": self.warned,
            "spared": self.spared, "done": self.done, "t7": self.t7,
            "wvols": [{"wvol": w["wvol"], "capacity": w["capacity"], "primaries": w["primaries"],
                       "terminal": w["terminal"], "recs": w["recs"]} for w in self.wvols],
            "wdisks": [{"disk": w["disk"], "status": w["status"], "mains": w["mains"],
                        "terminal": w["terminal"]} for w in self.wdisks],
            "active": [self.active[g].state() for g in sorted(self.active)]}
        self.unsaved = False

    def persist(self):
        """Save now if a sparing table changed (before acknowledging what depends on it)."""
        if self.unsaved:
            self.u.sm.save()

    def resume(self):
        """At attach: the sparings that were running go on from their saved pointers."""
        u = self.u
        ps = u.sm.t.get("sparing_state") or {}
        for st in ps.get("active", []):
            g = u.group(st["group"])
            m = st["member"]
            if g is None or m >= len(g["members"]) or g["members"][m] != st["drive"]:
                u.warn("sparing of drive %d: group %d changed; not resumed" % (st["drive"], st["group"]))
                continue
            sp = Spare(self, g, m, st["spare"], st["paused"])
            sp.load(st)
            if st["area"] is not None:
                sp.area = areas.restore(self, sp, st["area"])
                if sp.area is None:
                    u.warn("group %d: the sparing's backup area is gone: diverted writes lost" % g["id"])
            self.active[g["id"]] = sp
            self.stand_in(sp)
            u.jobs.add(sp.job)
            if sp.phase == COPYING:
                self.reg.task(run(sp))
            else:
                sp.job.state = DONE
                sp.job.pointer = sp.rows
                self.reg.task(feedback(sp, True))
            u.warn("group %d: sparing of drive %d resumed after a reset (%s, copy pointer %d, feedback %d/%d)"
                   % (g["id"], sp.drive, sp.phase, sp.ptr, sp.fb_ptr, sp.fb_total))

    def stand_in(self, sp):
        """RAID treats the faulty member as held by this sparing (raid.Raid.standin)."""
        self.u.raid.standin[sp.gid] = StandIn(sp)

    def stand_down(self, sp):
        si = self.u.raid.standin.get(sp.gid)
        if si is not None and si.sp is sp:
            self.u.raid.standin.pop(sp.gid)

    def detach(self):
        """The feature is detached (a configure, or attached again): its state goes to
        SM if SM is still its own; RAID and the job list forget its sparings (the
        Registration cancels their tasks)."""
        self.sync()
        for sp in list(self.active.values()):
            self.stand_down(sp)
            for job in (sp.job, sp.fjob):
                if job is not None and self.u.jobs.get(job.name) is job:
                    job.state = FAILED
                    job.note = "stopped: the sparing feature was detached"
                    self.u.jobs.by_name.pop(job.name)
        self.active = {}

    def diverting(self, v):
        """The sparing whose backup area takes volume v's host I/O (E1-E3), or None."""
        ex = v["extents"]
        sp = self.active.get(ex[0][2]) if len(ex) == 1 else None
        if sp is None or sp.area is None or sp.faulty_only or v["id"] not in sp.vol:
            return None
        return sp if sp.phase in (COPYING, FEEDBACK) else None

    # ---- T3: error management -------------------------------------------------------
    def in_use(self):
        """S13 "each of the disk drives being used": members of groups holding volumes."""
        gids = []
        for v in self.u.sm.t["volumes"]:
            gids.extend(volmap.groups_of(v))
        out = []
        for g in self.u.sm.t["groups"]:
            if g["id"] in gids:
                out.extend(g["members"])
        return out

    def _t3_row(self, d):
        if d not in self.t3:
            r = {"drive": d, "n": {}, "th": {}}
            for t in TYPES:
                r["n"][t] = 0
                r["th"][t] = self.cfg.th[t]
            self.t3[d] = r
            self.u.sm.t["T3"].append(r)

    def observe(self, d, op, st):
        """S11/S12: every drive status the DKA receives; errors counted by type."""
        if st == wire.OK:
            return
        r = self.t3.get(d)
        if r is None:
            return
        t = ("read_" if op == "r" else "write_") + ("recoverable" if st == wire.RECOVERED else "unrecoverable")
        r["n"][t] += 1
        self.u.sm.dirty = True
        if d in self.spared:
            return
        if self.cfg.judgement == "combined":
            total = 0
            for k in TYPES:
                total += r["n"][k]
            over = t if total >= self.cfg.combined_threshold else None
        else:
            over = t if r["n"][t] >= r["th"][t] else None                   # S13: N >= Th
        if over is None:
            return
        if self.cfg.mode == "auto":
            self.spared.append(d)
            self.reg.task(self._auto(d))                                     # S14 after this I/O
        else:
            self.warn(d, over)

    def warn(self, d, t):
        """Fig 7 S23/S24: one warning per drive and type, until TERMINATE."""
        if self.terminated or [d, t] in self.warned:
            return
        self.warned.append([d, t])
        r = self.t3[d]
        w = self.u.sm.t["sparing_warnings"]
        w.append({"drive": d, "type": t, "count": r["n"][t], "th": r["th"][t]})
        if len(w) > MAX_WARNINGS:
            w.pop(0)
        self.u.warn("drive %d: %s errors %d reached the threshold %d" % (d, t, r["n"][t], r["th"][t]))
        self.u.sm.save()

    async def _auto(self, d):
        err = await self.start(d, self.cfg.start_paused)
        if err:
            self.u.warn(err)

    # ---- start -----------------------------------------------------------------------
    def group_of(self, d):
        for g in self.u.sm.t["groups"]:
            if d in g["members"]:
                return g
        return None

    def next_volume_id(self):
        ids = [v["id"] for v in self.u.sm.t["volumes"]] + [w["wvol"] for w in self.wvols]
        for p in self.cfg.pairs:
            ids.append(p["primary"])
            ids.append(p["secondary"])
        for sp in self.active.values():
            if sp.area is not None and sp.area.kind == "group":
                ids.extend([p["secondary"] for p in sp.area.pairs])
        return max(ids + [0]) + 1

    def _refusal(self, g, d):
        u = self.u
        if g is None:
            return "sparing refused: drive %d is in no RAID group" % d
        if g["level"] != 5:
            return "sparing refused: group %d is RAID%d (sparing needs RAID5)" % (g["id"], g["level"])
        if g["id"] in self.active:
            return "sparing refused: group %d is already sparing drive %d" % (g["id"], self.active[g["id"]].drive)
        if u.sm.t["drives"][d]["state"] == "failed" or g["members"].index(d) in g["failed"]:
            return "sparing refused: drive %d has failed (rebuild it instead)" % d
        if len(g["failed"]) > 0:
            return "sparing refused: group %d is degraded" % g["id"]
        return None

    async def start(self, d, paused=False):
        """Start sparing drive d; return an error text (refused) or None."""
        u = self.u
        async with u.raid.lock:
            g = self.group_of(d)
            err = self._refusal(g, d)
            if err:
                return err
            spare = -1
            for s in g["spares"]:
                if u.dka.usable(s) and u.sm.t["drives"][s]["blocks"] >= g["rows"]:
                    spare = s
                    break
            if spare < 0:
                return "sparing refused: group %d has no usable spare for drive %d" % (g["id"], d)
            if d not in self.spared:
                self.spared.append(d)
            sp = Spare(self, g, g["members"].index(d), spare, paused)
            g["spares"].remove(spare)
            drives = u.sm.t["drives"]
            drives[d]["state"] = "faulty"
            drives[spare]["state"] = "sparing"
            self.active[g["id"]] = sp
            sp.area = areas.reserve(self, sp)             # E1, E2, E3 in that order
            if sp.area is None and self.cfg.kinds:
                u.warn("group %d: no free backup area (%s): writes go to the group"
                       % (g["id"], ", ".join(self.cfg.kinds)))
            self.stand_in(sp)
            u.jobs.add(sp.job)
            u.warn("group %d: sparing of drive %d onto drive %d started (%s copy, backup %s%s)"
                   % (g["id"], d, spare, sp.copy_mode, sp.area.kind if sp.area else "none",
                      ", faulty drive only" if sp.faulty_only else ""))
            u.sm.save()
        self.reg.task(run(sp))
        return None

    def finished(self, sp):
        self.active.pop(sp.gid, None)
        self.done.append(sp.info())
        if len(self.done) > 8:
            self.done.pop(0)
        t3 = self.t3.pop(sp.drive, None)       # the spare is in use now, the faulty drive is not
        if t3 is not None:
            self.u.sm.t["T3"].remove(t3)
        self._t3_row(sp.spare)

    def sparings(self):
        return list(self.done) + [self.active[g].info() for g in sorted(self.active)]
