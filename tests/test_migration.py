"""Seed 003 E2-E4 on the emulator (rigs/migration.toml): migration from an old unit that
keeps no tables, with reads and writes served before the copy reaches them; placement of
an LV area on a RAID group and the rearrangement of LDEVs that hold data, host I/O routed
by the copy pointer; levelling from per-LDEV statistics on a clock the test moves.

The new unit: LDEVs of 16 blocks, 0-5 on group 0 (RAID5), 6-7 on group 1 (RAID1), 8-11 on
group 2 (RAID5); its LV 0 (32 blocks) is on LDEVs 0 and 1.  The old unit's volume 0 has
64 blocks.  Copy steps move 4 blocks."""
import copy
import random
import tomllib
from pathlib import Path

import pytest
from conftest import have_micropython, random_blocks

from firmware import wire
from host.features import migration as mg
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512
BOARDS = Path(__file__).resolve().parent.parent / "boards"
with open(mg.RIG, "rb") as f:
    RIG = tomllib.load(f)


def desc(volume=None, **settings):
    d = copy.deepcopy(RIG)
    new = d["unit"][1]
    new["migration"].update(settings)
    if volume is not None:
        new["volume"] = volume
    return d


def rand(n, seed):
    return random_blocks(n, seed, BS)


def refused(u, status, op, **args):
    """op is refused with `status` and changes none of the feature's or the LDEV tables."""
    names = ("ldevs", "lvs", "mig_migrations", "mig_moves", "jobs")
    before = [u.table(t) for t in names]
    with pytest.raises(StatusError) as e:
        u.mgmt(op, **args)
    assert e.value.status == status, str(e.value)
    assert [u.table(t) for t in names] == before
    return str(e.value)


@pytest.fixture
def units(make_rig):
    rig = make_rig(desc())
    old, new = rig.unit("old"), rig.unit("new")
    src = rand(64, 1)
    old.write(0, 0, src)
    old.flush()                       # on S's drives: a kill of the old board keeps it
    return rig, old, new, src


# ---- E2: migration ---------------------------------------------------------------------

def test_migration_read_ahead_of_the_pointer_is_fetched_from_the_old_unit_first(units):
    rig, old, new, src = units
    new.mgmt("trace", on=True)
    r = mg.assign(new, 1, 64)                                    # 710: the lowest unused LDEVs
    assert r["ldevs"] == [2, 3, 4, 5]
    assert mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)["state"] == \
        "UNDER MIGRATORY COPYING"
    m = mg.migration(new, 1)                                     # 711
    assert (m["306"], m["307"], m["314"], m["315"]) == (0, "UNDER MIGRATORY COPYING", 0, 0)
    assert [(e["301"], e["305"], e["302"]) for e in m["entries"]] == \
        [(2 + k, [16 * k, 16 * k + 15], "MIGRATORY COPY PRESENT") for k in range(4)]
    assert mg.step(new, "mig1", 2)["copy_pointer"] == 8
    pulled = new.table("mig_counters")["pulled_blocks"]
    # the job is held at 8: address 40 is read from S into T, then served by T
    assert new.read(1, 40, 2) == src[40 * BS:42 * BS]
    m = mg.migration(new, 1)
    assert m["306"] == 8 and m["staged"] == [[40, 41]] and m["fetched"] == 2
    assert new.table("mig_counters")["pulled_blocks"] == pulled + 2
    assert new.read(1, 40, 2) == src[40 * BS:42 * BS]           # now T's: no second fetch
    assert new.table("mig_counters")["pulled_blocks"] == pulled + 2
    assert new.read(1, 0, 8) == src[:8 * BS]                    # behind the pointer: T's copy
    # the staged blocks are on T's own drives (LV 1 address 40 = LDEV 4, group 0 block 72)
    assert mg.where(new, 1, 40) == (0, 72) and mg.on_drives(new, 0, 72, 2) == src[40 * BS:42 * BS]
    new.job("mig1", "resume")
    assert new.wait_job("mig1")["state"] == "done"
    m = mg.migration(new, 1)
    assert (m["306"], m["307"], m["copied"], m["fetched"]) == (64, "SIMPLEX", 62, 2)
    assert [e["302"] for e in m["entries"]] == ["COPY ABSENT"] * 4
    assert new.read(1, 0, 64) == src
    assert mg.events(new, "mig_fetch") == [[1, 40, 2]]
    assert [e[1:] for e in mg.events(new, "mig_copy")] == [[a, 4] for a in range(0, 64, 4)]


