"""Board resets: the board is killed (SIGKILL) at random moments under a write workload
and during a rebuild; it boots from its persisted SM and non-volatile cache, the rebuild
goes on from its persisted pointer, and every acknowledged write reads back.  A write
in flight at the kill holds either its old or its new data (never anything else)."""

import pytest
from conftest import DriveGates, cut_power_at, have_micropython, random_blocks, rig_desc, rows_not_whole

from firmware import wire
from firmware.raid import locate
from host.reliability import reset_run
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")


@pytest.mark.parametrize("board", ["emulator", "cpython"])
def test_acknowledged_writes_survive_random_kills_mid_write_and_mid_rebuild(make_rig, board):
    rig = make_rig(rig_desc(drive_blocks=512, volume=[{"id": 0, "group": 0, "blocks": 600}]), board=board)
    f = reset_run(rig, kills=5, seed=3)
    assert f["kills"] == 5
    assert f["bad_blocks"] == 0 and f["unacknowledged_bad"] == 0
    assert f["writes_acknowledged"] > 100
    # the rebuild was cut by the first kill and went on from where it was, not from 0
    assert f["rebuild_resumed_from"][0] >= f["rebuild_pointer_before_kills"] > 0
    assert f["group_after"] == "normal"
    u = rig.unit()
    g = u.table("groups")[0]
    assert g["rebuild"] is None and g["failed"] == [] and 4 in g["members"]


@pytest.mark.parametrize("board, fault", [("emulator", "medium"), ("cpython", "medium"), ("emulator", "fail")])
def test_a_reset_mid_write_with_an_unreadable_block_in_the_row_reports_that_block_lost(make_rig, board, fault):
    """A double fault: row 0 is caught mid-write by a reset (the data block reached its
    drive, the parity did not) and another data block of the row is unreadable (a
    latent medium error, or its drive dies with the reset).  The parity cannot be
    trusted to rebuild it: the block reads as lost (never as wrong data), the unit names
    the group and row, and counts it; once the block is written again the row is whole
    and protected again."""
    rig = make_rig(rig_desc(), board=board)
    u, h = rig.unit(), rig.host()
    g = u.table("groups")[0]
    # row 0: volume blocks 0, 2, 4 on members 0, 1, 2; parity on member 3
    assert [locate(g, b)[:2] for b in (0, 2, 4)] == [(0, 0), (0, 1), (0, 2)] and locate(g, 0)[2] == 3
    h.write(0, 0, 6)
    u.flush(0)
    u.restart()                        # a cold cache: the next destage is a read-modify-write
    if fault == "medium":
        u.inject(g["members"][1], "medium", 0, 1)
    d0, dp = g["members"][0], g["members"][3]
    dead = cut_power_at(u, lambda d, kind, lba: (d, kind, lba) == (d0, wire.K_DWRITE, 0))
    parity_before = u.drives[dp].read_raw(0)
    h.write(0, 0, 1)                   # acknowledged (non-volatile cache), then destaged
    assert dead.wait(30)
    assert u.drives[dp].read_raw(0) == parity_before     # the power went before the parity
    u.kill()
    if fault == "fail":
        u.inject(g["members"][1], "fail")
    u.start(configure=False)
    u.wait_for(lambda x: x.table("cache")["dirty"] == 0, what="the restored write destaged")
    assert u.table("groups")[0]["lost"] == [[1, 0]]
    assert u.table("raid")["double_faults"] == 1
    assert [w for w in u.table("warnings") if "group 0 row 0" in w and "data lost" in w]
    assert h.read(0, 0) == 0 and h.read(0, 4) == 0       # the written block and the readable one
    for _ in range(2):
        with pytest.raises(StatusError) as e:
            h.read(0, 2)
        assert e.value.status == wire.E_DATA_LOST
    assert u.table("raid")["lost_reads"] >= 2
    u.restart()                        # the mark is persisted with the group
    with pytest.raises(StatusError) as e:
        h.read(0, 2)
    assert e.value.status == wire.E_DATA_LOST
    h.write(0, 2, 1)                   # written again: valid, and the row's parity whole
    u.flush(0)
    assert u.table("groups")[0]["lost"] == []
    u.restart()                        # from the drives: the unreadable block rebuilt from parity
    assert h.read(0, 0, 6) == 0
    if fault == "medium":
        assert u.table("raid")["repaired"] == 1
        assert rows_not_whole(u, g) == []
    else:
        assert u.table("groups")[0]["failed"] == [1]
        u.rebuild(0)                   # the member's blocks come back from the others
        assert u.wait_job("rebuild0")["note"] == "replaced drive 1; 0 rows lost"
        assert h.read(0, 0, 6) == 0
        assert rows_not_whole(u, u.table("groups")[0]) == []


