"""The golden model of one volume under concurrent I/O: what each block may hold,
given only what the host saw (when it sent each request and when each answer came).

Time is a counter the driver advances at every event it sees (tick()).  A write lands
somewhere between its issue and its acknowledgement; a read samples the block somewhere
between its issue and its answer.  So:

  - a write W is certainly older than a write V when V was issued after W was
    acknowledged; W is then superseded as soon as V is acknowledged;
  - a read may return any write not superseded by the time the read was issued, and
    any write issued before its answer came (it may have landed meanwhile);
  - two writes in flight together may end in either order; a read after both are
    acknowledged sees one of them, and every later read the same (the read's answer
    removes every other write that had landed before it was issued);
  - a write never acknowledged (the board was reset, or it failed) may or may not have
    landed: it supersedes nothing, and a read after the reset sees it or what was there
    before, and later reads the same;
  - an acknowledged write survives resets: a reset changes nothing else.

Block contents are those of the verifying host (host.hostio.block_content): each
block's generation number says which write a read found.  A serial driver (one
request at a time) gets exactly the old single-value model.

    g = Golden(block_size)
    w = g.write_issued(lba, n)         # w.data: what to send
    ...send...; g.write_acked(w)       # or g.write_unknown(w) if no answer will come
    r = g.read_issued(lba, n)
    ...read...; bad = g.read_done(r, data)      # [] or descriptions of wrong blocks
    g.reset()                          # every write still in flight becomes unknown
"""
from __future__ import annotations

import struct

from host.hostio import HDR, MAGIC, block_content


class _W:
    """One write of one block: its generation, when it was issued, when acknowledged
    (None while in flight) and whether the acknowledgement came (sure)."""
    __slots__ = ("gen", "issued", "acked", "sure")

    def __init__(self, gen, issued, acked=None, sure=False):
        self.gen, self.issued, self.acked, self.sure = gen, issued, acked, sure


class Op:
    """A request in flight: kind "w" or "r", its first block and count, issue time,
    generations written (writes) and the content to send (writes)."""
    __slots__ = ("kind", "lba", "count", "issued", "gens", "data")

    def __init__(self, kind, lba, count, issued, gens=None, data=None):
        self.kind, self.lba, self.count, self.issued, self.gens, self.data = kind, lba, count, issued, gens, data


