"""Seed 002, the chain's variants on two emulated boards: the asynchronous ending
(Fig 9), the main unit's write notices in the pending list ([0061]), the communication
volume 603 written in the background by its job (example 1), held in cache ([0071]),
and no communication volume at all (example 2)."""

import pytest
from conftest import have_micropython, random_blocks

from firmware import wire
from host.features import mirror as hm
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 4096


def rand(n, seed):
    return random_blocks(n, seed, BS)


def start(make_rig, main=None, sub=None):
    rig = make_rig(hm.desc(main, sub))
    m, s = rig.unit("main"), rig.unit("sub")
    for u in (m, s):
        u.mgmt("trace", on=True)
    return rig, m, s


def test_asynchronous_ending_answers_good_before_the_forward_and_the_chain_finishes_after(make_rig):
    rig, main, sub = start(make_rig, sub={"mode": "async"})
    before = hm.on_drives(main)
    sub.job("mirror", "pause")                   # JOB3 waits before it forwards
    mark = len(sub.link.trace)
    data = rand(2, 1)
    sub.write(0, 4, data)                        # GOOD at once (707 before JOB3)
    assert [e[:2] for e in hm.events(sub) if e[0] == "JOB1"] == [["JOB1", "701"], ["JOB1", "704"],
                                                                 ["JOB1", "707"]]
    assert hm.peer_frames(sub, mark) == []       # nothing forwarded yet
    assert sub.table("mirror_514") == [[4, 2]]
    assert hm.on_drives(main) == before and hm.on_drives(sub) == before
    assert sub.read(0, 4, 1) == bytes(BS)        # overlaps the pending write: read on the main volume
    sub.job("mirror", "resume")
    sub.wait_for(lambda u: hm.settled(main, sub), what="the chain's end")
    assert hm.on_drives(sub)[4 * BS:6 * BS] == data
    assert sub.table("mirror")["async_status"] == ""


def test_asynchronous_forward_on_a_cut_path_is_retried_until_the_path_is_back(make_rig):
    rig, main, sub = start(make_rig, sub={"mode": "async"})
    rig.fabric.paths[1].cut = True               # 203
    data = rand(1, 2)
    sub.write(0, 9, data)                        # acknowledged: the write must reach both
    sub.wait_for(lambda u: u.table("mirror")["counters"]["retries"] >= 2, what="retries")
    assert sub.table("mirror_514") == [[9, 1]]
    rig.fabric.paths[1].cut = False
    sub.wait_for(lambda u: hm.settled(main, sub), what="the chain's end")
    assert hm.on_drives(main)[9 * BS:10 * BS] == data


def test_asynchronous_check_at_job2_leaves_both_volumes_unchanged_and_is_recorded(make_rig):
    rig, main, sub = start(make_rig, sub={"mode": "async"})
    before = hm.on_drives(main)
    sub.job("mirror", "pause")
    sub.write(0, 3, rand(1, 3))                  # GOOD, then JOB2 finds the mirror abnormal
    sub.mgmt("mirror_state", state="abnormal")
    sub.job("mirror", "resume")
    sub.wait_for(lambda u: u.table("mirror")["async_status"] == "CHECK", what="the check recorded")
    assert ["JOB2", "710"] in [e[:2] for e in hm.events(sub)]
    sub.wait_for(lambda u: hm.settled(main, sub), what="both unchanged")
    assert hm.on_drives(main) == before


def test_main_host_write_notice_sends_overlapping_sub_host_reads_to_the_main_volume(make_rig):
    rig, main, sub = start(make_rig)
    main.job("mirror", "pause")                  # JOB5 waits after the main volume's store
    data = rand(2, 4)
    w = main.start_io("w", 0, 40, data)
    sub.wait_for(lambda u: u.table("mirror_514") == [[40, 2]], what="the notice in 514")
    assert sub.read(0, 41, 1) == data[BS:]       # overlaps: the main volume has it already
    assert sub.read(0, 42, 1) == bytes(BS)       # no overlap: the sub volume, directly
    c = sub.table("mirror")["counters"]
    assert (c["main_reads"], c["direct_reads"]) == (1, 1)
    assert sub.read(0, 39, 3) == bytes(BS) + data   # a whole frame's worth, from the main volume
    assert hm.on_drives(sub)[40 * BS:42 * BS] == bytes(2 * BS)
    main.job("mirror", "resume")
    main.finish_io(w)
    assert sub.table("mirror_514") == [] and hm.settled(main, sub)


