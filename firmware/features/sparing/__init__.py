# Proactive sparing of a failing drive (seed 001): the error management table T3, the
# automatic (Fig 6) and manual (Fig 7) start, the backup areas E1-E6, and the tables.
#
# Configuration (the unit's `sparing = {...}`), every key optional:
#   mode "auto" | "manual"; judgement "per-type" | "combined" (+ combined_threshold);
#   thresholds {read_recoverable, write_recoverable, read_unrecoverable,
#   write_unrecoverable}; track_blocks; copy "direct" | "reconstruct";
#   backup "none" | "group" (E1) | "journal" (E2) | "workdisk" (E3); faulty_only (E5);
#   share (E4); switch_work_volume; work_volumes [{id, drive, start, tracks}];
#   work_disks [drive, ...]; pairs [{primary, secondary, status}] (other T2 rows);
#   start_paused, feedback_paused (jobs start paused: the host steps them).
#
# Board resets: everything a sparing needs (the manager's W-VOLs, work disks, T7 and
# journal order, each active sparing's state, finished sparings' records) is put into
# the SM table "sparing_state" before every save (sync); at boot the active sparings
# come back as RAID stand-ins and their copy or feedback job goes on from its pointer.
import asyncio

from firmware import wire
from firmware.features.sparing.area import BACKING_UP, KINDS
from firmware.features.sparing.job import COPYING, Spare
from firmware.jobs import DONE

TYPES = ("read_recoverable", "read_unrecoverable", "write_recoverable", "write_unrecoverable")
DEFAULT_TH = {"read_recoverable": 16, "write_recoverable": 16,
              "read_unrecoverable": 4, "write_unrecoverable": 4}
MAX_WARNINGS = 32


