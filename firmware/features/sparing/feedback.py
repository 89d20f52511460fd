# The feedback of a sparing's updates (seed 001: Figs 9, 13, 18; S36/S78/S162, S188):
# after the copy, the tracks kept in the backup area go through RAID to the normal
# members and the spare (never the faulty drive); E5: the faulty drive's tracks go to
# the spare only.  Then the sparing finishes (job.Spare.finish).
#
# After a reset the feedback goes on from its saved pointer: the journal's records are
# walked again from the same place; the other areas keep only the updates not fed yet.
from firmware import wire
from firmware.features.sparing.job import FEEDBACK
from firmware.jobs import DONE, Job
from firmware.link import sleep_ms
from firmware.raid import GOOD


async def apply(sp, key, buf, n):
    """An update to the normal members and the spare; E5: to the spare only."""
    bs = sp.bs
    if sp.faulty_only:
        base = key[1] * sp.tb
        for i in range(n):
            await sp.through(base + i, buf[i * bs:(i + 1) * bs])
        return wire.OK
    gl = sp.glbas(key)
    worst = wire.OK
    for i in range(n):
        st = await sp.u.raid.write_block(sp.g, gl[i], buf[i * bs:(i + 1) * bs])
        if st not in GOOD:
            worst = st
    return worst


async def feed_key(sp, key):
    """One track fed back at once (a host write to it arrived first); RAID lock held."""
    n = sp.track_len(key)
    st = wire.OK
    for i in range(n):
        st = await sp.area.load_block(key, i, sp.tbuf[i * sp.bs:(i + 1) * sp.bs])
        if st not in GOOD:
            break
    if st in GOOD:
        await apply(sp, key, sp.tbuf, n)
        sp.stats["fed"] += 1
    sp.area.drop(key)


async def feedback(sp, resume=False):
    """Feed the updates back (S35/S77/S137 YES), in the area's order (items())."""
    u = sp.u
    raid = u.raid
    async with raid.lock:
        items = sp.area.items() if sp.area is not None else []
        if resume:
            if sp.area is not None and sp.area.kind == "journal":
                items = items[sp.fb_ptr:]
            else:
                sp.fb_total = sp.fb_ptr + len(items)
        else:
            sp.phase = FEEDBACK
            sp.fb_total = len(items)
            sp.fb_ptr = 0
            u.sm.save()
    job = Job("feedback%d" % sp.gid, "feedback", sp.fb_total, sp.fb_ptr, sp.fpaused)
    job.persist = {}
    sp.fjob = job
    u.jobs.add(job)
    for key, ref in items:
        await job.gate()
        async with raid.lock:
            area = sp.area
            if area.applies(key, ref):
                n = sp.track_len(key)
                st = await area.load_item(key, ref, sp.tbuf, n)
                if st in GOOD:
                    await apply(sp, key, sp.tbuf, n)
                    sp.stats["fed"] += 1
                area.done(key, ref)
            else:
                sp.stats["discarded"] += 1                                   # S111
            sp.fb_ptr += 1
            job.pointer = sp.fb_ptr
            u.sm.dirty = True
        await sleep_ms(0)       # host I/O between two updates (see copier.py)
    async with raid.lock:
        if sp.area is not None:
            for key, ref in sp.area.items():    # anything that slipped in meanwhile
                if sp.area.applies(key, ref):
                    await feed_key(sp, key)
        sp.finish()
    job.state = DONE
    job.note = "%d updates fed back, %d discarded" % (sp.stats["fed"], sp.stats["discarded"])
