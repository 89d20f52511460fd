# Volume copy: "copy track t" and the background copies as jobs (seed 003 E7 Figs 20-22,
# E8 Figs 29-30, E9 Figs 37, 39-40).
#
# Copy track t: the original's track t is staged through the cache (a hit, or read from
# its group) and written as the copy volume's track t through the cache write path; the
# destage task writes it out later (the seed: "the time of writing ... may be arbitrary").
# A copy scans its bitmap forward once and skips clean tracks with next_set, so its cost
# follows the set bits; `step n` lets a paused copy make n more track copies.  Its record
# (pointer = next track to look at, copies made, paused) lives in SM in the slot (or
# extent entry) it works for, so it resumes after a reset; when it ends, the slot's new
# state and the job's outcome (the "done" table) are saved together.
import asyncio

from firmware import core, store, wire
from firmware.clock import ticks_diff, ticks_ms
from firmware.features.volcopy.state import CANCELLED, KINDS, T_PAIR, volume_of
from firmware.jobs import DONE, FAILED, Job
from firmware.link import sleep_ms
from firmware.raid import GOOD


class CopyJob(Job):
    """A background copy; its record lives in SM."""

    def __init__(self, rec, total, pointer):
        Job.__init__(self, rec["name"], rec["kind"], total, pointer, rec["paused"])
        self.rec = rec
        self.persist = rec      # a pause / resume is saved at once (mgmt "job")
        self.note = "copied %d" % rec["copied"]
        self.t0 = ticks_ms()
        self.ms = -1            # run time since (re)start, once finished

    def info(self):
        d = Job.info(self)
        d["copied"] = self.rec["copied"]
        d["track"] = self.rec["pointer"]
        d["ms"] = self.ms if self.ms >= 0 else ticks_diff(ticks_ms(), self.t0)
        return d


async def copy_track(vc, orig, copy, t):
    """Stage the original's track t through the cache and write it into the copy's
    track t through the cache write path (destaged later)."""
    u = vc.u
    ov = volume_of(u, orig)
    cv = volume_of(u, copy)
    first = t * vc.tb
    n = min(vc.tb, ov["blocks"] - first, cv["blocks"] - first)
    if n <= 0:
        return wire.OK
    buf = vc.tbuf[:n * u.bs]
    st = await store.read_vol(u, ov, first, n, buf)
    if st not in GOOD:
        return st
    await store.write_vol(u, cv, first, n, buf)
    vc.stats["copied"] += 1
    return wire.OK


def new_rec(kind, name, first, paused):
    return {"kind": kind, "name": name, "k": 0, "pointer": first, "copied": 0, "paused": bool(paused)}


def scan_of(vc, tbl, i, holder, kind):
    """The track ranges a copy scans: [(bitmap, first, last, bit offset)]."""
    s = vc.slot(tbl, i)
    if kind in ("generation", "division", "xgeneration"):
        return [("G", 0, s["tracks"] - 1, 0)]
    if kind == "extent_update":
        return [("D", holder["start"], holder["end"], 0)]
    if kind in ("area_generation", "area_division"):
        return [("bits", s["start"], s["end"], s["start"])]
    name = "G" if kind == "extent_division" else "D"
    return [(name, a, b, 0) for a, b in s["extents"]]


def _next(vc, tbl, i, rec, segs):
    """Move the pointer to the next set track of the scan; -1 when none is left."""
    while rec["k"] < len(segs):
        name, lo, hi, off = segs[rec["k"]]
        p = max(rec["pointer"], lo)
        if p <= hi:
            j = core.next_set(vc.bm[(tbl, i, name)], p - off, hi + 1 - off)
            if j >= 0:
                rec["pointer"] = j + off
                return j + off
        rec["k"] += 1
        rec["pointer"] = segs[rec["k"]][1] if rec["k"] < len(segs) else hi + 1
    return -1


def _progress(rec, segs):
    done = 0
    for k in range(len(segs)):
        _, lo, hi, _ = segs[k]
        if k < rec["k"]:
            done += hi - lo + 1
        elif k == rec["k"]:
            done += min(max(rec["pointer"], lo), hi + 1) - lo
    return done


