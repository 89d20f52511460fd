# Mirror (seed 002): the pair's messages and the main unit's side of the job chain.
# One message format, PEER subtype MSG: op u8, volume u16, lba u32, count u16, entry u16,
# then the data (none when the copy is skipped: the data is already in the sub's memory).
#   FWD    sub -> main over 203 (JOB3 -> JOB4): write the main volume, then copy back
#   COPY   main -> sub over 202 (JOB5 -> JOB2): a forwarded write's copy (entry: 515's)
#   NOTE   main -> sub over 202: a main-host write is coming ([0061], entry: a note id)
#   COPYM  main -> sub over 202: a main-host write's copy, with its data (entry: note id,
#          0 for a resync push)
#   READ   sub -> main over 203: a sub-host read that overlaps a pending write
#   RESYNC sub -> main over 203: copy the main volume's extent to the sub volume again
import struct

from firmware import peer, store, wire
from firmware.jobs import Job
from firmware.link import sleep_ms
from firmware.raid import GOOD

MSG = 0x60
HEAD = "<BBHIHH"
HL = 12
OP_FWD = 1
OP_COPY = 2
OP_READ = 3
OP_NOTE = 4
OP_COPYM = 5
OP_RESYNC = 6
TIMEOUT_MS = 5000
RETRY_MS = 100          # a resync or an asynchronous forward waits this long between tries


class Pair:
    """What both units share: settings, the trace, messages, the chain job and the
    resync list (extents whose outcome a fault left unknown: kept in SM)."""

    def __init__(self, u, cfg):
        self.u = u
        self.role = cfg["role"]
        self.vol = cfg["volume"]
        self.peer_vol = cfg["peer_volume"]
        self.out = cfg["out_peer"]
        self.mode = cfg.get("mode", "sync")
        self.st = u.sm.t.setdefault("mirror", {"state": "normal", "next": 1})
        self.st.setdefault("resync", [])
        self.head = bytearray(HL)
        self.cnt = {"forwarded": 0, "copies": 0, "skipped": 0, "skipped_bytes": 0, "checks": 0,
                    "direct_reads": 0, "main_reads": 0, "notes": 0, "resyncs": 0, "retries": 0,
                    "async_checks": 0, "disk_603": 0, "replayed": 0}
        # the chain's steps pass this job's gate: pause / step place a fault exactly
        self.job = u.jobs.add(Job("mirror", "mirror", 0))
        self.wake = None

    def ev(self, job, step, lba, count, *more):
        self.u.trace("mirror", job, step, lba, count, *more)

    async def send(self, op, vol, lba, count, entry, data, into):
        struct.pack_into(HEAD, self.head, 0, MSG, op, vol, lba, count, entry)
        st, _ = await peer.request(self.u, wire.CH_PEER + self.out, wire.K_PEER, self.head, data, into,
                                   TIMEOUT_MS)
        return st

    async def step(self):
        await self.job.gate()
        self.job.pointer += 1

    def resync_add(self, lba, count):
        if [lba, count] not in self.st["resync"]:
            self.st["resync"].append([lba, count])
            self.u.sm.save()
        self.changed()
        if self.wake is not None:
            self.wake.set()

    def changed(self):
        pass

    async def resyncer(self, fn):
        """Background task: each extent of the resync list through fn until it works."""
        import asyncio

        self.wake = asyncio.Event()
        while True:
            lst = self.st["resync"]
            if not lst:
                self.wake.clear()
                await self.wake.wait()
                continue
            lba, count = lst[0]
            st = await fn(lba, count)
            if st == wire.OK:
                lst.pop(0)
                self.cnt["resyncs"] += 1
                self.u.sm.save()
                self.changed()
                self.ev("RESYNC", "done", lba, count)
            else:
                await sleep_ms(RETRY_MS)

    def peer_reset(self, ch, kind, seq, payload):
        """Frame observer: the other unit restarted (PEER_RESET on the link channel)."""
        if kind == wire.K_PEER_RESET and len(payload) and payload[0] != 0xFF:
            self.restarted()

    def restarted(self):
        if self.wake is not None:
            self.wake.set()


