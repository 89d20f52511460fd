# Disk adapter (DKA): drive I/O as frames on the drive channels, and the per-drive
# counters kept in the SM "drives" table (reads, writes, and every error status the
# harness's drives return, by type).
import struct

from firmware import wire

# Counter names per drive status: (status, name) pairs (smaller than a dict).
_ERR = ((wire.RECOVERED, "recovered"), (wire.E_MEDIUM, "medium"), (wire.E_WRITE_FAULT, "write_fault"),
        (wire.E_NOT_READY, "not_ready"), (wire.E_TIMEOUT, "timeout"))

FAILED = "failed"


class DKA:
    def __init__(self, unit):
        self.u = unit
        self.link = unit.link
        self.head = bytearray(wire.DIO_HEAD_LEN)
        self.observers = []   # callables(d, op, status): features watching drive health

    def drive(self, d):
        return self.u.sm.t["drives"][d]

    def usable(self, d):
        return 0 <= d < len(self.u.sm.t["drives"]) and self.drive(d)["state"] != FAILED

    def start(self, d, op, lba, count, buf):
        """Issue a drive read (op 'r', data lands in buf) or write (buf is the data, sent
        as it is at this call)."""
        struct.pack_into(wire.DIO_HEAD, self.head, 0, lba, count)
        if op == "r":
            p = self.link.start(wire.CH_DRIVE + d, wire.K_DREAD, self.head, b"", buf)
        else:
            p = self.link.start(wire.CH_DRIVE + d, wire.K_DWRITE, self.head, buf)
        if p is None:
            raise RuntimeError("no free request slot: board pool smaller than max_members + 1")
        return p

    async def finish(self, d, op, p):
        st = await self.link.finish(p)
        self.account(d, op, st)
        return st

    def account(self, d, op, st):
        dr = self.drive(d)
        c = dr["io"]
        c[op] += 1
        self.u.sm.dirty = True      # statistics: saved by the SM saver within save_ms
        if st != wire.OK:
            name = "other"
            for code, n in _ERR:
                if code == st:
                    name = n
                    break
            key = op + "_" + name
            c[key] = c.get(key, 0) + 1
            if st != wire.RECOVERED:
                # a drive error: saved at once (a reset keeps it); a corrected read is a
                # statistic, saved by the SM saver within save_ms like the plain counts
                self.u.sm.save()
        for ob in self.observers:
            ob(d, op, st)

    async def read(self, d, lba, count, into):
        if not self.usable(d):
            return wire.E_NOT_READY
        p = self.start(d, "r", lba, count, into)
        return await self.finish(d, "r", p)

    async def write(self, d, lba, count, data):
        if not self.usable(d):
            return wire.E_NOT_READY
        p = self.start(d, "w", lba, count, data)
        return await self.finish(d, "w", p)