def test_a_write_ahead_of_the_pointer_is_kept_and_the_copy_passes_over_it(units):
    rig, old, new, src = units
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=16, end=47, paused=True)    # area 16..47 only
    m = mg.migration(new, 1)
    assert [e["305"] for e in m["entries"]] == [None, [16, 31], [32, 47], None]
    assert [e["302"] for e in m["entries"]] == ["COPY ABSENT", "MIGRATORY COPY PRESENT",
                                                "MIGRATORY COPY PRESENT", "COPY ABSENT"]
    mg.step(new, "mig1", 1)                                      # 16..19 copied
    data = rand(1, 2)
    new.write(1, 30, data)                                       # ahead: fetched, then written
    assert mg.migration(new, 1)["staged"] == [[30, 30]]
    mg.step(new, "mig1", 4)                                      # 20..35: passes 30, ends LDEV 3's 305
    m = mg.migration(new, 1)
    assert m["306"] == 36 and [e["302"] for e in m["entries"]][1:3] == ["COPY ABSENT", "MIGRATORY COPY PRESENT"]
    new.job("mig1", "resume")
    new.wait_job("mig1")
    img = new.read(1, 16, 32)
    want = src[16 * BS:30 * BS] + data + src[31 * BS:48 * BS]
    assert img == want
    assert mg.migration(new, 1)["307"] == "SIMPLEX"
    assert new.read(1, 0, 16) == new.read(1, 48, 16) == bytes(16 * BS)    # T outside the area: untouched


def test_a_cut_path_fails_the_fetch_and_stalls_the_copy_until_it_returns(units):
    rig, old, new, src = units
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    mg.step(new, "mig1", 1)
    rig.fabric.paths[0].cut = True
    with pytest.raises(StatusError) as e:
        new.read(1, 20, 1)
    assert e.value.status == wire.E_PATH_DOWN
    assert mg.migration(new, 1)["staged"] == []
    new.job("mig1", "step", 1)
    new.wait_for(lambda u: u.job("mig1")["stalled"], what="copy stalled")
    assert mg.migration(new, 1)["306"] == 4
    rig.fabric.paths[0].cut = False
    new.job("mig1", "resume")
    new.wait_job("mig1")
    assert new.read(1, 0, 64) == src


def test_the_old_board_killed_mid_migration_stalls_the_copy_until_it_is_back(units):
    rig, old, new, src = units
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    mg.step(new, "mig1", 2)
    old.kill()
    with pytest.raises(StatusError) as e:                      # a fetch cannot be served
        new.read(1, 30, 1)
    assert e.value.status in (wire.E_PATH_DOWN, wire.E_TIMEOUT)
    new.job("mig1", "resume")
    new.wait_for(lambda u: u.job("mig1")["stalled"], what="copy stalled")
    assert mg.migration(new, 1)["306"] == 8
    old.start(configure=False)                                 # S's data is on its drives
    assert new.wait_job("mig1")["state"] == "done"
    assert new.read(1, 0, 64) == src


