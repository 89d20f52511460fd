# Remote copy: the copy of one pair (an area) as a job, and the transfer of blocks to T.
#
# The initial copy (step 402) and a resync are the same job: it scans the area's tracks
# from the copy pointer 837 to 835, one track per step (`step N` = N tracks scanned),
# and sends a track to T only when its changed bit is set (the initial copy starts with
# every bit set).  A track is read from S (the cache, else the group), sent to T with
# the S address as the T address, and its bit cleared once T has acknowledged it; then
# 837 moves past it.  The job runs under the pair's lock, so a host write's forwarding
# decision (837) never races a track in flight.  After 835: 836 = DUPLEX.  A transfer
# that fails suspends the pair (the bit stays set).  The job's record is the 830 slot
# (pointer, paused, copied, scanned): a reset resumes it from 837.
import asyncio
import struct

from firmware import peer, store, wire
from firmware.clock import ms_since, ticks_ms
from firmware.features.remote_copy.state import COPYING, DUPLEX, SUSPENDED
from firmware.jobs import DONE, FAILED, Job
from firmware.link import sleep_ms
from firmware.raid import GOOD

RC_CTL = 0x48     # PEER subtype: control messages (JSON, peer.call)
RC_DATA = 0x49    # PEER subtype: blocks for a copy destination (HEAD, then the data)
HEAD = "<BBHIH"   # subtype, op, T LV#, lba (S address = T address), count
HL = 10
OP_WRITE = 1      # a host write forwarded (Fig 5 step 503)
OP_COPY = 2       # a track of the initial copy or a resync (step 402)
OP_PROBE = 3      # blocks T answers without storing them (rc_path_rate: the path's raw rate)
TIMEOUT_MS = 3000


async def send(rc, i, op, lba, count, data):
    """Blocks lba.. of pair i to its LV(T) in frames that fit the link; the status."""
    u = rc.u
    s = rc.pair(i)
    head, into = rc.bufs[i]
    most = (u.link.max_payload - HL - 8) // u.bs
    bs = u.bs
    done = 0
    while done < count:
        n = min(most, count - done)
        struct.pack_into(HEAD, head, 0, RC_DATA, op, s["832"], lba + done, n)
        st, _ = await peer.request(u, wire.CH_PEER + s["path"], wire.K_PEER, head,
                                   data[done * bs:(done + n) * bs], into, TIMEOUT_MS)
        if st != wire.OK:
            return st
        done += n
    return wire.OK


class CopyJob(Job):
    def __init__(self, rc, i):
        s = rc.pair(i)
        t0, tb = rc.tracks(i)
        Job.__init__(self, "rc%d" % i, "remote_copy", s["835"] // tb - t0 + 1, s["scanned"], s["paused"])
        self.rc = rc
        self.i = i
        self.persist = s
        self.t0 = ticks_ms()
        self.ms = -1             # run time since (re)start, once the pair is DUPLEX

    def info(self):
        d = Job.info(self)
        s = self.rc.pair(self.i)
        d["copy_pointer"] = s["837"]
        d["area"] = [s["834"], s["835"]]
        d["pair_state"] = s["836"]
        d["copied"] = s["copied"]
        d["changed"] = self.rc.changed_tracks(self.i)
        d["ms"] = self.ms if self.ms >= 0 else ms_since(self.t0)
        return d


def start(rc, i):
    """Run pair i's copy from its 837 (the slot says UNDER COPYING)."""
    old = rc.jobs.get(i)
    if old is not None and old.state not in (DONE, FAILED):
        old.state = FAILED
        old.note = "superseded"
        old.ev.set()
    job = CopyJob(rc, i)
    rc.jobs[i] = job
    rc.u.jobs.add(job)
    asyncio.create_task(run(rc, job))
    return job


async def run(rc, job):
    u = rc.u
    i = job.i
    s = rc.pair(i)
    t0, tb = rc.tracks(i)
    buf = memoryview(bytearray(tb * u.bs))
    lock = rc.locks[i]
    v = None
    idle = 0
    try:
        while True:
            await job.gate()
            async with lock:
                if not rc.live or rc.jobs.get(i) is not job or s["836"] != COPYING:
                    return
                if v is None:
                    from firmware import ldev

                    v = ldev.volume(u, s["833"])
                p = s["837"]
                if p > s["835"]:
                    s["836"] = DUPLEX
                    job.state = DONE
                    job.ms = ms_since(job.t0)
                    job.note = "duplex; copied %d tracks" % s["copied"]
                    u.sm.save()
                    await tell(rc, i, DUPLEX)
                    return
                n = min(tb - p % tb, s["835"] + 1 - p)
                bit = p // tb - t0
                if rc.bm[i][bit >> 3] & (1 << (bit & 7)):
                    st = await store.read_vol(u, v, p, n, buf[:n * u.bs])
                    if st in GOOD:
                        st = await send(rc, i, OP_COPY, p, n, buf)
                    if st != wire.OK:
                        suspend(rc, i, "copy: %s" % wire.status_name(st))
                        job.note = "suspended at %d: %s" % (p, wire.status_name(st))
                        return
                    rc.cleared(i, bit)
                    s["copied"] += 1
                    rc.cnt["copied"] += 1
                    rc.cnt["copied_blocks"] += n
                    idle = 0
                else:
                    idle += 1
                s["837"] = p + n
                s["scanned"] += 1
                job.pointer = s["scanned"]
            u.sm.dirty = True
            if idle % 32 == 0:
                await sleep_ms(0)
    except Exception as e:   # a bug must not leave the job "running" for ever (a cancel is no Exception)
        job.state = FAILED
        job.note = "error: %r" % (e,)
        u.warn("remote_copy: %s: %s" % (job.name, job.note))


def suspend(rc, i, why):
    """836 = SUSPENDED (the caller holds the pair's lock or runs atomically)."""
    s = rc.pair(i)
    s["836"] = SUSPENDED
    s["why"] = why
    rc.cnt["suspends"] += 1
    job = rc.jobs.get(i)
    if job is not None and job.state not in (DONE, FAILED):
        job.state = DONE
        job.note = "suspended: " + why
        job.ev.set()
    rc.u.sm.save()
    rc.u.trace("rc", "suspended", s["833"], i, why)


async def tell(rc, i, state):
    """T's 900 mirrors S's pair state while the path is up (best effort)."""
    s = rc.pair(i)
    st, _ = await peer.call(rc.u, s["path"], RC_CTL, {"op": "state", "lv": s["832"], "state": state},
                            TIMEOUT_MS)
    return st
