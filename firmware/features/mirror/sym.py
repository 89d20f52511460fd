# Mirror (seed 002), example 3 (Figs 17, 19, 20; [0072]-[0079]): two symmetric volumes,
# each unit's host writes its own.  Set beforehand: one volume is the exclusive main
# volume, the other the exclusive subvolume (setting "exclusive" = "main" | "sub").
#   exclusive main  842 reserved by another host? -> 848 RESERVATION CONFLICT
#                   843 excluded? -> 850 standby, retry; 844 obtain; 845 write self, then
#                   the target (always completes: waits while the target is held); 855, 846
#   exclusive sub   859 reserved? -> 834 RESERVATION CONFLICT; 860 excluded (or the main
#                   side waits for us)? -> 836 standby, retry; 861 obtain; 862 transfer:
#                   EXCLUSIVE -> 832/851 release, 833 standby, retry; RESERVED -> 837/852
#                   release, 838 RESERVATION CONFLICT; OK -> 853 write self, 854, 840 GOOD
# The target's processing (I24): the peer message XSUB / XMAIN.  Reserve (RSV-self, then
# RSV-peer over this unit's outgoing path) and release by the op mirror_reserve.
# Asynchronous ([0077]): GOOD once the host's data is in a 521-style slot and the
# reservation check passed; the transfer runs on (a later result goes to async_status).
import asyncio

from firmware import store, wire
from firmware.features.mirror import chain
from firmware.features.mirror.comm import Slots
from firmware.link import sleep_ms
from firmware.raid import GOOD

OP_XSUB = 7       # from the exclusive-sub side: answer data 1 = EXCLUSIVE
OP_XMAIN = 8      # from the exclusive-main side: waits while the target is held
OP_RSV = 9        # entry = the reserving host
OP_RLS = 10
EXCLUSIVE = 1
STANDBY_MS = 5    # 833: the sub side's pause before it tries again


