# Cache and SM mirroring between the two controllers of a unit (seed 004: "data in the
# cache memory 500 is written also in the cache memory of controller B", and the
# management information unit 600 with it).
#
# PUT    a host write's blocks go to the sibling before they are stored here (a cache
#        stage under the dual lock); the blocks a feature stores itself (a copy job's)
#        go right after they are stored (a store.write_blocks cache observer).  Either
#        way a host is acknowledged only once both caches hold the data.  Each PUT carries a sequence
#        number; the receiver keeps per slot the number of the data it holds and drops
#        an older PUT of the same block (two PUTs may arrive in either order).
# CLEAN  a destage that made a slot clean (a store clean observer) sends (key, seq): the
#        sibling marks its copy clean if it holds that version or an older one.  Notices
#        ride on the next PUT, or go alone when no write comes.
# SM     before every SM save the generation is bumped; the changed tables (all but
#        LOCAL_TABLES) go to the sibling as one JSON image in chunks, before the next
#        mirrored write goes out (so an SM change a write depends on, e.g. a copy's
#        bitmap mark, is on the sibling before that write is acknowledged).
import asyncio
import json
import struct

from firmware import peer, volmap, wire
from firmware.cache import CLEAN, DIRTY
from firmware.features.dual.state import LOCAL_TABLES, MASTER, SUB_CTL
from firmware.link import sleep_ms
from firmware.volmap import key_gid, key_glba, key_of

SUB_PUT = 0x68     # PUT_HEAD, notices, then count blocks of data
SUB_CLEAN = 0x69   # CLEAN_HEAD, then notices
SUB_SM = 0x6A      # SM_HEAD, then a chunk of the JSON image
PUT_HEAD = "<BBHHII"   # sub, notices, group, count, group block, seq
PUT_LEN = 14
CLEAN_HEAD = "<BB"     # sub, notices
CLEAN_LEN = 2
NOTE = "<II"           # cache key, seq
NOTE_LEN = 8
SM_HEAD = "<BII"       # sub, image length, offset of this chunk
SM_LEN = 9
DESYNC_MS = 200        # between two tries to tell an unreachable sibling it is out of step


def _take_notes(d, buf, off):
    """Move up to clean_batch waiting notices into buf at off; return how many."""
    n = 0
    while d.ncl and n < d.cfg["clean_batch"]:
        d.ncl -= 1
        struct.pack_into(NOTE, buf, off + n * NOTE_LEN, d.cl_key[d.ncl], d.cl_seq[d.ncl])
        n += 1
    d.c["cleans_sent"] += n
    return n


def _head(d):
    return d.heads.pop() if d.heads else bytearray(PUT_LEN + NOTE_LEN * d.cfg["clean_batch"])