def test_notice_refused_on_a_cut_path_gives_check_with_nothing_changed(make_rig):
    rig, main, sub = start(make_rig)
    before = hm.on_drives(main)
    rig.fabric.paths[0].cut = True
    with pytest.raises(StatusError) as e:
        main.write(0, 1, rand(1, 5))
    assert e.value.status == wire.E_CHECK
    assert ["MW", "notice"] in [x[:2] for x in hm.events(main)]
    assert [x for x in hm.events(main) if x[0] == "JOB5"] == []    # never stored
    rig.fabric.paths[0].cut = False
    assert hm.on_drives(main) == before == hm.on_drives(sub)


def test_communication_volume_is_written_in_the_background_by_its_job(make_rig):
    rig, main, sub = start(make_rig)
    sub.job("mirror_603", "pause")
    data = rand(3, 6)
    sub.write(0, 7, data)                        # the chain ends; 603 not written yet
    assert hm.on_drives(main) == hm.on_drives(sub)
    assert sub.table("mirror_514") == []         # not pending: both volumes have it
    assert [e["520"] for e in sub.table("mirror_515")] == [[7, 3]]      # 521 still holds it
    assert sub.read(1, 7, 3) == bytes(3 * BS)
    sub.job("mirror_603", "step", 1)
    sub.wait_for(lambda u: not u.table("mirror_515"), what="603 written")
    assert sub.read(1, 7, 3) == data             # 603 at the request's own address
    assert sub.table("mirror")["counters"]["disk_603"] == 1
    assert sub.table("mirror_521") == []


def test_a_full_received_data_area_holds_the_next_write_until_603_frees_a_slot(make_rig):
    rig, main, sub = start(make_rig, sub={"slots": 1})
    sub.job("mirror_603", "pause")
    sub.write(0, 0, rand(1, 7))
    w = sub.start_io("w", 0, 1, rand(1, 8))
    sub.job("mirror_603", "step", 1)             # the first write's slot is freed
    sub.finish_io(w)
    sub.job("mirror_603", "resume")
    sub.wait_for(lambda u: hm.settled(main, sub), what="both written")
    assert sub.read(1, 0, 2) == rand(1, 7) + rand(1, 8)


def test_communication_volume_in_cache_writes_no_disk_for_it(make_rig):
    d = hm.desc(sub={"comm": "cache", "comm_volume": None})
    d["unit"][1]["volume"].pop()                 # no volume 603 on a disk
    rig = make_rig(d)
    main, sub = rig.unit("main"), rig.unit("sub")
    written = [dr.counters["blocks_written"] for dr in sub.drives]
    sub.write(0, 2, rand(4, 9))
    sub.flush(0)
    assert [dr.counters["blocks_written"] - w for dr, w in zip(sub.drives, written)] == [4, 4]
    assert sub.table("mirror")["counters"]["disk_603"] == 0 and hm.settled(main, sub)
    assert sub.table("mirror")["comm"] == "cache"


def test_example_2_no_communication_volume_the_sub_volume_forwards_and_has_its_capacity(make_rig):
    d = hm.desc(sub={"comm": "none", "comm_volume": None})
    for u in d["unit"]:                          # 603's 64 blocks go to the sub volume (and 601)
        u["drive_blocks"] = 128
        u["volume"] = [{"id": 0, "group": 0, "blocks": 128}]
    rig = make_rig(d)
    main, sub = rig.unit("main"), rig.unit("sub")
    sub.mgmt("trace", on=True)
    data = rand(2, 10)
    sub.write(0, 120, data)
    assert [e[:2] for e in hm.events(sub)] == [["JOB1", "701"], ["JOB1", "804"], ["JOB3", "813"],
                                               ["JOB3", "816"], ["JOB2", "711"], ["JOB3", "718"],
                                               ["JOB1", "707"]]
    assert main.read(0, 120, 2) == data and hm.settled(main, sub)


