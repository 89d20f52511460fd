"""Two boards, one unit (seed 004; docs/dual.md): controller A and controller B, two
MicroPython boards over the same drives, the cache and SM mirrored, takeover when A's
board is killed, resynchronisation and handback when it returns."""
import copy
import threading

import pytest
from conftest import DriveGates, have_micropython, rows_not_whole

from firmware import wire
from firmware.raid import locate
from host.features import volcopy as vc
from host.link import StatusError
from host.rig import Rig, RigError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython not installed")

UNIT = {
    "name": "u0", "controllers": 2, "drives": 4, "drive_blocks": 96, "backing": "memory",
    "features": ["dual", "volcopy"], "volcopy": {"track_blocks": 4},
    "group": [{"id": 0, "level": 5, "members": [0, 1, 2], "spares": [3], "auto_rebuild": False}],
    "volume": [{"id": 0, "group": 0, "blocks": 64}, {"id": 1, "group": 0, "start": 64, "blocks": 64}],
}


def desc(**changes):
    u = copy.deepcopy(UNIT)
    u.update(changes)
    return {"rig": {"name": "dual", "block_size": 512}, "unit": [u], "host": [{"name": "h0", "unit": "u0"}]}


@pytest.fixture
def rig():
    with Rig(desc(), board="emulator") as r:
        yield r


def hold_all(u):
    for d in range(len(u.drives)):
        u.inject(d, "hold")


def release_all(u):
    for d in range(len(u.drives)):
        u.inject(d, "release")


def test_both_boards_share_the_drives_and_a_is_master(rig):
    u = rig.unit()
    assert u.master() == "A"
    a, b = u.ctrl_table("A", "dual"), u.ctrl_table("B", "dual")
    assert (a["role"], b["role"]) == ("master", "standby")
    assert a["peer_up"] and a["sibling_path"] == 0
    assert u.ctrl(0).launcher.proc.pid != u.ctrl(1).launcher.proc.pid
    # the features run on the master only; the standby has just the mirror
    assert set(u.ctrl_mgmt("A", "info")["features"]) == {"dual", "volcopy"}
    assert u.ctrl_mgmt("B", "info")["features"] == ["dual"]
    h = rig.host()
    h.write(0, 0, 8)
    u.flush()
    assert sum(d.counters["blocks_written"] for d in u.drives) > 0
    assert h.verify_all(0, 8) == 0


def test_an_acknowledged_write_is_in_both_caches(rig):
    u, h = rig.unit(), rig.host()
    hold_all(u)                    # nothing reaches the drives: the data lives in the caches
    try:
        for lba in (3, 10, 11, 40):
            h.write(0, lba, 1)
        for lba in (3, 10, 11, 40):
            want = h.verifier.expected(0, lba)
            for c in "AB":
                blk = u.cached_block(c, 0, lba)      # volume 0 starts at group block 0
                assert blk["state"] == "dirty" and blk["data"] == want, (c, lba)
        assert u.cached_block("A", 0, 40)["seq"] == u.cached_block("B", 0, 40)["seq"]
        rows = {(r[0], r[1]) for r in u.ctrl_table("B", "dual_cache")}
        assert {(0, 3), (0, 10), (0, 11), (0, 40)} <= rows
        assert u.ctrl_table("B", "dual")["puts_applied"] >= 4
    finally:
        release_all(u)
    u.flush()
    # A destaged; its clean notices reach B (a flush is a barrier for them)
    u.mgmt("dual_sync")
    assert u.ctrl_table("B", "dual")["dirty"] == 0
    assert u.cached_block("B", 0, 10)["state"] == "clean"


def test_the_standby_traces_the_block_before_the_host_has_its_good(rig):
    u, h = rig.unit(), rig.host()
    u.ctrl_mgmt("B", "trace", on=True)
    logs = u.ctrl(1).link.logs
    for lba in (7, 30):
        h.write(0, lba, 2)                # returns at GOOD: B's trace line is already here
        seq = u.cached_block("A", 0, lba)["seq"]
        assert "T dual_put 0 %d 2 %d" % (lba, seq) in logs


