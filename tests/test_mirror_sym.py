"""Seed 002, example 3 (Figs 17, 19, 20) on two emulated boards: symmetric volumes,
the main unit's volume the exclusive main volume, the sub unit's the exclusive
subvolume; reserve, RESERVATION CONFLICT, waiting on the exclusive status, and the
races placed exactly with the job 'mirror' (pause / resume)."""

import pytest
from conftest import have_micropython, random_blocks

from firmware import wire
from host.features import mirror as hm
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 4096


def rand(n, seed):
    return random_blocks(n, seed, BS)


def start(make_rig, mode="sync"):
    rig = make_rig(hm.desc_sym(mode))
    m, s = rig.unit("main"), rig.unit("sub")
    for u in (m, s):
        u.mgmt("trace", on=True)
    return rig, m, s


def steps(u):
    return [e[1] for e in hm.events(u) if e[0] == "JOBX"]


def idle(main, sub):
    m, s = main.table("mirror"), sub.table("mirror")
    return (m["held"] == s["held"] == "" and m["queued"] == s["queued"] == 0
            and hm.on_drives(main) == hm.on_drives(sub))


def test_writes_from_either_host_reach_both_volumes_the_sub_side_after_the_target(make_rig):
    rig, main, sub = start(make_rig)
    a, b = rand(2, 1), rand(2, 2)
    main.write(0, 4, a)                            # Fig 19: self, then the target
    assert steps(main) == ["857", "845", "845", "846"] and steps(sub) == ["T-write"]
    sub.write(0, 6, b)                             # Fig 20 / 17: the target, then self
    assert steps(sub)[1:] == ["857", "862", "840"] and steps(main)[4:] == ["T-write"]
    assert hm.on_drives(main) == hm.on_drives(sub)
    assert sub.read(0, 4, 4) == a + b == main.read(0, 4, 4)


def test_reserve_by_a_host_gives_the_other_reservation_conflict_with_nothing_changed(make_rig):
    rig, main, sub = start(make_rig)
    main.write(0, 0, rand(2, 3))
    before = hm.on_drives(main)
    assert main.mgmt("mirror_reserve", action="reserve")["reserved_by"] == 101
    assert sub.table("mirror")["reserved_by"] == 101      # RSV-peer
    mark = len(sub.link.trace)
    with pytest.raises(StatusError) as e:                 # 859 -> 834
        sub.write(0, 1, rand(1, 4))
    assert e.value.status == wire.E_RESERVATION_CONFLICT and hm.peer_frames(sub, mark) == []
    with pytest.raises(StatusError) as e:
        sub.read(0, 0, 1)
    assert e.value.status == wire.E_RESERVATION_CONFLICT
    r = sub.link.mgmt("mirror_reserve", action="reserve", check=False)
    assert r["_status"] == wire.E_RESERVATION_CONFLICT
    assert hm.on_drives(main) == before == hm.on_drives(sub)
    main.write(0, 2, rand(1, 5))                          # its own host writes on
    main.mgmt("mirror_reserve", action="release")
    sub.write(0, 1, rand(1, 6))
    assert hm.on_drives(main) == hm.on_drives(sub)
    assert sub.link.mgmt("mirror_reserve", action="odd", check=False)["_status"] == wire.E_BAD_PARAM


def test_fig17_sub_side_finds_the_main_exclusive_releases_and_retries_both_end_equal(make_rig):
    rig, main, sub = start(make_rig)
    main.job("mirror", "pause")                    # the main side holds 601 after its own write
    a, b = rand(1, 7), rand(1, 8)
    wa = main.start_io("w", 0, 9, a)
    main.wait_for(lambda u: u.table("mirror")["held"] == "main", what="844")
    wb = sub.start_io("w", 0, 9, b)                # the same block from the other host
    sub.wait_for(lambda u: u.table("mirror")["counters"]["retries"] >= 2, what="832 -> 833 retries")
    assert "832" in steps(sub) and "853" not in steps(sub)
    main.job("mirror", "resume")
    main.finish_io(wa)
    sub.finish_io(wb)
    assert hm.on_drives(main) == hm.on_drives(sub)
    assert main.read(0, 9, 1) == b                 # the sub side wrote after the main side ended


def test_fig17_target_reserved_a_split_second_earlier_gives_conflict_and_changes_nothing(make_rig):
    rig, main, sub = start(make_rig)
    before = hm.on_drives(main)
    sub.job("mirror", "pause")                     # 861 obtained, 862 not yet sent
    w = sub.start_io("w", 0, 3, rand(1, 9))
    sub.wait_for(lambda u: u.table("mirror")["held"] == "sub", what="861")
    main.mgmt("mirror_reserve", action="reserve")  # host 101 reserves meanwhile
    sub.job("mirror", "resume")
    with pytest.raises(StatusError) as e:          # 837 -> 852, 838
        sub.finish_io(w)
    assert e.value.status == wire.E_RESERVATION_CONFLICT
    assert "838" in steps(sub) and "T-reserved" in steps(main)
    assert sub.table("mirror")["held"] == ""       # 852 released it
    assert hm.on_drives(main) == before == hm.on_drives(sub)


