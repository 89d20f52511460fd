"""Link faults between the host and a board, in both directions, at set rates:
corrupt bytes, drop, duplicate and delay whole frames (dm-flakey for a serial line).

FaultyPort wraps a pyserial-like port; BoardLink reads and writes through it. With
every rate at zero it passes bytes through untouched."""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass


@dataclass
class LinkFaults:
    corrupt: float = 0.0     # probability per byte of flipping it
    drop: float = 0.0        # probability per frame of losing it
    duplicate: float = 0.0   # probability per frame of sending it twice
    delay: float = 0.0       # probability per frame of holding it back ...
    delay_s: float = 0.05    # ... for this long (frames behind it overtake it)
    # counters
    frames: int = 0
    corrupted_bytes: int = 0
    corrupted_frames: int = 0
    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0

    def active(self) -> bool:
        return bool(self.corrupt or self.drop or self.duplicate or self.delay)

    def counters(self) -> dict:
        return {k: getattr(self, k) for k in ("frames", "corrupted_bytes", "corrupted_frames", "dropped",
                                              "duplicated", "delayed")}


class FaultyPort:
    def __init__(self, ser, faults: LinkFaults | None = None, seed: int = 0):
        self.ser = ser
        self.faults = faults or LinkFaults()
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.rx_partial = bytearray()
        self.rx_held: list[tuple[float, bytes]] = []
        self.tx_held: list[tuple[float, bytes]] = []

    # pyserial surface used by BoardLink
    @property
    def in_waiting(self):
        return self.ser.in_waiting

    def close(self):
        self.ser.close()

    def _mangle(self, frames: list[bytes], held: list) -> list[bytes]:
        """Apply the faults to complete frames; return what goes through now."""
        f = self.faults
        out = []
        now = time.monotonic()
        with self.lock:
            for fr in frames:
                f.frames += 1
                r = self.rng.random
                if f.drop and r() < f.drop:
                    f.dropped += 1
                    continue
                if f.corrupt:
                    b = None
                    # number of corrupted bytes: sample positions with a geometric skip
                    i = int(self.rng.expovariate(f.corrupt)) if f.corrupt < 1 else 0
                    while i < len(fr) - 1:          # never the delimiter itself
                        if b is None:
                            b = bytearray(fr)
                        b[i] ^= self.rng.randrange(1, 256)
                        f.corrupted_bytes += 1
                        i += 1 + int(self.rng.expovariate(f.corrupt))
                    if b is not None:
                        f.corrupted_frames += 1
                        fr = bytes(b)
                if f.delay and r() < f.delay:
                    f.delayed += 1
                    held.append((now + f.delay_s, fr))
                    continue
                out.append(fr)
                if f.duplicate and r() < f.duplicate:
                    f.duplicated += 1
                    out.append(fr)
            due = [fr for t, fr in held if t <= now]
            held[:] = [(t, fr) for t, fr in held if t > now]
        return out + due

    @staticmethod
    def _split(buf: bytearray) -> list[bytes]:
        frames = []
        while True:
            z = buf.find(0)
            if z < 0:
                return frames
            frames.append(bytes(buf[:z + 1]))
            del buf[:z + 1]

    def write(self, data) -> int:
        if not self.faults.active() and not self.tx_held:
            return self.ser.write(data)
        buf = bytearray(data)
        frames = self._split(buf)
        if buf:
            frames.append(bytes(buf))   # (BoardLink always writes whole frames)
        for fr in self._mangle(frames, self.tx_held):
            self.ser.write(fr)
        return len(data)

    def tx_plain(self) -> bool:
        """True if what is written now goes through unchanged (no fault injected, none held)."""
        return not self.faults.active() and not self.tx_held

    def read(self, n=1) -> bytes:
        return self.filter_rx(self.ser.read(n))

    def filter_rx(self, data: bytes) -> bytes:
        """The faults applied to bytes read from the port (what read() returns)."""
        if not self.faults.active() and not self.rx_held and not self.rx_partial:
            return data
        self.rx_partial.extend(data)
        return b"".join(self._mangle(self._split(self.rx_partial), self.rx_held))