def test_migrate_refuses_bad_input_and_changes_nothing(units):
    rig, old, new, src = units
    mg.assign(new, 1, 64)
    refused(new, wire.E_NO_VOLUME, "migrate", lv=7, peer=0, src_lv=0, start=0, end=63)
    refused(new, wire.E_OUT_OF_RANGE, "migrate", lv=1, peer=0, src_lv=0, start=10, end=64)
    refused(new, wire.E_BAD_PARAM, "migrate", lv=1, peer=0, src_lv=0, start=10, end=5)
    refused(new, wire.E_NO_VOLUME, "migrate", lv=1, peer=0, src_lv=3, start=0, end=63)     # none on S
    refused(new, wire.E_BAD_PARAM, "migrate", lv=1, peer=16, src_lv=0, start=0, end=63)
    st = refused(new, wire.E_PATH_DOWN, "migrate", lv=1, peer=1, src_lv=0, start=0, end=63)  # no path 1
    assert "peer 1" in st
    rig.fabric.paths[0].cut = True
    refused(new, wire.E_PATH_DOWN, "migrate", lv=1, peer=0, src_lv=0, start=0, end=63)
    rig.fabric.paths[0].cut = False
    refused(new, wire.E_STATE, "mig_assign", lv=1, capacity=16)                 # LV 1 exists
    refused(new, wire.E_NO_SPACE, "mig_assign", lv=2, capacity=16 * 7)         # 6 unused LDEVs
    refused(new, wire.E_BAD_PARAM, "mig_assign", lv=2, capacity=16, emulation="9999")
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    refused(new, wire.E_STATE, "migrate", lv=1, peer=0, src_lv=0, start=0, end=63)   # already
    refused(new, wire.E_STATE, "place", lv=1, start=0, end=15, group=2)


def test_the_new_board_killed_mid_migration_resumes_from_its_pointer(units):
    rig, old, new, src = units
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    mg.step(new, "mig1", 3)
    behind = rand(1, 4)
    new.write(1, 9, behind)                 # behind the pointer (the pointer is saved first)
    new.read(1, 50, 1)                                          # fetched ahead
    data = rand(2, 3)
    new.write(1, 60, data)                                      # fetched, then written
    new.restart()                        # no flush: what the board acknowledged is kept
    j = new.job("mig1")
    assert (j["state"], j["copy_pointer"], j["pointer"]) == ("paused", 12, 3)
    assert mg.migration(new, 1)["staged"] == [[50, 50], [60, 61]]
    assert new.read(1, 50, 1) == src[50 * BS:51 * BS]
    new.job("mig1", "resume")
    new.wait_job("mig1")
    assert new.read(1, 0, 64) == src[:9 * BS] + behind + src[10 * BS:60 * BS] + data + src[62 * BS:]


# ---- E3: placement and rearrangement ------------------------------------------------------

def test_placement_moves_ldevs_holding_data_with_io_routed_by_the_copy_pointer(make_rig):
    rig = make_rig(desc())
    new = rig.unit("new")
    data = rand(32, 4)
    new.write(0, 0, data)
    r = mg.place(new, 0, 0, 31, group=1, paused=True)           # LDEVs 0, 1 -> 6, 7 (RAID1)
    assert (r["range"], r["ldevs"], r["job"]) == ([0, 31], [6, 7], "mv0")
    mv = mg.moves(new, 0)
    assert (mv["306"], mv["307"]) == (0, "UNDER COPYING")
    assert [(e["301"], e["302"], e["315"]) for e in mv["entries"]] == [(0, "COPY PRESENT", 6), (1, "COPY PRESENT", 7)]
    mg.step(new, "mv0", 2)                                      # LV 0..7 copied
    assert mg.moves(new, 0)["306"] == 8
    assert mg.where(new, 0, 7) == (1, 7) and mg.where(new, 0, 8) == (0, 8)
    below, above = rand(1, 5), rand(1, 6)
    new.write(0, 3, below)                                      # below the pointer: the new place
    new.write(0, 20, above)                                     # above it: the old place
    assert mg.on_drives(new, 1, 3) == below and mg.on_drives(new, 0, 3) == data[3 * BS:4 * BS]
    assert mg.on_drives(new, 0, 20) == above
    assert new.read(0, 0, 32) == data[:3 * BS] + below + data[4 * BS:20 * BS] + above + data[21 * BS:]
    new.job("mv0", "resume")
    assert new.wait_job("mv0")["state"] == "done"
    mv = mg.moves(new, 0)
    assert mv["307"] == "SIMPLEX"
    assert [(e["301"], e["302"]) for e in mv["entries"]] == [(6, "COPY ABSENT"), (7, "COPY ABSENT")]
    assert mg.entries(new, 0) == [(6, [0, 15]), (7, [16, 31])]
    ldevs = new.table("ldevs")
    assert [ldevs[i]["state"] for i in (0, 1, 6, 7)] == ["free", "free", "used", "used"]
    assert mg.on_drives(new, 1, 0, 32) == data[:3 * BS] + below + data[4 * BS:20 * BS] + above + data[21 * BS:]


