# Mirror (seed 002): the received-data area 521 and the communication volume 603.
#   521   a few slots of one frame's size, allocated when the feature attaches; a sub-host
#         write holds one from 701 until its chain has ended and 603 has its data (with
#         603 in cache or none and synchronous writes a slot only refers to the request's
#         buffer: nothing is copied or allocated)
#   603   comm = "disk":  the job "mirror_603" writes each slot's data to the
#                         communication volume at the request's own address, in the
#                         background ([0048]); it pauses and steps like every job
#         comm = "cache": 603 is held in cache memory ([0071]): the slots are its image,
#                         nothing is written to a disk for it
#         comm = "none":  example 2 ([0065]): no 603; its capacity went to the sub volume
import asyncio

from firmware import store
from firmware.cha import volume
from firmware.jobs import Job

KINDS = ("disk", "cache", "none")


class Slots:
    """n slots of one frame each.  own=False: a slot only refers to the request's own
    buffer (a synchronous write's data lives there until its chain has ended)."""

    def __init__(self, n, size, own=True):
        self.size = size
        self.n = n
        self.own = own
        self.bufs = [memoryview(bytearray(size)) if own else None for _ in range(n)]
        self.free = list(range(n))
        self.ev = asyncio.Event()

    async def take(self):
        while not self.free:                 # every slot holds a write: wait for one
            self.ev.clear()
            await self.ev.wait()
        return self.free.pop(0)

    def give(self, i):
        self.free.append(i)
        self.ev.set()

    def put(self, i, data):
        if self.own:
            self.bufs[i][:len(data)] = data
        else:
            self.bufs[i] = data

    def data(self, i, n):
        return self.bufs[i][:n]


class Comm:
    def __init__(self, side, cfg):
        self.side = side
        u = side.u
        self.kind = cfg.get("comm", "cache")
        self.disk = self.kind == "disk"
        self.vol = cfg.get("comm_volume", -1)
        # the data outlives its request when 603's job writes it later or GOOD comes first
        own = self.disk or cfg.get("mode", "sync") == "async"
        self.slots = Slots(cfg.get("slots", 4), u.link.max_payload, own)
        self.q = []
        self.ev = asyncio.Event()
        self.job = u.jobs.add(Job("mirror_603", "comm", 0)) if self.disk else None

    def volume(self):
        return volume(self.side.u, self.vol)

    def queue(self, n):
        if self.disk:
            self.q.append(n)
            self.ev.set()

    async def run(self):
        """The job of drive processor 523: 521's data to 603, one write per step."""
        side = self.side
        u = side.u
        job = self.job
        v = self.volume()
        while True:
            if not self.q:
                self.ev.clear()
                await self.ev.wait()
                continue
            await job.gate()
            e = side.find(self.q.pop(0))
            if e is None:
                continue
            lba, count = e["520"]
            await store.write_vol(u, v, lba, count, self.slots.data(e["slot"], count * u.bs))
            side.ev("603", "write", lba, count, e["entry"])
            side.cnt["disk_603"] += 1
            job.pointer += 1
            e["on603"] = True
            side.release(e)