async def send_put(d, gid, glba, count, data, seq):
    """Blocks into the sibling's cache, in frames that fit its payload; the status."""
    u = d.u
    bs = u.bs
    per = max(1, (u.link.max_payload - PUT_LEN - NOTE_LEN * d.cfg["clean_batch"] - 1) // bs)
    i = 0
    while i < count:
        k = min(per, count - i)
        h = _head(d)
        try:
            n = _take_notes(d, h, PUT_LEN)
            struct.pack_into(PUT_HEAD, h, 0, SUB_PUT, n, gid, k, glba + i, seq)
            st, _ = await peer.request(u, wire.CH_PEER + d.sib, wire.K_PEER,
                                       memoryview(h)[:PUT_LEN + n * NOTE_LEN], data[i * bs:(i + k) * bs], d.rbuf)
        finally:
            d.heads.append(h)
        if st != wire.OK:
            return st
        d.c["puts_sent"] += 1
        d.c["blocks_mirrored"] += k
        i += k
    return wire.OK


def lost(d, st):
    """The sibling did not take a mirror frame: this controller runs alone, and tells
    the sibling (if it still answers) that its mirror is out of step: it joins again."""
    if d.peer_up:
        d.peer_up = False
        d.c["peer_lost"] += 1
        d.u.warn("dual: controller %s unreachable (%s): running alone"
                 % ("AB"[1 - d.me], wire.status_name(st)))
        asyncio.create_task(_tell_out_of_step(d))


async def _tell_out_of_step(d):
    """Until the sibling has heard it (or this controller mirrors again): a sibling
    that thinks itself in step must not take over with an old mirror."""
    while d.live and not d.peer_up:
        st, r = await peer.call(d.u, d.sib, SUB_CTL, {"op": "desync"}, timeout=1000)
        if st in (wire.OK, wire.E_STATE):
            return
        await sleep_ms(DESYNC_MS)


async def _mirror(d, gid, glba, count, data, seq):
    if not d.peer_up:
        return
    if d.sm_gen != d.sm_sent:
        await push_sm(d)
    st = await send_put(d, gid, glba, count, data, seq)
    if st != wire.OK:
        lost(d, st)


def _stamp(d, gid, glba, count, seq):
    c = d.u.cache
    for i in range(count):
        s = c.index.get(key_of(gid, glba + i), -1)
        if s >= 0:
            d.sseq[s] = seq


def pre_mirror(d):
    """A cache stage (under the dual lock, so host writes reach both caches in one
    order): the host's blocks go to the sibling BEFORE they are stored here, so no read
    of this cache ever returns data the sibling does not hold."""
    async def fn(u, v, lba, count, data):
        d.seq += 1
        segs = volmap.segments(v, lba, count)
        d.pre_task = asyncio.current_task()
        d.pre_seq = d.seq
        d.pre_left = len(segs)
        bs = u.bs
        for gid, glba, off, n in segs:
            await _mirror(d, gid, glba, n, data[off * bs:(off + n) * bs], d.pre_seq)
        return None            # the path stores the data next
    return fn


def pre_done(d):
    """after_commit: the host write is stored; its blocks are no longer the ones the
    observer must not send again (even if the store stopped short)."""
    async def fn(u, v, lba, count, data):
        if d.pre_task is asyncio.current_task():
            d.pre_task = None
            d.pre_left = 0
        return None
    return fn


def observer(d):
    """The cache observer: number the blocks just stored; mirror those a host write did
    not send ahead (a feature's own copies: stored here first, then sent)."""
    async def fn(u, gid, glba, count, data):
        if d.pre_left and asyncio.current_task() is d.pre_task:
            d.pre_left -= 1
            _stamp(d, gid, glba, count, d.pre_seq)
            return
        d.seq += 1
        seq = d.seq
        _stamp(d, gid, glba, count, seq)
        await _mirror(d, gid, glba, count, data, seq)
    return fn


def on_clean(d):
    """The clean observer: a destage made slot s clean; tell the sibling."""
    def fn(s):
        if not d.peer_up:
            return
        if d.ncl >= len(d.cl_key):
            d.c["clean_overflow"] += 1   # the sibling keeps its copy dirty (written again on takeover)
            return
        d.cl_key[d.ncl] = d.u.cache.key[s]
        d.cl_seq[d.ncl] = d.sseq[s]
        d.ncl += 1
        d.clean_ev.set()
    return fn


async def cleaner(d):
    """Send the notices no PUT took along."""
    h = bytearray(CLEAN_LEN + NOTE_LEN * d.cfg["clean_batch"])
    while d.live:
        await d.clean_ev.wait()
        d.clean_ev.clear()
        await flush_notes(d, h)


async def flush_notes(d, h=None):
    if h is None:
        h = bytearray(CLEAN_LEN + NOTE_LEN * d.cfg["clean_batch"])
    while d.ncl and d.peer_up:
        n = _take_notes(d, h, CLEAN_LEN)
        struct.pack_into(CLEAN_HEAD, h, 0, SUB_CLEAN, n)
        st, _ = await peer.request(d.u, wire.CH_PEER + d.sib, wire.K_PEER, bytes(h[:CLEAN_LEN + n * NOTE_LEN]),
                                   b"", d.rbuf)
        if st != wire.OK:
            lost(d, st)


def _apply_notes(d, p, off, n):
    c = d.u.cache
    for j in range(n):
        key, seq = struct.unpack_from(NOTE, p, off + j * NOTE_LEN)
        s = c.index.get(key, -1)
        if s >= 0 and c.state[s] == DIRTY and not c.busy[s] and d.sseq[s] <= seq:
            c.mark_clean(s, c.gen[s])
            d.c["cleans_applied"] += 1
    if n:
        d.u.slot_ev.set()


async def on_put(d, u, req, p):
    link = u.link
    if len(p) < PUT_LEN:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    _, n, gid, count, glba, seq = struct.unpack_from(PUT_HEAD, p, 0)
    off = PUT_LEN + n * NOTE_LEN
    bs = u.bs
    if len(p) != off + count * bs:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    _apply_notes(d, p, PUT_LEN, n)
    c = u.cache
    for i in range(count):
        key = key_of(gid, glba + i)
        s = c.lookup(key)
        if s < 0:
            s = c.alloc(key)
            if s < 0:     # every slot dirty: the sender asks again (notices free slots)
                d.c["put_busy"] += 1
                return link.respond(req.ch, req.kind, req.seq, wire.E_BUSY)
            d.sseq[s] = 0
        if c.busy[s]:
            d.c["put_busy"] += 1
            return link.respond(req.ch, req.kind, req.seq, wire.E_BUSY)
        if d.sseq[s] > seq:
            d.c["stale_puts"] += 1
            continue
        c.slot[s][:] = p[off + i * bs:off + (i + 1) * bs]
        c.mark_dirty(s)
        d.sseq[s] = seq
    if seq > d.seq:
        d.seq = seq
    d.c["puts_applied"] += 1
    if u.tracing:          # sent before the answer: on the host's log before the write's GOOD
        u.trace("dual_put", gid, glba, count, seq)
    link.respond(req.ch, req.kind, req.seq, wire.OK)


async def on_clean_frame(d, u, req, p):
    if len(p) < CLEAN_LEN or len(p) != CLEAN_LEN + p[1] * NOTE_LEN:
        return u.link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    _apply_notes(d, p, CLEAN_LEN, p[1])
    u.link.respond(req.ch, req.kind, req.seq, wire.OK)


# ---- management information (SM) ----------------------------------------------------
def bump(d):
    """before_save: the SM is about to change on the file; the sibling must hear of it."""
    d.sm_gen += 1
    d.sm_ev.set()


async def push_sm(d, handing_over=False):
    """The SM image to the sibling (if it is not there yet); the status.  Only a master
    sends it (and one handing its role over, a last time)."""
    async with d.sm_lock:
        g = d.sm_gen
        if g == d.sm_sent or not d.peer_up or not (d.role == MASTER or handing_over):
            return wire.OK
        u = d.u
        doc = {}
        for name in u.sm.t:
            if name not in LOCAL_TABLES:
                doc[name] = u.sm.t[name]
        raw = memoryview(json.dumps(doc).encode())
        step = u.link.max_payload - SM_LEN - 1
        off = 0
        while True:
            head = struct.pack(SM_HEAD, SUB_SM, len(raw), off)
            st, _ = await peer.request(u, wire.CH_PEER + d.sib, wire.K_PEER, head, raw[off:off + step], d.rbuf)
            if st != wire.OK:
                lost(d, st)
                return st
            off += step
            if off >= len(raw):
                break
        d.sm_sent = g
        d.c["sm_pushes"] += 1
        return wire.OK


async def sm_pusher(d):
    while d.live:
        await d.sm_ev.wait()
        d.sm_ev.clear()
        await push_sm(d)


async def on_sm(d, u, req, p):
    link = u.link
    if len(p) < SM_LEN:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_LENGTH)
    if d.role == MASTER:       # a master's SM is the unit's: it takes no image
        return link.respond(req.ch, req.kind, req.seq, wire.E_STATE)
    _, total, off = struct.unpack_from(SM_HEAD, p, 0)
    part = p[SM_LEN:]
    if off == 0:
        d.smbuf = bytearray(total)
    buf = d.smbuf
    if buf is None or len(buf) != total or off + len(part) > total:
        return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_PARAM)
    buf[off:off + len(part)] = part
    if off + len(part) == total:
        d.smbuf = None
        try:
            tables = json.loads(bytes(buf))
        except ValueError:
            return link.respond(req.ch, req.kind, req.seq, wire.E_BAD_PARAM)
        t = u.sm.t
        for name in list(t):
            if name not in LOCAL_TABLES and name not in tables:
                del t[name]
        for name in tables:
            if name not in LOCAL_TABLES:
                t[name] = tables[name]
        u.sm.save()       # a reset of this board keeps the mirror
        d.c["sm_applied"] += 1
    link.respond(req.ch, req.kind, req.seq, wire.OK)