class Manager:
    def __init__(self, u):
        self.u = u
        cfg = u.sm.t["config"].get("sparing", {})
        self.cfg = cfg
        self.tb = max(1, int(cfg.get("track_blocks", 4)))
        self.mode = cfg.get("mode", "auto")
        th = dict(DEFAULT_TH)
        th.update(cfg.get("thresholds", {}))
        self.th = th
        self.active = {}         # group id -> Spare
        self.done = []           # finished sparings' info (their records stay readable)
        self.unsaved = False     # sparing tables changed since the last SM save
        self.spared = []         # drives that spared (or are sparing): once only (I7)
        self.seq = 0             # journal record order across W-VOLs
        self.terminated = False  # Fig 7 S26
        self.warned = []         # [drive, type] pairs warned about (S24 once each)
        self.wvols = []
        drives = u.sm.t["drives"]
        for w in cfg.get("work_volumes", []):
            cap = int(w.get("tracks", 8))
            room = (drives[w["drive"]]["blocks"] - w.get("start", 0)) // self.tb
            if cap > room:
                u.warn("work volume %d: %d tracks do not fit drive %d; %d kept" % (w["id"], cap, w["drive"], room))
                cap = max(0, room)
            self.wvols.append({"wvol": w["id"], "drive": w["drive"], "start": w.get("start", 0),
                               "capacity": cap, "primaries": [], "terminal": 0, "recs": [None] * cap})
        self.wvols.sort(key=lambda w: w["wvol"])
        self.wdisks = []
        for d in cfg.get("work_disks", []):
            self.wdisks.append({"disk": d, "capacity": drives[d]["blocks"] // self.tb, "status": "UNUSED",
                                "mains": [], "terminal": 0})
        self.t7 = []
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
        """Boot: the manager's tables as saved (config decides which W-VOLs and work
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
            self.t7ix[(r[0], r[1] - 1)] = r

    def sync(self):
        """Before every SM save: the sparing tables and each active sparing as JSON."""
        sm = self.u.sm.t
        if sm.get("T3") is not self.t3tab:
            return          # reconfigured: these tables are gone
        sm["sparing_state"] = {
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
        """Boot: the sparings that were running go on from their saved pointers."""
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
                sp.area = KINDS[st["area"]["kind"]].restore(self, sp, st["area"])
                if sp.area is None:
                    u.warn("group %d: the sparing's backup area is gone: diverted writes lost" % g["id"])
            self.active[g["id"]] = sp
            u.raid.standin[g["id"]] = sp
            u.jobs.add(sp.job)
            if sp.phase == COPYING:
                asyncio.create_task(sp.run())
            else:
                sp.job.state = DONE
                sp.job.pointer = sp.rows
                asyncio.create_task(sp.feedback(True))
            u.warn("group %d: sparing of drive %d resumed after a reset (%s, copy pointer %d, feedback %d/%d)"
                   % (g["id"], sp.drive, sp.phase, sp.ptr, sp.fb_ptr, sp.fb_total))

    # ---- T3: error management -------------------------------------------------------
    def in_use(self):
        """S13 "each of the disk drives being used": members of groups holding volumes."""
        gids = [v["group"] for v in self.u.sm.t["volumes"]]
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
                r["th"][t] = self.th[t]
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
        if self.cfg.get("judgement", "per-type") == "combined":
            total = 0
            for k in TYPES:
                total += r["n"][k]
            over = t if total >= self.cfg.get("combined_threshold", 8) else None
        else:
            over = t if r["n"][t] >= r["th"][t] else None                   # S13: N >= Th
        if over is None:
            return
        if self.mode == "auto":
            self.spared.append(d)
            asyncio.create_task(self._auto(d))                               # S14 after this I/O
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
        err = await self.start(d, self.cfg.get("start_paused", False))
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
        for p in self.cfg.get("pairs", []):
            ids.append(p.get("primary", 0))
            ids.append(p.get("secondary", 0))
        for sp in self.active.values():
            if sp.area is not None and sp.area.kind == "group":
                ids.extend([p["secondary"] for p in sp.area.pairs])
        return max(ids + [0]) + 1

    async def start(self, d, paused=False):
        """Start sparing drive d; return an error text (refused, and warned) or None."""
        u = self.u
        async with u.raid.lock:
            g = self.group_of(d)
            if g is None:
                return "sparing refused: drive %d is in no RAID group" % d
            if g["level"] != 5:
                return "sparing refused: group %d is RAID%d (sparing needs RAID5)" % (g["id"], g["level"])
            if g["id"] in self.active:
                return "sparing refused: group %d is already sparing drive %d" % (
                    g["id"], self.active[g["id"]].drive)
            m = g["members"].index(d)
            if u.sm.t["drives"][d]["state"] == "failed" or m in g["failed"]:
                return "sparing refused: drive %d has failed (rebuild it instead)" % d
            if len(g["failed"]) > 0:
                return "sparing refused: group %d is degraded" % g["id"]
            spare = -1
            for s in g["spares"]:
                if u.dka.usable(s) and u.sm.t["drives"][s]["blocks"] >= g["rows"]:
                    spare = s
                    break
            if spare < 0:
                return "sparing refused: group %d has no usable spare for drive %d" % (g["id"], d)
            if d not in self.spared:
                self.spared.append(d)
            sp = Spare(self, g, m, spare, paused)
            g["spares"].remove(spare)
            drives = u.sm.t["drives"]
            drives[d]["state"] = "faulty"
            drives[spare]["state"] = "sparing"
            self.active[g["id"]] = sp
            kind = self.cfg.get("backup", "none")
            if kind in KINDS:                                                # S31-S33 / S71-S75 / S131-S135
                sp.area = KINDS[kind].reserve(self, sp)
                if sp.area is None:
                    u.warn("group %d: no free %s backup area: writes go to the group" % (g["id"], kind))
            u.raid.standin[g["id"]] = sp
            u.jobs.add(sp.job)
            u.warn("group %d: sparing of drive %d onto drive %d started (%s copy, backup %s%s)"
                   % (g["id"], d, spare, sp.copy_mode, sp.area.kind if sp.area else "none",
                      ", faulty drive only" if sp.faulty_only else ""))
            u.sm.save()
        asyncio.create_task(sp.run())
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

    # ---- tables --------------------------------------------------------------------------
    def t1(self):
        secs = {}
        for sp in self.active.values():
            a = sp.area
            if a is not None and a.kind == "group":
                secs[a.sub["id"]] = [p["secondary"] for p in a.pairs]
        out = []
        for g in sorted(self.u.sm.t["groups"], key=lambda x: x["id"]):
            vols = sorted([v["id"] for v in self.u.sm.t["volumes"] if v["group"] == g["id"]])
            out.append({"group": g["id"], "volumes": vols + secs.get(g["id"], []),
                        "disks": list(g["members"]), "level": "RAID%d" % g["level"]})
        return out

    def t2(self):
        out = []
        for p in self.cfg.get("pairs", []):
            out.append({"primary": p["primary"], "secondary": p["secondary"],
                        "status": p.get("status", "DUPLEX"), "bitmap": ""})
        for gid in sorted(self.active):
            a = self.active[gid].area
            if a is not None and a.kind == "group":
                out.extend(a.t2_rows())
        return out

    def t4(self):
        from firmware.features.sparing.area import bits_text

        out = []
        for w in self.wvols:
            bms = {}
            for sp in self.active.values():
                for vid in w["primaries"]:
                    if vid in sp.vbm and not sp.faulty_only:
                        bms[str(vid)] = bits_text(sp.vbm[vid], sp.vtracks(vid))
            out.append({"wvol": w["wvol"], "capacity": w["capacity"], "primaries": list(w["primaries"]),
                        "terminal": w["terminal"], "bitmaps": bms})
        return out

    def journal(self):
        out = []
        for w in self.wvols:
            recs = []
            for j in range(w["terminal"]):
                r = w["recs"][j]
                if r is not None:
                    what = "disk" if self.cfg.get("faulty_only") else "volume"
                    recs.append({"jaddr": j + 1, what: r[2], "address": r[3] + 1})
            out.append({"wvol": w["wvol"], "records": recs})
        return out

    def t5(self):
        backing = []
        for sp in self.active.values():
            if sp.area is not None:
                backing.extend(sp.g["members"])
        return [{"disk": d["id"], "capacity": d["blocks"],
                 "status": BACKING_UP if d["id"] in backing else "NULL"} for d in self.u.sm.t["drives"]]

    def t6(self):
        return [{"disk": w["disk"], "capacity": w["capacity"], "status": w["status"],
                 "mains": list(w["mains"]), "terminal": w["terminal"]} for w in self.wdisks]

    def t7_table(self):
        rows = [r[:4] for r in self.t7]
        return {"rows": rows, "terminal": rows[-1][3] if rows else 0}

    def sparings(self):
        return list(self.done) + [self.active[g].info() for g in sorted(self.active)]

    def records(self, what):
        out = []
        for d in self.sparings():
            for row in (d["lost"] if what == "lost" else d["spare_write_errors"]):
                out.append({"group": d["group"], "drive": d["drive"] if what == "lost" else d["spare"], "row": row})
        return out

    def svp(self):
        return {"mode": self.mode, "terminated": self.terminated,
                "warnings": self.u.sm.t["sparing_warnings"], "t3": self.u.sm.t["T3"]}


async def op_sparing(u, cmd):
    """The service processor (Fig 7): errors (S21/S22), start (S25/S27), terminate (S26),
    info."""
    mgr = u.features["sparing"]
    act = cmd.get("action", "info")
    if act == "errors":
        return wire.OK, mgr.svp()
    if act == "info":
        return wire.OK, {"sparing": mgr.sparings()}
    if act == "terminate":
        mgr.terminated = True
        u.sm.save()
        return wire.OK, {}
    if act != "start":
        return wire.E_BAD_PARAM, {"error": "action must be errors, start, terminate or info"}
    if mgr.terminated:
        return wire.E_STATE, {"error": "the sparing loop was terminated"}
    d = cmd.get("drive", -1)
    if d is None or d == -1:
        d = -1
        for w in u.sm.t["sparing_warnings"]:
            if w["drive"] not in mgr.spared:
                d = w["drive"]
                break
        if d < 0:
            return wire.E_STATE, {"error": "no warned drive to spare"}
    if not isinstance(d, int) or isinstance(d, bool) or d < 0 or d >= len(u.sm.t["drives"]):
        return wire.E_BAD_PARAM, {"error": "no drive %r" % (d,)}
    err = await mgr.start(d, bool(cmd.get("paused", mgr.cfg.get("start_paused", False))))
    if err:
        u.warn(err)
        return wire.E_STATE, {"error": err}
    g = mgr.group_of(d)
    return wire.OK, {"group": g["id"], "drive": d, "spare": mgr.active[g["id"]].spare}


def attach(u):
    mgr = Manager(u)
    u.sm.before_save.append(mgr.sync)
    mgr.resume()
    u.dka.observers.append(mgr.observe)
    u.ops["sparing"] = op_sparing

    async def write_hook(u, v, lba, count, data):
        sp = mgr.active.get(v["group"])
        if sp is None or sp.area is None or sp.faulty_only or sp.phase not in (COPYING, "feedback"):
            return None
        return await sp.host_write(v, lba, count, data)

    async def read_hook(u, v, lba, count, out):
        sp = mgr.active.get(v["group"])
        if sp is None or sp.area is None or sp.faulty_only:
            return None
        return await sp.host_read(v, lba, count, out)

    u.write_hooks.append(write_hook)
    u.read_hooks.append(read_hook)
    tf = u.table_fns
    tf["T1"] = lambda u: mgr.t1()
    tf["T2"] = lambda u: mgr.t2()
    tf["T3"] = lambda u: u.sm.t["T3"]
    tf["T4"] = lambda u: mgr.t4()
    tf["journal"] = lambda u: mgr.journal()
    tf["T5"] = lambda u: mgr.t5()
    tf["T6"] = lambda u: mgr.t6()
    tf["T7"] = lambda u: mgr.t7_table()
    tf["sparing"] = lambda u: mgr.sparings()
    tf["sparing_warnings"] = lambda u: u.sm.t["sparing_warnings"]
    tf["lost_data"] = lambda u: mgr.records("lost")
    tf["spare_write_errors"] = lambda u: mgr.records("swe")
    tf["svp"] = lambda u: mgr.svp()
    return mgr