def test_placement_refused_when_impossible_or_bad_changes_nothing(make_rig):
    rig = make_rig(desc())
    new = rig.unit("new")
    mg.assign(new, 1, 32, group=1)                              # takes LDEVs 6 and 7 (all of group 1)
    st = refused(new, wire.E_NO_SPACE, "place", lv=0, start=0, end=31, group=1)
    assert "assignment impossible" in st
    refused(new, wire.E_NO_VOLUME, "place", lv=5, start=0, end=3, group=2)
    refused(new, wire.E_OUT_OF_RANGE, "place", lv=0, start=16, end=32, group=2)
    refused(new, wire.E_BAD_PARAM, "place", lv=0, start=0, end=3, group=3)
    r = mg.place(new, 0, 20, 25, group=2)                      # only LDEV 1 holds 20..25
    assert (r["range"], r["ldevs"]) == ([16, 31], [8])
    new.wait_job("mv0")
    assert mg.entries(new, 0) == [(0, [0, 15]), (8, [16, 31])]
    r = mg.place(new, 0, 0, 31, group=0)                       # LDEV 0 stays; 8 -> the lowest free on 0
    assert (r["range"], r["ldevs"]) == ([0, 31], [1])


def test_placing_areas_of_an_unmapped_lv_maps_whole_ldev_slots_and_replies_the_range(make_rig):
    rig = make_rig(desc())
    new = rig.unit("new")
    mg.assign(new, 2, 64, mapped=False)                        # I-3.1: an LV with no LDEV
    with pytest.raises(StatusError) as e:
        new.read(2, 0, 1)
    assert e.value.status == wire.E_OUT_OF_RANGE
    r = mg.place(new, 2, 0, 19, group=2)                       # slots 0..15, 16..31
    assert (r["range"], r["ldevs"], r["job"]) == ([0, 31], [8, 9], None)
    r = mg.place(new, 2, 40, 41, group=1)                      # slot 32..47 on LDEV 6
    assert (r["range"], r["ldevs"]) == ([32, 47], [6])
    assert mg.entries(new, 2) == [(8, [0, 15]), (9, [16, 31]), (6, [32, 47])]
    data = rand(48, 11)
    new.write(2, 0, data)
    assert new.read(2, 0, 48) == data
    assert mg.on_drives(new, 1, 8) == data[40 * BS:41 * BS]    # LDEV 6 = group 1 blocks 0..15
    with pytest.raises(StatusError) as e:
        new.write(2, 47, rand(2, 12))                          # 48 is on no LDEV: nothing written
    assert e.value.status == wire.E_OUT_OF_RANGE
    assert new.read(2, 47, 1) == data[47 * BS:]
    r = mg.place(new, 2, 0, 63, group=2)                       # 48..63 mapped; 6 moves to group 2
    assert (r["range"], r["ldevs"], r["job"]) == ([0, 63], [10, 11], "mv2")
    new.wait_job("mv2")
    assert mg.entries(new, 2) == [(8, [0, 15]), (9, [16, 31]), (11, [32, 47]), (10, [48, 63])]
    assert new.read(2, 0, 48) == data


