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
