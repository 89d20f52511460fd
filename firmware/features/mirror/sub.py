# Mirror (seed 002): the sub unit's side of the job chain.
#   JOB1  a sub-host write: entry in 515, data into a 521 slot (701), mirror state (702)
#   JOB3  forwards it to the main unit over 203, parameters then data (713-715); in
#         example 2 the sub volume's own job does it (804, 813-817)
#   JOB2  the copy from the main unit writes the sub volume (709-712)
#   the pending list (514): the sub's unfinished forwards, the main unit's write notices
#   ([0061]) and the resync list; a read that overlaps none is served here
import asyncio

from firmware import core, store, wire
from firmware.features.mirror import chain
from firmware.features.mirror.comm import Comm
from firmware.link import sleep_ms
from firmware.raid import GOOD


class SubSide(chain.Pair):
    def __init__(self, u, cfg, v):
        chain.Pair.__init__(self, u, cfg)
        self.comm = Comm(self, cfg)
        # 515: one entry per 521 slot, allocated here and filled per write
        self.ents = [{"entry": 0, "516": self.vol, "517": self.peer_vol, "518": self.out, "519": "write",
                      "520": [0, 0], "slot": i, "live": False, "chained": False, "on603": False}
                     for i in range(len(self.comm.slots.free))]
        self.notes = {}           # note id -> [lba, count] of a main-host write in flight
        self.blocks = v["blocks"]
        self.pend = core.bitmap_new(v["blocks"])
        self.ex2 = self.comm.kind == "none"        # example 2: JOB3 runs in the sub volume
        self.order = asyncio.Lock()                # asynchronous forwards, one at a time

    # ---- the pending list (514) ------------------------------------------------------
    def live(self):
        return sorted([e for e in self.ents if e["live"]], key=lambda e: e["entry"])

    def find(self, n):
        for e in self.ents:
            if e["live"] and e["entry"] == n:
                return e
        return None

    def pending(self):
        out = [e["520"] for e in self.live() if not e["chained"]]
        return out + list(self.notes.values()) + list(self.st["resync"])

    def changed(self):
        pend = self.pend
        core.range_clear(pend, 0, self.blocks)
        for e in self.ents:
            if e["live"] and not e["chained"]:
                core.range_set(pend, e["520"][0], e["520"][1])
        for a in self.notes.values():
            core.range_set(pend, a[0], a[1])
        for a in self.st["resync"]:
            core.range_set(pend, a[0], a[1])

    def fill(self, i, n, lba, count, on603):
        e = self.ents[i]
        e["entry"] = n
        e["520"][0] = lba
        e["520"][1] = count
        e["chained"] = False
        e["on603"] = on603
        e["live"] = True
        return e

    def restarted(self):
        # the main unit restarted: its noticed writes may be on its volume and not on ours
        for n in list(self.notes):
            lba, count = self.notes.pop(n)
            self.resync_add(lba, count)
        chain.Pair.restarted(self)

    # ---- JOB1 / JOB3 -------------------------------------------------------------------
    async def write(self, u, v, lba, count, data):
        if self.st["state"] != "normal":                          # 702 -> 703
            self.cnt["checks"] += 1
            self.ev("JOB1", 703, lba, count)
            return wire.E_CHECK
        slots = self.comm.slots
        if count * u.bs > slots.size:
            return wire.E_BAD_LENGTH
        i = await slots.take()
        n = self.st["next"]
        self.st["next"] = n % 65535 + 1
        slots.put(i, data)
        e = self.fill(i, n, lba, count, not self.comm.disk)       # 701
        self.changed()
        self.ev("JOB1", 701, lba, count, n)
        if self.mode == "async" and self.comm.disk:
            # an acknowledged write must survive a reset: 603 gets it now (through the
            # battery-backed cache; its disk write is the destager's) and SM its entry
            await store.write_vol(u, self.comm.volume(), lba, count, data)
            e["on603"] = True
            self.st.setdefault("async", []).append([n, lba, count])
            u.sm.save()
        else:
            self.comm.queue(n)
        self.ev("JOB1", 804 if self.ex2 else 704, lba, count, n)
        if self.mode == "async":                                  # Fig 9: GOOD first
            asyncio.create_task(self.forward(e))
            self.ev("JOB1", 707, lba, count, "OK")
            return wire.OK
        st = await self.forward(e)
        self.ev("JOB1", 707, lba, count, wire.status_name(st))
        return wire.OK if st in GOOD else wire.E_CHECK

    async def forward(self, e):
        if self.mode != "async":
            return await self.forward1(e)
        async with self.order:              # acknowledged writes reach the main unit in order
            return await self.forward1(e)

    async def forward1(self, e):
        n = e["entry"]
        lba, count = e["520"]
        data = self.comm.slots.data(e["slot"], count * self.u.bs)
        while True:
            await self.step()
            if self.ex2:
                self.ev("JOB3", 813, lba, count, n)                # 602's own processing passed over
            self.ev("JOB3", 816 if self.ex2 else 714, lba, count, n)   # 713/814-815: 517, 518
            st = await self.send(chain.OP_FWD, self.peer_vol, lba, count, n, data, None)
            self.cnt["forwarded"] += 1
            if st in (wire.OK, wire.E_CHECK) or self.mode != "async":
                break
            self.cnt["retries"] += 1                              # asynchronous: the write is acknowledged
            self.ev("JOB3", "retry", lba, count, wire.status_name(st))
            await sleep_ms(chain.RETRY_MS)
        self.ev("JOB3", 718, lba, count, wire.status_name(st))
        if st not in (wire.OK, wire.E_CHECK):
            self.resync_add(lba, count)          # the main unit may have stored it: ask again
        if st != wire.OK and self.mode == "async":
            self.cnt["async_checks"] += 1
            self.st["async_status"] = wire.status_name(st)
        e["chained"] = True
        kept = self.st.get("async")
        if kept and [n, lba, count] in kept:
            kept.remove([n, lba, count])
            self.u.sm.save()
        self.release(e)
        return st

    async def replay(self):
        """After a reset: the acknowledged asynchronous writes not yet forwarded, their
        data read back from 603."""
        u = self.u
        for n, lba, count in list(self.st.get("async", [])):
            i = await self.comm.slots.take()
            data = self.comm.slots.data(i, count * u.bs)
            await store.read_vol(u, self.comm.volume(), lba, count, data)
            e = self.fill(i, n, lba, count, True)
            self.changed()
            self.ev("JOB1", "replay", lba, count, n)
            self.cnt["replayed"] += 1
            asyncio.create_task(self.forward(e))

    def release(self, e):
        if e["chained"] and e["on603"] and e["live"]:
            e["live"] = False
            slots = self.comm.slots
            if not slots.own:
                slots.bufs[e["slot"]] = None       # the request's buffer is its own again
            slots.give(e["slot"])
        self.changed()

    # ---- JOB2 --------------------------------------------------------------------------
    async def copy(self, v, op, lba, count, entry, data):
        u = self.u
        if (op == chain.OP_COPYM or len(data)) and len(data) != count * u.bs:
            return wire.E_BAD_LENGTH                              # before anything changes
        if op == chain.OP_COPYM and entry:
            if self.notes.pop(entry, None) is not None:
                self.changed()
        elif op == chain.OP_COPYM:
            # a resync push: sent under the main unit's lock, so any notice it covers
            # belongs to a write whose copy was lost
            for k in [k for k, (a, n) in self.notes.items() if a < lba + count and lba < a + n]:
                self.notes.pop(k)
            self.changed()
        if self.st["state"] != "normal":                          # 709 -> 710
            self.cnt["checks"] += 1
            self.ev("JOB2", 710, lba, count)
            return wire.E_CHECK
        if op == chain.OP_COPY and not len(data):                 # [0058]: the data is in 521
            e = self.find(entry)
            if e is None or e["520"][0] != lba or e["520"][1] != count:
                return wire.E_STATE
            data = self.comm.slots.data(e["slot"], count * u.bs)
        self.ev("JOB2", 711, lba, count, entry)
        await store.write_vol(u, v, lba, count, data)
        return wire.OK

    def notice(self, lba, count, entry):
        self.notes[entry] = [lba, count]
        self.changed()
        self.ev("JOB2", "notice", lba, count, entry)
        return wire.OK

    # ---- reads -------------------------------------------------------------------------
    async def read(self, u, v, lba, count, out):
        if self.st["state"] != "normal":
            self.cnt["checks"] += 1
            return wire.E_CHECK
        if core.next_set(self.pend, lba, lba + count) < 0:        # [0061] direct read
            self.cnt["direct_reads"] += 1
            self.ev("JOB1", "DR", lba, count)
            return None
        self.cnt["main_reads"] += 1
        self.ev("JOB1", "read-main", lba, count)
        return await self.send(chain.OP_READ, self.peer_vol, lba, count, 0, b"", out)

    async def pull(self, lba, count):
        """The resync task's step: the main unit copies its extent here again."""
        return await self.send(chain.OP_RESYNC, self.peer_vol, lba, count, 0, b"", None)

    async def on_msg(self, u, req, v, op, lba, count, entry, data):
        if op == chain.OP_COPY or op == chain.OP_COPYM:
            st = await self.copy(v, op, lba, count, entry, data)
        elif op == chain.OP_NOTE:
            st = self.notice(lba, count, entry)
        else:
            st = wire.E_STATE
        u.link.respond(req.ch, req.kind, req.seq, st)