def test_an_ldev_shared_by_two_lvs_is_not_levelled_and_a_placement_keeps_it_for_the_other(make_rig):
    # LV 0 = group 0 blocks 0..9 and LV 1 = blocks 10..31: LDEV 0 holds parts of both
    rig = make_rig(desc(volume=[{"id": 0, "group": 0, "blocks": 10},
                                {"id": 1, "group": 0, "start": 10, "blocks": 22}], period_ms=100))
    new = rig.unit("new")
    a, b = rand(10, 16), rand(22, 17)
    new.write(0, 0, a)
    new.write(1, 0, b)

    def workload():                 # LDEV 0: 3 random reads from LV 0 and 1 from LV 1 -> 40 %
        for lv, lba in ((0, 0), (0, 5), (0, 2), (1, 0)):
            new.read(lv, lba, 1)
    counted_once(new, workload, {"clock": 0, "period_start": 0})
    r = mg.clock(new, 100)["periods"][0]
    assert [g["utilization"] for g in r["groups"]] == [40, 0, 0] and r["moves"] == []   # nothing movable
    r = mg.place(new, 0, 0, 9, group=2)
    assert (r["range"], r["ldevs"]) == ([0, 9], [8])
    new.wait_job("mv0")
    assert mg.entries(new, 0) == [(8, [0, 9])] and mg.entries(new, 1) == [(0, [0, 5]), (1, [6, 21])]
    assert new.table("ldevs")[0]["state"] == "used"            # LV 1 still holds 10..15 of it
    assert new.read(0, 0, 10) == a and new.read(1, 0, 22) == b


def test_board_killed_mid_rearrangement_resumes_from_its_pointer(make_rig):
    rig = make_rig(desc())
    new = rig.unit("new")
    data = rand(32, 7)
    new.write(0, 0, data)
    mg.place(new, 0, 0, 31, group=2, paused=True)
    mg.step(new, "mv0", 5)                                     # LDEV 0 done, LDEV 1 at 20
    later = rand(2, 8)
    new.write(0, 18, later)                                    # 18 moved already, 19 not yet
    new.restart()                        # no flush: what the board acknowledged is kept
    j = new.job("mv0")
    assert (j["state"], j["copy_pointer"], j["pointer"]) == ("paused", 20, 5)
    assert mg.entries(new, 0) == [(8, [0, 15]), (9, [16, 19]), (1, [20, 31])]
    img = data[:18 * BS] + later + data[20 * BS:]
    assert new.read(0, 0, 32) == img
    new.job("mv0", "resume")
    new.wait_job("mv0")
    assert mg.entries(new, 0) == [(8, [0, 15]), (9, [16, 31])]
    assert new.read(0, 0, 32) == img and mg.on_drives(new, 2, 0, 32) == img


# ---- E4: levelling -------------------------------------------------------------------------

def counted_once(u, workload, restart):
    """Run the workload in a fresh period.  A READ the host link resent (no answer within
    its retry time: a loaded machine) may run twice on the board and count twice; such a
    run is done again in a new period, so the figures are the designed ones."""
    for _ in range(5):
        assert u.mgmt("mig_restart") == restart
        before = u.link.counters()["retransmits"]
        workload()
        if u.link.counters()["retransmits"] == before:
            return
    pytest.fail("the host link resent requests in every run of the workload")


