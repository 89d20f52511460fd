"""The cache's choice of a slot: the first free slot by number while any is free, else
the least recently used clean slot whose data is not in flight (never a dirty, pinned
or busy one).  Checked against a plain model that stamps every use and scans every
slot, over seeded random sequences of lookups, allocations, writes, destages and holds.
"""
import random

import pytest

from firmware.cache import CLEAN, DIRTY, Cache


class Model:
    def __init__(self, n):
        self.n = n
        self.key = [-1] * n
        self.used = [0] * n
        self.clock = 0

    def touch(self, i):
        self.clock += 1
        self.used[i] = self.clock

    def victim(self, state, busy):
        for i in range(self.n):
            if self.key[i] < 0:
                return i
        best = -1
        for i in range(self.n):
            if state[i] == CLEAN and not busy[i] and (best < 0 or self.used[i] < self.used[best]):
                best = i
        return best


@pytest.mark.parametrize("seed", range(20))
def test_victim_is_lru_clean(seed):
    rng = random.Random(seed)
    n = rng.choice([1, 2, 5, 16, 64])
    c = Cache(n, 16)
    m = Model(n)
    keys = list(range(3 * n))
    for _ in range(2000):
        op = rng.random()
        k = rng.choice(keys)
        if op < 0.35:
            i = c.lookup(k)
            assert i == (m.key.index(k) if k in m.key else -1)
            if i >= 0:
                m.touch(i)
        elif op < 0.7:
            if c.lookup(k) >= 0:
                m.touch(m.key.index(k))
                continue
            want = m.victim(c.state, c.busy)
            got = c.alloc(k)
            assert got == want
            if got >= 0:
                m.key[got] = k
                m.touch(got)
        elif op < 0.82:
            live = [i for i in range(n) if c.key[i] >= 0]
            if live:
                c.mark_dirty(rng.choice(live))
        elif op < 0.94:
            dirty = [i for i in range(n) if c.state[i] == DIRTY]
            if dirty:
                i = rng.choice(dirty)
                c.busy[i] = 0
                c.mark_clean(i, c.gen[i])
        else:
            i = rng.randrange(n)
            c.busy[i] = 0 if c.busy[i] else 1
        assert len(c.index) == sum(1 for x in c.key if x >= 0)


def test_full_of_dirty_has_no_victim():
    c = Cache(4, 16)
    for k in range(4):
        c.mark_dirty(c.alloc(k))
    assert c.alloc(99) == -1
    c.mark_clean(2, c.gen[2])
    assert c.alloc(99) == 2 and c.lookup(2) == -1 and c.lookup(99) == 2


def test_slot_freed_outside_is_taken_first():
    """A slot forgotten by its owner (key -1, out of the index, as a joining controller
    drops its cache) is taken before any clean slot is evicted."""
    c = Cache(4, 16)
    for k in range(4):
        c.alloc(k)
    s = c.lookup(2)
    del c.index[2]
    c.key[s] = -1
    assert c.alloc(7) == s
    assert c.c["evictions"] == 0
