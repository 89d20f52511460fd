"""The links between storage units (the seeds' inter-controller paths).

Each path joins two units; a unit numbers its peers in the order the rig lists its
paths.  A frame a unit sends on its peer channel k is carried to the unit at the other
end, arriving on that unit's channel for the sender.  A path can be cut (requests are
answered PATH_DOWN by the fabric, like a switch reporting no light), delayed, or made to
corrupt frames (the receiver's CRC check drops them; the sender sees a timeout).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

from firmware import wire


@dataclass
class Path:
    a: str
    b: str
    cut: bool = False
    delay: float = 0.0
    corrupt_every: int = 0          # corrupt every Nth frame (0: never)
    frames: int = 0
    corrupted: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Fabric:
    def __init__(self):
        self.paths: list[Path] = []
        self.units: dict = {}             # name -> host-side unit (has .link)
        self.peers: dict[str, list[tuple[str, int]]] = {}   # unit -> [(peer unit, path index)]

    def add_path(self, a: str, b: str) -> Path:
        p = Path(a, b)
        self.paths.append(p)
        i = len(self.paths) - 1
        self.peers.setdefault(a, []).append((b, i))
        self.peers.setdefault(b, []).append((a, i))
        return p

    def attach(self, unit):
        self.units[unit.name] = unit
        unit.link.peer_handler = lambda link, k, kind, seq, payload, low=-1: self.route(
            unit.name, k, kind, seq, payload, low)
        # a (re)started unit numbers its requests from the start: its peers must forget
        # what they remember of its old ones
        for other, pi in self.peers.get(unit.name, []):
            o = self.units.get(other)
            if o is not None and o.link is not None and not o.link.closed:
                o.link.send(wire.CH_LINK, wire.K_PEER_RESET, 0, bytes([self.end(other, pi)]))

    def path(self, a: str, b: str) -> Path:
        for p in self.paths:
            if {p.a, p.b} == {a, b}:
                return p
        raise KeyError(f"no path between {a} and {b}")

    def peer_index(self, unit: str, other: str) -> int:
        for k, (name, _) in enumerate(self.peers.get(unit, [])):
            if name == other:
                return k
        raise KeyError(f"{unit} has no path to {other}")

    def end(self, unit: str, pi: int) -> int:
        """The peer index by which unit knows path pi (two paths may join the same units)."""
        return [i for _, i in self.peers[unit]].index(pi)

    def route(self, src: str, k: int, kind: int, seq: int, payload: bytes, low: int = -1):
        src_unit = self.units[src]
        peers = self.peers.get(src, [])
        if k >= len(peers):
            if not kind & wire.RESP:
                src_unit.link.send(wire.CH_PEER + k, kind | wire.RESP, seq, bytes([wire.E_PATH_DOWN]))
            return
        dst_name, pi = peers[k]
        p = self.paths[pi]
        dst = self.units.get(dst_name)
        if p.cut or dst is None or dst.link is None or dst.link.closed:
            p.refused += 1
            if not kind & wire.RESP:
                src_unit.link.send(wire.CH_PEER + k, kind | wire.RESP, seq, bytes([wire.E_PATH_DOWN]))
            return
        back = self.end(dst_name, pi)
        frame = bytearray(wire.pack(wire.CH_PEER + back, kind, seq, payload, low))
        with p.lock:
            p.frames += 1
            if p.corrupt_every and p.frames % p.corrupt_every == 0:
                frame[len(frame) // 2] ^= 0x5A if frame[len(frame) // 2] not in (0x00, 0x5A) else 0x01
                p.corrupted += 1
        if p.delay:
            threading.Timer(p.delay, dst.link.send_raw, args=(bytes(frame),)).start()
        else:
            dst.link.send_raw(bytes(frame))