def test_levelling_moves_the_random_ldev_to_raid1_and_the_sequential_one_to_raid5(make_rig):
    # LV 0 = 64 blocks on LDEVs 0-3 of group 0; a period of 100 clock ms, so one random
    # command (10 ms) is 10 % of an LDEV's period and one sequential command (2 ms) 2 %
    rig = make_rig(desc(volume=[{"id": 0, "group": 0, "blocks": 64}], period_ms=100))
    new = rig.unit("new")
    data = rand(64, 9)
    new.write(0, 0, data)
    mg.clock(new, 30)

    def workload():
        for lba in (0, 8, 3, 12):                              # LDEV 0: 4 random reads -> 40 %
            new.read(0, lba, 1)
        for lba in range(16, 26):                              # LDEV 1: 1 random + 9 sequential -> 28 %
            new.read(0, lba, 1)
        new.write(0, 40, data[40 * BS:41 * BS])                # LDEV 2: 1 random write -> 10 %
    counted_once(new, workload, {"clock": 30, "period_start": 30})      # the fill is not counted
    s = {d["ldev"]: d for d in new.table("mig_stats")["ldevs"]}
    assert s[1]["seq_read"] == 9 and s[1]["random_read"] == 1 and s[0]["random_read"] == 4
    assert mg.clock(new, 99)["periods"] == []                  # not yet the end of the period
    r = mg.clock(new, 1)["periods"]                            # clock 130: the period 30..130
    assert len(r) == 1
    p = mg.period(new)
    util = {d["ldev"]: d["utilization"] for d in p["ldevs"]}
    assert (util[0], util[1], util[2], util[3]) == (40, 28, 10, 0)
    ld1 = p["ldevs"][1]                                        # per second of the 100 ms period
    assert (ld1["random_read_per_s"], ld1["seq_read_per_s"], ld1["busy"]) == (10, 90, 28)
    assert [g["utilization"] for g in p["groups"]] == [78, 0, 0]
    moves = r[0]["moves"]
    assert [(m["ldev"], m["from"], m["to"], m["dst"], m["pattern"]) for m in moves] == \
        [(0, 0, 1, 6, "RANDOM"), (1, 0, 2, 8, "SEQUENTIAL")]
    # the check never raised the highest utilization: 78 -> 40 (group 1)
    new.wait_job("mv0")
    assert mg.entries(new, 0) == [(6, [0, 15]), (8, [16, 31]), (2, [32, 47]), (3, [48, 63])]
    assert new.read(0, 0, 64) == data
    s = {d["ldev"]: d for d in new.table("mig_stats")["ldevs"]}
    assert s[0]["random_read"] == 0                            # nothing since the period ended


def test_no_levelling_when_the_spread_is_small(make_rig):
    rig = make_rig(desc(volume=[{"id": 0, "group": 0, "blocks": 64}], period_ms=100))
    new = rig.unit("new")
    new.write(0, 0, rand(1, 10))                               # 10 % on LDEV 0: spread 10 < 30
    r = mg.clock(new, 250)["periods"]                          # two periods end, the second empty
    assert [x["moves"] for x in r] == [[], []]
    assert [g["utilization"] for g in r[0]["groups"]] == [10, 0, 0]
    assert new.table("mig_moves") == []
    refused(new, wire.E_BAD_PARAM, "mig_clock", advance=-1)
    new.read(0, 5, 1)                                          # counted in the running period
    new.mgmt("save")
    new.restart()                                              # the clock and the periods persist
    s = new.table("mig_stats")
    assert (s["clock"], s["period_start"]) == (250, 200)
    assert [d["random_read"] for d in s["ldevs"]][:2] == [1, 0]
    assert mg.period(new)["period"] == 1 and len(new.table("mig_levels")) == 2
    assert [x["period"] for x in mg.clock(new, 50)["periods"]] == [2]


def test_a_levelling_check_needs_a_finished_period(make_rig):
    rig = make_rig(desc())
    new = rig.unit("new")
    refused(new, wire.E_STATE, "mig_level")
    new.write(0, 0, rand(1, 13))
    mg.clock(new, 1000)
    r = mg.level(new)                                          # the same period checked again
    assert r["period"] == 0 and r["moves"] == []


# ---- interleavings: host I/O between copy steps, checked against a model ------------------

