# Proactive sparing of a failing drive (seed 001): a drive whose errors reach a
# threshold (T3) is copied to a spare before it fails; host writes meanwhile go to a
# backup area (E1 an unused RAID group, E2 journals on work volumes, E3 a work disk;
# E4 shared by several groups; E5/E6 only the faulty drive's blocks) and are fed back
# afterwards; the faulty drive is never written again.  docs/sparing.md.
#
# The modules, top down:
#   settings.py     the settings, checked at configure (validate)
#   manager.py      T3 and its judgement, the start, the W-VOLs / work disks / T7, resets
#   job.py          one sparing: its state, keys and tracks, the spare, the end
#   copier.py       the copy (Fig 26)          feedback.py  the feedback (Figs 9, 13, 18)
#   standin.py      RAID's view of the faulty member (E5/E6 diverting)
#   stages.py       host I/O during the copy (I/O path stages: cache, read)
#   area.py         the backup areas: group_area.py (E1), journal_area.py (E2),
#                   workdisk_area.py (E3); bits.py, blocks.py their helpers
#   tables.py       T1-T7 and the records       ops.py  the management op "sparing"
from firmware.features.sparing import stages, tables
from firmware.features.sparing.manager import Manager
from firmware.features.sparing.ops import op_sparing
from firmware.features.sparing.settings import TYPES, validate

__all__ = ("TYPES", "attach", "validate")


def attach(u, reg):
    mgr = Manager(u, reg)
    reg.before_save(mgr.sync)
    reg.drive_observer(mgr.observe)
    reg.op("sparing", op_sparing)
    tables.register(reg, mgr)

    async def write(u, v, lba, count, data):
        return await stages.host_write(mgr, u, v, lba, count, data)

    async def read(u, v, lba, count, out):
        return await stages.host_read(mgr, u, v, lba, count, out)

    diverting = lambda v: mgr.diverting(v) is not None   # noqa: E731
    reg.stage("cache", write, when=diverting)
    reg.stage("read", read, when=diverting)
    mgr.resume()
    return mgr
