"""Backup to tape (seed 003, E11): a simulated tape drive on the host and the backup host.

The tape drive 4306 is a file of records, appended in order and read back from the
start.  A record holds (volume, first block, blocks, block size, label) and the data,
with a CRC-32; a damaged record stops the read with TapeError.

The backup host 4305 is told (over the "LAN": a call) the copy volume and, for partial
backups, the updated ranges / area / extents; it reads them through the controller and
writes them to tape.  It reads a copy only once its copy processing has completed
(I-11.1): E7 DIVISION COMPLETED and no extent update running over the range, E8
DIVISION COMPLETED, E9 EXTENT DIVISION COMPLETED; otherwise BackupError.

    tape = TapeDrive(tmp / "tape0")
    bh = BackupHost(unit, tape)
    bh.after_split(0, 1)                     # E7: the whole copy volume
    bh.after_extent_update(0, 1, [[2, 3]])   # E7: then only the updated tracks
    image = restore(tape.records(), vol=1, blocks=48, block_size=512)

A backup the unit's reset cuts short is taken up again by the backup host
(`backup_split_copy`): it waits for the unit, checks the copy is still settled and goes
on after the last whole record on tape.
"""
from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from host.features import volcopy as vc
from host.link import LinkError

MAGIC = b"TREC"
HEAD = struct.Struct("<4sHIIIIH")   # magic, volume, first block, blocks, block size, crc32, label length


class TapeError(Exception):
    pass


class BackupError(Exception):
    pass


@dataclass
class Record:
    vol: int
    first: int          # first block
    block_size: int
    data: bytes
    label: str = ""

    @property
    def blocks(self) -> int:
        return len(self.data) // self.block_size