def test_the_standby_passes_host_io_on_to_the_master_and_refuses_a_takeover_while_a_lives(rig):
    u, h = rig.unit(), rig.host()
    with u.via("B"):                      # the host addresses controller B
        h.write(0, 12, 3)
        assert h.read(0, 12, 3) == 0
        assert h.read(0, 0, 8) == 0
    b = u.ctrl_table("B", "dual")
    assert b["role"] == "standby" and b["forwarded"] == 3
    for lba in (12, 13, 14):              # written by the master, mirrored back to B
        want = h.verifier.expected(0, lba)
        assert u.cached_block("A", 0, lba)["data"] == want == u.cached_block("B", 0, lba)["data"]
    assert h.verify_all(0, 16) == 0       # through A
    r = u.ctrl(1).link.mgmt("dual_takeover", check=False)
    assert r["_status"] == wire.E_STATE and "alive" in r["error"]
    assert u.ctrl_table("B", "dual")["role"] == "standby"


def test_takeover_mid_workload_loses_no_acknowledged_write(rig):
    u, h = rig.unit(), rig.host()
    for lba in range(0, 64, 4):
        h.write(0, lba, 2)
    u.flush()
    hold_all(u)                    # A cannot destage: what follows is only in the caches
    try:
        for lba in (1, 5, 6, 7, 20, 33, 50, 63):
            h.write(0, lba, 1)
        dirty_a = u.ctrl_table("A", "dual")["dirty"]
        assert dirty_a >= 8 and u.ctrl_table("B", "dual")["dirty"] >= 8
        u.kill_controller("A")     # SIGKILL of A's board with its destages held
        assert u.master() == "B"
        assert u.ctrl_table("B", "dual")["takeovers"] == 1
    finally:
        release_all(u)            # A's held drive requests are fenced: they never land
    assert h.verify_all(0, 64) == 0
    h.write(0, 2, 3)                      # hosts go on, on B
    u.flush()
    assert u.ctrl_table("B", "dual")["dirty"] == 0
    assert h.verify_all(0, 64) == 0


def kill_a_between_data_and_parity(u, dm, dp, row):
    """A destages (a flush) a read-modify-write of `row`: its data block reaches drive
    dm, its parity write to dp is held; then A's board is killed and B takes over (the
    flush goes on on B)."""
    gates = DriveGates(u.ctrl("A").link)
    gates.hold((dp, wire.K_DWRITE, row))  # after the kill, the dual unit's fence refuses it
    t = threading.Thread(target=u.flush)
    t.start()
    try:
        u.wait_for(lambda _: (dm, wire.K_DWRITE, row) in gates.landed and (dp, wire.K_DWRITE, row) in gates.arrived,
                   timeout=60, what="A's data write landed, its parity write held")
        u.kill_controller("A")
    finally:
        gates.release()
    t.join(120)
    assert not t.is_alive() and u.master() == "B"


def test_a_row_the_dead_master_left_half_written_gets_whole_parity_on_b(rig):
    """A dies in the middle of a read-modify-write destage: the data block reached its
    drive, the parity did not.  B holds the block dirty in its mirror and destages it
    with the row's parity recomputed from its data (its read-modify-write would read the
    new data back as the old and keep the stale parity): the row is whole, and the
    row's other data block, rebuilt from that parity once its drive dies, reads back."""
    u, h = rig.unit(), rig.host()
    g = u.table("groups")[0]
    row, m, p = locate(g, 0)
    other = next(b for b in range(1, 64) if locate(g, b)[0] == row and locate(g, b)[1] not in (m, p))
    h.write(0, 0, 64)
    u.flush()
    u.restart()                           # cold caches: the destage is a read-modify-write
    h.write(0, 0, 1)                      # dirty in both caches
    kill_a_between_data_and_parity(u, g["members"][m], g["members"][p], row)
    assert u.ctrl_table("B", "dual")["suspect_rows"] >= 1
    u.flush()
    assert rows_not_whole(u, g) == []
    lost = g["members"][locate(g, other)[1]]
    u.inject(lost, "fail")
    u.fail_drive(lost, "pulled")
    assert h.verify_all(0, 64) == 0