def run_interleaved(u, job, vol, model, rng, steps, ops_per_step=3):
    """Seeded: a few host reads / writes of 1-3 blocks anywhere in the volume between
    single copy steps; every read must equal the model."""
    nblocks = len(model) // BS
    for _ in range(steps):
        for _ in range(ops_per_step):
            n = rng.randint(1, 3)
            a = rng.randrange(0, nblocks - n + 1)
            if rng.random() < 0.5:
                data = rng.randbytes(n * BS)
                u.write(vol, a, data)
                model[a * BS:(a + n) * BS] = data
            else:
                assert u.read(vol, a, n) == bytes(model[a * BS:(a + n) * BS]), (a, n)
        if u.job(job)["state"] != "done":
            mg.step(u, job, 1)


@pytest.mark.parametrize("seed", [1, 2])
def test_migration_with_host_io_between_every_step_matches_the_model(units, seed):
    rig, old, new, src = units
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=8, end=55, paused=True)
    model = bytearray(new.read(1, 0, 8)) + bytearray(src[8 * BS:56 * BS]) + bytearray(new.read(1, 56, 8))
    run_interleaved(new, "mig1", 1, model, random.Random(seed), 14)
    new.job("mig1", "resume")
    new.wait_job("mig1")
    assert new.read(1, 0, 64) == bytes(model)
    assert old.read(0, 0, 64) == src                           # S is only read


@pytest.mark.parametrize("seed", [3, 4])
def test_rearrangement_with_host_io_between_every_step_matches_the_model(make_rig, seed):
    rig = make_rig(desc())
    new = rig.unit("new")
    model = bytearray(rand(32, seed))
    new.write(0, 0, bytes(model))
    mg.place(new, 0, 0, 31, group=1, paused=True)
    run_interleaved(new, "mv0", 0, model, random.Random(seed), 9)
    new.job("mv0", "resume")
    new.wait_job("mv0")
    assert new.read(0, 0, 32) == bytes(model) == mg.on_drives(new, 1, 0, 32)


def writes(u, vol, model, rng, k):
    for _ in range(k):
        a = rng.randrange(0, len(model) // BS - 1)
        data = rng.randbytes(2 * BS)
        u.write(vol, a, data)
        model[a * BS:(a + 2) * BS] = data


def test_host_writes_while_the_copies_run_free_all_land(units):
    """The jobs are not held: whatever the interleaving, every acknowledged write is
    there at the end (the copy steps and host I/O to the LV exclude each other)."""
    rig, old, new, src = units
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63)
    model = bytearray(src)
    rng = random.Random(5)
    writes(new, 1, model, rng, 24)
    new.wait_job("mig1")
    assert new.read(1, 0, 64) == bytes(model)
    mg.place(new, 1, 0, 63, group=2)
    writes(new, 1, model, rng, 24)
    new.wait_job("mv1")
    assert new.read(1, 0, 64) == bytes(model)
    assert [d for d, _ in mg.entries(new, 1)] == [8, 9, 10, 11]


def test_migration_and_placement_on_the_cpython_board(make_rig):
    """The same firmware under CPython (board "inprocess")."""
    rig = make_rig(desc(), board="inprocess")
    old, new = rig.unit("old"), rig.unit("new")
    src = rand(64, 14)
    old.write(0, 0, src)
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    mg.step(new, "mig1", 2)
    assert new.read(1, 40, 1) == src[40 * BS:41 * BS] and mg.migration(new, 1)["staged"] == [[40, 40]]
    new.job("mig1", "resume")
    new.wait_job("mig1")
    r = mg.place(new, 1, 0, 63, group=2)
    assert (r["range"], r["ldevs"]) == ([0, 63], [8, 9, 10, 11])
    new.wait_job("mv1")
    assert new.read(1, 0, 64) == src and mg.entries(new, 1)[0] == (8, [0, 15])


