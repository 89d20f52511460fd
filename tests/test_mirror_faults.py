"""Seed 002 under faults, on two emulated boards: a path cut in the middle of the job
chain, either board killed mid-write (the main board between its store and the copy).
The kill is placed with the job 'mirror' (pause: the chain waits at its next step) or
the drives' hold; afterwards both volumes are equal and every acknowledged write is on
both, whatever the host was told about the cut-short one (CHECK, or no answer)."""

import pytest
from conftest import have_micropython, random_blocks

from firmware import wire
from host.features import mirror as hm
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 4096


def rand(n, seed):
    return random_blocks(n, seed, BS)


def start(make_rig, **sub):
    rig = make_rig(hm.desc(sub=sub))
    m, s = rig.unit("main"), rig.unit("sub")
    for u in (m, s):
        u.mgmt("trace", on=True)
    acked = rand(8, 99)
    m.write(0, 0, acked[:4 * BS])          # acknowledged writes from both hosts
    s.write(0, 4, acked[4 * BS:])
    return rig, m, s, acked


def converged(main, sub):
    return (not main.table("mirror")["resync"] and not sub.table("mirror")["resync"]
            and hm.settled(main, sub))


def check_after(main, sub, acked):
    sub.wait_for(lambda u: converged(main, sub), timeout=60, what="both volumes equal")
    assert hm.on_drives(main)[:8 * BS] == acked == hm.on_drives(sub)[:8 * BS]


def stores(main):
    return [e[:2] for e in hm.events(main)].count(["JOB5", "726"])


def wait_stored(main, before):
    main.wait_for(lambda u: stores(u) > before, what="stored on the main volume, JOB5 waiting")


def held_write(main, u, lba, data):
    """u writes lba with the chain held on the main unit right after its store (JOB5
    waiting): the write's handle, for the caller to inject a fault and resume the job."""
    main.job("mirror", "pause")
    n = stores(main)
    w = u.start_io("w", 0, lba, data)
    wait_stored(main, n)
    return w


def restart(u):
    u.start(configure=False)
    u.mgmt("trace", on=True)


@pytest.mark.parametrize("cut", [0, 1], ids=["202", "203"])
def test_path_cut_after_the_main_store_gives_check_and_both_volumes_end_equal(make_rig, cut):
    rig, main, sub, acked = start(make_rig)
    w = held_write(main, sub, 20, rand(2, 1))
    rig.fabric.paths[cut].cut = True
    main.job("mirror", "resume")
    with pytest.raises(StatusError) as e:
        sub.finish_io(w)
    assert e.value.status == wire.E_CHECK
    rig.fabric.paths[cut].cut = False
    check_after(main, sub, acked)


def test_path_cut_under_a_main_host_write_copy_gives_check_and_the_old_data_back(make_rig):
    rig, main, sub, acked = start(make_rig)
    w = held_write(main, main, 2, rand(1, 2))
    rig.fabric.paths[0].cut = True
    main.job("mirror", "resume")
    with pytest.raises(StatusError) as e:
        main.finish_io(w)
    assert e.value.status == wire.E_PATH_DOWN or e.value.status == wire.E_CHECK
    rig.fabric.paths[0].cut = False
    check_after(main, sub, acked)


@pytest.mark.parametrize("who", ["main host", "sub host"])
def test_main_board_killed_between_its_store_and_the_copy(make_rig, who):
    rig, main, sub, acked = start(make_rig)
    u = main if who == "main host" else sub
    w = held_write(main, u, 12, rand(2, 3))
    if who == "main host":
        assert sub.table("mirror_514") == [[12, 2]]          # the notice came first
    main.kill()
    if who == "sub host":
        with pytest.raises(StatusError) as e:
            sub.finish_io(w)                             # the forward's answer never comes
        assert e.value.status == wire.E_CHECK
    restart(main)                                        # the unit's cache kept the store
    check_after(main, sub, acked)
    assert main.read(0, 12, 2) == sub.read(0, 12, 2)


def test_sub_board_killed_while_the_main_unit_waits_to_copy(make_rig):
    rig, main, sub, acked = start(make_rig)
    w = held_write(main, main, 14, rand(1, 4))
    sub.kill()
    main.job("mirror", "resume")
    with pytest.raises(StatusError):
        main.finish_io(w)                                # CHECK: the old data is back
    assert main.table("mirror")["resync"] == [[14, 1]]
    restart(sub)
    check_after(main, sub, acked)


def test_asynchronous_writes_acknowledged_survive_a_sub_board_reset_from_603(make_rig):
    rig, main, sub, acked = start(make_rig, mode="async")
    sub.wait_for(lambda u: hm.settled(main, u), what="the first writes forwarded")
    sub.job("mirror", "pause")                           # nothing forwarded yet
    data = rand(2, 5)
    sub.write(0, 30, data)                               # GOOD: 603 and SM have it
    sub.kill()
    restart(sub)                                         # replayed from 603
    assert sub.table("mirror")["counters"]["replayed"] == 1
    check_after(main, sub, acked)
    assert main.read(0, 30, 2) == data == sub.read(0, 30, 2)


def test_asynchronous_writes_acknowledged_reach_a_main_board_that_was_down(make_rig):
    rig, main, sub, acked = start(make_rig, mode="async")
    main.kill()
    data = rand(1, 6)
    sub.write(0, 31, data)                               # GOOD; forwarded once main is back
    sub.wait_for(lambda u: u.table("mirror")["counters"]["retries"] >= 1, what="retrying")
    restart(main)
    check_after(main, sub, acked)
    assert main.read(0, 31, 1) == data
