# The copy of a faulty drive to its spare (seed 001: Fig 6 S14, Fig 26 S281-S293), one
# row per step under the RAID lock, from the sparing's pointer (0, or the saved pointer
# after a reset).  direct: the faulty drive's block, rebuilt from the others where it
# cannot be read; reconstruct (E6): rebuilt from the others, the faulty drive read only
# where that fails (S291/S292).  Neither: lost data (S293); the spare refuses: a spare
# write error (S290); the copy goes on.  A row the spare already has is skipped (I11).
# Then the feedback (feedback.py).  The copy yields after each row, so host I/O to the
# group (which takes the whole-RAID lock while a member is stood in for) is never starved.
from firmware import core
from firmware.features.sparing.feedback import feedback
from firmware.jobs import DONE
from firmware.link import sleep_ms
from firmware.raid import GOOD


async def _source(sp, row, buf):
    raid = sp.u.raid
    dka = sp.u.dka
    if sp.copy_mode == "reconstruct":
        st = await raid.reconstruct(sp.g, row, sp.member, buf)               # S282-S285
        if st in GOOD:
            sp.stats["rebuilt"] += 1
            return st
        sp.stats["faulty_reads"] += 1
        return await dka.read(sp.drive, row, 1, buf)                         # S291/S292
    sp.stats["faulty_reads"] += 1
    st = await dka.read(sp.drive, row, 1, buf)
    if st in GOOD:
        sp.stats["copied"] += 1
        return st
    st = await raid.reconstruct(sp.g, row, sp.member, buf)
    if st in GOOD:
        sp.stats["rebuilt"] += 1
    return st


async def run(sp):
    job = sp.job
    buf = sp.cbuf
    every = max(1, sp.rows // 64)
    while sp.ptr < sp.rows:                                                  # S281, S288/S289
        await job.gate()
        async with sp.u.raid.lock:
            if sp.mgr.active.get(sp.gid) is not sp:
                return
            row = sp.ptr
            if core.bit_test(sp.wt, row):        # I11: the spare already has it
                sp.stats["skipped"] += 1
            else:
                st = await _source(sp, row, buf)
                if st in GOOD:
                    if await sp.u.dka.write(sp.spare, row, 1, buf) not in GOOD:   # S286/S287
                        sp.spare_error(row)
                else:
                    sp.lost_row(row)
            sp.ptr = row + 1
            job.pointer = sp.ptr
            if sp.ptr % every == 0:
                sp.u.sm.dirty = True
        await sleep_ms(0)       # host I/O waiting for the RAID lock goes first (it does not queue)
    job.state = DONE
    job.note = "copied drive %d to drive %d: %d lost, %d spare write errors" % (
        sp.drive, sp.spare, len(sp.lost), len(sp.swe))
    await feedback(sp)
