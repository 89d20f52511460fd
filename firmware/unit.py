# A storage unit: boots from its board definition and persisted shared memory, then
# runs the link reader, the request workers (CHA / management / peer), the destage
# task, the SM saver and the background jobs as cooperative asyncio tasks.
import asyncio
import json
import sys

from firmware import cha, core, features, iopath, mgmt, store, wire
from firmware.cache import Cache
from firmware.dka import DKA, FAILED
from firmware.jobs import DONE, Job, Jobs
from firmware.link import Link, Pending, sleep_ms, wait_ms
from firmware.nvcache import NVCache
from firmware.raid import GOOD, Raid
from firmware.sm import SharedMemory

BOARD_DEFAULTS = (   # (key, value) pairs: a constant tuple, kept in flash when frozen
    ("name", "board"),
    ("max_payload", 16384),   # largest frame payload the board accepts
    ("cache_slots", 64),
    ("max_members", 8),
    ("workers", 4),
    ("rx_chunk", 1024),       # bytes read from the serial port per call
    ("raid_sets", 0),         # rows of healthy groups worked on at once (0: one at a time)
    ("destage_ms", 20),
    ("save_ms", 500),
    ("retry_ms", 300),        # resend a drive/peer request not answered within this time
    ("nv_cache", False),      # keep dirty cache slots in a file too (battery-backed cache)
)
MAX_WARNINGS = 32
FEATURE_REQUESTS = 6   # request slots added for the features (none without one, or with only LOCAL ones)