def test_role_swap_the_communication_volume_on_unit_301_makes_host_101_the_forwarding_host(make_rig):
    rig = make_rig(hm.desc_swapped())
    u301, u302 = rig.unit("main"), rig.unit("sub")
    for u in (u301, u302):
        u.mgmt("trace", on=True)
    assert (u301.table("mirror")["role"], u302.table("mirror")["role"]) == ("sub", "main")
    mark = len(u302.link.trace)
    data = rand(2, 11)
    u301.write(0, 6, data)                       # host 101: forwarded over 202 first
    assert [e[:2] for e in hm.events(u301) if e[0] in ("JOB3", "JOB2")] == [["JOB3", "714"], ["JOB2", "711"],
                                                                            ["JOB3", "718"]]
    assert [e[:2] for e in hm.events(u302)] == [["JOB4", "719"], ["JOB5", "726"]]
    assert hm.peer_frames(u302, mark) == [hm.MSG_HEAD]     # the copy back over 203 skips the data
    u301.wait_for(lambda u: not u.table("mirror_515"), what="603 written on unit 301")
    assert u301.read(1, 6, 2) == data
    u302.write(0, 7, rand(1, 12))                # host 102 now writes the volume the others copy from
    assert hm.on_drives(u301) == hm.on_drives(u302)
    assert rig.fabric.paths[0].frames >= 1 and rig.fabric.paths[1].frames >= 1


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_concurrent_writes_to_one_block_from_both_hosts_end_with_both_volumes_equal(make_rig, mode):
    rig, main, sub = start(make_rig, sub={"mode": mode})
    hs = []
    for i in range(6):                           # all in flight at once, both hosts, block 5
        hs.append((main, main.start_io("w", 0, 5, rand(1, 100 + i))))
        hs.append((sub, sub.start_io("w", 0, 5, rand(1, 200 + i))))
    for u, h in hs:
        u.finish_io(h)
    sub.wait_for(lambda u: hm.settled(main, sub), what="both volumes equal")
    got = main.read(0, 5, 1)
    assert got == sub.read(0, 5, 1) and got in [rand(1, s + i) for s in (100, 200) for i in range(6)]


def test_the_pair_fits_an_rp2040_sized_board_with_603_in_cache(make_rig):
    d = hm.desc(sub={"comm": "cache", "comm_volume": None})
    d["unit"][1]["volume"].pop()
    rig = make_rig(d, board="emulator-small")    # 4.5 KiB frames in a 256 KiB heap
    main, sub = rig.unit("main"), rig.unit("sub")
    assert not [x for x in list(sub.link.logs) + list(main.link.logs) if "not attached" in x]
    sub.write(0, 0, rand(1, 30))                 # synchronous: 521 refers to the request's buffer
    main.write(0, 1, rand(1, 31))
    assert sub.table("mirror")["counters"]["forwarded"] == 1 and hm.settled(main, sub)


def test_asynchronous_writes_to_one_block_reach_both_volumes_in_their_order_after_a_cut(make_rig):
    rig, main, sub = start(make_rig, sub={"mode": "async"})
    rig.fabric.paths[1].cut = True               # 203: the first forward waits to try again
    sub.write(0, 12, rand(1, 40))
    sub.wait_for(lambda u: u.table("mirror")["counters"]["retries"] >= 1, what="retrying")
    rig.fabric.paths[1].cut = False
    sub.write(0, 12, rand(1, 41))                # acknowledged last: must be the one kept
    sub.wait_for(lambda u: hm.settled(main, sub), what="both forwarded")
    assert main.read(0, 12, 1) == rand(1, 41) == sub.read(0, 12, 1)
