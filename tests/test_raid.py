"""RAID1/RAID5 on real boards over the wire: write, read, degraded I/O, repair, rebuild."""
import threading

import pytest
from conftest import BASE_UNIT, have_micropython, rig_desc

from firmware import wire
from firmware.raid import locate
from host.boards import load_board
from host.rig import StatusError
from host.scenarios import raid5_life

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")


def parity_ok(u, g):
    """Every RAID5 row: XOR of all members is zero (read straight off the simulated drives)."""
    bad = []
    for row in range(g["rows"]):
        acc = bytes(u.block_size)
        for d in g["members"]:
            blk = u.drives[d].read_raw(row)
            acc = bytes(a ^ b for a, b in zip(acc, blk))
        if any(acc):
            bad.append(row)
    return bad


def written(make_rig, blocks, desc=None, restart=False):
    """An emulator rig whose host has written blocks 0..blocks-1 of volume 0, flushed to the
    drives (restart: and the unit restarted, its cache cold): (unit, host)."""
    rig = make_rig(desc or rig_desc(), board="emulator")
    u, h = rig.unit(), rig.host()
    h.write(0, 0, blocks)
    u.flush()
    if restart:
        u.restart()
    return u, h


def test_raid5_life_on_the_emulator_and_cpython_board_leaves_identical_drives(make_rig):
    images = {}
    for board in ("emulator", "cpython"):
        rig = make_rig(rig_desc(), board=board)
        res = raid5_life(rig)
        u = rig.unit()
        assert u.hello["impl"] == ("micropython" if board == "emulator" else "cpython")
        assert res["bad"] == 0 and res["checked"] > 300
        assert res["degraded"]["state"] == "degraded" and res["degraded"]["failed"] == [1]
        assert res["midway"]["pointer"] == res["degraded"]["rows"] // 3
        assert res["job"]["state"] == "done"
        g = res["group"]
        assert g["state"] == "normal" and g["members"] == [0, 4, 2, 3] and g["spares"] == []
        assert parity_ok(u, g) == []
        images[board] = [d.image() for d in u.drives]
    assert images["emulator"] == images["cpython"]


def test_raid5_layout_rotates_parity_and_places_data_where_locate_says(make_rig):
    u, h = written(make_rig, 24)
    g = u.table("groups")[0]
    for glba in range(24):
        row, m, p = locate(g, glba)
        assert u.drives[g["members"][m]].read_raw(row) == h.verifier.expected(0, glba)
    # parity member moves every stripe (chunk 2 rows): 3, 2, 1, 0, 3 ...
    assert [locate(g, s * 6)[2] for s in range(5)] == [3, 2, 1, 0, 3]
    assert parity_ok(u, g) == []


def test_unreadable_block_is_rebuilt_from_the_others_and_repaired(make_rig):
    u, h = written(make_rig, 24)
    g = u.table("groups")[0]
    row, m, _ = locate(g, 5)
    d = g["members"][m]
    u.inject(d, "defect", row, 1)
    # evict the cache by reading elsewhere is unnecessary: a fresh board has it cold
    u.restart()
    assert h.read(0, 5) == 0
    assert u.table("raid")["repaired"] == 1
    assert u.drives[d].read_raw(row) == h.verifier.expected(0, 5)     # rewritten: defect gone
    assert u.table("groups")[0]["state"] == "normal"
    assert u.table("drives")[d]["io"]["r_medium"] == 1


def test_recovered_errors_are_counted_and_the_data_returned(make_rig):
    u, h = written(make_rig, 12, restart=True)
    u.inject(0, "recovered")
    assert h.verify_all(0, 12) == 0
    io = u.table("drives")[0]["io"]
    assert io["r_recovered"] >= 1 and u.table("groups")[0]["state"] == "normal"


def test_write_fault_fails_the_member_and_no_acknowledged_write_is_lost(make_rig):
    rig = make_rig(rig_desc(cache_mode="write-through"), board="emulator")
    u, h = rig.unit(), rig.host()
    h.write(0, 0, 24)
    u.inject(2, "write_fault")
    for lba in range(0, 24, 3):
        h.write(0, lba, 3)
    g = u.table("groups")[0]
    assert g["state"] == "degraded" and g["failed"] == [2]
    assert u.table("drives")[2]["state"] == "failed"
    writes_before = u.drives[2].counters["writes"]
    assert h.verify_all(0, 24) == 0
    h.write(0, 0, 24)
    assert u.drives[2].counters["writes"] == writes_before     # a failed drive is not written


def test_second_failure_in_a_raid5_group_reports_data_lost(make_rig):
    u, h = written(make_rig, 24, restart=True)
    u.inject(1, "fail")
    u.inject(3, "fail")
    with pytest.raises(StatusError) as e:
        for lba in range(24):
            h.read(0, lba)
    assert e.value.status == wire.E_DATA_LOST
    assert u.table("groups")[0]["state"] == "failed"


def test_raid1_mirror_degrades_and_rebuilds(make_rig):
    unit = dict(BASE_UNIT, drives=3,
                group=[{"id": 0, "level": 1, "members": [0, 1], "spares": [2]}],
                volume=[{"id": 0, "group": 0, "blocks": 64}])
    u, h = written(make_rig, 64, rig_desc(unit))
    assert u.drives[0].image() == u.drives[1].image()
    u.inject(0, "fail")
    u.restart()
    assert h.verify_all(0, 64) == 0     # served by the mirror; auto rebuild starts
    u.wait_job("rebuild0")
    assert u.table("groups")[0]["members"] == [2, 1]
    assert u.drives[2].image() == u.drives[1].image()
    assert h.verify_all(0, 64) == 0


def test_a_flush_answers_for_what_was_dirty_when_it_began(make_rig):
    """Writes that land while a flush runs are the next flush's: the flush answers OK once
    everything dirty at its start is on the drives; a slot the drives cannot take
    (a RAID5 group with two members gone) is reported stuck with DATA_LOST."""
    board = load_board("emulator")
    board["destage_ms"] = 3_600_000          # only flushes destage here
    rig = make_rig(rig_desc(), board=board)
    u, h = rig.unit(), rig.host()
    h.write(0, 0, 2)                          # dirty in the cache
    u.inject(0, "hold")
    res = {}
    t = threading.Thread(target=lambda: res.update(r=u.link.mgmt("flush", check=False)))
    t.start()
    try:
        u.wait_for(lambda x: x.drives[0].faults.waiting > 0, what="the flush's destage on the held drive")
        h.write(0, 40, 1)                     # lands while the flush waits: dirty after it
    finally:
        u.inject(0, "release")
        t.join(60)
    r = res["r"]
    assert r["_status"] == wire.OK and r["stuck"] == 0 and r["dirty"] == 1, r
    u.flush()
    assert u.mgmt("flush")["dirty"] == 0
    assert h.verify_all(0, 48) == 0
    u.inject(1, "fail")
    u.inject(2, "fail")
    h.write(0, 4, 1)                          # cached; its group cannot take it
    r = u.link.mgmt("flush", check=False)
    assert r["_status"] == wire.E_DATA_LOST and r["stuck"] == 1, r