def test_the_dead_masters_parity_log_makes_its_degraded_row_whole_on_b(rig):
    """The same in a degraded group: member k is gone, so before the row is written A
    logs k's block (alive only in parity) and opens that record on B too.  A dies with
    the data block on its drive and the parity not; B takes the record over and makes
    the row whole before anything else: k's block reads back unchanged."""
    u, h = rig.unit(), rig.host()
    g = u.table("groups")[0]
    row, m, p = locate(g, 0)
    k = next(i for i in range(len(g["members"])) if i not in (m, p))
    kblock = next(b for b in range(1, 64) if locate(g, b)[:2] == (row, k))
    h.write(0, 0, 64)
    u.flush()
    u.restart()
    u.inject(g["members"][k], "fail")
    u.fail_drive(g["members"][k], "pulled")
    h.write(0, 0, 1)
    kill_a_between_data_and_parity(u, g["members"][m], g["members"][p], row)
    b = u.ctrl_table("B", "dual")
    assert b["plogs_applied"] >= 1 and b["plog_repairs"] == 1
    assert h.read(0, kblock, 1) == 0     # alive only in parity
    u.flush()
    assert h.verify_all(0, 64) == 0
    assert u.table("raid")["hole_repairs"] == 1


def test_volcopy_job_continues_on_b_from_its_sm_state(rig):
    u, h = rig.unit(), rig.host()
    for lba in range(0, 64, 2):
        h.write(0, lba, 2)
    assert vc.pair_create(u, 0, 1, paused=True)["job"] == "vcgen0"
    vc.step(u, "vcgen0", 5)
    h.write(0, 1, 1)                      # a track already copied changes again (its bit set)
    u.mgmt("save")                        # the copy's record and bitmap to SM (and to B)
    rec_b = u.ctrl_table("B", "volcopy")["pairs"][0]
    assert rec_b["use"] and rec_b["job"]["copied"] >= 5
    u.kill_controller("A")
    assert set(u.ctrl_mgmt("B", "info")["features"]) == {"dual", "volcopy"}
    job = u.job("vcgen0")                 # now on B, resumed from its SM record
    assert job["state"] == "paused" and job["copied"] >= 5
    u.job("vcgen0", "resume")
    assert u.wait_job("vcgen0")["state"] == "done"
    p = vc.pair(u, 0)
    assert p["state"] == vc.GEN_DONE and p["G"] == [[0, 0]]     # A's mark behind the pointer, on B
    orig, copy = u.read(0, 0, 64), u.read(1, 0, 64)
    assert copy[512:1024] != orig[512:1024] and copy[2048:] == orig[2048:]
    vc.pair_split(u, 0, 1)                # the division copy takes the marked track
    u.wait_job("vcdiv0")
    assert vc.pair(u, 0)["state"] == vc.DIV_DONE
    assert u.read(1, 0, 64) == u.read(0, 0, 64)


