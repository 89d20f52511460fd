"""Seed 003 E6 on the emulator (rigs/migration.toml): a migration recorded in the E5
tables (830 pair and 820 group tables from the shared pools of firmware/pairtables.py),
host access routed 804 -> 805 -> 820[group] -> 830, the pool refusing and recovering,
the tables surviving a reset of the new board.

The new unit: LDEVs of 16 blocks; its LV 0 (32 blocks) is on LDEVs 0 and 1; LV 1 (64
blocks) is assigned on LDEVs 2-5.  Groups of 16 blocks (group_blocks), copy steps of 4
blocks.  The old unit's volume 0 has 64 blocks."""
import copy
import tomllib

import pytest
from conftest import have_micropython, random_blocks

from firmware import wire
from host.features import migration as mg
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512
UNDER = "UNDER MIGRATORY COPYING"
with open(mg.RIG, "rb") as f:
    RIG = tomllib.load(f)


def desc(**settings):
    d = copy.deepcopy(RIG)
    d["unit"][1]["migration"].update(settings)
    return d


def rand(n, seed):
    return random_blocks(n, seed, BS)


def pools(u):
    t = u.table("pairtables")
    return t["830"], t["820"]


def roles(u):
    """LV -> (804, 805) of table 800."""
    return {x["lv"]: (x["804"], x["805"]) for x in u.table("mig_800")}


def rig_with(make_rig, **settings):
    rig = make_rig(desc(**settings))
    old, new = rig.unit("old"), rig.unit("new")
    src = rand(64, 1)
    old.write(0, 0, src)
    old.flush()
    return rig, old, new, src


def test_a_migration_is_recorded_in_the_830_and_820_and_they_route_host_reads(make_rig):
    rig, old, new, src = rig_with(make_rig)
    mg.assign(new, 1, 64)
    own = rand(64, 2)
    new.write(1, 0, own)                       # T's own blocks before the migration
    assert [p["use"] for p in pools(new)[0]] == [0] * 8 and [g["use"] for g in pools(new)[1]] == [0] * 4
    r = mg.migrate(new, 1, peer=0, src_lv=0, start=20, end=47, paused=True)
    assert (r["830"], r["805"]) == (0, 0)
    p, g = pools(new)[0][0], pools(new)[1][0]      # 711
    assert (p["use"], p["owner"], p["831"], p["832"], p["833"], p["834"], p["835"], p["836"], p["837"],
            p["path"]) == (1, "migration", 0, 0, 1, 20, 47, UNDER, 20, 0)
    assert (g["use"], g["lv"], g["804"], g["entries"]) == (1, 1, "COPY DESTINATION", [-1, 0, 0, -1])
    assert roles(new) == {0: (None, None), 1: ("COPY DESTINATION", 0)}
    for k in range(1, 4):                      # 837 moves one copy step (4 blocks) at a time
        assert mg.step(new, "mig1", 1)["copy_pointer"] == 20 + 4 * k
        assert pools(new)[0][0]["837"] == 20 + 4 * k
    pulled = new.table("mig_counters")["pulled_blocks"]
    assert pulled == 12
    assert new.read(1, 24, 8) == src[24 * BS:32 * BS]          # below 837: T's copy, no fetch
    assert new.table("mig_counters")["pulled_blocks"] == pulled
    assert new.read(1, 36, 2) == src[36 * BS:38 * BS]          # at / past 837: fetched from S first
    assert new.table("mig_counters")["pulled_blocks"] == pulled + 2
    assert mg.migration(new, 1)["staged"] == [[36, 37]]
    # a boundary group (16..31 names the 830) but outside 834..835; a group naming none
    assert new.read(1, 16, 4) == own[16 * BS:20 * BS]
    assert new.read(1, 48, 16) == own[48 * BS:]
    assert new.read(1, 0, 16) == own[:16 * BS]
    assert new.table("mig_counters")["pulled_blocks"] == pulled + 2
    assert pools(new)[0][0]["837"] == 32                        # reads do not move 837
    new.job("mig1", "resume")
    assert new.wait_job("mig1")["state"] == "done"
    p830, p820 = pools(new)                                     # completion: both back in the pool
    assert [p["use"] for p in p830] == [0] * 8 and [g["use"] for g in p820] == [0] * 4
    assert (p830[0]["owner"], p830[0]["836"], p820[0]["entries"], p820[0]["804"]) == ("", "SIMPLEX", [], None)
    assert roles(new) == {0: (None, None), 1: (None, None)}
    m = mg.migration(new, 1)
    assert (m["307"], m["830"], m["805"]) == ("SIMPLEX", None, None)
    assert new.read(1, 0, 64) == own[:20 * BS] + src[20 * BS:48 * BS] + own[48 * BS:]