class Unit:
    def __init__(self, board, port, sm_path="sm.json"):
        b = dict(BOARD_DEFAULTS)
        b.update(board)
        self.board = b
        self.sm = SharedMemory(sm_path)
        # drive/peer requests in flight: a member's worth per RAID lock holder and one
        # spare, one per worker (direct reads), two for management ops, and
        # FEATURE_REQUESTS more once a feature is configured (setup)
        npending = (b["max_members"] + 1) * (b["raid_sets"] + 2) + 2 + b["workers"]
        self.link = Link(port, b["max_payload"], b["workers"], npending=npending,
                         retry_ms=b["retry_ms"], rx_chunk=b["rx_chunk"])
        self.link.handler = self.handle
        self.dka = DKA(self)
        self.jobs = Jobs()
        self.cache = None
        self.raid = None
        self.bs = 0
        self.write_through = False
        self.high_water = 1
        self.destage_ev = asyncio.Event()
        self.slot_ev = asyncio.Event()
        # what features register (firmware/features/__init__.py)
        self.peer_handlers = {}    # subtype byte -> async handler(u, req, payload)
        self.ops = {}
        self.table_fns = {}
        self.path = iopath.Path()  # the I/O path's stages
        self.cache_observers = []
        self.plog_observers = []   # async fn(record or None): the parity log opened / closed
        self.clean_observers = []  # fn(slot): a destage made that dirty slot clean
        self.destage_filter = None  # fn(key) -> False: another controller destages it
        self.standby = False       # a dual unit's standby controller (features/__init__.py)
        self.frame_observers = []
        self.link.on_frame = self._frame
        self.features = {}         # name -> the feature's object
        self.regs = {}             # name -> its Registration
        self.feature_errors = {}   # name -> why it could not attach (host I/O refused then)
        self.tracing = False       # trace events on CH_LOG (mgmt op "trace")
        self.mem_peak = 0          # largest live heap seen by the "mem" table
        self.feature_requests = 0  # request slots added for features (setup)
        self.mem_steps = {}        # live heap after the imports, Unit() and configure (mem table)
        self._mem_step("unit")

    # ---- configuration -----------------------------------------------------
    def configured(self):
        return "config" in self.sm.t

    def group(self, gid):
        for g in self.sm.t["groups"]:
            if g["id"] == gid:
                return g
        return None

    def setup(self):
        """Build the runtime (cache, RAID) from the SM tables."""
        cfg = self.sm.t["config"]
        self.bs = cfg["block_size"]
        self.write_through = cfg.get("cache_mode", "write-back") == "write-through"
        n = self.board["cache_slots"]
        nv = None
        if self.board.get("nv_cache"):
            nv = NVCache(self.sm.path[:-len("sm.json")] + "cache.nv", n, self.bs, self.link.enc.enc)
        if self.cache is not None and self.cache.nv is not None:
            self.cache.nv.close()
        self.cache = Cache(n, self.bs, nv)
        if self.cache.restore():
            self.warn("%d dirty cache slots restored from the non-volatile cache" % self.cache.ndirty)
            self.destage_ev.set()
        self.high_water = max(1, n // 2)
        # scratch blocks for the widest configured group (the board's max_members bounds it)
        # rather than for the widest the board allows
        width = max([len(g["members"]) for g in self.sm.t["groups"]] + [2])
        self.raid = Raid(self, self.bs, width, self.board["raid_sets"])
        if nv is not None:
            self.raid.pending_repair = nv.plog_get()   # a row written part-way at a reset
        if features.need_requests(cfg.get("features", [])) and not self.feature_requests:
            self.link.free.extend([Pending() for _ in range(FEATURE_REQUESTS)])
            self.feature_requests = FEATURE_REQUESTS
        features.attach_all(self)
        for g in self.sm.t["groups"]:
            rb = g.get("rebuild")
            if rb and not self.standby:   # a standby's rebuilds start when it takes over
                self.start_rebuild_job(g)
        self._mem_step("configured")

    def _mem_step(self, name):
        import gc

        if hasattr(gc, "mem_alloc"):   # MicroPython: the live heap after a collection
            gc.collect()
            self.mem_steps[name] = gc.mem_alloc()

    def _frame(self, ch, kind, seq, payload):
        for fn in self.frame_observers:
            fn(ch, kind, seq, payload)

    def trace(self, ev, *fields):
        """A trace event on the log channel: "T <event> <field> ..." (when tracing)."""
        if self.tracing:
            try:
                self.link.log(("T " + ev + "".join([" " + str(f) for f in fields])).encode())
            except Exception:
                pass

    def warn(self, text):
        w = self.sm.t.setdefault("warnings", [])
        w.append(text)
        if len(w) > MAX_WARNINGS:
            w.pop(0)
        self.sm.dirty = True
        try:
            self.link.log(text.encode())
        except Exception:
            pass

    # ---- drive failure and rebuild ------------------------------------------------
    def fail_drive(self, d, why):
        drives = self.sm.t["drives"]
        dr = drives[d]
        if dr["state"] == FAILED:
            return
        dr["state"] = FAILED
        dr["why"] = why
        self.warn("drive %d failed (%s)" % (d, why))
        for g in self.sm.t["groups"]:
            if d in g["spares"]:
                g["spares"].remove(d)
            rb = g["rebuild"]
            if rb and rb["spare"] == d:
                g["rebuild"] = None
                g["state"] = "degraded"
                job = self.jobs.get("rebuild%d" % g["id"])
                if job:
                    job.state = "failed"
                    job.note = "spare drive %d failed" % d
                    job.ev.set()
                self.warn("group %d: rebuild stopped, spare drive %d failed" % (g["id"], d))
            if d in g["members"]:
                m = g["members"].index(d)
                if m not in g["failed"]:
                    g["failed"].append(m)
                if len(g["failed"]) > 1:
                    g["state"] = "failed"
                    self.warn("group %d has lost %d members: data lost" % (g["id"], len(g["failed"])))
                else:
                    g["state"] = "degraded" if not g["rebuild"] else g["state"]
                    self.warn("group %d degraded (member %d, drive %d)" % (g["id"], m, d))
                    if g.get("auto_rebuild", True) and not g["rebuild"]:
                        self.start_rebuild(g)
        self.sm.save()

    def start_rebuild(self, g, spare=-1, paused=False):
        """Rebuild the failed member of g onto a spare; return an error text or None."""
        if len(g["failed"]) != 1:
            return "group %d has %d failed members; rebuild needs exactly one" % (
                g["id"], len(g["failed"]))
        if g["rebuild"]:
            return "group %d is already rebuilding" % g["id"]
        cands = g["spares"] if spare < 0 else [spare]
        for s in cands:
            if s in g["spares"] and self.dka.usable(s) and self.sm.t["drives"][s]["blocks"] >= g["rows"]:
                g["rebuild"] = {"member": g["failed"][0], "spare": s, "pointer": 0, "lost": [],
                                "paused": bool(paused)}
                g["state"] = "rebuilding"
                self.sm.t["drives"][s]["state"] = "rebuilding"
                self.sm.save()
                self.start_rebuild_job(g)
                self.warn("group %d: rebuild onto drive %d started" % (g["id"], s))
                return None
        return "group %d: no usable spare" % g["id"]

    def start_rebuild_job(self, g):
        rb = g["rebuild"]
        name = "rebuild%d" % g["id"]
        job = self.jobs.add(Job(name, "rebuild", g["rows"], rb["pointer"], rb["paused"]))
        job.persist = rb
        asyncio.create_task(self._rebuild(g, rb, job))

    async def _rebuild(self, g, rb, job):
        raid = self.raid
        every = max(1, g["rows"] // 64)
        while rb["pointer"] < g["rows"]:
            await job.gate()
            if g["rebuild"] is not rb:
                return
            row = rb["pointer"]
            async with raid.lock:
                st = await raid.rebuild_row(g, row)
            if g["rebuild"] is not rb:
                return
            if st == wire.E_DATA_LOST:
                if len(rb["lost"]) < 64:
                    rb["lost"].append(row)
                rb["nlost"] = rb.get("nlost", 0) + 1
            elif st not in GOOD:
                return
            rb["pointer"] = row + 1
            job.pointer = row + 1
            if job.pointer % every == 0:
                self.sm.dirty = True
        m = rb["member"]
        old = g["members"][m]
        g["members"][m] = rb["spare"]
        g["failed"].remove(m)
        g["spares"].remove(rb["spare"])
        self.sm.t["drives"][rb["spare"]]["state"] = "normal"
        g["rebuild"] = None
        g["state"] = "normal" if not g["failed"] else "degraded"
        job.state = DONE
        nl = rb.get("nlost", 0)
        job.note = "replaced drive %d; %d rows lost" % (old, nl)
        self.warn("group %d: rebuild onto drive %d complete (%d rows lost)" % (g["id"], rb["spare"], nl))
        self.sm.save()

    # ---- requests ----------------------------------------------------------------
    async def handle(self, req):
        ch = req.ch
        if ch == wire.CH_MGMT:
            return await mgmt.handle(self, req)
        if not self.configured():
            return self.link.respond(ch, req.kind, req.seq, wire.E_STATE)
        if ch < wire.CH_DRIVE:
            return await cha.handle(self, req)
        if wire.CH_PEER <= ch < wire.CH_MGMT:
            from firmware import peer  # loaded with the first peer request (or a feature)

            return await peer.handle(self, req)
        self.link.respond(ch, req.kind, req.seq, wire.E_UNKNOWN_CHANNEL)

    # ---- tasks ------------------------------------------------------------------
    async def destager(self):
        while True:
            try:
                await wait_ms(self.destage_ev.wait(), self.board["destage_ms"])
            except asyncio.TimeoutError:
                pass
            self.destage_ev.clear()
            if self.cache is not None and self.cache.ndirty:
                try:
                    await store.destage(self)
                except Exception as e:  # report, keep the data dirty, try again later
                    self.warn("destage error: %r" % (e,))

    async def saver(self):
        while True:
            await sleep_ms(self.board["save_ms"])
            if self.sm.dirty:
                self.sm.save()

    def hello(self):
        boot = self.sm.t.setdefault("boot", {"count": 0})
        return json.dumps({
            "board": self.board["name"], "impl": sys.implementation.name,
            "core": core.BACKEND, "max_payload": self.board["max_payload"],
            "workers": self.board["workers"],
            "configured": self.configured(), "boots": boot["count"],
        }).encode()

    async def run(self):
        self.sm.load()
        boot = self.sm.t.setdefault("boot", {"count": 0})
        boot["count"] += 1
        self.sm.save()
        if self.configured():
            self.setup()
        self.link.send(wire.CH_LINK, wire.K_HELLO, 0, b"", self.hello())
        for w in self.link.workers:
            asyncio.create_task(self.link.worker(w))
        asyncio.create_task(self.destager())
        asyncio.create_task(self.saver())
        await self.link.run()
        if self.sm.dirty:
            self.sm.save()