def start(vc, tbl, i, holder, rec):
    """Run the copy of `rec` (already saved in holder["job"]) as a job."""
    segs = scan_of(vc, tbl, i, holder, rec["kind"])
    total = 0
    for _, lo, hi, _ in segs:
        total += hi - lo + 1
    vc.t["done"].pop(rec["name"], None)
    job = CopyJob(rec, total, _progress(rec, segs))
    vc.u.jobs.add(job)
    task = asyncio.create_task(_run(vc, job, tbl, i, holder, rec, segs))
    vc.running.append((job, rec, task))
    return job


def resume_all(vc):
    """At attach: the copies in progress go on from their saved records; finished ones
    are listed as they ended."""
    for name in vc.t["done"]:
        d = vc.t["done"][name]
        job = CopyJob(d, d["total"], d["total"])
        job.persist = None
        job.state = d["state"]
        job.note = d["note"]
        job.ms = d["ms"]
        vc.u.jobs.add(job)
    for tbl, i, s in vc.used():
        if s["job"]:
            start(vc, tbl, i, s, s["job"])
        if tbl == T_PAIR:
            for e in s["extents"]:
                if e["use"] and e["job"]:
                    start(vc, tbl, i, e, e["job"])


def _ended(vc, job, state, note):
    """The job's outcome, kept in SM (saved with the slot's new state by the caller)."""
    job.state = state
    job.note = note
    job.ms = ticks_diff(ticks_ms(), job.t0)
    d = dict(job.rec)
    d["state"] = state
    d["note"] = note
    d["ms"] = job.ms
    d["total"] = job.total
    vc.t["done"][job.name] = d
    job.ev.set()


def cancel(vc, rec, note):
    """Stop a copy superseded by a command (its holder no longer names it)."""
    job = vc.u.jobs.get(rec["name"])
    if job is not None and getattr(job, "rec", None) is rec:
        _ended(vc, job, CANCELLED, note)


async def _run(vc, job, tbl, i, holder, rec, segs):
    s = vc.slot(tbl, i)
    u = vc.u
    try:
        while True:
            async with vc.lock:
                if not (vc.live and holder["job"] is rec):
                    return
                t = _next(vc, tbl, i, rec, segs)
                job.pointer = _progress(rec, segs)
                if t < 0:
                    _complete(vc, tbl, i, holder, rec, job)
                    return
            await job.gate()
            async with vc.lock:
                if not (vc.live and holder["job"] is rec):
                    return
                t = _next(vc, tbl, i, rec, segs)
                if t < 0:
                    continue
                st = await copy_track(vc, s["orig"], s["copy"], t)      # e.g. 2002-2003
                if st not in GOOD:
                    job.state = FAILED
                    job.note = "copy of track %d failed: %s" % (t, wire.status_name(st))
                    u.warn("volcopy: %s: %s" % (job.name, job.note))
                    return
                name, _, _, off = segs[rec["k"]]
                core.bit_clear(vc.bm[(tbl, i, name)], t - off)              # e.g. 2004
                vc.dirty.add((tbl, i, name))
                vc.unsaved = True
                rec["pointer"] = t + 1
                rec["copied"] += 1
                job.pointer = _progress(rec, segs)
                job.note = "copied %d" % rec["copied"]
            u.sm.dirty = True
            await sleep_ms(0)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a bug must not leave the copy "running" for ever
        job.state = FAILED
        job.note = "error: %r" % (e,)
        u.warn("volcopy: %s: %s" % (job.name, job.note))
    finally:
        for k in range(len(vc.running)):
            if vc.running[k][0] is job:
                vc.running.pop(k)
                break


def _complete(vc, tbl, i, holder, rec, job):
    s = vc.slot(tbl, i)
    kind = rec["kind"]
    if kind == "extent_update":
        # 2207: D[start..end] <- U[start..end]; free the extent entry (U is kept)
        a, b = holder["start"], holder["end"]
        D = vc.bm[(T_PAIR, i, "D")]
        U = vc.bm[(T_PAIR, i, "U")]
        core.range_clear(D, a, b - a + 1)
        j = core.next_set(U, a, b + 1)
        while j >= 0:
            core.bit_set(D, j)
            j = core.next_set(U, j + 1, b + 1)
        vc.dirty.add((T_PAIR, i, "D"))
        holder["use"] = 0
    else:
        s["state"] = KINDS[kind][2]          # 2007, 2107, 2907, 3007, 3707, 3907, 4007
    holder["job"] = None
    job.pointer = job.total
    _ended(vc, job, DONE, "copied %d" % rec["copied"])
    vc.u.sm.save()                           # the new state and the job's outcome together
