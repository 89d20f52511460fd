# Cache: a fixed number of block slots (set by the board definition), preallocated.
# Read hit/miss, write-back (dirty slots are destaged by the destage task), LRU
# replacement of clean slots, and counters.
#
# A slot's key is firmware.volmap.key_of(group id, group block).  `gen` counts writes
# into a slot, so a destage that raced with a newer host write leaves the slot dirty.
from firmware.volmap import key_of  # noqa: F401  (the key of a slot)

CLEAN = 0
DIRTY = 1
PINNED = 2   # dirty, but the group cannot take it (data lost): kept, never evicted


class Cache:
    def __init__(self, nslots, block_size, nv=None):
        self.n = nslots
        self.bs = block_size
        # one buffer per slot: a small heap may not have one contiguous free region
        self.slot = [memoryview(bytearray(block_size)) for _ in range(nslots)]
        self.key = [-1] * nslots
        self.state = bytearray(nslots)
        self.busy = bytearray(nslots)    # 1 while a destage has the slot's data in flight
        self.resync = bytearray(nslots)  # 1: was being destaged at a reset: recompute parity
        self.nv = nv                     # NVCache or None (volatile cache)
        self.gen = [0] * nslots
        # the slots in the order of their last use, least recent first: a doubly linked
        # ring through slot n (the anchor), so a hit and a choice of victim cost O(1)
        # instead of a scan of every slot
        self.nxt = list(range(1, nslots + 2))
        self.nxt[nslots] = 0
        self.prv = list(range(-1, nslots))
        self.prv[0] = nslots
        self.index = {}
        self.ndirty = 0
        self.c = {"read_hits": 0, "read_misses": 0, "write_hits": 0, "write_misses": 0,
                  "destaged": 0, "evictions": 0, "full_waits": 0, "pinned": 0}

    def _touch(self, i):
        """Slot i is now the most recently used."""
        nxt = self.nxt
        prv = self.prv
        a = self.n
        if prv[a] == i:
            return
        p = prv[i]
        q = nxt[i]
        nxt[p] = q
        prv[q] = p
        p = prv[a]
        nxt[p] = i
        prv[i] = p
        nxt[i] = a
        prv[a] = i

    def lookup(self, key):
        i = self.index.get(key, -1)
        if i >= 0:
            self._touch(i)
        return i

    def _victim(self):
        """The first free slot by number while there are free slots; else the least
        recently used clean slot whose data is not in flight (-1: none)."""
        key = self.key
        if len(self.index) < self.n:
            for i in range(self.n):
                if key[i] < 0:
                    return i
        state = self.state
        busy = self.busy
        nxt = self.nxt
        i = nxt[self.n]
        while i != self.n:
            if state[i] == CLEAN and not busy[i]:
                return i
            i = nxt[i]
        return -1

    def alloc(self, key):
        """A slot for key (LRU clean victim, never one whose data is in flight), or -1
        if there is none."""
        best = self._victim()
        if best < 0:
            return -1
        if self.key[best] >= 0:
            del self.index[self.key[best]]
            self.c["evictions"] += 1
        self.key[best] = key
        self.index[key] = best
        self.state[best] = CLEAN
        self._touch(best)
        return best

    def mark_dirty(self, i):
        if self.state[i] == CLEAN:
            self.ndirty += 1
        self.state[i] = DIRTY
        self.gen[i] += 1
        if self.nv is not None:
            self.nv.put(i, self.key[i], self.gen[i], self.slot[i])

    def mark_clean(self, i, gen):
        """After a destage of generation `gen`: clean unless rewritten since."""
        if self.gen[i] == gen and self.state[i] != CLEAN:
            self.state[i] = CLEAN
            self.resync[i] = 0
            self.ndirty -= 1
            self.c["destaged"] += 1
            if self.nv is not None:
                self.nv.clean(i)
            return True
        return False

    def restore(self):
        """Boot: put the non-volatile cache's dirty records back; return how many."""
        if self.nv is None:
            return 0
        recs = self.nv.dirty_records()
        for i, key, gen, data, inflight in recs:
            if i >= self.n:
                continue
            self.key[i] = key
            self.index[key] = i
            self.slot[i][:] = data
            self.gen[i] = gen
            self.state[i] = DIRTY
            self.resync[i] = 1 if inflight else 0   # only a row caught mid-write is suspect
            self.ndirty += 1
        self.c["restored"] = len(recs)
        return len(recs)

    def hold(self, i):
        """A destage takes the slot's data to the drives (see cha.destage)."""
        self.busy[i] = 1
        if self.nv is not None and self.state[i] != CLEAN:
            self.nv.inflight(i)

    def pin(self, i):
        if self.state[i] == DIRTY:
            self.state[i] = PINNED
            self.c["pinned"] += 1

    def dirty_slots(self):
        return [i for i in range(self.n) if self.state[i] == DIRTY]

    def info(self):
        d = dict(self.c)
        d["slots"] = self.n
        d["dirty"] = self.ndirty
        d["used"] = len(self.index)
        d["nv"] = self.nv is not None
        if self.nv is not None:
            d["nv_writes"] = self.nv.writes
        return d