def drop_cache(d):
    """A joining controller's own cache (e.g. restored from its non-volatile copy) is
    older than the master's: forget it before the master's blocks arrive."""
    c = d.u.cache
    for s in range(c.n):
        k = c.key[s]
        if k >= 0 and not c.busy[s]:
            if c.state[s] != CLEAN:
                c.mark_clean(s, c.gen[s])
            del c.index[k]
            c.key[s] = -1
            d.sseq[s] = 0


async def resync(d):
    """The sibling (re)joined: it drops its cache, this controller mirrors from now on
    and sends it the SM and every dirty block it holds (with its sequence number; newer
    writes win over them)."""
    u = d.u
    c = u.cache
    st, r = await peer.call(u, d.sib, SUB_CTL, {"op": "drop"})
    if st != wire.OK:
        return st
    d.in_step()
    d.sm_sent = 0
    st = await push_sm(d)
    s = 0
    while st == wire.OK and s < c.n:
        if c.key[s] >= 0 and c.state[s] != 0:
            k = c.key[s]
            st = await send_put(d, key_gid(k), key_glba(k), 1, c.slot[s], d.sseq[s])
            d.c["resync_blocks"] += 1
        s += 1
    if st != wire.OK:
        lost(d, st)
    return st


def setup(d):
    d.wlock = asyncio.Lock()
    d.pre_task = None
    d.pre_seq = 0
    d.pre_left = 0
    d.sm_lock = asyncio.Lock()
    d.sm_ev = asyncio.Event()
    d.clean_ev = asyncio.Event()
    d.rbuf = bytearray(16)
    d.heads = [bytearray(PUT_LEN + NOTE_LEN * d.cfg["clean_batch"]) for _ in range(d.u.board["workers"] + 2)]
