# Backup areas (seed 001): where the host writes go while a failing drive is copied to
# its spare.  E1 an unused RAID group (group_area.py), E2 journals on work volumes
# (journal_area.py), E3 a work disk (workdisk_area.py); E4 several groups sharing them,
# E5/E6 only the faulty drive's blocks diverted (faulty_only).
#
# An area keeps whole tracks under a key: (volume, track) for a volume's tracks (E1,
# E2), (disk, track) for a drive's tracks (E3; and E5/E6, where only the faulty drive's
# tracks are kept).  Tracks, rows, journal and work addresses are numbered from 0 in
# every table; a terminal counts the records (0 = empty).
# Each kind has: reserve(mgr, sp) / restore(mgr, sp, state) (classmethods, None when
# there is no room), state(), has(key), applies(key, ref), space(key), store(key, buf,
# n), load_block(key, i, into), drop(key), items() [(key, ref)], load_item(key, ref,
# buf, n), done(key, ref), release().  Every method runs with the RAID lock held.
#
# Persistence: an area's own state (state() / restore()) and the manager's tables (T4
# records, T6, T7) go into the SM table "sparing_state" before every save; a change
# marks the manager unsaved (mgr.unsaved) and the caller saves before it acknowledges
# anything that depends on it (see job.py).
from firmware.features.sparing.group_area import GroupArea
from firmware.features.sparing.journal_area import JournalArea
from firmware.features.sparing.workdisk_area import WorkDiskArea

KINDS = {"group": GroupArea, "journal": JournalArea, "workdisk": WorkDiskArea}


def reserve(mgr, sp):
    """At the start (S31-S33 / S71-S75 / S131-S135): the configured kinds in the order
    E1, E2, E3 (settings.AREA_ORDER); the first that has room, else None."""
    for kind in mgr.cfg.kinds:
        a = KINDS[kind].reserve(mgr, sp)
        if a is not None:
            return a
    return None


def restore(mgr, sp, st):
    """Boot: the area a sparing had (None if it is gone)."""
    return KINDS[st["kind"]].restore(mgr, sp, st)
