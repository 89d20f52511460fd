"""Volume copy driven by differential bitmaps (seed 003 E7, E8, E9, E11), step by step on
the MicroPython emulator: generation, split image by copy-on-write, ExtentUpdate, area
pairs, extent split/couple, tape backup, refusals, and the tables across a restart.

Four 48-block volumes on one RAID5 group, 4-block tracks: 12 tracks per volume."""
import struct

import pytest
from conftest import have_micropython, rig_desc
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import wire
from firmware.raid import locate
from host.features import volcopy as vc
from host.features.tape import BackupError, BackupHost, TapeDrive, restore, restore_to
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")

BS = 512
TB = 4
NT = 12            # tracks per volume
VOL_BLOCKS = NT * TB

UNIT = {
    "name": "u0", "drives": 5, "drive_blocks": 64, "backing": "memory",
    "group": [{"id": 0, "level": 5, "members": [0, 1, 2, 3], "chunk": 2, "spares": [4],
               "auto_rebuild": False}],
    "volume": [{"id": v, "group": 0, "start": v * VOL_BLOCKS, "blocks": VOL_BLOCKS} for v in range(4)],
    "features": ["volcopy"],
    "volcopy": {"track_blocks": TB, "slots": 2, "area_slots": 3, "extent_slots": 1, "extents": 2},
}


def desc(**volcopy):
    d = rig_desc(UNIT, block_size=BS)
    d["unit"][0]["volcopy"].update(volcopy)
    return d