def test_a_rebuild_goes_on_on_b_and_moves_back_to_a(rig):
    u, h = rig.unit(), rig.host()
    for lba in range(0, 64, 4):
        h.write(0, lba, 4)
    u.flush()
    u.inject(1, "fail")
    u.fail_drive(1)                       # group 0 degraded (no automatic rebuild)
    u.rebuild(0, paused=True)
    u.job("rebuild0", "step", n=20)
    u.wait_for(lambda x: x.job("rebuild0")["pointer"] >= 20, what="20 rows rebuilt")
    u.mgmt("save")
    rb_b = next(g for g in u.ctrl_table("B", "groups") if g["id"] == 0)["rebuild"]
    assert rb_b["spare"] == 3 and rb_b["pointer"] >= 20
    u.kill_controller("A")
    job = u.job("rebuild0")               # on B, from the mirrored record
    assert job["state"] == "paused" and job["pointer"] == rb_b["pointer"]
    u.job("rebuild0", "step", n=10)
    u.wait_for(lambda x: x.job("rebuild0")["pointer"] >= rb_b["pointer"] + 10, what="10 more rows")
    u.restart_controller("A")             # the rebuild moves back with the master role
    assert u.ctrl_mgmt("B", "job", name="rebuild0", action="info")["job"]["state"] == "moved"
    assert u.job("rebuild0")["pointer"] >= rb_b["pointer"] + 10
    u.job("rebuild0", "resume")
    assert u.wait_job("rebuild0")["state"] == "done"
    g = next(g for g in u.table("groups") if g["id"] == 0)
    assert g["state"] == "normal" and g["members"] == [0, 3, 2]
    assert h.verify_all(0, 64) == 0


def test_a_returns_resynchronises_and_takes_its_role_back(rig):
    u, h = rig.unit(), rig.host()
    h.write(0, 0, 4)
    u.kill_controller("A")
    hold_all(u)
    try:
        for lba in (8, 9, 30):
            h.write(0, lba, 1)            # on B, dirty there only while A is down
        u.wait_for(lambda x: x.ctrl_table("B", "dual")["destaging"] > 0, what="B destaging (held)")
        u.start_controller("A", configure=False)   # A drops its old cache and gets B's
        u.wait_for(lambda x: x.ctrl_table("A", "dual")["resyncs"] == 1, what="A resynchronised")
        for lba in (8, 9, 30):
            assert u.cached_block("A", 0, lba)["data"] == h.verifier.expected(0, lba)
        # B's destages are held on the drives: it hands over only once they have ended
        assert u.ctrl_table("A", "dual")["role"] == "standby"
        assert u.ctrl_table("B", "dual")["handbacks"] == 0
    finally:
        release_all(u)
    u.find_master()
    assert u.master() == "A"
    hold_all(u)
    try:
        a, b = u.ctrl_table("A", "dual"), u.ctrl_table("B", "dual")
        assert (a["role"], b["role"]) == ("master", "standby")
        assert a["handbacks"] == 1 and b["handbacks"] == 1 and b["resync_blocks"] >= 3
        for lba in (8, 9, 30):
            assert u.cached_block("A", 0, lba)["data"] == h.verifier.expected(0, lba)
        h.write(0, 31, 1)                 # mirrored to B again
        assert u.cached_block("B", 0, 31)["data"] == h.verifier.expected(0, 31)
    finally:
        release_all(u)
    assert h.verify_all(0, 64) == 0
    u.kill_controller("B")                # and A carries on alone
    assert u.master() == "A"
    h.write(0, 40, 2)
    assert h.verify_all(0, 64) == 0


def test_a_standby_cut_off_is_told_it_is_out_of_step_and_joins_again(rig):
    u, h = rig.unit(), rig.host()
    h.write(0, 0, 2)
    u.sibling_cut = True                  # the path between the controllers fails
    h.write(0, 20, 2)                     # A's mirror frame is refused: A goes on alone
    a = u.ctrl_table("A", "dual")
    assert not a["peer_up"] and a["peer_lost"] == 1
    assert u.ctrl_table("B", "dual")["role"] == "standby"    # it has not heard yet
    u.sibling_cut = False                 # A tells B it is out of step; B joins again
    u.wait_for(lambda x: x.ctrl_table("B", "dual")["desyncs"] == 1 and x.ctrl_table("A", "dual")["peer_up"]
               and x.ctrl_table("B", "dual")["role"] == "standby", what="B in step again")
    assert u.ctrl_table("B", "warnings")[-1].startswith("dual: controller B out of step")
    u.kill_controller("A")                # B's mirror holds the write made while it was cut off
    assert h.verify_all(0, 64) == 0