class Golden:
    def __init__(self, block_size: int, vol: int = 0, seed: int = 0):
        self.bs = block_size
        self.vol = vol
        self.seed = seed
        self.clock = 1
        self.hist: dict[int, list[_W]] = {}     # lba -> writes that may still be its content
        self.seen: dict[int, list[tuple]] = {}  # lba -> reads' answers (issued, done, generation)
        self.next_gen: dict[int, int] = {}
        self.reading: dict[int, int] = {}       # id(op) -> issue time of the reads in flight
        self.checked = 0
        self.ambiguous = 0      # blocks read while more than one content was allowed
        self.writes_acked = 0   # write requests acknowledged
        self.writes_unknown = 0     # write requests never acknowledged (reset, error)

    def tick(self) -> int:
        self.clock += 1
        return self.clock

    def _writes(self, lba: int) -> list[_W]:
        h = self.hist.get(lba)
        if h is None:
            h = self.hist[lba] = [_W(0, -1, 0, True)]    # never written: zeros, since always
        return h

    def content(self, lba: int, gen: int) -> bytes:
        return bytes(self.bs) if gen == 0 else block_content(self.vol, lba, gen, self.bs, self.seed)

    # ---- writes ----------------------------------------------------------------
    def write_issued(self, lba: int, count: int) -> Op:
        t = self.tick()
        gens = []
        for i in range(count):
            g = self.next_gen.get(lba + i, 0) + 1
            self.next_gen[lba + i] = g
            gens.append(g)
            self._writes(lba + i).append(_W(g, t))
        data = b"".join(self.content(lba + i, g) for i, g in enumerate(gens))
        return Op("w", lba, count, t, gens, data)

    def _find(self, lba, gen):
        return next((w for w in self._writes(lba) if w.gen == gen), None)

    def write_acked(self, op: Op):
        t = self.tick()
        self.writes_acked += 1
        for i, g in enumerate(op.gens):
            w = self._find(op.lba + i, g)
            if w is not None:
                w.acked, w.sure = t, True
                self._prune(op.lba + i)

    def write_unknown(self, op: Op):
        """No acknowledgement will come (reset, error): it may or may not have landed."""
        t = self.tick()
        self.writes_unknown += 1
        for i, g in enumerate(op.gens):
            w = self._find(op.lba + i, g)
            if w is not None and w.acked is None:
                w.acked, w.sure = t, False

    def reset(self):
        """The board was reset: every write still in flight may or may not have landed,
        and no read in flight will be answered."""
        t = self.tick()
        self.reading.clear()
        for h in self.hist.values():
            for w in h:
                if w.acked is None:
                    w.acked, w.sure = t, False

    # ---- reads -----------------------------------------------------------------
    def read_issued(self, lba: int, count: int) -> Op:
        op = Op("r", lba, count, self.tick())
        self.reading[id(op)] = op.issued
        return op

    def read_dropped(self, op: Op):
        """A read that will not be answered (nothing is checked)."""
        self.reading.pop(id(op), None)

    def allowed(self, lba: int, issued: int, done: int) -> list[int]:
        """Generations a read of lba issued at `issued`, answered at `done`, may return."""
        h = self._writes(lba)
        seen = self.seen.get(lba, ())
        out = []
        for w in h:
            if w.issued >= done:
                continue          # sent after the answer came
            a = w.acked
            if a is not None and (
                    any(v.sure and v.acked <= issued and v.issued > a for v in h)   # overwritten
                    or any(d <= issued and g != w.gen and a <= i for i, d, g in seen)):  # a read saw a later one
                continue
            out.append(w.gen)
        return out

    def _prune(self, lba: int):
        """Forget what no read in flight or to come may return any more."""
        horizon = min(self.reading.values(), default=self.clock)
        keep = set(self.allowed(lba, horizon, 1 << 62))
        self.hist[lba] = [w for w in self._writes(lba) if w.gen in keep]
        if lba in self.seen:
            self.seen[lba] = [s for s in self.seen[lba] if s[1] > horizon]

    def read_done(self, op: Op, blocks) -> list[str]:
        """Check a read's answer: bytes of op.count blocks, or a list with None for a
        block rightly unreadable (not checked).  Returns descriptions of wrong blocks;
        what the read saw narrows what later reads may see."""
        done = self.tick()
        self.reading.pop(id(op), None)
        bad = []
        for i in range(op.count):
            lba = op.lba + i
            got = blocks[i * self.bs:(i + 1) * self.bs] if isinstance(blocks, (bytes, bytearray)) else blocks[i]
            if got is None:
                continue
            self.checked += 1
            ok = self.allowed(lba, op.issued, done)
            self.ambiguous += len(ok) > 1
            gen = self._gen_of(lba, got)
            if gen not in ok:
                bad.append(self.describe(lba, got, ok))
                continue
            w = self._find(lba, gen)
            if w.acked is not None:
                w.sure = True          # it landed before this answer (a reset cut it short)
            self.seen.setdefault(lba, []).append((op.issued, done, gen))
            self._prune(lba)
        return bad

    def _gen_of(self, lba: int, got: bytes):
        if got == bytes(self.bs):
            return 0
        try:
            magic, vol, blk, gen, seed = HDR.unpack_from(got)
        except struct.error:
            return None
        if magic != MAGIC or vol != self.vol or blk != lba or seed != self.seed:
            return None
        return gen if got == self.content(lba, gen) else None

    def describe(self, lba: int, got: bytes, ok: list[int]) -> str:
        try:
            magic, v, blk, g, _ = HDR.unpack_from(got)
        except struct.error:
            magic = 0
        found = f"block of vol {v} lba {blk} gen {g}" if magic == MAGIC else "foreign data"
        return f"vol {self.vol} lba {lba}: expected one of generations {sorted(ok)}, found {found}"

    def possible(self, lba: int) -> list[int]:
        """Generations a read issued now may return (no write in flight: the content)."""
        return self.allowed(lba, self.clock, self.clock + 1)
