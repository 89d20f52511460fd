"""Seed 000: a parity storage unit backing up three data storage units, each unit on its
own emulated board (rigs/parity.toml: 50 / 60 / 70 data blocks, 80 parity blocks).

After every step the parity unit's blocks are checked against the XOR of the data units'
areas read through their volumes (shorter units padded with zeros)."""
import copy
import random
import threading
import tomllib

import pytest
from conftest import have_micropython, random_blocks

from firmware import wire
from host.features import parity_unit as hp
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 4096
MSG_SYNC = "synchronous initial copy cannot be made"
MSG_ADD = "data storage unit cannot be added"


def rig_desc(big=False):
    with open(hp.RIG, "rb") as f:
        desc = tomllib.load(f)
    if big:   # a fifth unit with more blocks than the parity unit
        u = copy.deepcopy(desc["unit"][0])
        u.update(name="su5", drive_blocks=90, parity_unit={"role": "data", "unit": 5, "group": 1})
        u["volume"] = [{"id": 0, "group": 0, "blocks": 90}]
        desc["unit"].append(u)
        desc["path"].append({"a": "su5", "b": "su4"})
    return desc


@pytest.fixture
def parity_rig(make_rig):
    def make(big=False):
        rig = make_rig(rig_desc(big))
        return rig, [rig.unit("su%d" % i) for i in (1, 2, 3)], rig.unit("su4")
    return make


def rand(n, seed):
    return random_blocks(n, seed, BS)


def fill(units, seed=0):
    for i, u in enumerate(units):
        hp.write_area(u, 0, rand(hp.area_blocks(u), seed + i))


def warned(u, text):
    return any(text in w for w in u.table("warnings"))


def test_synchronous_build_fig14_parity_is_the_xor_at_every_step_and_follows_host_writes(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2, s3])
    r = pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3], parity_unit=4, method="sequential",
                form="13B", paused=True)
    assert r["parity_blocks"] == 80 and r["blocks"] == [[1, 50], [2, 60], [3, 70]] and r["job"] == "pbuild"
    assert pu.table("parity_710") == {"group": 1, "data_units": [1, 2, 3], "parity_unit": 4}
    assert pu.table("parity_730") == [{"unit": 4, "blocks": 80}, {"unit": 1, "blocks": 50},
                                      {"unit": 2, "blocks": 60}, {"unit": 3, "blocks": 70}]
    assert s2.table("parity_720") == {"block_length": BS, "blocks": 60,
                                      "volumes": [{"volume": 0, "first_block": 0}, {"volume": 1, "first_block": 40}]}
    assert [x["recalc"] for x in pu.table("parity_740A")["rows"]] == ["ON"] * 3
    pu.job("pbuild", "step", n=30)
    pu.wait_for(lambda u: u.job("pbuild")["pointer"] == 30, what="30 blocks built")
    assert [x["position"] for x in pu.table("parity_740")["rows"]] == [29, 29, 29]        # 13B
    assert pu.table("parity_740C")["rows"][0]["completed"] == [[0, 29]]
    assert hp.bad_blocks(pu, [s1, s2, s3], only=range(30)) == []
    # I8: a write to a block already sent carries a delta, one to a block not yet sent does not
    sent = s1.table("parity_unit")["counters"]["deltas_sent"]
    hp.write_area(s1, 10, rand(1, 50))
    hp.write_area(s1, 40, rand(1, 51))
    assert s1.table("parity_unit")["counters"]["deltas_sent"] == sent + 1
    assert hp.bad_blocks(pu, [s1, s2, s3], only=range(30)) == []
    pu.job("pbuild", "resume")
    assert pu.wait_job("pbuild")["state"] == "done"
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    assert [x["recalc"] for x in pu.table("parity_740")["rows"]] == ["OFF"] * 3
    assert warned(pu, "synchronous initial copy complete")
    # Fig 27 on every host write, one crossing su2's two volumes
    hp.write_area(s2, 37, rand(6, 60))
    hp.write_area(s3, 0, rand(3, 61))
    hp.write_area(s1, 49, rand(1, 62))
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    # the parity area is not the parity unit's hosts' to write
    before = hp.area(pu)
    with pytest.raises(StatusError) as e:
        pu.write(0, 5, rand(1, 63))
    assert e.value.status == wire.E_STATE and hp.area(pu) == before


