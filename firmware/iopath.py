# The I/O path of a host request, in named stages.  Every stage registered by a feature
# runs, in (order, registration) order; a stage's `when(v)` (if given) says whether it
# applies to volume v at all (asked once per request, before any lock is taken).
#
# Write:  check -> redirect -> before_cache -> cache -> after_commit
#   check         fn(u, v, lba, count, data) -> None | status: refuse before anything changes
#   redirect      fn(u, v, lba, count, data) -> None | status: the request is served elsewhere
#                 (a status ends it: GOOD when the stage wrote the data where it belongs)
#   before_cache  fn(...) -> None | status: work that must precede the store (copy-on-write
#                 marks, a parity delta); a status ends the request
#   cache         fn(...) -> None | status: a feature that stores the data itself (sparing's
#                 diverted writes); None passes on to the next, and finally to the cache
#   after_commit  fn(...) -> None | status: the data is stored; forward it (a status other
#                 than None ends the request with it, e.g. a copy that could not be sent)
# A stage registered with a lock holds it from before_cache until the data is stored
# (locks are taken in stage order, so two features never take them crosswise).
#
# Read:  read_check -> read -> after_read
#   read_check    fn(u, v, lba, count, out) -> None | status
#   read          fn(...) -> None | status: a feature that serves the read (its data in out)
#   after_read    fn(...) -> None: the data is in out (e.g. sent on to a parity unit)
from firmware import store, wire
from firmware.raid import GOOD

WRITE_STAGES = ("check", "redirect", "before_cache", "cache", "after_commit")
READ_STAGES = ("read_check", "read", "after_read")
STAGES = WRITE_STAGES + READ_STAGES


class Stage:
    def __init__(self, owner, fn, order, lock, when):
        self.owner = owner
        self.fn = fn
        self.order = order
        self.lock = lock
        self.when = when


class Path:
    def __init__(self):
        self.stages = {}
        for name in STAGES:
            self.stages[name] = []

    def add(self, stage, owner, fn, order=50, lock=None, when=None):
        if stage not in self.stages:
            raise ValueError("no I/O stage %r (stages: %s)" % (stage, ", ".join(STAGES)))
        lst = self.stages[stage]
        s = Stage(owner, fn, order, lock, when)
        i = len(lst)
        while i > 0 and lst[i - 1].order > order:
            i -= 1
        lst.insert(i, s)
        return s

    def remove_owner(self, owner):
        for name in STAGES:
            self.stages[name] = [s for s in self.stages[name] if s.owner != owner]

    def order(self):
        """{stage: [owner, ...]} as they run (the readable "iopath" table)."""
        d = {}
        for name in STAGES:
            d[name] = [s.owner for s in self.stages[name]]
        return d


async def _run(lst, u, v, lba, count, buf):
    for s in lst:
        st = await s.fn(u, v, lba, count, buf)
        if st is not None:
            return st
    return None


def _active(u, v, name):
    """The stages of `name` that apply to v (`when` asked once per request)."""
    out = []
    for s in u.path.stages[name]:
        if s.when is None or s.when(v):
            out.append(s)
    return out


async def _take(lists):
    """Take the locks of these stages, in stage order."""
    out = []
    for lst in lists:
        for s in lst:
            if s.lock is not None and s.lock not in out:
                out.append(s.lock)
    for lk in out:
        await lk.acquire()
    return out


def _release(locks):
    i = len(locks)
    while i > 0:
        i -= 1
        locks[i].release()


async def _first(u, v, names, lba, count, buf):
    """Run the stages of `names` in turn; the first status one returns, else None."""
    for name in names:
        r = await _run(_active(u, v, name), u, v, lba, count, buf)
        if r is not None:
            return r
    return None


async def write(u, v, lba, count, data):
    r = await _first(u, v, ("check", "redirect"), lba, count, data)
    if r is not None:
        return r
    before = _active(u, v, "before_cache")
    cache = _active(u, v, "cache")
    locks = await _take((before, cache))
    try:
        r = await _run(before, u, v, lba, count, data)
        if r is not None:
            return r
        r = await _run(cache, u, v, lba, count, data)
        if r is None:
            await store.write_vol(u, v, lba, count, data)
            if u.write_through:
                await store.destage(u)
        elif r not in GOOD:
            return r
    finally:
        _release(locks)
    r = await _run(_active(u, v, "after_commit"), u, v, lba, count, data)
    return wire.OK if r is None else r


async def read(u, v, lba, count, out):
    r = await _first(u, v, ("read_check",), lba, count, out)
    if r is not None:
        return r
    serve = _active(u, v, "read")
    after = _active(u, v, "after_read")
    locks = await _take((serve, after))
    try:
        r = await _run(serve, u, v, lba, count, out)
        if r is None:
            r = await store.read_vol(u, v, lba, count, out)
        if r not in GOOD:
            return r
        for s in after:
            await s.fn(u, v, lba, count, out)
    finally:
        _release(locks)
    return wire.OK
