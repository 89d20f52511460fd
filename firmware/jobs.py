# Background jobs (rebuild now; copy, sparing, feedback, backup later) with a control
# surface the host uses: pause, step N units of work, resume.  A job's progress pointer
# lives in an SM table so it resumes after a reset.
import asyncio

RUNNING = "running"
PAUSED = "paused"
DONE = "done"
FAILED = "failed"


class Job:
    def __init__(self, name, kind, total, pointer=0, paused=False):
        self.name = name
        self.kind = kind
        self.total = total
        self.pointer = pointer
        self.state = PAUSED if paused else RUNNING
        self.budget = 0          # steps allowed while paused
        self.ev = asyncio.Event()
        self.note = ""
        self.persist = None      # an SM dict whose "paused" mirrors the job's (saved by mgmt)

    async def gate(self):
        """Wait until the job may do one more unit of work."""
        while self.state == PAUSED and self.budget <= 0:
            self.ev.clear()
            await self.ev.wait()
        if self.state == PAUSED:
            self.budget -= 1

    def pause(self):
        if self.state == RUNNING:
            self.state = PAUSED
            self.budget = 0

    def resume(self):
        if self.state == PAUSED:
            self.state = RUNNING
            self.ev.set()

    def step(self, n):
        if self.state == PAUSED:
            self.budget += n
            self.ev.set()

    def info(self):
        return {"name": self.name, "kind": self.kind, "state": self.state,
                "pointer": self.pointer, "total": self.total, "budget": self.budget,
                "note": self.note}


class Jobs:
    def __init__(self):
        self.by_name = {}

    def add(self, job):
        self.by_name[job.name] = job
        return job

    def get(self, name):
        return self.by_name.get(name)

    def table(self):
        return [j.info() for j in self.by_name.values()]