class TapeDrive:
    """A tape as a file of records: write appends, records() reads from the start."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.touch()
        self.written = 0        # records written through this drive

    def erase(self):
        self.path.write_bytes(b"")

    def write(self, rec: Record):
        if len(rec.data) % rec.block_size:
            raise TapeError("record data is not a whole number of blocks")
        label = rec.label.encode()
        head = HEAD.pack(MAGIC, rec.vol, rec.first, rec.blocks, rec.block_size, zlib.crc32(rec.data), len(label))
        with open(self.path, "ab") as f:
            f.write(head + label + rec.data)
        self.written += 1

    def records(self) -> list[Record]:
        buf = self.path.read_bytes()
        out = []
        pos = 0
        while pos < len(buf):
            if len(buf) - pos < HEAD.size:
                raise TapeError(f"record {len(out)}: truncated header at byte {pos}")
            magic, vol, first, blocks, bs, crc, nlabel = HEAD.unpack_from(buf, pos)
            if magic != MAGIC:
                raise TapeError(f"record {len(out)}: bad magic at byte {pos}")
            pos += HEAD.size
            label = buf[pos:pos + nlabel].decode()
            pos += nlabel
            data = buf[pos:pos + blocks * bs]
            pos += blocks * bs
            if len(data) != blocks * bs or zlib.crc32(data) != crc:
                raise TapeError(f"record {len(out)} ({label!r}): data damaged")
            out.append(Record(vol, first, bs, data, label))
        return out


def restore(records, vol: int, blocks: int, block_size: int, base: bytes | None = None) -> bytes:
    """A volume image from tape: the records of `vol` laid over `base` (zeros) in order."""
    img = bytearray(base if base is not None else bytes(blocks * block_size))
    for r in records:
        if r.vol != vol:
            continue
        if r.block_size != block_size or r.first + r.blocks > blocks:
            raise TapeError(f"record {r.label!r} does not fit volume {vol}")
        img[r.first * block_size:(r.first + r.blocks) * block_size] = r.data
    return bytes(img)


def restore_to(unit, records, vol: int, target: int | None = None):
    """Write the records of `vol` back through the controller, into `target` (default vol)."""
    for r in records:
        if r.vol == vol:
            unit.write(vol if target is None else target, r.first, r.data)


class BackupHost:
    """Host 4305: reads a settled copy through the controller and writes it to tape."""

    def __init__(self, unit, tape: TapeDrive):
        self.unit = unit
        self.tape = tape

    # ---- raw backups ----------------------------------------------------------------
    def backup_blocks(self, vol: int, first: int, count: int, label: str = "") -> Record:
        rec = Record(vol, first, self.unit.block_size, self.unit.read(vol, first, count), label)
        self.tape.write(rec)
        return rec

    def backup_volume(self, vol: int, label: str = "") -> Record:
        blocks, _ = self.unit.volinfo(vol)
        return self.backup_blocks(vol, 0, blocks, label or f"volume {vol}")

    def backup_tracks(self, vol: int, ranges, label: str = "") -> list[Record]:
        tb = vc.track_blocks(self.unit)
        blocks, _ = self.unit.volinfo(vol)
        out = []
        for a, b in ranges:
            first = a * tb
            end = min((b + 1) * tb, blocks)
            out.append(self.backup_blocks(vol, first, end - first, label or f"volume {vol} tracks {a}-{b}"))
        return out

    # ---- backups that outlive a reset of the unit -------------------------------------
    def wait_unit(self, timeout: float = 30.0):
        """Wait until the unit answers again (its board restarted)."""
        end = time.monotonic() + timeout
        while True:
            try:
                if self.unit.link is not None:
                    self.unit.mgmt("info", timeout=2.0)
                    return
            except (LinkError, OSError, AttributeError):   # the old link is closed / gone
                pass
            if time.monotonic() > end:
                raise BackupError(f"unit {self.unit.name} did not come back within {timeout} s")
            time.sleep(0.05)

    def backup_split_copy(self, orig: int, copy: int, chunk: int, timeout: float = 30.0) -> int:
        """E7: the whole split copy volume in records of `chunk` blocks.  If the unit
        stops answering part-way (its board was reset), wait for it, check the pair is
        still DIVISION COMPLETED and go on after the last whole record of this backup on
        tape: no block is written twice, none is left out.  Returns the number of times
        the backup was cut short."""
        label = f"volume {copy} split image"
        cuts = 0
        while True:
            try:
                p = self._slot(vc.T_PAIR, orig, copy)
                if p["state"] != vc.DIV_DONE:
                    raise BackupError(f"pair {orig} -> {copy} is {p['state']}; the split image is not settled")
                blocks, _ = self.unit.volinfo(copy)
                first = 0
                for r in self.tape.records():
                    if r.vol == copy and r.label == label:
                        first = max(first, r.first + r.blocks)
                while first < blocks:
                    n = min(chunk, blocks - first)
                    self.backup_blocks(copy, first, n, label)
                    first += n
                return cuts
            except (LinkError, OSError, AttributeError):
                # the board went away under the request (its port closed, or no link
                # at all while it boots again)
                cuts += 1
                self.wait_unit(timeout)

    # ---- E11 flows -------------------------------------------------------------------
    def _slot(self, tbl, orig, copy, **area):
        for p in vc.table(self.unit, tbl):
            if p["use"] and p["orig"] == orig and p["copy"] == copy and all(p[k] == v for k, v in area.items()):
                return p
        raise BackupError(f"no pair {orig} -> {copy} {area or ''} in table {tbl}")

    def after_split(self, orig: int, copy: int) -> Record:
        """E7: PairCreate, PairSplit done: back up the whole copy volume."""
        p = self._slot(vc.T_PAIR, orig, copy)
        if p["state"] != vc.DIV_DONE:
            raise BackupError(f"pair {orig} -> {copy} is {p['state']}; the split image is not settled")
        return self.backup_volume(copy, f"volume {copy} split image")

    def after_extent_update(self, orig: int, copy: int, ranges) -> list[Record]:
        """E7: an ExtentUpdate done: back up only the updated track ranges."""
        p = self._slot(vc.T_PAIR, orig, copy)
        if p["state"] != vc.DIV_DONE:
            raise BackupError(f"pair {orig} -> {copy} is {p['state']}")
        for e in p["extents"]:
            for a, b in ranges:
                if a <= e["end"] and e["start"] <= b:
                    raise BackupError(f"extent update {e['start']}-{e['end']} still running over {a}-{b}")
        return self.backup_tracks(copy, ranges, "")

    def after_area_split(self, orig: int, copy: int, start: int, end: int) -> list[Record]:
        """E8: PairCreate and PairSplit of an area done: back up the area."""
        p = self._slot(vc.T_AREA, orig, copy, start=start, end=end)
        if p["state"] != vc.DIV_DONE:
            raise BackupError(f"area {start}-{end} of {orig} -> {copy} is {p['state']}")
        return self.backup_tracks(copy, [(start, end)], f"volume {copy} area {start}-{end}")

    def after_extent_split(self, orig: int, copy: int) -> list[Record]:
        """E9: PairCreate and ExtentSplit done: back up the split extents."""
        p = self._slot(vc.T_XPAIR, orig, copy)
        if p["state"] != vc.XDIV_DONE:
            raise BackupError(f"pair {orig} -> {copy} is {p['state']}; the extents are not settled")
        return self.backup_tracks(copy, p["extents"], "")
