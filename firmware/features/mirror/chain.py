# Mirror (seed 002): the job chain of example 1 on peer channels.  One message format,
# PEER subtype MSG: op u8, volume u16, lba u32, count u16, entry u16, then the data
# (none when the copy is skipped because the data is already in the sub unit's memory).
#   FWD  sub -> main over 203 (JOB3 -> JOB4): write the main volume, then copy back
#   COPY main -> sub over 202 (JOB5 -> JOB2): write the sub volume (709: CHECK if abnormal)
#   READ sub -> main over 203: a sub-host read that overlaps a pending write
import struct

from firmware import core, store, wire
from firmware.cha import volume
from firmware.raid import GOOD

MSG = 0x60
HEAD = "<BBHIHH"
HL = 12
OP_FWD = 1
OP_COPY = 2
OP_READ = 3
TIMEOUT_MS = 5000


class Mirror:
    def __init__(self, u, cfg):
        self.u = u
        self.role = cfg["role"]
        self.vol = cfg["volume"]
        self.peer_vol = cfg["peer_volume"]
        self.out = cfg["out_peer"]
        self.st = u.sm.t.setdefault("mirror", {"state": "normal", "next": 1})
        self.t515 = {}            # entry -> {516, 517, 518, 519, 520}
        self.t521 = {}            # entry -> the sub host's write data (in the request buffer)
        v = volume(u, self.vol)
        self.pend = core.bitmap_new(v["blocks"])   # blocks of pending writes (514)
        self.lock = None
        self.cnt = {"forwarded": 0, "copies": 0, "skipped": 0, "skipped_bytes": 0, "checks": 0,
                    "direct_reads": 0, "main_reads": 0}
        self.head = bytearray(HL)
        self.pre = memoryview(bytearray(u.link.max_payload))   # the pre-image of one write (under the lock)

    # ---- registration ------------------------------------------------------------
    def register(self, reg):
        import asyncio

        self.lock = asyncio.Lock()
        mine = self.is_mine
        reg.stage("redirect", self.main_write if self.role == "main" else self.sub_write, when=mine)
        if self.role == "sub":
            reg.stage("read", self.sub_read, when=mine)
        reg.peer(MSG, self.on_msg)
        reg.op("mirror_state", self.op_state)
        reg.table("mirror", lambda u: self.info())
        reg.table("mirror_515", lambda u: [self.t515[k] for k in sorted(self.t515)])
        reg.table("mirror_514", lambda u: [[e["520"][0], e["520"][1]] for e in self.t515.values()])
        reg.table("mirror_521", lambda u: [{"entry": k, "bytes": len(self.t521[k])} for k in sorted(self.t521)])

    def is_mine(self, v):
        return v["id"] == self.vol

    def info(self):
        return {"role": self.role, "volume": self.vol, "peer_volume": self.peer_vol,
                "state": self.st["state"], "counters": self.cnt}

    async def op_state(self, u, cmd):
        s = cmd.get("state")
        if s not in ("normal", "abnormal"):
            return wire.E_BAD_PARAM, {"error": "state must be normal or abnormal"}
        self.st["state"] = s
        u.sm.save()
        return wire.OK, {"state": s}

    # ---- peer messages -------------------------------------------------------------
    async def send(self, op, vol, lba, count, entry, data, into):
        struct.pack_into(HEAD, self.head, 0, MSG, op, vol, lba, count, entry)
        link = self.u.link
        p = link.start(wire.CH_PEER + self.out, wire.K_PEER, self.head, data, into)
        if p is None:
            return wire.E_BUSY
        return await link.finish(p, TIMEOUT_MS)

    async def on_msg(self, u, req, p):
        link = u.link
        if len(p) < HL:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
        _, op, vol, lba, count, entry = struct.unpack_from(HEAD, p, 0)
        v = volume(u, vol)
        if v is None or vol != self.vol or lba + count > v["blocks"] or count == 0:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_PARAM)
        data = p[HL:]
        if op == OP_COPY and self.role == "sub":
            st = await self.job2(v, lba, count, entry, data)
            return link.respond(req.ch, req.kind, req.seq, st)
        if op == OP_FWD and self.role == "main":
            if len(data) != count * u.bs:
                return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
            u.trace("mirror", "JOB4", 719, lba, count)
            st = await self.main_write(u, v, lba, count, data, entry)
            return link.respond(req.ch, req.kind, req.seq, st)
        if op == OP_READ and self.role == "main":
            out = req.mv[HL:HL + count * u.bs]
            st = await store.read_vol(u, v, lba, count, out)
            if st not in GOOD:
                return link.respond(req.ch, req.kind, req.seq, st)
            return link.respond(req.ch, req.kind, req.seq, wire.OK, out)
        link.respond(req.ch, req.kind, req.seq, wire.E_STATE)

    # ---- main unit: JOB4 / JOB5 and main-host writes -----------------------------------
    async def main_write(self, u, v, lba, count, data, entry=0):
        """Store on the main volume, copy to the sub volume; one write at a time per
        volume (overlapping writes reach both volumes in one order).  A copy that fails
        puts the main volume's old data back, so both volumes stay equal (CHECK)."""
        bs = u.bs
        if count * bs > len(self.pre):
            return wire.E_BAD_LENGTH
        async with self.lock:
            pre = self.pre[:count * bs]
            st = await store.read_vol(u, v, lba, count, pre)
            if st not in GOOD:
                return st
            await store.write_vol(u, v, lba, count, data)
            u.trace("mirror", "JOB5", 726, lba, count, "skip" if entry else "data")
            if entry:
                st = await self.send(OP_COPY, self.peer_vol, lba, count, entry, b"", None)
                self.cnt["skipped"] += 1
                self.cnt["skipped_bytes"] += count * bs
            else:
                st = await self.send(OP_COPY, self.peer_vol, lba, count, 0, data, None)
            self.cnt["copies"] += 1
            if st != wire.OK:
                await store.write_vol(u, v, lba, count, pre)
                self.cnt["checks"] += 1
                u.trace("mirror", "JOB5", 729, lba, count, wire.status_name(st))
                return wire.E_CHECK
        return wire.OK

    # ---- sub unit: JOB1 / JOB3 and JOB2 -------------------------------------------------
    async def sub_write(self, u, v, lba, count, data):
        if self.st["state"] != "normal":                          # 702 -> 703
            self.cnt["checks"] += 1
            u.trace("mirror", "JOB1", 703, lba, count)
            return wire.E_CHECK
        n = self.st["next"]
        self.st["next"] = n % 65535 + 1
        self.t515[n] = {"entry": n, "516": self.vol, "517": self.peer_vol, "518": self.out,
                        "519": "write", "520": [lba, count]}      # 701
        self.t521[n] = data
        core.range_set(self.pend, lba, count)
        u.trace("mirror", "JOB1", 704, lba, count, n)
        try:
            u.trace("mirror", "JOB3", 714, lba, count, n)
            st = await self.send(OP_FWD, self.peer_vol, lba, count, n, data, None)   # 713-715
            self.cnt["forwarded"] += 1
        finally:
            self.t515.pop(n, None)
            self.t521.pop(n, None)
            core.range_clear(self.pend, lba, count)
            for e in self.t515.values():
                core.range_set(self.pend, e["520"][0], e["520"][1])
        u.trace("mirror", "JOB1", 707, lba, count, wire.status_name(st))
        if st in GOOD:
            return wire.OK
        return wire.E_CHECK

    async def job2(self, v, lba, count, entry, data):
        u = self.u
        if self.st["state"] != "normal":                          # 709 -> 710
            self.cnt["checks"] += 1
            u.trace("mirror", "JOB2", 710, lba, count)
            return wire.E_CHECK
        if not len(data):                                         # data already in 514 (521)
            data = self.t521.get(entry)
            if data is None:
                return wire.E_STATE
        elif len(data) != count * u.bs:
            return wire.E_BAD_LENGTH
        u.trace("mirror", "JOB2", 711, lba, count, entry)
        await store.write_vol(u, v, lba, count, data)
        return wire.OK

    async def sub_read(self, u, v, lba, count, out):
        if self.st["state"] != "normal":
            self.cnt["checks"] += 1
            return wire.E_CHECK
        if core.next_set(self.pend, lba, lba + count) < 0:        # [0061] direct read
            self.cnt["direct_reads"] += 1
            return None
        self.cnt["main_reads"] += 1
        u.trace("mirror", "JOB1", "read-main", lba, count)
        return await self.send(OP_READ, self.peer_vol, lba, count, 0, b"", out)
