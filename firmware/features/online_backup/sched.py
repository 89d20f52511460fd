# Priority between online processing and the backup (seed 004, Fig 11, 3.9), table 670:
#   backup_first  a chunk of `chunk` blocks; online commands that arrive meanwhile wait
#                 for its end; then the online commands pending at that moment are served
#                 before the next chunk (none pending: chunks back to back)
#   online_first  only online processing for `slice` seconds of the harness clock from the
#                 backup's start; then one chunk, and a new window of `slice`
import asyncio


class Sched:
    def __init__(self, ob):
        self.ob = ob
        self.in_chunk = False
        self.chunk_ev = asyncio.Event()
        self.arrived = 0
        self.done = 0
        self.target = 0          # online commands to finish before the next chunk
        self.done_ev = asyncio.Event()
        self.window_end = 0
        self.starts = []         # (online commands done, clock) at each chunk's start (newest 16)

    def mode(self):
        return self.ob.sm["t670"]["mode"]

    async def online_begin(self):
        self.arrived += 1
        while self.in_chunk and self.mode() == "backup_first":
            self.chunk_ev.clear()
            await self.chunk_ev.wait()

    def online_end(self):
        self.done += 1
        self.done_ev.set()

    def started(self):
        self.window_end = self.ob.sm["clock"] + self.ob.sm["t670"]["slice"]

    async def backup_begin(self):
        ob = self.ob
        if self.mode() == "online_first":
            while ob.sm["clock"] < self.window_end:
                ob.clock_ev.clear()
                await ob.clock_ev.wait()
        else:
            while self.done < self.target:
                self.done_ev.clear()
                await self.done_ev.wait()
        self.in_chunk = True
        self.starts.append([self.done, ob.sm["clock"]])
        if len(self.starts) > 16:
            self.starts.pop(0)

    def backup_end(self):
        self.in_chunk = False
        self.chunk_ev.set()
        self.target = self.arrived
        self.window_end = self.ob.sm["clock"] + self.ob.sm["t670"]["slice"]

    def info(self):
        return {"mode": self.mode(), "online_arrived": self.arrived, "online_done": self.done,
                "window_end": self.window_end, "in_chunk": self.in_chunk, "chunk_starts": self.starts}