@pytest.mark.parametrize("board", ["emulator", "cpython"])
def test_two_writes_that_find_their_group_degraded_mid_operation_take_the_parity_log_in_turn(make_rig, board):
    """Two read-modify-writes on rows 0 and 1 take their row locks while the group is
    healthy and wait on their old data; member 2 is pulled; both go on, find it absent
    and must log its data before writing.  There is one parity-log record: the second
    waits for it (the raid table's log_waits) instead of overwriting the first's.  The
    power goes with the data blocks on their drives and the parity not: at boot the
    logged row is made whole, and member 2's blocks — never written by the host, alive
    only in parity — read back unchanged.  (With the record overwritten, one row came
    back with data and parity that disagree: member 2's block read back wrong.)"""
    rig = make_rig(rig_desc(cache_mode="write-through"), board=board)
    u = rig.unit()
    bs = u.block_size
    g = u.table("groups")[0]
    # rows 0 and 1 have their parity on member 3; member 0 holds block 0 (row 0), member 1
    # block 3 (row 1), member 2 blocks 4 and 5 (rows 0 and 1)
    assert [locate(g, b) for b in (0, 3, 4, 5)] == [(0, 0, 3), (1, 1, 3), (0, 2, 3), (1, 2, 3)]
    d = g["members"]
    old = random_blocks(6, 11, bs)
    u.write(0, 0, old)
    u.restart()                         # a cold cache: each write reads its old data and parity
    old_reads = [(d[0], wire.K_DREAD, 0), (d[1], wire.K_DREAD, 1)]
    gates = DriveGates(u.link)
    gates.hold(*old_reads)
    new = random_blocks(2, 12, bs)
    w1 = u.start_io("w", 0, 0, new[:bs])
    w2 = u.start_io("w", 0, 3, new[bs:])
    u.wait_for(lambda _: all(k in gates.arrived for k in old_reads), timeout=60,
               what="both writes waiting on their old data")
    u.fail_drive(d[2], "pulled")
    assert u.table("groups")[0]["failed"] == [2]
    gates.hold((d[3], wire.K_DWRITE, 0), (d[3], wire.K_DWRITE, 1))   # the parity writes will not land
    gates.release(*old_reads)
    data_writes = {(d[0], wire.K_DWRITE, 0), (d[1], wire.K_DWRITE, 1)}

    def both_logged_or_one_waiting(x):
        n = len(data_writes & gates.landed)
        return n == 2 or (n == 1 and x.table("raid")["log_waits"] >= 1)

    u.wait_for(both_logged_or_one_waiting, timeout=60, what="a data block written, its parity held")
    waits = u.table("raid")["log_waits"]
    u.launcher.kill()                    # the power goes
    gates.power_off()
    gates.close()
    u.kill()
    u.start(configure=False)
    del w1, w2                           # never answered: each block reads old or new
    assert u.read(0, 4, 2) == old[4 * bs:6 * bs]     # member 2's blocks, alive only in parity
    assert u.table("raid")["hole_repairs"] == 1
    assert waits == 1
    for lba, i in ((0, 0), (3, 1)):
        assert u.read(0, lba, 1) in (old[lba * bs:(lba + 1) * bs], new[i * bs:(i + 1) * bs])
