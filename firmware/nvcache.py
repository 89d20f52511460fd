# Non-volatile cache: the model of a battery-backed cache.  Every dirty slot is also
# written to a file on the board's filesystem before the host's write is acknowledged,
# as one record (header + data) in one write call, so a board killed at any moment
# finds each record either wholly old or wholly new.  At boot, dirty records go back
# into the cache and are destaged again (with parity recomputed from the data: a
# destage cut short may have left the row's parity stale).
import os
import struct

REC = "<IIIB3x"     # magic, key, gen, state
REC_LEN = 16
MAGIC = 0x4E564331  # "NVC1"
# The parity log (one record after the slots): before a RAID5 row is written while one
# of its members is absent, the absent member's data is logged here, so a write cut
# short by a reset cannot leave that data unrecoverable (the "write hole").
PLOG = "<IIHHB3x"   # magic, row, group, member, state
PLOG_MAGIC = 0x504C4F47
DIRTY = 1
CLEAN = 0
INFLIGHT = 2        # dirty, and being destaged: its row may be half written


class NVCache:
    def __init__(self, path, nslots, block_size, scratch=None):
        """scratch: a buffer of at least REC_LEN + block_size bytes to build records
        in (the unit lends its link's frame encoder buffer: both are used only inside
        one synchronous call, never across an await), else one of our own."""
        self.path = path
        self.n = nslots
        self.bs = block_size
        self.stride = REC_LEN + block_size
        try:
            os.stat(path)
            mode = "r+b"
        except OSError:
            mode = "w+b"
        self.f = open(path, mode, 0)   # unbuffered: each record reaches the OS at once
        if scratch is None or len(scratch) < self.stride:
            scratch = bytearray(self.stride)
        self.rec = scratch
        self.recmv = memoryview(scratch)[:self.stride]
        self.one = bytearray(1)
        self.writes = 0
        self.frozen = False   # set when the board loses power: nothing reaches the file

    def put(self, i, key, gen, data):
        if self.frozen:
            return
        struct.pack_into(REC, self.rec, 0, MAGIC, key, gen, DIRTY)
        self.recmv[REC_LEN:] = data
        self.f.seek(i * self.stride)
        self.f.write(self.recmv)
        self.writes += 1

    def clean(self, i):
        self._state(i, CLEAN)

    def inflight(self, i):
        self._state(i, INFLIGHT)

    def _state(self, i, st):
        if self.frozen:
            return
        self.one[0] = st
        self.f.seek(i * self.stride + 12)
        self.f.write(self.one)

    def dirty_records(self):
        """[(slot, key, gen, data, inflight)] of every record still dirty in the file."""
        out = []
        for i in range(self.n):
            self.f.seek(i * self.stride)
            k = self.f.readinto(self.recmv)
            if k != self.stride:
                break
            magic, key, gen, state = struct.unpack_from(REC, self.rec, 0)
            if magic == MAGIC and (state == DIRTY or state == INFLIGHT):
                out.append((i, key, gen, bytes(self.recmv[REC_LEN:]), state == INFLIGHT))
        return out

    def plog_put(self, gid, row, member, data):
        if self.frozen:
            return
        struct.pack_into(PLOG, self.rec, 0, PLOG_MAGIC, row, gid, member, DIRTY)
        self.recmv[REC_LEN:] = data
        self.f.seek(self.n * self.stride)
        self.f.write(self.recmv)
        self.writes += 1

    def plog_clear(self):
        if self.frozen:
            return
        self.one[0] = CLEAN
        self.f.seek(self.n * self.stride + 12)
        self.f.write(self.one)

    def plog_get(self):
        """(group, row, member, data) of a parity-log record still open, or None."""
        self.f.seek(self.n * self.stride)
        if self.f.readinto(self.recmv) != self.stride:
            return None
        magic, row, gid, member, state = struct.unpack_from(PLOG, self.rec, 0)
        if magic != PLOG_MAGIC or state != DIRTY:
            return None
        return gid, row, member, bytes(self.recmv[REC_LEN:])

    def close(self):
        self.f.close()
