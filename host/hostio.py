"""Host computers: READ / WRITE on a unit's ports, and a verifier in the manner of
fio's verify: every block written carries its address and a generation number in a
header, and the rest is derived from them, so every read can be checked exactly."""
from __future__ import annotations

import hashlib
import random
import struct
import time
from dataclasses import dataclass, field

MAGIC = 0x53544C42  # "STLB"
HDR = struct.Struct("<IHIIQ")   # magic, volume, lba, generation, seed


def block_content(vol: int, lba: int, gen: int, block_size: int, seed: int = 0) -> bytes:
    """The content a verifying host writes to (vol, lba) at generation gen."""
    head = HDR.pack(MAGIC, vol, lba, gen, seed)
    key = hashlib.blake2b(head, digest_size=16).digest()
    body = random.Random(key).randbytes(block_size - len(head))
    return head + body


@dataclass
class Verifier:
    block_size: int
    seed: int = 0
    gens: dict = field(default_factory=dict)   # (vol, lba) -> generation last acknowledged
    checked: int = 0
    mismatches: list = field(default_factory=list)

    def data(self, vol: int, lba: int, count: int) -> tuple[bytes, list[int]]:
        """Content for a write of count blocks: next generation of each block."""
        gens = [self.gens.get((vol, lba + i), 0) + 1 for i in range(count)]
        return b"".join(block_content(vol, lba + i, gens[i], self.block_size, self.seed)
                        for i in range(count)), gens

    def acknowledged(self, vol: int, lba: int, gens: list[int]):
        for i, g in enumerate(gens):
            self.gens[(vol, lba + i)] = g

    def expected(self, vol: int, lba: int) -> bytes:
        g = self.gens.get((vol, lba), 0)
        if g == 0:
            return bytes(self.block_size)   # never written: zeros
        return block_content(vol, lba, g, self.block_size, self.seed)

    def check(self, vol: int, lba: int, data: bytes) -> int:
        """Check a read of len(data) // block_size blocks; return the number of bad blocks."""
        bs = self.block_size
        bad = 0
        for i in range(len(data) // bs):
            got = data[i * bs:(i + 1) * bs]
            self.checked += 1
            if got != self.expected(vol, lba + i):
                bad += 1
                self.mismatches.append(self.describe(vol, lba + i, got))
        return bad

    def describe(self, vol, lba, got) -> str:
        want = self.gens.get((vol, lba), 0)
        try:
            magic, v, blk, g, _ = HDR.unpack_from(got)
        except struct.error:
            magic = 0
        if magic == MAGIC:
            return f"vol {vol} lba {lba}: expected gen {want}, found block of vol {v} lba {blk} gen {g}"
        return f"vol {vol} lba {lba}: expected gen {want}, found foreign data"


class HostComputer:
    """A host computer on one port of one unit, writing and reading with verification."""

    def __init__(self, name: str, unit, port: int = 0, seed: int = 0):
        self.name = name
        self.unit = unit
        self.port = port
        self.verifier = Verifier(unit.block_size, seed)
        self.ops = {"reads": 0, "writes": 0, "errors": 0}
        self.latencies: list[float] = []
        self.completed: list[tuple] = []
        self.busy_retries = 0

    def write(self, vol: int, lba: int, count: int = 1):
        data, gens = self.verifier.data(vol, lba, count)
        t = time.perf_counter()
        self.unit.write(vol, lba, data, port=self.port)
        self.latencies.append(time.perf_counter() - t)
        self.verifier.acknowledged(vol, lba, gens)
        self.ops["writes"] += 1

    def read(self, vol: int, lba: int, count: int = 1) -> int:
        """Read and verify; return the number of bad blocks."""
        t = time.perf_counter()
        data = self.unit.read(vol, lba, count, port=self.port)
        self.latencies.append(time.perf_counter() - t)
        self.ops["reads"] += 1
        return self.verifier.check(vol, lba, data)

    def run_queue(self, ops, iodepth: int = 1) -> int:
        """Run ops [(op "r"|"w", vol, lba, count)] keeping up to `iodepth` requests
        outstanding on the link, every read verified; return the number of bad blocks.
        An op that overlaps one still in flight waits for it first (as fio's verify
        does), so each block's expected generation is always known.  Completions are
        appended to self.completed as (op, vol, lba, count) in the order they came."""
        from firmware import wire
        from host.link import StatusError

        u = self.unit
        chunk = u._io_chunk()
        # the board takes as many requests at once as it has workers (its definition
        # says how many; one is left for management and peers); more wait here, and a
        # BUSY answer is sent again
        depth = max(1, min(iodepth, u.hello.get("workers", iodepth + 1) - 1))
        inflight = []          # [op, vol, lba, count, handle, gens, t0], oldest first
        bad = 0

        def overlaps(vol, lba, count):
            return any(f[1] == vol and f[2] < lba + count and lba < f[2] + f[3] for f in inflight)

        def issue(op, vol, lba, k, data, gens, t0):
            w = u.start_io("w", vol, lba, data, self.port) if op == "w" else u.start_io("r", vol, lba, k, self.port)
            inflight.append([op, vol, lba, k, w, gens, t0, data])

        def finish_one():
            nonlocal bad
            # the first one answered (not necessarily the oldest)
            w = u._up().wait_any([f[4] for f in inflight])
            f = next(f for f in inflight if f[4] is w)
            inflight.remove(f)
            op, vol, lba, count, w, gens, t0, data = f
            try:
                got = u.finish_io(w)
            except StatusError as e:
                if e.status != wire.E_BUSY:
                    raise
                self.busy_retries += 1      # the board's workers were all taken: again
                issue(op, vol, lba, count, data, gens, t0)
                return
            self.latencies.append(time.perf_counter() - t0)
            if op == "w":
                self.verifier.acknowledged(vol, lba, gens)
                self.ops["writes"] += 1
            else:
                self.ops["reads"] += 1
                bad += self.verifier.check(vol, lba, got)
            self.completed.append((op, vol, lba, count))

        for op, vol, lba, count in ops:
            for i in range(0, count, chunk):
                k = min(chunk, count - i)
                while inflight and (len(inflight) >= depth or overlaps(vol, lba + i, k)):
                    finish_one()
                data, gens = self.verifier.data(vol, lba + i, k) if op == "w" else (None, None)
                issue(op, vol, lba + i, k, data, gens, time.perf_counter())
        while inflight:
            finish_one()
        return bad

    def verify_all(self, vol: int, blocks: int, chunk: int = 8) -> int:
        bad = 0
        for lba in range(0, blocks, chunk):
            bad += self.read(vol, lba, min(chunk, blocks - lba))
        return bad


class Workload:
    """Random reads and writes over a volume, every read verified."""

    def __init__(self, host: HostComputer, vol: int, blocks: int, max_count: int = 4,
                 write_ratio: float = 0.5, seed: int = 1):
        self.host = host
        self.vol = vol
        self.blocks = blocks
        self.max_count = max_count
        self.write_ratio = write_ratio
        self.rng = random.Random(seed)
        self.bad = 0

    def step(self):
        count = self.rng.randint(1, self.max_count)
        lba = self.rng.randrange(0, self.blocks - count + 1)
        if self.rng.random() < self.write_ratio:
            self.host.write(self.vol, lba, count)
        else:
            self.bad += self.host.read(self.vol, lba, count)

    def run(self, n: int):
        for _ in range(n):
            self.step()
        return self.bad