def snapshot(u):
    return [u.table(t) for t in ("pairtables", "mig_800", "ldevs", "lvs", "mig_migrations", "jobs")]


def refused(u, status, op, **args):
    """op is refused with `status` and changes none of the pools or the feature's tables."""
    before = snapshot(u)
    with pytest.raises(StatusError) as e:
        u.mgmt(op, **args)
    assert (e.value.status, snapshot(u)) == (status, before), str(e.value)
    return str(e.value)


def test_an_empty_pool_refuses_a_migration_and_changes_nothing_then_recovers(make_rig):
    rig, old, new, src = rig_with(make_rig, pairs=1, groups=2)
    mg.assign(new, 1, 64)
    mg.assign(new, 2, 32)                                      # LDEVs 6 and 7
    assert (len(pools(new)[0]), len(pools(new)[1])) == (1, 2)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    assert "no free pair (830)" in refused(new, wire.E_NO_TABLE, "migrate", lv=2, peer=0, src_lv=0, start=0,
                                           end=31, paused=True)
    refused(new, wire.E_STATE, "migrate", lv=1, peer=0, src_lv=0, start=0, end=63)    # already
    new.job("mig1", "resume")
    new.wait_job("mig1")
    assert [p["use"] for p in pools(new)[0]] == [0]            # returned: the pool recovers
    r = mg.migrate(new, 2, peer=0, src_lv=0, start=0, end=31, paused=True)
    assert (r["830"], r["805"]) == (0, 0)
    assert pools(new)[1][0]["entries"] == [0, 0] and roles(new)[2] == ("COPY DESTINATION", 0)
    new.job("mig2", "resume")
    new.wait_job("mig2")
    assert new.read(2, 0, 32) == src[:32 * BS] and new.read(1, 0, 64) == src


def test_an_empty_group_pool_refuses_too(make_rig):
    rig, old, new, src = rig_with(make_rig, pairs=2, groups=1)
    mg.assign(new, 1, 64)
    mg.assign(new, 2, 32)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    assert "no free group (820)" in refused(new, wire.E_NO_TABLE, "migrate", lv=2, peer=0, src_lv=0, start=0,
                                            end=31)


def test_the_tables_survive_a_reset_of_the_new_board_and_the_copy_resumes_from_837(make_rig):
    rig, old, new, src = rig_with(make_rig)
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    mg.step(new, "mig1", 3)
    assert new.read(1, 50, 1) == src[50 * BS:51 * BS]           # fetched ahead
    data = rand(1, 3)
    new.write(1, 8, data)                   # behind 837: SM (837 = 12) is saved before it
    before = pools(new)
    new.restart()                        # no flush: what the board acknowledged is kept
    assert pools(new) == before and before[0][0]["837"] == 12 and before[0][0]["836"] == UNDER
    assert roles(new)[1] == ("COPY DESTINATION", 0)
    j = new.job("mig1")
    assert (j["state"], j["copy_pointer"]) == ("paused", 12)
    pulled = new.table("mig_counters")["pulled_blocks"]
    assert new.read(1, 40, 2) == src[40 * BS:42 * BS]           # routed by the reloaded tables
    assert new.table("mig_counters")["pulled_blocks"] == pulled + 2
    new.job("mig1", "resume")
    new.wait_job("mig1")
    assert [p["use"] for p in pools(new)[0]] == [0] * 8 and roles(new)[1] == (None, None)
    assert new.read(1, 0, 64) == src[:8 * BS] + data + src[9 * BS:]


def test_remote_copy_on_the_same_unit_shows_the_same_tables_and_keeps_off_the_migrations(make_rig):
    d = desc(pairs=2)
    new = d["unit"][1]
    new["features"] = ["migration", "remote_copy"]
    new["remote_copy"] = {"controller": 7, "pairs": 3}          # the pool: the larger size asked
    rig = make_rig(d)
    new = rig.unit("new")
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=31, paused=True)
    p830, p820 = pools(new)
    assert len(p830) == 3 and [p["owner"] for p in p830] == ["migration", "", ""]
    assert [{k: p[k] for k in p} for p in new.table("rc_830")] == [dict(p, changed=0) for p in p830]
    assert new.table("rc_820") == p820
    assert [(x["lv"], x["804"], x["805"]) for x in new.table("rc_800")] == [(0, None, None),
                                                                            (1, "COPY DESTINATION", 0)]
    refused(new, wire.E_STATE, "rc_suspend", pair=0)                   # a migration's 830
    refused(new, wire.E_STATE, "rc_pair", volume=1, start=0, end=15, peer=0)   # LV 1's 820 is a migration's