@pytest.mark.parametrize("changes, words", [
    ({"controllers": 3}, "controllers must be one of 1, 2"),
    ({"controllers": 1}, "feature dual needs controllers = 2"),
])
def test_bad_rig_descriptions(changes, words):
    with pytest.raises(RigError) as e:
        Rig(desc(**changes), board="emulator")
    assert words in str(e.value)


@pytest.mark.parametrize("features, words", [
    (["dual", "sparing"], "feature 'sparing' does not run on a two-controller unit"),
    (["volcopy", "dual"], "dual: must be the first feature"),
])
def test_features_that_cannot_run_dual_are_refused(features, words):
    r = Rig(desc(features=features), board="emulator")
    with pytest.raises(StatusError) as e:
        r.start()
    assert e.value.status == wire.E_BAD_PARAM and words in str(e.value)


def test_dual_on_a_board_that_is_not_one_of_a_pair_is_not_attached():
    d = desc(controllers=1, features=[])
    with Rig(d, board="emulator") as r:
        u = r.unit()
        cfg = dict(u.config, features=["dual", "volcopy"], volcopy={"track_blocks": 4})
        with pytest.raises(StatusError) as e:
            u.mgmt("configure", config=cfg, force=True)
        assert e.value.status == wire.E_BAD_PARAM and "the board is not one of a pair" in str(e.value)
        assert u.mgmt("info")["features"] == []                # the previous configuration stays
        h = r.host()
        h.write(0, 0, 2)
        assert h.verify_all(0, 4) == 0


def test_a_backup_from_table_630_goes_on_on_b_and_ends_byte_correct(tmp_path):
    """The online backup (seed 004, docs/online_backup.md) on a two-controller unit: a
    backup held part-way on A goes on on B from its record in table 630."""
    import random
    import tomllib

    from host.features import online_backup as ob
    from host.features.tape import TapeDrive

    with open("rigs/online_backup.toml", "rb") as f:
        d = tomllib.load(f)
    d["unit"][0]["controllers"] = 2
    a0, a1, tape_alpa, h1_alpa = 0x01, 0x02, 0x20, 0x10
    with Rig(d, board="emulator", state_dir=tmp_path / "rig") as r:
        fab = ob.FcFabric(r)
        tape = fab.add(ob.TapeDevice(tape_alpa, TapeDrive(tmp_path / "tape0"), accept=(a0, a1), block_size=512))
        h1 = fab.add(ob.FcHost(h1_alpa))
        u = r.unit("da")
        info = u.ctrl_mgmt("B", "info")          # the standby: online backup's ports only
        assert sorted(info["features"]) == ["dual", "online_backup"] and "ob_standby" in info["tables"]
        assert "ob_630" not in info["tables"]
        assert h1.login(a0) == wire.OK
        img = random.Random(14).randbytes(32 * 512)
        for lba in range(0, 32, 8):
            assert h1.write(a0, 2, lba, img[lba * 512:(lba + 8) * 512]) == wire.OK
        u.mgmt("flush")
        u.mgmt("ob_priority", chunk=2)
        ob.backup(u, 2, tape_alpa, paused=True)
        ob.step(u, 3)                     # 6 of 32 blocks on the tape
        u.mgmt("save")                    # 630 as it is now into SM, and so to B
        u.kill_controller("A")
        t = u.table("ob_630")             # B's, from the mirrored SM
        assert (u.master(), t["lu"], t["bp"], t["cp"], t["paused"]) == ("B", 2, 6, 32, True)
        u.job("backup", "resume")
        assert u.wait_job("backup")["state"] == "done"
        assert tape.image(2, 32) == img