def test_without_a_non_volatile_cache_copied_blocks_reach_the_drives_before_the_pointer(make_rig, tmp_path):
    """A board whose cache is lost at a reset: a copy step destages before its pointer
    moves, so a pointer saved and then a kill never leave copied addresses empty."""
    text = (BOARDS / "emulator.toml").read_text()
    assert "\nnv_cache = true" in text
    path = tmp_path / "volatile.toml"
    path.write_text(text.replace("\nnv_cache = true", "\nnv_cache = false"))
    rig = make_rig(desc(), board=str(path))
    old, new = rig.unit("old"), rig.unit("new")
    src = rand(64, 15)
    old.write(0, 0, src)
    old.flush()
    mg.assign(new, 1, 64)
    new.write(0, 0, src[:32 * BS])
    new.flush()
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    mg.step(new, "mig1", 2)
    mg.place(new, 0, 0, 31, group=2, paused=True)
    mg.step(new, "mv0", 3)
    new.mgmt("save")                          # both pointers on record
    new.restart()
    assert (new.job("mig1")["copy_pointer"], new.job("mv0")["copy_pointer"]) == (8, 12)
    assert new.read(1, 0, 8) == src[:8 * BS] and new.read(0, 0, 32) == src[:32 * BS]
    for job in ("mig1", "mv0"):
        new.job(job, "resume")
        new.wait_job(job)
    assert new.read(1, 0, 64) == src and new.read(0, 0, 32) == src[:32 * BS]


# ---- the levelling plan on its own (firmware/features/migration/level.py) -------------------

def test_levelling_plans_keep_their_promises_on_random_periods():
    """Seeded random periods: no plan raises the highest group utilization, every move
    respects its LDEV's pattern and has room, and the plan stops only at max_moves or
    when no single qualifying move is left."""
    from firmware.features.migration import level

    rng = random.Random(6)
    for case in range(300):
        levels = [rng.choice([1, 5]) for _ in range(rng.randint(2, 4))]
        ldevs = []
        for gid in range(len(levels)):
            for _ in range(rng.randint(1, 4)):
                d = {"ldev": len(ldevs), "group": gid, "utilization": rng.choice([0, 5, 10, 20, 40, 60])}
                for k in ("random_read", "random_write", "seq_read", "seq_write"):
                    d[k] = rng.randint(0, 5)
                ldevs.append(d)
        groups = [{"group": g, "level": levels[g], "utilization": sum(d["utilization"] for d in ldevs
                                                                       if d["group"] == g)}
                  for g in range(len(levels))]
        free = {g: rng.randint(0, 2) for g in range(len(levels))}
        cfg = {"spread": rng.choice([10, 30]), "share": 70, "max_moves": rng.choice([1, 4, 64])}
        last = {"groups": groups, "ldevs": ldevs}
        pinned = {d["ldev"] for d in ldevs if rng.random() < 0.2}
        plan = level.plan(last, lambda n, p=pinned: n not in p, free, cfg)
        util = {g["group"]: g["utilization"] for g in groups}
        top = max(util.values())
        room = dict(free)
        moved = set()
        for ld, a, b, u, pat in plan:
            d = ldevs[ld]
            assert d["group"] == a and ld not in pinned and ld not in moved and u == d["utilization"] > 0
            assert level.allowed(pat, levels[b]) and pat == level.pattern(d, 70) and room[b] > 0
            assert util[b] + u < util[a], case
            util[a] -= u
            util[b] += u
            room[b] -= 1
            moved.add(ld)
        assert max(util.values()) <= top, case
        if len(plan) < cfg["max_moves"] and max(util.values()) - min(util.values()) >= cfg["spread"]:
            for d in ldevs:            # nothing qualifies any more
                if d["ldev"] in pinned or d["ldev"] in moved or d["utilization"] == 0:
                    continue
                a = d["group"]
                for b in util:
                    assert not (b != a and room[b] > 0 and level.allowed(level.pattern(d, 70), levels[b])
                                and util[b] + d["utilization"] < util[a]), (case, d, b)
