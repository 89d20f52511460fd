"""Simulated disk drives served over the wire, with fault injection.

A drive is a sparse file (default) or memory, `blocks` blocks of `block_size` bytes.
Faults follow the dm-flakey / dm-dust / scsi_debug models:
  recovered   - data returned with status RECOVERED (an ECC correction), on LBA ranges
  medium      - unrecoverable read error on LBA ranges (stays until cleared)
  defect      - unreadable until the block is rewritten (dm-dust "bad block")
  write_fault - writes to LBA ranges (or all) fail
  fail        - the whole drive stops answering (NOT_READY)
  latency     - added delay per command, in seconds
  hold        - every command waits until the fault is cleared ("release"), so a test
                can see what completes while a drive is busy without timing anything
"""
from __future__ import annotations

import os
import struct
import threading
import time
from dataclasses import dataclass, field

from firmware import wire


def _in(ranges, lba, count):
    for a, b in ranges:
        if lba < b and a < lba + count:
            return True
    return False


@dataclass
class Faults:
    recovered: list = field(default_factory=list)    # [(start, end)] LBA ranges
    medium: list = field(default_factory=list)
    write_fault: list = field(default_factory=list)
    defects: set = field(default_factory=set)        # LBAs unreadable until rewritten
    failed: bool = False
    latency: float = 0.0
    held: threading.Event | None = None     # set = released
    waiting: int = 0                         # commands waiting on the hold now

    def clear(self):
        held = self.held
        self.__init__()
        if held is not None:
            held.set()

    def blocks(self) -> bool:
        """True if a command may wait (latency or hold): served off the link's reader."""
        return self.latency > 0 or self.held is not None


class SimDrive:
    def __init__(self, index: int, blocks: int, block_size: int, path: str | None = None):
        self.index = index
        self.blocks = blocks
        self.bs = block_size
        self.path = path
        self.lock = threading.Lock()
        self.faults = Faults()
        self.counters = {"reads": 0, "writes": 0, "blocks_read": 0, "blocks_written": 0,
                         "errors": 0}
        self.accesses: list | None = None   # optional log of (op, lba, count)
        if path:
            new = not os.path.exists(path)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            if new or os.fstat(self.fd).st_size != blocks * block_size:
                os.ftruncate(self.fd, blocks * block_size)   # sparse
            self.mem = None
        else:
            self.fd = None
            self.mem = bytearray(blocks * block_size)

    # ---- raw access (the bench's view, not through the controller) -------
    def read_raw(self, lba: int, count: int = 1) -> bytes:
        n = count * self.bs
        if self.mem is not None:
            return bytes(self.mem[lba * self.bs:lba * self.bs + n])
        return os.pread(self.fd, n, lba * self.bs)

    def write_raw(self, lba: int, data: bytes):
        if self.mem is not None:
            self.mem[lba * self.bs:lba * self.bs + len(data)] = data
        else:
            os.pwrite(self.fd, data, lba * self.bs)

    def image(self) -> bytes:
        return self.read_raw(0, self.blocks)

    def close(self):
        if self.faults.held is not None:
            self.faults.held.set()      # nothing waits on a closed drive
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    # ---- fault injection --------------------------------------------------
    def inject(self, kind: str, start: int = 0, count: int | None = None, seconds: float = 0.0):
        f = self.faults
        rng = (start, start + (self.blocks - start if count is None else count))
        if kind == "recovered":
            f.recovered.append(rng)
        elif kind == "medium":
            f.medium.append(rng)
        elif kind == "defect":
            f.defects.update(range(*rng))
        elif kind == "write_fault":
            f.write_fault.append(rng)
        elif kind == "fail":
            f.failed = True
        elif kind == "latency":
            f.latency = seconds
        elif kind == "hold":
            if f.held is None:
                f.held = threading.Event()
        elif kind == "release":
            if f.held is not None:
                f.held.set()
                f.held = None
        elif kind == "clear":
            f.clear()
        else:
            raise ValueError(f"unknown fault {kind!r}: recovered, medium, defect, write_fault, "
                             "fail, latency, hold, release, clear")

    # ---- serving the wire ---------------------------------------------------
    def serve(self, kind: int, payload: bytes) -> tuple[int, bytes]:
        """Answer one DREAD / DWRITE frame payload: (status, data)."""
        if len(payload) < wire.DIO_HEAD_LEN:
            return wire.E_BAD_LENGTH, b""
        lba, count = struct.unpack_from(wire.DIO_HEAD, payload)
        f = self.faults
        if f.latency:
            time.sleep(f.latency)
        held = f.held
        if held is not None:
            with self.lock:
                f.waiting += 1
            held.wait()
            with self.lock:
                f.waiting -= 1
        with self.lock:
            if self.accesses is not None:
                self.accesses.append(("r" if kind == wire.K_DREAD else "w", lba, count))
            if f.failed:
                self.counters["errors"] += 1
                return wire.E_NOT_READY, b""
            if count == 0 or lba + count > self.blocks:
                self.counters["errors"] += 1
                return wire.E_OUT_OF_RANGE, b""
            if kind == wire.K_DREAD:
                self.counters["reads"] += 1
                if _in(f.medium, lba, count) or any(b in f.defects for b in range(lba, lba + count)):
                    self.counters["errors"] += 1
                    return wire.E_MEDIUM, b""
                self.counters["blocks_read"] += count
                st = wire.RECOVERED if _in(f.recovered, lba, count) else wire.OK
                return st, self.read_raw(lba, count)
            if kind == wire.K_DWRITE:
                self.counters["writes"] += 1
                data = payload[wire.DIO_HEAD_LEN:]
                if len(data) != count * self.bs:
                    self.counters["errors"] += 1
                    return wire.E_BAD_LENGTH, b""
                if _in(f.write_fault, lba, count):
                    self.counters["errors"] += 1
                    return wire.E_WRITE_FAULT, b""
                self.write_raw(lba, data)
                f.defects.difference_update(range(lba, lba + count))
                self.counters["blocks_written"] += count
                return wire.OK, b""
            return wire.E_UNKNOWN_KIND, b""