def test_capacity_checks_of_figs_14_21_24_26_reject_and_leave_parity_and_tables_unchanged(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig(big=True)
    s5 = rig.unit("su5")
    fill([s1, s2, s5])
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2])
    pu.wait_job("pbuild")
    tables = {t: pu.table(t) for t in ("parity_710", "parity_720", "parity_730", "parity_740")}
    du_tables = {t: s1.table(t) for t in ("parity_710", "parity_720")}
    parity = hp.area(pu)
    for check in ("parity", "data"):      # Fig 14 S1007 -> S1015, Fig 21 S2008 -> S2016
        r = pu.link.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 5], capacity_check=check,
                              check=False)
        assert r["_status"] == wire.E_STATE and r["error"] == MSG_SYNC and r["units"] == [5]
    for method in ("sequential", "random"):   # Fig 24 S4008 -> S4016, Fig 26 S5008 -> S5010
        r = pu.link.mgmt("parity_change", add=5, method=method, check=False)
        assert r["_status"] == wire.E_STATE and r["error"] == MSG_ADD and r["blocks"] == 90
    r = pu.link.mgmt("parity_setup", block_length=1000, data_units=[1, 2], check=False)
    assert r["_status"] == wire.E_BAD_PARAM
    assert [w for w in pu.table("warnings") if w in (MSG_SYNC, MSG_ADD)] == [MSG_SYNC] * 2 + [MSG_ADD] * 2
    assert {t: pu.table(t) for t in tables} == tables
    assert {t: s1.table(t) for t in du_tables} == du_tables          # I5: the DUs rolled back too
    assert s5.table("parity_710") is None and s5.table("parity_unit")["member"] is False
    assert hp.area(pu) == parity
    hp.write_area(s1, 7, rand(2, 70))        # the group still works
    hp.write_area(s5, 7, rand(2, 71))        # su5 is not in it: no delta
    assert hp.bad_blocks(pu, [s1, s2]) == []


def test_random_initialization_fig23_counts_writes_and_read_sends_until_every_block_is_done(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    hp.write_area(s1, 0, rand(5, 1))          # su1 holds data before the group exists
    r = pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3], method="random", read_send=True)
    assert r["job"] is None
    rows = pu.table("parity_740C")["rows"]
    assert [(x["recalc"], x["completed"]) for x in rows] == [("ON", [])] * 3
    hp.write_area(s2, 3, rand(3, 2))
    hp.write_area(s3, 69, rand(1, 3))
    assert [x["completed"] for x in pu.table("parity_740C")["rows"]] == [[], [[3, 5]], [[69, 69]]]
    assert hp.bad_blocks(pu, [s2, s3]) == []             # su1's old data is not in parity yet
    s1.read(0, 0, 5)                                     # read-send: the PU includes it
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    ignored = pu.table("parity_unit")["counters"]["readsend_ignored"]
    s1.read(0, 0, 5)
    assert pu.table("parity_unit")["counters"]["readsend_ignored"] == ignored + 5
    hp.area(s1)
    hp.area(s2)
    assert [x["recalc"] for x in pu.table("parity_740")["rows"]] == ["ON"] * 3     # 13A: all or none
    hp.area(s3)
    assert [x["recalc"] for x in pu.table("parity_740")["rows"]] == ["OFF"] * 3
    assert warned(pu, "random initialization complete")
    hp.write_area(s1, 20, rand(4, 4))
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []


def test_asynchronous_add_first_unit_sequential_random_and_delete_figs_24_26_32(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2])                                        # su3 stays zero (random add, spec 3.8)
    r = pu.mgmt("parity_change", add=1, method="sequential", block_length=BS, form="13B")  # S4001 yes
    assert r["job"] == "padd1" and r["parity_blocks"] == 80
    pu.wait_job("padd1")
    assert pu.mgmt("parity_change")["current"] == {"parity_unit": 4, "data_units": [1], "block_length": BS}
    assert hp.bad_blocks(pu, [s1]) == []
    # Fig 24: second unit, stepped
    pu.mgmt("parity_change", add=2, method="sequential", paused=True)
    pu.job("padd2", "step", n=20)
    pu.wait_for(lambda u: u.job("padd2")["pointer"] == 20, what="20 blocks added")
    assert pu.table("parity_740")["rows"][1] == {"unit": 2, "recalc": "ON", "op": "add", "position": 19}
    hp.write_area(s2, 5, rand(1, 10))                     # already added: delta
    hp.write_area(s2, 30, rand(1, 11))                    # not yet: no delta, sent later
    hp.write_area(s1, 30, rand(1, 12))
    assert hp.bad_blocks(pu, [s1, s2], only=range(20)) == []
    assert hp.bad_blocks(pu, [s1], only=range(20, 80)) == []
    pu.job("padd2", "resume")
    pu.wait_job("padd2")
    assert hp.bad_blocks(pu, [s1, s2]) == []
    # Fig 26: random add of a zero-filled unit
    r = pu.mgmt("parity_change", add=3, method="random")
    assert r["job"] is None and pu.table("parity_730")[-1] == {"unit": 3, "blocks": 70}
    hp.write_area(s3, 10, rand(4, 13))
    hp.write_area(s3, 60, rand(10, 14))
    assert pu.table("parity_740C")["rows"][2]["completed"] == [[10, 13], [60, 69]]
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    # Fig 32: delete su1, stepped
    pu.mgmt("parity_change", delete=1, paused=True)
    pu.job("pdel1", "step", n=10)
    pu.wait_for(lambda u: u.job("pdel1")["pointer"] == 10, what="10 blocks deleted")
    hp.write_area(s1, 5, rand(1, 15))                     # already removed: no delta
    hp.write_area(s1, 20, rand(1, 16))                    # still included: delta
    assert hp.bad_blocks(pu, [s2, s3], only=range(10)) == []
    assert hp.bad_blocks(pu, [s1, s2, s3], only=range(10, 80)) == []
    pu.job("pdel1", "resume")
    pu.wait_job("pdel1")
    assert pu.table("parity_710")["data_units"] == [2, 3]
    assert [x["unit"] for x in pu.table("parity_730")] == [4, 2, 3]
    assert s1.table("parity_710") is None and s1.table("parity_unit")["member"] is False
    hp.write_area(s1, 0, rand(3, 17))
    hp.write_area(s2, 0, rand(3, 18))
    assert hp.bad_blocks(pu, [s2, s3]) == []


def test_restoration_methods_1_and_2_rebuild_the_unit_byte_for_byte_with_the_exact_transfers(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2, s3])
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    hp.write_area(s1, 45, rand(5, 20))                    # still in su1's cache
    want = hp.area(s1)
    for method, survivors_each, sent, written, ignored in ((1, 50, 50, 50, 0), (2, 80, 80, 50, 30)):
        hp.lose_data(s1)
        assert hp.area(s1) != want
        marks = [hp.trace_mark(u) for u in (s2, s3, pu)]
        r = s1.mgmt("parity_restore", method=method, paused=True)           # S7001 / S8001
        assert r["job"] == "prestore1"
        with pytest.raises(StatusError) as e:                               # its data is not there yet
            s1.read(0, 0, 1)
        assert e.value.status == wire.E_STATE
        pu.job("prestore1", "step", n=20)
        pu.wait_for(lambda u: u.job("prestore1")["pointer"] == 20, what="20 blocks restored")
        hp.write_area(s2, 10, rand(1, 30 + method))       # survivors keep working meanwhile
        hp.write_area(s3, 40, rand(1, 40 + method))
        pu.job("prestore1", "resume")
        pu.wait_job("prestore1")
        s1.wait_for(lambda u: u.table("parity_unit")["restoring"] is None, what="restore done")
        assert hp.area(s1) == want
        got = [hp.pblock_frames(u, m, served=True) for u, m in zip((s2, s3), marks)]
        assert got == [survivors_each, survivors_each]                      # S7003-S7004 / S8003-S8004
        assert hp.pblock_frames(pu, marks[2]) == sent                       # S7006-S7007 / S8006-S8007
        c = s1.table("parity_unit")["counters"]           # (su1's board was reset by lose_data)
        assert (c["restored_written"], c["restored_ignored"]) == (written, ignored)
        last = pu.table("parity_unit")["last_restore"]
        assert last["asked"] == {"2": survivors_each, "3": survivors_each} and last["sent"] == sent
        assert hp.bad_blocks(pu, [s1, s2, s3]) == []
        assert warned(s1, "unit 1 restored")