def track(tag, t):
    """Track t's content, generation `tag`: every block different."""
    return b"".join(struct.pack("<HHH", tag, t, k) * (BS // 6) + b"\0\0" for k in range(TB))


def fill(u, vol, tag):
    u.write(vol, 0, b"".join(track(tag, t) for t in range(NT)))


def tracks(u, vol):
    """The volume, as a list of track contents, read through the controller."""
    img = u.read(vol, 0, VOL_BLOCKS)
    return [img[t * TB * BS:(t + 1) * TB * BS] for t in range(NT)]


def on_drives(u, vol):
    """The volume as it is on the drives (data members only), after a flush."""
    g = u.table("groups")[0]
    out = []
    for lba in range(VOL_BLOCKS):
        row, m, _ = locate(g, vol * VOL_BLOCKS + lba)
        out.append(u.drives[g["members"][m]].read_raw(row))
    img = b"".join(out)
    return [img[t * TB * BS:(t + 1) * TB * BS] for t in range(NT)]


def refused(u, op, status, **args):
    """The op is refused with `status` and changes no volcopy table."""
    before = u.table("volcopy")
    with pytest.raises(StatusError) as e:
        u.mgmt(op, **args)
    assert e.value.status == status, str(e.value)
    assert u.table("volcopy") == before
    return str(e.value)


def split_pair(u):
    """Fig 16 -> Fig 17 -> Fig 21 with no write in between: DIVISION COMPLETED, copy = orig."""
    fill(u, 0, 1)
    vc.pair_create(u, 0, 1)
    u.wait_job("vcgen0")
    vc.pair_split(u, 0, 1)
    u.wait_job("vcdiv0")
    assert vc.pair(u, 0)["state"] == vc.DIV_DONE
    return tracks(u, 0)


def test_generation_copies_every_track_and_writes_behind_the_pointer_stay_marked(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    assert vc.pair_create(u, 0, 1, paused=True) == {"table": 1310, "slot": 0, "job": "vcgen0"}
    p = vc.pair(u, 0)                                          # 1600
    assert (p["state"], p["G"], p["D"], p["U"], p["extents"]) == (vc.UNDER_GEN, [[0, 11]], [], [], [])
    assert tracks(u, 1) == [bytes(TB * BS)] * NT
    j = vc.step(u, "vcgen0", 4)                                # 2001-2006, four times
    assert j["copied"] == 4 and j["state"] == "paused"
    assert vc.pair(u, 0)["G"] == [[4, 11]]
    assert tracks(u, 1)[:4] == tracks(u, 0)[:4] and tracks(u, 1)[4] == bytes(TB * BS)
    u.write(0, 2 * TB, track(2, 2))                            # behind the copy: 1906 sets G
    u.write(0, 7 * TB, track(2, 7))                            # ahead of it
    assert vc.pair(u, 0)["G"] == [[2, 2], [4, 11]]
    u.job("vcgen0", "resume")
    assert u.wait_job("vcgen0")["copied"] == 12
    p = vc.pair(u, 0)                                          # 2007
    assert p["state"] == vc.GEN_DONE and p["G"] == [[2, 2]] and p["job"] is None
    orig, copy = tracks(u, 0), tracks(u, 1)
    assert copy[2] == track(1, 2) and copy[7] == track(2, 7)
    assert [t for t in range(NT) if orig[t] != copy[t]] == [2]
    u.write(0, 5 * TB, track(3, 5))        # GENERATION COMPLETED: only marked, not copied
    assert vc.pair(u, 0)["G"] == [[2, 2], [5, 5]]
    assert tracks(u, 1)[5] == track(1, 5)


def test_split_image_is_the_original_as_of_the_split_by_copy_on_write(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    vc.pair_create(u, 0, 1)
    u.wait_job("vcgen0")
    for t in (3, 6, 9):
        u.write(0, t * TB, track(2, t))
    assert vc.pair(u, 0)["G"] == [[3, 3], [6, 6], [9, 9]]
    at_split = tracks(u, 0)
    vc.pair_split(u, 0, 1, paused=True)                        # 1700
    assert vc.pair(u, 0)["state"] == vc.UNDER_DIV
    vc.step(u, "vcdiv0", 1)                                    # 2101-2104: track 3
    assert vc.pair(u, 0)["G"] == [[6, 6], [9, 9]]
    cow = vc.info(u)["cow"]
    u.write(0, 9 * TB + 1, track(3, 9)[BS:2 * BS])   # G[9] = 1: 1910-1912 copy first, then D (1906)
    u.write(0, 3 * TB, track(3, 3))                  # G[3] = 0: already copied, only D
    u.write(0, 0, track(3, 0))
    assert vc.info(u)["cow"] == cow + 1
    p = vc.pair(u, 0)
    assert p["G"] == [[6, 6]] and p["D"] == [[0, 0], [3, 3], [9, 9]]
    assert tracks(u, 1)[9] == at_split[9]
    u.job("vcdiv0", "resume")
    assert u.wait_job("vcdiv0")["copied"] == 2                # tracks 3 and 6
    p = vc.pair(u, 0)                                          # 2107
    assert p["state"] == vc.DIV_DONE and p["G"] == []
    assert tracks(u, 1) == at_split
    u.write(0, 5 * TB, track(4, 5))                            # DIVISION COMPLETED: D, no copy
    assert vc.pair(u, 0)["D"] == [[0, 0], [3, 3], [5, 5], [9, 9]]
    u.flush()                                                  # the copies went through the cache
    assert on_drives(u, 1) == at_split


def test_split_during_generation_supersedes_the_generation_copy(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    vc.pair_create(u, 0, 1, paused=True)
    vc.step(u, "vcgen0", 5)
    u.write(0, 8 * TB, track(2, 8))
    at_split = tracks(u, 0)
    vc.pair_split(u, 0, 1, paused=True)
    assert u.job("vcgen0")["state"] == "cancelled"
    u.write(0, 10 * TB, track(3, 10))                          # copy-on-write of an uncopied track
    u.job("vcdiv0", "resume")
    assert u.wait_job("vcdiv0")["copied"] == 6                 # 5..11 but 10, copied on write
    assert vc.pair(u, 0)["state"] == vc.DIV_DONE
    assert tracks(u, 1) == at_split


def test_extent_update_refreshes_exactly_the_requested_tracks_and_carries_U_into_D(make_rig):
    u = make_rig(desc()).unit()
    at_split = split_pair(u)
    for t in (1, 3, 6, 9):
        u.write(0, t * TB, track(4, t))
    assert vc.pair(u, 0)["D"] == [[1, 1], [3, 3], [6, 6], [9, 9]]
    r = vc.extent_update(u, 0, 1, [[2, 7]], paused=True)       # 1800
    assert r["jobs"] == ["vcext0.0"]
    assert [(e["start"], e["end"]) for e in vc.pair(u, 0)["extents"]] == [(2, 7)]
    u.write(0, 6 * TB, track(5, 6))     # in the extent, D[6] = 1: 1903-1905 copy first, then U (1906)
    u.write(0, 5 * TB, track(5, 5))     # in the extent, D[5] = 0: U only
    u.write(0, 9 * TB, track(5, 9))     # outside: D
    p = vc.pair(u, 0)
    assert p["D"] == [[1, 1], [3, 3], [9, 9]] and p["U"] == [[5, 6]]
    u.job("vcext0.0", "resume")
    assert u.wait_job("vcext0.0")["copied"] == 1               # 2201-2206: track 3 only
    p = vc.pair(u, 0)                                          # 2207: D[2..7] <- U[2..7], entry freed
    assert p["extents"] == [] and p["state"] == vc.DIV_DONE
    assert p["D"] == [[1, 1], [5, 6], [9, 9]] and p["U"] == [[5, 6]]
    copy = tracks(u, 1)
    assert copy[3] == track(4, 3) and copy[6] == track(4, 6)   # the original as of the request
    assert [t for t in range(NT) if copy[t] != at_split[t]] == [3, 6]
    # a second update over the carried tracks brings the writes made during the first
    vc.extent_update(u, 0, 1, [[5, 6], [9, 9]])
    u.wait_job("vcext0.1")
    u.wait_job("vcext0.0")
    assert tracks(u, 1)[5:7] == tracks(u, 0)[5:7] and tracks(u, 1)[9] == track(5, 9)


def test_area_pairs_copy_only_their_areas(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    for d in u.drives:
        d.accesses = []
    r = vc.area_pair_create(u, 0, 2, [[2, 4], [9, 10]], paused=True)     # 2600, one slot per area
    assert r["slots"] == [0, 1] and r["jobs"] == ["vcagen0", "vcagen1"]
    a = vc.area_pair(u, 0)
    assert (a["state"], a["start"], a["end"], a["bits"]) == (vc.UNDER_GEN, 2, 4, [[2, 4]])
    vc.step(u, "vcagen0", 1)                                   # 2901-2904: track 2
    u.write(0, 2 * TB, track(2, 2))                            # 2806: marked again
    u.write(0, 6 * TB, track(2, 6))                            # outside every area: nothing
    assert vc.area_pair(u, 0)["bits"] == [[2, 4]]
    u.job("vcagen0", "resume")
    u.job("vcagen1", "resume")
    assert u.wait_job("vcagen0")["copied"] == 3 and u.wait_job("vcagen1")["copied"] == 2
    assert vc.area_pair(u, 0)["state"] == vc.GEN_DONE and vc.area_pair(u, 0)["bits"] == [[2, 2]]
    u.write(0, 3 * TB, track(3, 3))
    at_split = tracks(u, 0)
    vc.area_pair_split(u, 0, 2, 2, 4, paused=True)
    u.write(0, 3 * TB, track(4, 3))                            # 2802-2805: copy-on-write
    assert vc.area_pair(u, 0)["bits"] == [[2, 2]]              # division states: no tracking
    u.job("vcadiv0", "resume")
    u.wait_job("vcadiv0")
    a = vc.area_pair(u, 0)
    assert a["state"] == vc.DIV_DONE and a["bits"] == []
    u.write(0, 2 * TB, track(5, 2))
    assert vc.area_pair(u, 0)["bits"] == []
    u.flush()
    copy = on_drives(u, 2)
    assert copy[2:5] == at_split[2:5] and copy[9:11] == tracks(u, 0)[9:11]
    outside = [t for t in range(NT) if not (2 <= t <= 4 or 9 <= t <= 10)]
    assert all(copy[t] == bytes(TB * BS) for t in outside)
    # the drive logs: no write ever reached a block of volume 2 outside the areas
    g = u.table("groups")[0]
    never = set()
    for t in outside:
        for b in range(t * TB, (t + 1) * TB):
            row, m, _ = locate(g, 2 * VOL_BLOCKS + b)
            never.add((g["members"][m], row))
    written = {(d.index, lba + k) for d in u.drives for op, lba, n in d.accesses if op == "w" for k in range(n)}
    assert written and not (written & never)
    msg = refused(u, "AreaPairCreate", wire.E_STATE, orig=0, copy=2, areas=[[4, 5]])
    assert "overlaps area [2, 4]" in msg
    vc.area_pair_create(u, 0, 2, [[5, 6]])                     # a third, disjoint area is fine
    u.wait_job("vcagen2")
    assert tracks(u, 2)[5:7] == tracks(u, 0)[5:7]


def test_extent_split_and_couple(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    assert vc.extent_pair_create(u, 0, 3)["table"] == 3109     # 3400
    u.wait_job("vcxgen0")
    assert vc.extent_pair(u, 0)["state"] == vc.GEN_DONE
    for t in (1, 2, 5, 8):
        u.write(0, t * TB, track(2, t))
    assert vc.extent_pair(u, 0)["G"] == [[1, 2], [5, 5], [8, 8]]
    at_split = tracks(u, 0)
    vc.extent_split(u, 0, 3, [[0, 2], [7, 9]], paused=True)    # 3500
    x = vc.extent_pair(u, 0)
    assert x["state"] == vc.UNDER_XDIV and x["extents"] == [[0, 2], [7, 9]]
    u.write(0, 2 * TB, track(3, 2))     # in an extent, G = 1: 3804-3806 copy first, then D (3807)
    u.write(0, 5 * TB, track(3, 5))     # outside the extents: D only, no copy
    x = vc.extent_pair(u, 0)
    assert x["G"] == [[1, 1], [5, 5], [8, 8]] and x["D"] == [[2, 2], [5, 5]]
    u.job("vcxdiv0", "resume")
    assert u.wait_job("vcxdiv0")["copied"] == 2                # 3901-3908: tracks 1 and 8
    x = vc.extent_pair(u, 0)
    assert x["state"] == vc.XDIV_DONE and x["G"] == [[5, 5]]  # 3907
    copy = tracks(u, 3)
    assert copy[0:3] == at_split[0:3] and copy[7:10] == at_split[7:10]
    assert copy[5] == track(1, 5)                              # outside: not copied
    u.write(0, 8 * TB, track(4, 8))                            # EXTENT DIVISION COMPLETED: D
    vc.extent_couple(u, 0, 3, paused=True)                     # 3600
    assert vc.extent_pair(u, 0)["state"] == vc.UNDER_XCPL
    u.write(0, 0, track(4, 0))                                 # 3807: UNDER EXTENT COUPLE marks G
    u.job("vcxcpl0", "resume")
    assert u.wait_job("vcxcpl0")["copied"] == 2                # 4001-4008: tracks 2 and 8
    x = vc.extent_pair(u, 0)
    assert x["state"] == vc.GEN_DONE                           # 4007 "FORMATION COMPLETED"
    assert x["D"] == [[5, 5]] and x["G"] == [[0, 0], [5, 5]]   # D outside the extents stays
    copy, orig = tracks(u, 3), tracks(u, 0)
    assert copy[2] == orig[2] and copy[8] == orig[8] and copy[0] == at_split[0]


def test_tape_backup_of_a_split_copy_and_its_updates_restores_byte_identical(make_rig, tmp_path):
    u = make_rig(desc()).unit()
    split_pair(u)
    tape = TapeDrive(tmp_path / "tape0")
    bh = BackupHost(u, tape)
    bh.after_split(0, 1)                                       # the whole copy volume
    for t in (2, 3, 10):
        u.write(0, t * TB, track(6, t))
    vc.extent_update(u, 0, 1, [[2, 3]], paused=True)
    with pytest.raises(BackupError):
        bh.after_extent_update(0, 1, [[2, 3]])                 # the update is still running
    u.job("vcext0.0", "resume")
    u.wait_job("vcext0.0")
    bh.after_extent_update(0, 1, [[2, 3]])                     # then only the updated tracks
    recs = tape.records()
    assert [(r.vol, r.first, r.blocks) for r in recs] == [(1, 0, VOL_BLOCKS), (1, 2 * TB, 2 * TB)]
    copy = u.read(1, 0, VOL_BLOCKS)
    assert restore(recs, 1, VOL_BLOCKS, BS) == copy
    assert restore(recs[:1], 1, VOL_BLOCKS, BS) != copy        # the incremental record matters
    restore_to(u, recs, 1, target=3)                           # back through the controller
    assert u.read(3, 0, VOL_BLOCKS) == copy
    assert [t for t in range(NT) if tracks(u, 3)[t] != tracks(u, 0)[t]] == [10]


def test_tape_backup_of_an_area_and_of_split_extents(make_rig, tmp_path):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    vc.area_pair_create(u, 0, 2, [[1, 3]])                     # E8 and E9 copies of one original
    vc.extent_pair_create(u, 0, 3)
    u.wait_job("vcagen0")
    u.wait_job("vcxgen0")
    vc.area_pair_split(u, 0, 2, 1, 3)
    vc.extent_split(u, 0, 3, [[0, 0], [6, 8]])
    u.wait_job("vcadiv0")
    u.wait_job("vcxdiv0")
    at_split = u.read(0, 0, VOL_BLOCKS)
    u.write(0, 0, track(7, 0) + track(7, 1))                   # after the splits: not in the copies
    tape = TapeDrive(tmp_path / "tape1")
    bh = BackupHost(u, tape)
    bh.after_area_split(0, 2, 1, 3)
    bh.after_extent_split(0, 3)
    recs = TapeDrive(tmp_path / "tape1").records()
    assert [(r.vol, r.first, r.blocks) for r in recs] == [(2, 4, 12), (3, 0, 4), (3, 24, 12)]
    for r in recs:
        assert r.data == at_split[r.first * BS:(r.first + r.blocks) * BS]
    # volume 2 holds nothing but its area: the tape restores it whole
    assert restore(recs, 2, VOL_BLOCKS, BS) == u.read(2, 0, VOL_BLOCKS)
    restore_to(u, recs, 3, target=1)                           # the extents, onto a blank volume
    got = tracks(u, 1)
    assert [t for t in range(NT) if got[t] != bytes(TB * BS)] == [0, 6, 7, 8]
    assert all(got[t] == at_split[t * TB * BS:(t + 1) * TB * BS] for t in (0, 6, 7, 8))


def test_refusals_are_clear_and_change_nothing(make_rig):
    u = make_rig(desc(split_during_generation="reject")).unit()
    assert "no volume 9" in refused(u, "PairCreate", wire.E_NO_VOLUME, orig=0, copy=9)
    refused(u, "PairCreate", wire.E_BAD_PARAM, orig=0, copy=0)
    refused(u, "PairCreate", wire.E_BAD_PARAM, orig="a", copy=1)
    vc.pair_create(u, 0, 1, paused=True)
    assert "already the copy" in refused(u, "PairCreate", wire.E_STATE, orig=2, copy=1)
    assert "cannot be an original" in refused(u, "ExtentPairCreate", wire.E_STATE, orig=1, copy=2)
    assert "already the original" in refused(u, "AreaPairCreate", wire.E_STATE, orig=2, copy=0, areas=[[0, 1]])
    msg = refused(u, "PairSplit", wire.E_STATE, orig=0, copy=1)      # policy reject: not before 2007
    assert "UNDER GENERATION" in msg
    refused(u, "ExtentUpdate", wire.E_STATE, orig=0, copy=1, extents=[[0, 1]])
    refused(u, "ExtentUpdate", wire.E_BAD_PARAM, orig=0, copy=1, extents=[[3, 12]])
    refused(u, "ExtentUpdate", wire.E_BAD_PARAM, orig=0, copy=1, extents=[[5, 4]])
    refused(u, "PairSplit", wire.E_BAD_PARAM, orig=0, copy=2)         # no such pair
    vc.pair_create(u, 0, 2, paused=True)
    assert "free slot" in refused(u, "PairCreate", wire.E_STATE, orig=0, copy=3)
    u.job("vcgen0", "resume")
    u.wait_job("vcgen0")
    vc.pair_split(u, 0, 1)
    u.wait_job("vcdiv0")
    refused(u, "PairSplit", wire.E_STATE, orig=0, copy=1)             # no second division
    refused(u, "ExtentUpdate", wire.E_STATE, orig=0, copy=1, extents=[[0, 0], [1, 1], [2, 2]])  # 2 entries
    refused(u, "AreaPairCreate", wire.E_BAD_PARAM, orig=0, copy=3, areas=[[10, 12]])
    refused(u, "AreaPairCreate", wire.E_BAD_PARAM, orig=0, copy=3, areas=[[1, 4], [4, 5]])
    refused(u, "PairDelete", wire.E_STATE, table=1310, orig=0, copy=2)  # its generation is running
    vc.pair_delete(u, 1310, 0, 1)
    assert vc.pair(u, 0) == {"slot": 0, "use": 0}


def test_extent_split_before_generation_completes_is_refused(make_rig):
    u = make_rig(desc()).unit()
    vc.extent_pair_create(u, 0, 3, paused=True)
    assert "GENERATION COMPLETED" in refused(u, "ExtentSplit", wire.E_STATE, orig=0, copy=3, extents=[[0, 1]])
    refused(u, "ExtentCouple", wire.E_STATE, orig=0, copy=3)
    refused(u, "ExtentSplit", wire.E_BAD_PARAM, orig=0, copy=3, extents=[[0, 12]])
    refused(u, "ExtentSplit", wire.E_BAD_PARAM, orig=0, copy=3, extents=[])


def test_tables_bitmaps_and_copies_survive_a_restart(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    vc.pair_create(u, 0, 1)
    vc.area_pair_create(u, 0, 2, [[4, 7]], paused=True)
    u.wait_job("vcgen0")
    for t in (1, 5, 8):
        u.write(0, t * TB, track(2, t))
    at_split = tracks(u, 0)
    vc.pair_split(u, 0, 1, paused=True)
    vc.step(u, "vcdiv0", 1)                                    # track 1
    vc.step(u, "vcagen0", 2)                                   # tracks 4, 5
    u.write(0, 8 * TB, track(3, 8))                            # copy-on-write, D[8]
    u.write(0, 0, track(3, 0))                                 # D[0]
    u.flush()            # the copies made so far are in the (volatile) cache: destage them
    u.mgmt("save")
    names = ("vc_pairs", "vc_area_pairs", "vc_extent_pairs", "volcopy")
    before = {n: u.table(n) for n in names}
    progress = lambda j: {k: v for k, v in j.items() if k != "ms"}    # noqa: E731
    jobs = {n: progress(u.job(n)) for n in ("vcdiv0", "vcagen0")}
    assert before["vc_pairs"][0]["G"] == [[5, 5]] and before["vc_pairs"][0]["D"] == [[0, 0], [8, 8]]
    u.restart()
    assert {n: u.table(n) for n in names} == before
    for n, j in jobs.items():
        assert progress(u.job(n)) == j                         # same pointer, copies, paused
    u.job("vcdiv0", "resume")
    u.job("vcagen0", "resume")
    assert u.wait_job("vcdiv0")["copied"] == 2
    assert u.wait_job("vcagen0")["copied"] == 4
    assert tracks(u, 1) == at_split
    assert tracks(u, 2)[4:8] == tracks(u, 0)[4:8]
    # a mark reaches SM before the write is acknowledged: no save, no wait, kill at once
    u.write(0, 11 * TB, track(4, 11))
    u.restart()
    assert vc.pair(u, 0)["D"] == [[0, 0], [8, 8], [11, 11]]


def test_a_split_with_copy_on_write_runs_on_the_rp2040_sized_board(make_rig):
    u = make_rig(desc(), board="emulator-small").unit()
    fill(u, 0, 1)
    vc.pair_create(u, 0, 1)
    u.wait_job("vcgen0")
    u.write(0, 4 * TB, track(2, 4))
    at_split = tracks(u, 0)
    vc.pair_split(u, 0, 1, paused=True)
    u.write(0, 4 * TB, track(3, 4))                            # copy-on-write
    u.job("vcdiv0", "resume")
    u.wait_job("vcdiv0")
    assert tracks(u, 1) == at_split and vc.info(u)["cow"] == 1
    mem = u.table("mem")
    assert mem["live_peak"] < mem["heap"]


@pytest.mark.parametrize("change, words", [
    ({"track_blok": 4}, "unknown setting 'track_blok'"),
    ({"track_blocks": 0}, "track_blocks must be an integer in [1, 65536], got 0"),
    ({"slots": "2"}, "slots must be an integer"),
    ({"extents": True}, "extents must be an integer"),
    ({"max_tracks": 1 << 25}, "max_tracks must be an integer"),
    ({"split_during_generation": "later"}, "split_during_generation must be one of supersede, reject"),
    ({"track_blocks": 256}, "a track of 256 blocks of 512 bytes exceeds the 65536-byte track buffer"),
])
def test_bad_settings_are_refused_at_configure_and_change_nothing(make_rig, change, words):
    u = make_rig(desc()).unit()
    vc.pair_create(u, 0, 1, paused=True)
    config = u.table("config")
    before = u.table("volcopy")
    bad = dict(config, volcopy=dict(config["volcopy"], **change))
    with pytest.raises(StatusError) as e:
        u.mgmt("configure", config=bad, force=True)
    assert e.value.status == wire.E_BAD_PARAM and "(volcopy: " + words in str(e.value)
    assert u.table("config") == config and u.table("volcopy") == before
    assert u.table("warnings") == []
    with pytest.raises(StatusError) as e:
        u.mgmt("configure", config=dict(config, volcopy=[4]), force=True)
    assert e.value.status == wire.E_BAD_PARAM and "volcopy must be a table" in str(e.value)


def test_a_reconfiguration_stops_the_copies_and_starts_the_tables_afresh(make_rig):
    u = make_rig(desc()).unit()
    vc.pair_create(u, 0, 1, paused=True)
    config = u.table("config")
    u.mgmt("configure", config=dict(config, volcopy={"track_blocks": 2}), force=True)
    assert u.job("vcgen0")["state"] == "cancelled"
    assert vc.pair(u, 0) == {"slot": 0, "use": 0} and vc.track_blocks(u) == 2
    assert u.table("iopath")["before_cache"] == ["volcopy"]     # the old stage went with the old tables
    fill(u, 0, 1)
    vc.pair_create(u, 0, 1)                                    # the new tables work
    assert u.wait_job("vcgen0")["copied"] == VOL_BLOCKS // 2
    assert tracks(u, 1) == tracks(u, 0)


def test_finished_and_superseded_copies_are_still_listed_after_a_reset(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    vc.pair_create(u, 0, 1, paused=True)
    vc.pair_split(u, 0, 1)                                     # supersedes the generation
    done = u.wait_job("vcdiv0")
    u.restart()                                                # nothing left running
    j = u.job("vcdiv0")
    assert (j["state"], j["copied"], j["pointer"], j["total"]) == ("done", 12, 12, 12)
    assert j["ms"] == done["ms"]
    assert u.job("vcgen0")["state"] == "cancelled"
    u.write(0, 0, track(2, 0))
    vc.extent_update(u, 0, 1, [[0, 1]])
    assert u.wait_job("vcext0.0")["copied"] == 1
    u.write(0, 0, track(3, 0))
    vc.extent_update(u, 0, 1, [[0, 0]], paused=True)         # entry 0 again: a new vcext0.0
    u.restart()
    j = u.job("vcext0.0")
    assert (j["state"], j["copied"], j["total"]) == ("paused", 0, 1)


# ---- E9: a new split is the original as of that split, whatever happened before --------

def copy_promise(u, at_split, extents):
    """Every track of the split's extents equals the original as of the split."""
    copy = tracks(u, 3)
    bad = [t for a, b in extents for t in range(a, b + 1) if copy[t] != at_split[t]]
    assert bad == [], "tracks %r of the copy differ from the original at the split" % bad


def clean_tracks_equal(u):
    """E9's invariant: a track with G = 0 and D = 0 is the same in both volumes."""
    x = vc.extent_pair(u, 0)
    marked = {t for name in ("G", "D") for a, b in x[name] for t in range(a, b + 1)}
    orig, copy = tracks(u, 0), tracks(u, 3)
    assert [t for t in range(NT) if t not in marked and orig[t] != copy[t]] == []


def test_a_second_extent_split_copies_the_tracks_written_during_the_first(make_rig):
    u = make_rig(desc()).unit()
    fill(u, 0, 1)
    vc.extent_pair_create(u, 0, 3)                             # 3400
    u.wait_job("vcxgen0")
    vc.extent_split(u, 0, 3, [[0, 3]], paused=True)            # 3500
    u.write(0, 7 * TB, track(2, 7))                            # during the split, outside: D[7]
    u.write(0, 2 * TB, track(2, 2))                            # inside, G = 0: D[2]
    u.job("vcxdiv0", "resume")
    u.wait_job("vcxdiv0")
    u.write(0, 9 * TB, track(2, 9))                            # EXTENT DIVISION COMPLETED: D[9]
    vc.extent_couple(u, 0, 3)                                  # 3600: copies D over [0, 3]
    u.wait_job("vcxcpl0")
    x = vc.extent_pair(u, 0)
    assert (x["state"], x["G"], x["D"]) == (vc.GEN_DONE, [], [[7, 7], [9, 9]])
    orig, copy = tracks(u, 0), tracks(u, 3)
    assert [t for t in range(NT) if orig[t] != copy[t]] == [7, 9]    # D = 1 with G = 0
    at_split = tracks(u, 0)
    vc.extent_split(u, 0, 3, [[0, NT - 1]])                    # the literal 3901 would skip 7, 9
    u.wait_job("vcxdiv0")
    assert tracks(u, 3) == at_split                            # every track, byte for byte
    x = vc.extent_pair(u, 0)
    assert (x["state"], x["G"], x["D"]) == (vc.XDIV_DONE, [], [])
    u.flush()
    assert on_drives(u, 3) == at_split
    # a pending track written again during the next split is copied on write first
    vc.extent_couple(u, 0, 3)
    u.wait_job("vcxcpl0")
    vc.extent_split(u, 0, 3, [[2, 5]])
    u.wait_job("vcxdiv0")
    u.write(0, 8 * TB, track(3, 8))                            # outside the extents: D[8]
    vc.extent_couple(u, 0, 3)
    u.wait_job("vcxcpl0")
    assert (vc.extent_pair(u, 0)["G"], vc.extent_pair(u, 0)["D"]) == ([], [[8, 8]])
    at_split = tracks(u, 0)
    vc.extent_split(u, 0, 3, [[6, 9]], paused=True)
    assert (vc.extent_pair(u, 0)["G"], vc.extent_pair(u, 0)["D"]) == ([[8, 8]], [])   # folded
    cow = vc.info(u)["cow"]
    u.write(0, 8 * TB, track(4, 8))                            # 3803: G[8] = 1, copied first
    assert vc.info(u)["cow"] == cow + 1
    u.job("vcxdiv0", "resume")
    assert u.wait_job("vcxdiv0")["copied"] == 0
    copy_promise(u, at_split, [[6, 9]])
    assert tracks(u, 3)[8] == track(3, 8)


EXTENTS = st.lists(st.tuples(st.integers(0, NT - 1), st.integers(0, 3)).map(lambda x: [x[0], min(NT - 1, x[0] + x[1])]),
                   min_size=1, max_size=3)
ACTIONS = st.lists(st.one_of(st.tuples(st.just("write"), st.integers(0, NT - 1)),
                             st.tuples(st.just("step"), st.integers(1, 3)),
                             st.tuples(st.just("split"), EXTENTS),
                             st.tuples(st.just("couple")),
                             st.tuples(st.just("finish"))), min_size=5, max_size=30)


def test_every_extent_split_is_the_original_as_of_the_split_under_random_couples_splits_and_writes(make_rig):
    """Random sequences of ExtentSplit / ExtentCouple (held copies stepped a few tracks),
    host writes anywhere at any time: when a split's copy is done its extents equal the
    original as of the split, and a track with G = D = 0 always equals the original."""
    u = make_rig(desc()).unit()
    tag = [10]

    def write(t):
        tag[0] += 1
        u.write(0, t * TB, track(tag[0], t))

    def finish(state):
        name = {vc.UNDER_XDIV: "vcxdiv0", vc.UNDER_XCPL: "vcxcpl0"}.get(state["pair"])
        if name is None:
            return
        u.job(name, "resume")
        u.wait_job(name)
        if name == "vcxdiv0":
            copy_promise(u, state["at_split"], state["extents"])
            state["pair"] = vc.XDIV_DONE
        else:
            state["pair"] = vc.GEN_DONE
        clean_tracks_equal(u)

    @settings(max_examples=12, deadline=None)
    @given(ACTIONS)
    def run(actions):
        if vc.extent_pair(u, 0)["use"]:
            vc.pair_delete(u, 3109, 0, 3)
        fill(u, 0, 1)
        vc.extent_pair_create(u, 0, 3)
        u.wait_job("vcxgen0")
        state = {"pair": vc.GEN_DONE}
        for a in actions:
            if a[0] == "write":
                write(a[1])
            elif a[0] == "step" and state["pair"] in (vc.UNDER_XDIV, vc.UNDER_XCPL):
                vc.step(u, "vcxdiv0" if state["pair"] == vc.UNDER_XDIV else "vcxcpl0", a[1])
            elif a[0] == "split":
                finish(state)
                if state["pair"] == vc.XDIV_DONE:
                    vc.extent_couple(u, 0, 3, paused=True)
                    state["pair"] = vc.UNDER_XCPL
                    finish(state)
                state["at_split"] = tracks(u, 0)
                state["extents"] = a[1]
                vc.extent_split(u, 0, 3, a[1], paused=True)
                state["pair"] = vc.UNDER_XDIV
            elif a[0] == "couple":
                finish(state)
                if state["pair"] == vc.XDIV_DONE:
                    vc.extent_couple(u, 0, 3, paused=True)
                    state["pair"] = vc.UNDER_XCPL
            elif a[0] == "finish":
                finish(state)
        finish(state)
    run()