@pytest.mark.parametrize("side", ["main", "sub"])
def test_a_write_that_finds_its_volume_excluded_waits_and_then_goes_on(make_rig, side):
    rig, main, sub = start(make_rig)
    u = main if side == "main" else sub
    u.job("mirror", "pause")
    a, b = rand(1, 10), rand(1, 11)
    wa = u.start_io("w", 0, 5, a)
    u.wait_for(lambda x: x.table("mirror")["held"] == side, what="obtained")
    wb = u.start_io("w", 0, 5, b)
    want = "850" if side == "main" else "836"
    u.wait_for(lambda x: want in steps(x), what="standby")
    u.job("mirror", "resume")
    u.finish_io(wa)
    u.finish_io(wb)
    assert main.read(0, 5, 1) == b == sub.read(0, 5, 1) and idle(main, sub)


def test_asynchronous_example_3_answers_good_first_and_both_volumes_end_equal(make_rig):
    rig, main, sub = start(make_rig, "async")
    main.job("mirror", "pause")
    main.write(0, 1, rand(1, 12))                  # GOOD before the transfer
    main.wait_for(lambda u: u.table("mirror")["held"] == "main", what="844")
    assert "good" in steps(main) and hm.on_drives(sub)[BS:2 * BS] == bytes(BS)
    sub.write(0, 1, rand(1, 13))
    main.job("mirror", "resume")
    sub.wait_for(lambda u: idle(main, sub) and main.read(0, 1, 1) == rand(1, 13), what="both equal")


def test_asynchronous_conflict_found_later_is_recorded_and_nothing_changes(make_rig):
    rig, main, sub = start(make_rig, "async")
    before = hm.on_drives(main)
    sub.job("mirror", "pause")
    sub.write(0, 2, rand(1, 14))                   # GOOD: 859 passed
    main.mgmt("mirror_reserve", action="reserve")
    sub.job("mirror", "resume")
    sub.wait_for(lambda u: u.table("mirror")["async_status"] == "RESERVATION_CONFLICT", what="recorded")
    assert idle(main, sub) and hm.on_drives(main) == before


def converged(main, sub):
    return not main.table("mirror")["resync"] and not sub.table("mirror")["resync"] and idle(main, sub)


def restart(u):
    u.start(configure=False)
    u.mgmt("trace", on=True)


@pytest.mark.parametrize("side", ["main", "sub"])
def test_path_cut_during_the_transfer_gives_check_and_both_volumes_end_equal(make_rig, side):
    rig, main, sub = start(make_rig)
    acked = rand(4, 15)
    main.write(0, 0, acked[:2 * BS])
    sub.write(0, 2, acked[2 * BS:])
    u = main if side == "main" else sub
    u.job("mirror", "pause")                       # held, the transfer not sent yet
    w = u.start_io("w", 0, 1, rand(1, 16))
    u.wait_for(lambda x: x.table("mirror")["held"] == side, what="obtained")
    out = 0 if side == "main" else 1
    rig.fabric.paths[out].cut = True
    u.job("mirror", "resume")
    with pytest.raises(StatusError) as e:
        u.finish_io(w)
    assert e.value.status == wire.E_CHECK
    rig.fabric.paths[out].cut = False
    u.wait_for(lambda x: converged(main, sub), what="both volumes equal")
    assert hm.on_drives(main)[:4 * BS] == acked


@pytest.mark.parametrize("side", ["main", "sub"])
def test_a_board_killed_while_it_holds_its_volume_leaves_both_equal_after_restart(make_rig, side):
    rig, main, sub = start(make_rig)
    acked = rand(2, 17)
    main.write(0, 0, acked)
    u = main if side == "main" else sub
    u.job("mirror", "pause")                       # main: its own volume written, the target not
    u.start_io("w", 0, 1, rand(1, 18))
    u.wait_for(lambda x: x.table("mirror")["held"] == side, what="obtained")
    u.kill()
    restart(u)                                     # the marked extent is copied over again
    u.wait_for(lambda x: converged(main, sub), what="both volumes equal")
    assert hm.on_drives(main)[:BS] == acked[:BS]
    sub.write(0, 3, rand(1, 19))
    assert idle(main, sub)


def test_fig19_main_side_waits_for_the_held_subvolume_and_gets_it_first(make_rig):
    rig, main, sub = start(make_rig)
    sub.job("mirror", "pause")                     # the sub side holds 602 (861), 862 not sent
    a, b = rand(1, 20), rand(1, 21)
    wb = sub.start_io("w", 0, 6, b)
    sub.wait_for(lambda u: u.table("mirror")["held"] == "sub", what="861")
    wa = main.start_io("w", 0, 6, a)               # 844, 845 self; the target waits (a waiter)
    main.wait_for(lambda u: "845" in steps(u), what="845 self")
    sub.job("mirror", "resume")                    # 862 finds 601 held: 832, release, retry
    main.finish_io(wa)                             # the main side's transfer always completes
    sub.finish_io(wb)
    assert "832" in steps(sub) and "T-write" in steps(sub)
    assert main.read(0, 6, 1) == b == sub.read(0, 6, 1) and idle(main, sub)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_concurrent_writes_to_one_block_from_both_hosts_end_equal(make_rig, mode):
    rig, main, sub = start(make_rig, mode)
    hs = []
    for i in range(6):
        hs.append((main, main.start_io("w", 0, 2, rand(1, 300 + i))))
        hs.append((sub, sub.start_io("w", 0, 2, rand(1, 400 + i))))
    for u, h in hs:
        u.finish_io(h)
    sub.wait_for(lambda u: idle(main, sub), what="both equal")
    assert main.read(0, 2, 1) in [rand(1, s + i) for s in (300, 400) for i in range(6)]