def test_parity_unit_rebuilds_its_own_parity_from_the_data_units(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2, s3])
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    hp.lose_data(pu)
    assert len(hp.bad_blocks(pu, [s1, s2, s3])) == 80
    marks = [hp.trace_mark(u) for u in (s1, s2, s3)]
    pu.mgmt("parity_rebuild", paused=True)
    r = s1.link.mgmt("parity_restore", method=1, check=False)   # a second failure is refused
    assert r["_status"] == wire.E_STATE and "double failure" in r["error"]
    pu.job("prebuild", "step", n=40)
    pu.wait_for(lambda u: u.job("prebuild")["pointer"] == 40, what="40 blocks rebuilt")
    hp.write_area(s1, 10, rand(1, 80))
    hp.write_area(s3, 60, rand(1, 81))
    pu.job("prebuild", "resume")
    pu.wait_job("prebuild")
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    assert [hp.pblock_frames(u, m, served=True) for u, m in zip((s1, s2, s3), marks)] == [50, 60, 70]  # I14


def test_restoration_during_an_asynchronous_add_uses_the_added_unit_only_where_already_included(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2, s3])
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2], form="13A")
    pu.wait_job("pbuild")
    pu.mgmt("parity_change", add=3, paused=True)
    pu.job("padd3", "step", n=30)
    pu.wait_for(lambda u: u.job("padd3")["pointer"] == 30, what="30 blocks added")
    want = hp.area(s1)
    hp.lose_data(s1)
    parity = hp.area(pu)
    r = s1.link.mgmt("parity_restore", method=1, check=False)       # 13A cannot tell: refused
    assert r["_status"] == wire.E_STATE and "13A" in r["error"]
    assert s1.table("parity_unit")["restoring"] is None and hp.area(pu) == parity
    pu.mgmt("parity_change", form="13B")
    marks = [hp.trace_mark(u) for u in (s2, s3, pu)]
    s1.mgmt("parity_restore", method=1)
    pu.wait_job("prestore1")
    s1.wait_for(lambda u: u.table("parity_unit")["restoring"] is None, what="restore done")
    assert hp.area(s1) == want
    assert [hp.pblock_frames(u, m, served=True) for u, m in zip((s2, s3), marks)] == [50, 30]
    assert hp.pblock_frames(pu, marks[2]) == 50
    pu.job("padd3", "resume")
    pu.wait_job("padd3")
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []


class Writer:
    """Host writes to random places of some units from another thread."""

    def __init__(self, units, seed):
        self.units = units
        self.rnd = random.Random(seed)
        self.stop = threading.Event()
        self.errors = []
        self.writes = 0
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        try:
            while not self.stop.is_set():
                u = self.rnd.choice(self.units)
                ab = self.rnd.randrange(hp.area_blocks(u) - 2)
                hp.write_area(u, ab, self.rnd.randbytes(2 * BS))
                self.writes += 1
        except Exception as e:
            self.errors.append(e)

    def join(self):
        self.stop.set()
        self.t.join(30)
        assert self.errors == [] and self.writes > 0
        return self.writes