class MainSide(Pair):
    """The main unit: JOB4 (a forwarded write), JOB5 (the copy), main-host writes."""

    def __init__(self, u, cfg):
        Pair.__init__(self, u, cfg)
        self.pre = memoryview(bytearray(u.link.max_payload))   # one write's pre-image (under the lock)
        self.lock = None
        self.note = 0

    async def write(self, u, v, lba, count, data, entry=0):
        """Store on the main volume, copy to the sub volume; one write at a time per
        volume (overlapping writes reach both volumes in one order).  A copy that fails
        puts the main volume's old data back, so both volumes stay equal (CHECK)."""
        bs = u.bs
        if count * bs > len(self.pre):
            return wire.E_BAD_LENGTH
        async with self.lock:
            note = 0
            if not entry:                                     # [0061]: tell the sub first
                self.note = self.note % 65535 + 1
                note = self.note
                self.ev("MW", "notice", lba, count, note)
                st = await self.send(OP_NOTE, self.peer_vol, lba, count, note, b"", None)
                self.cnt["notes"] += 1
                if st != wire.OK:
                    self.cnt["checks"] += 1
                    return wire.E_CHECK                       # nothing changed
            pre = self.pre[:count * bs]
            st = await store.read_vol(u, v, lba, count, pre)
            if st not in GOOD:
                return st
            await store.write_vol(u, v, lba, count, data)     # 721 (MW-stage)
            self.ev("JOB5", 726, lba, count, "skip" if entry else "data")
            await self.step()
            if entry:                                         # 728: the data is in 521
                st = await self.send(OP_COPY, self.peer_vol, lba, count, entry, b"", None)
                self.cnt["skipped"] += 1
                self.cnt["skipped_bytes"] += count * bs
            else:
                st = await self.send(OP_COPYM, self.peer_vol, lba, count, note, data, None)
            self.cnt["copies"] += 1
            if st != wire.OK:
                await store.write_vol(u, v, lba, count, pre)
                self.cnt["checks"] += 1
                self.ev("JOB5", 729, lba, count, wire.status_name(st))
                if st != wire.E_CHECK:                        # did the sub write it? unknown
                    self.resync_add(lba, count)
                    if entry:
                        return st                             # JOB3 tells a lost path from 710
                return wire.E_CHECK
        return wire.OK

    async def push(self, lba, count):
        """Copy the main volume's extent to the sub volume (a resync), under the lock."""
        from firmware.cha import volume

        u = self.u
        v = volume(u, self.vol)
        async with self.lock:
            buf = self.pre[:count * u.bs]
            st = await store.read_vol(u, v, lba, count, buf)
            if st not in GOOD:
                return st
            self.ev("RESYNC", "push", lba, count)
            return await self.send(OP_COPYM, self.peer_vol, lba, count, 0, buf, None)

    async def on_msg(self, u, req, v, op, lba, count, entry, data):
        link = u.link
        if op == OP_FWD:
            if len(data) != count * u.bs:
                return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
            self.ev("JOB4", 719, lba, count, entry)
            st = await self.write(u, v, lba, count, data, entry)
            return link.respond(req.ch, req.kind, req.seq, st)
        if op == OP_READ:
            if count * u.bs > len(req.mv):
                return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
            out = req.mv[:count * u.bs]          # the head is parsed: its room takes the data
            st = await store.read_vol(u, v, lba, count, out)
            if st not in GOOD:
                return link.respond(req.ch, req.kind, req.seq, st)
            return link.respond(req.ch, req.kind, req.seq, wire.OK, out)
        if op == OP_RESYNC:
            if count * u.bs > len(self.pre):
                return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
            return link.respond(req.ch, req.kind, req.seq, await self.push(lba, count))
        link.respond(req.ch, req.kind, req.seq, wire.E_STATE)


async def on_peer(side, u, req, p):
    """A mirror message on a peer channel: checked, then the unit's side handles it."""
    from firmware.cha import volume

    link = u.link
    if len(p) < HL:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    _, op, vol, lba, count, entry = struct.unpack_from(HEAD, p, 0)
    v = volume(u, vol)
    if v is None or vol != side.vol or count == 0 or lba + count > v["blocks"]:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_PARAM)
    await side.on_msg(u, req, v, op, lba, count, entry, p[HL:])