class SymSide(chain.Pair):
    def __init__(self, u, cfg):
        chain.Pair.__init__(self, u, cfg)
        self.excl = cfg["exclusive"]
        self.host = cfg["host"]
        self.st.setdefault("reserved_by", 0)
        self.held = None          # the exclusive status of the self volume: who holds it
        self.waiters = 0          # main-side transfers waiting for it (I23)
        self.free = asyncio.Event()
        self.pre = memoryview(bytearray(u.link.max_payload))
        self.res = bytearray(1)
        self.slots = Slots(cfg.get("slots", 4), u.link.max_payload) if self.mode == "async" else None
        last = self.st.get("inflight")
        if last and last not in self.st["resync"]:     # a reset may have cut that write short
            self.st["resync"].append(last)

    def ev3(self, step, lba, count, *more):
        self.ev("JOBX", step, lba, count, *more)

    def other(self, host):
        r = self.st["reserved_by"]
        return r != 0 and r != host

    async def released(self):
        while self.held is not None:
            self.free.clear()
            await self.free.wait()

    def release(self):
        self.held = None
        self.free.set()

    def mark(self, lba, count):
        """The extent about to change, in SM: after a reset it is copied over again
        (one save per write; the mark stays until the next write's)."""
        self.st["inflight"] = [lba, count]
        self.u.sm.save()

    # ---- the host's write ------------------------------------------------------------
    async def write(self, u, v, lba, count, data):
        if count * u.bs > len(self.pre):
            return wire.E_BAD_LENGTH
        self.ev3(857, lba, count)
        if self.other(self.host):                                  # 842 / 859
            self.ev3(848 if self.excl == "main" else 834, lba, count)
            return wire.E_RESERVATION_CONFLICT
        if self.slots is None:
            return await self.run(v, lba, count, data)
        i = await self.slots.take()
        self.slots.put(i, data)
        asyncio.create_task(self.later(v, lba, count, i))
        self.ev3("good", lba, count, "async")
        return wire.OK

    async def later(self, v, lba, count, i):
        try:
            st = await self.run(v, lba, count, self.slots.data(i, count * self.u.bs))
        finally:
            self.slots.give(i)
        if st != wire.OK:
            self.cnt["async_checks"] += 1
            self.st["async_status"] = wire.status_name(st)

    async def run(self, v, lba, count, data):
        if self.excl == "main":
            return await self.as_main(v, lba, count, data)
        return await self.as_sub(v, lba, count, data)

    async def as_main(self, v, lba, count, data):
        u = self.u
        while True:
            if self.other(self.host):
                self.ev3(848, lba, count)
                return wire.E_RESERVATION_CONFLICT
            if self.held is None:
                break
            self.ev3(850, lba, count, self.held)                   # 843 -> 850 standby
            await self.released()
        self.held = "main"                                         # 844
        try:
            pre = self.pre[:count * u.bs]
            st = await store.read_vol(u, v, lba, count, pre)
            if st not in GOOD:
                return st
            self.mark(lba, count)
            await store.write_vol(u, v, lba, count, data)
            self.ev3(845, lba, count, "self")
            await self.step()
            st = await self.send(OP_XMAIN, self.peer_vol, lba, count, self.host, data, None)
            self.cnt["copies"] += 1
            self.ev3(845, lba, count, "target", wire.status_name(st))
            if st != wire.OK:                                      # the path: put ours back
                await store.write_vol(u, v, lba, count, pre)
                self.cnt["checks"] += 1
                self.resync_add(lba, count)
                return wire.E_CHECK
        finally:
            self.release()                                         # 855
        self.ev3(846, lba, count)
        return wire.OK

    async def as_sub(self, v, lba, count, data):
        u = self.u
        while True:
            if self.other(self.host):
                self.ev3(834, lba, count)
                return wire.E_RESERVATION_CONFLICT
            if self.held is not None or self.waiters:
                self.ev3(836, lba, count, self.held or "waiter")   # 860 -> 836 standby
                if self.held is None:
                    await sleep_ms(STANDBY_MS)
                await self.released()
                continue
            self.held = "sub"                                      # 861
            await self.step()
            self.res[0] = 0
            self.mark(lba, count)
            self.ev3(862, lba, count)
            st = await self.send(OP_XSUB, self.peer_vol, lba, count, self.host, data, self.res)
            self.cnt["copies"] += 1
            if st == wire.OK and self.res[0] == EXCLUSIVE:
                self.release()                                     # 832 -> 851, 833
                self.ev3(832, lba, count)
                self.cnt["retries"] += 1
                await sleep_ms(STANDBY_MS)
                continue
            if st == wire.E_RESERVATION_CONFLICT:                  # 837 -> 852, 838
                self.release()
                self.ev3(838, lba, count)
                return st
            if st != wire.OK:
                self.release()
                self.cnt["checks"] += 1
                self.resync_add(lba, count)    # did the target write it? the main side decides
                return wire.E_CHECK
            await store.write_vol(u, v, lba, count, data)          # 853
            self.release()                                         # 854
            self.ev3(840, lba, count)
            return wire.OK

    # ---- the target's processing (I24) -------------------------------------------------
    async def target(self, v, op, lba, count, host, data):
        u = self.u
        if len(data) != count * u.bs:
            return wire.E_BAD_LENGTH, None
        if op == OP_XSUB:
            if self.other(host):
                self.ev3("T-reserved", lba, count)
                return wire.E_RESERVATION_CONFLICT, None
            if self.held is not None or self.waiters:
                self.ev3("T-exclusive", lba, count, self.held or "waiter")
                return wire.OK, b"\x01"
        else:
            self.waiters += 1
            try:
                await self.released()
            finally:
                self.waiters -= 1
        self.held = "target"
        try:
            await store.write_vol(u, v, lba, count, data)
            self.ev3("T-write", lba, count)
        finally:
            self.release()
        return wire.OK, None

    async def on_msg(self, u, req, v, op, lba, count, entry, data):
        link = u.link
        if op == OP_XSUB or op == OP_XMAIN:
            st, extra = await self.target(v, op, lba, count, entry, data)
            return link.respond(req.ch, req.kind, req.seq, st, extra or b"")
        if op == OP_RSV:
            if self.other(entry):
                return link.respond(req.ch, req.kind, req.seq, wire.E_RESERVATION_CONFLICT)
            self.reserve(entry, "RSV-peer")
            return link.respond(req.ch, req.kind, req.seq, wire.OK)
        if op == OP_RLS:
            self.reserve(0, "RLS-peer")
            return link.respond(req.ch, req.kind, req.seq, wire.OK)
        if op == chain.OP_RESYNC:
            return link.respond(req.ch, req.kind, req.seq, await self.push(lba, count))
        link.respond(req.ch, req.kind, req.seq, wire.E_STATE)

    def reserve(self, host, what):
        self.st["reserved_by"] = host
        self.u.sm.save()
        self.ev3(what, 0, 0, host)

    async def op_reserve(self, u, cmd):
        """RESERVE / RELEASE by this unit's host: the self volume, then the peer's."""
        act = cmd.get("action")
        if act == "reserve":
            if self.other(self.host):
                return wire.E_RESERVATION_CONFLICT, {"error": "reserved by host %d" % self.st["reserved_by"]}
            self.reserve(self.host, "RSV-self")
            await self.step()
            st = await self.send(OP_RSV, self.peer_vol, 0, 1, self.host, b"", None)
            if st != wire.OK:
                self.reserve(0, "RSV-withdrawn")
                return st, {"error": "peer: %s" % wire.status_name(st)}
        elif act == "release":
            if self.other(self.host):
                return wire.E_RESERVATION_CONFLICT, {"error": "reserved by host %d" % self.st["reserved_by"]}
            self.reserve(0, "RLS-self")
            st = await self.send(OP_RLS, self.peer_vol, 0, 1, self.host, b"", None)
            if st != wire.OK:
                return st, {"error": "peer: %s" % wire.status_name(st)}
        else:
            return wire.E_BAD_PARAM, {"error": "action must be reserve or release"}
        return wire.OK, {"reserved_by": self.st["reserved_by"]}

    # ---- reads ([0079]) and resync ------------------------------------------------------
    async def read(self, u, v, lba, count, out):
        if self.other(self.host):
            return wire.E_RESERVATION_CONFLICT
        self.cnt["direct_reads"] += 1
        return None

    async def push(self, lba, count):
        """The exclusive main copies its extent to the target again (a resync)."""
        from firmware.cha import volume

        if self.excl != "main":
            return await self.send(chain.OP_RESYNC, self.peer_vol, lba, count, 0, b"", None)
        u = self.u
        v = volume(u, self.vol)
        while self.held is not None:
            await self.released()
        self.held = "resync"
        try:
            buf = self.pre[:count * u.bs]
            st = await store.read_vol(u, v, lba, count, buf)
            if st not in GOOD:
                return st
            return await self.send(OP_XMAIN, self.peer_vol, lba, count, 0, buf, None)
        finally:
            self.release()