def test_host_writes_racing_the_build_and_a_restore_keep_parity_and_restored_data_exact(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2, s3])
    w = Writer([s1, s2, s3], 1)
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    w.join()
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    want = hp.area(s1)
    hp.lose_data(s1)
    w = Writer([s2, s3], 2)
    s1.mgmt("parity_restore", method=2)
    pu.wait_job("prestore1")
    s1.wait_for(lambda u: u.table("parity_unit")["restoring"] is None, what="restore done")
    w.join()
    assert hp.area(s1) == want
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []


def test_a_parity_block_of_three_blocks_spans_volumes_and_leaves_a_short_tail_unprotected(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2, s3])
    L = 3 * BS
    r = pu.mgmt("parity_setup", block_length=L, data_units=[1, 2, 3])
    assert r["parity_blocks"] == 26 and r["blocks"] == [[1, 16], [2, 20], [3, 23]]     # floor (I1)
    pu.wait_job("pbuild")
    assert s2.table("parity_720")["volumes"] == [{"volume": 0, "first_block": 0}, {"volume": 1, "first_block": 13}]
    sent = s1.table("parity_unit")["counters"]["deltas_sent"]
    hp.write_area(s1, 48, rand(2, 90))           # su1's last 2 blocks are in no parity block
    assert s1.table("parity_unit")["counters"]["deltas_sent"] == sent
    hp.write_area(s2, 38, rand(4, 91))           # parity blocks 12 and 13, across both volumes
    hp.write_area(s3, 1, rand(1, 92))            # a third of a parity block
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    want = hp.area(s2)
    hp.lose_data(s2)
    s2.mgmt("parity_restore", method=1)
    pu.wait_job("prestore2")
    s2.wait_for(lambda u: u.table("parity_unit")["restoring"] is None, what="restore done")
    assert hp.area(s2) == want
    assert pu.table("parity_unit")["last_restore"]["asked"] == {"1": 20, "3": 20}


@pytest.mark.parametrize("change,error", [
    ({"role": "bogus"}, "parity_unit: role must be one of data, parity, got 'bogus'"),
    ({"unit": 0}, "parity_unit: unit must be an integer in [1, 255], got 0"),
    ({"form": "13D"}, "parity_unit: form must be one of 13A, 13B, 13C, got '13D'"),
    ({"auto_restore": True}, "parity_unit: auto_restore is a setting of the parity unit (role parity)"),
    ({"rol": "data"}, "parity_unit: unknown setting 'rol'"),
])
def test_a_bad_setting_is_refused_at_configure_and_the_unit_boots_with_its_old_configuration(parity_rig, change,
                                                                                            error):
    rig, (s1, s2, s3), pu = parity_rig()
    old = s1.table("config")
    cfg = copy.deepcopy(old)
    cfg["parity_unit"].update(change)
    r = s1.link.mgmt("configure", config=cfg, force=True, check=False)
    assert r["_status"] == wire.E_BAD_PARAM and r["error"].startswith(error)
    assert s1.table("config") == old
    s1.restart()                                     # it boots, with what it had
    assert s1.table("config") == old and s1.mgmt("info")["features"] == ["parity_unit"]
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    hp.write_area(s1, 3, rand(2, 5))
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []


def test_parity_paths_count_the_blocks_of_each_procedure_on_each_peer_path(parity_rig):
    rig, (s1, s2, s3), pu = parity_rig()
    fill([s1, s2, s3])
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    counts = {x["unit"]: x["blocks"] for x in pu.table("parity_730")}
    # each data unit sent its blocks of the build on its path, the parity unit received them there
    assert hp.paths(pu) == {(1, "build"): (0, counts[1]), (2, "build"): (0, counts[2]),
                            (3, "build"): (0, counts[3])}
    for du in (s1, s2, s3):
        me = du.table("parity_unit")["unit"]
        assert hp.paths(du) == {(4, "build"): (counts[me], 0)}
    hp.write_area(s1, 3, rand(3, 1))                    # three write deltas (Fig 27)
    hp.write_area(s2, 39, rand(2, 2))                   # two, across su2's volumes
    assert hp.paths(s1)[(4, "delta")] == (3, 0) and hp.paths(s2)[(4, "delta")] == (2, 0)
    assert hp.paths(pu)[(1, "delta")] == (0, 3) and hp.paths(pu)[(2, "delta")] == (0, 2)
    assert (3, "delta") not in hp.paths(pu)
    want = hp.area(s3)
    hp.lose_data(s3)
    s3.mgmt("parity_restore", method=1)                 # 70 blocks from su1 and su2, 70 to su3
    pu.wait_job("prestore3")
    s3.wait_for(lambda u: u.table("parity_unit")["restoring"] is None, what="restore done")
    assert hp.area(s3) == want
    p = hp.paths(pu)
    assert (p[(1, "restore")], p[(2, "restore")], p[(3, "restore")]) == ((0, 70), (0, 70), (70, 0))
    assert hp.paths(s3) == {(4, "restore"): (0, 70)}    # su3's board was reset: counted since
    assert hp.paths(s1)[(4, "restore")] == (70, 0)
    pu.mgmt("parity_rebuild")
    pu.wait_job("prebuild")
    p = hp.paths(pu)
    assert [p[(u, "rebuild")] for u in (1, 2, 3)] == [(0, counts[1]), (0, counts[2]), (0, counts[3])]
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []


def auto_desc(**settings):
    desc = rig_desc()
    desc["unit"][3]["parity_unit"].update(settings)
    return desc


def test_a_dead_data_unit_is_reported_and_with_auto_restore_restored_byte_for_byte(make_rig):
    rig = make_rig(auto_desc(poll_ms=100, auto_restore=True, restore_method=2))
    s1, s2, s3, pu = [rig.unit("su%d" % i) for i in (1, 2, 3, 4)]
    fill([s1, s2, s3])
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    hp.write_area(s1, 45, rand(5, 20))                  # still in su1's cache
    want = hp.area(s1)
    assert hp.down(pu, 1) is None
    s1.kill()                                           # the board dies, its data with it
    hp.wipe(s1)
    row = pu.wait_for(lambda u: (r := hp.down(u, 1)) and r["state"] == "down" and r, what="su1 reported down")
    assert row["status"] == "PATH_DOWN" and row["missed"] >= 2 and row["since"].endswith("UTC")
    assert warned(pu, "data unit 1 is down since %s" % row["since"])
    assert [r["unit"] for r in pu.table("parity_down")] == [1]
    s1.start(configure=False)                           # a new board: the parity unit restores it
    pu.wait_for(lambda u: hp.down(u, 1)["state"] == "restored", what="su1 restored")
    s1.wait_for(lambda u: u.table("parity_unit")["restoring"] is None, what="restore done on su1")
    assert hp.area(s1) == want
    last = pu.table("parity_unit")["last_restore"]
    assert (last["unit"], last["method"], last["sent"]) == (1, 2, 80)
    assert hp.down(pu, 1)["restore"] == "prestore1" and hp.down(pu, 1)["since"] == row["since"]
    assert warned(pu, "restoration by method 2 started") and warned(s1, "unit 1 restored")
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    hp.write_area(s1, 7, rand(2, 21))                   # back in the group
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []


def test_without_auto_restore_a_dead_data_unit_is_reported_and_left_to_the_operator(make_rig):
    rig = make_rig(auto_desc(poll_ms=100))
    s1, s2, s3, pu = [rig.unit("su%d" % i) for i in (1, 2, 3, 4)]
    fill([s1, s2, s3])
    pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    pu.wait_job("pbuild")
    want = hp.area(s2)
    s2.kill()
    pu.wait_for(lambda u: (r := hp.down(u, 2)) and r["state"] == "down", what="su2 reported down")
    s2.start(configure=False)                           # the same board and drives again
    pu.wait_for(lambda u: hp.down(u, 2)["state"] == "back", what="su2 back")
    assert warned(pu, "data unit 2 answers again") and pu.table("parity_unit")["last_restore"] is None
    assert hp.area(s2) == want and hp.bad_blocks(pu, [s1, s2, s3]) == []
