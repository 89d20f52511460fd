"""Failover on the copy destination (seed 003 Figs 6 and 12, table 900): the LV(T) of
area 100..399 extended to the source's 400 blocks with a spare LDEV mapped in order,
file entries outside the area erased by the host utility, service restarted on a
consistent full-capacity volume; several LV(T)s of one LV(S) merged into one."""
import random

import pytest
from conftest import have_micropython, status_of

from firmware import wire
from host.features import remote_copy as hr

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512
DATA = random.Random(1).randbytes(400 * BS)
FILES = [("inside", 110, 10), ("outside", 20, 10), ("across", 95, 10), ("tail", 390, 10)]


@pytest.fixture
def rig2(make_rig):
    rig = make_rig(hr.desc())
    s, t = rig.unit("s"), rig.unit("t")
    s.write(0, 0, DATA)
    return rig, s, t


def duplex(s, *pairs):
    for i in pairs:
        s.wait_for(lambda x, i=i: x.table("rc_830")[i]["836"] == "DUPLEX", what="pair %d duplex" % i)


def test_failover_extends_to_the_full_capacity_erases_entries_outside_and_restarts_service(rig2):
    rig, s, t = rig2
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0)
    duplex(s, 0)
    hr.format_dir(s, 0, 100, FILES)                 # forwarded: the directory lies in the area
    on_s = s.read(0, 0, 400)
    # site S lost
    rig.fabric.paths[0].cut = True
    info = t.mgmt("rc_failover_info", volume=0)
    assert (info["source_capacity"], info["mapped"], info["missing"], info["areas"]) == (400, 400, [[0, 100]],
                                                                                          [[100, 399]])
    out = hr.failover(t, [0], dir_lba=100)
    # 602: the spare LDEV 2 holds 0..99 (its tail unused), the table in address order
    assert out["extend"]["added_ldevs"] == [2]
    assert [(e["ldev"], e["range"]) for e in t.table("lvs")[0]["entries"]] == \
        [(2, [0, 99]), (0, [100, 299]), (1, [300, 499])]
    assert t.table("ldevs")[2]["use"] == "remote_copy"
    assert out["takeover"]["blocks"] == 400 and t.table("rc_900") == []
    # 603: the files not wholly in 100..399 are gone from the directory
    assert sorted(out["erased"]) == ["across", "outside"]
    assert [(f["name"], f["start"], f["in_use"]) for f in hr.read_dir(t, 0, 100)] == \
        [("inside", 110, True), ("", 0, False), ("", 0, False), ("tail", 390, True)]
    # the data: the area as S had it, the rest of the volume never written on T
    got = t.read(0, 0, 400)
    assert got[101 * BS:] == on_s[101 * BS:]
    assert got[:100 * BS] == bytes(100 * BS)
    assert t.volinfo(0)[0] == 400
    # 604: service restarts on T; it is an ordinary volume now
    t.write(0, 0, DATA[:BS])
    t.write(0, 399, DATA[:BS])
    assert t.read(0, 0, 1) == DATA[:BS] and t.read(0, 399, 1) == DATA[:BS]
    # S, its path back, finds its copy gone: the pair suspends, S keeps serving
    rig.fabric.paths[0].cut = False
    s.write(0, 200, DATA[:BS])
    assert s.table("rc_830")[0]["836"] == "SUSPENDED"
    assert t.read(0, 200, 1) == on_s[200 * BS:201 * BS]


def test_several_lv_t_of_one_lv_s_are_merged_into_one_lv_and_extended(rig2):
    rig, s, t = rig2
    a = s.mgmt("rc_pair", volume=0, start=0, end=99, peer=0)         # LV(T) 0 maps 0..199
    b = s.mgmt("rc_pair", volume=0, start=300, end=349, peer=0)      # LV(T) 1 maps 300..499
    assert (a["t_lv"], b["t_lv"]) == (0, 1)
    duplex(s, 0, 1)
    info = t.mgmt("rc_failover_info", volume=1)
    assert info["missing"] == [[0, 300]]
    before = (t.table("volumes"), t.table("ldevs"), t.table("rc_900"))
    assert status_of(t.mgmt, "rc_extend", volumes=[0, 0]) == wire.E_BAD_PARAM
    assert (t.table("volumes"), t.table("ldevs"), t.table("rc_900")) == before
    r = t.mgmt("rc_extend", volumes=[0, 1])
    assert (r["lv"], r["added_ldevs"], r["areas"]) == (0, [2], [[0, 99], [300, 349]])
    assert [(e["ldev"], e["range"]) for e in t.table("lvs")[0]["entries"]] == \
        [(0, [0, 199]), (2, [200, 299]), (1, [300, 499])]
    assert [v["id"] for v in t.table("volumes")] == [0]
    # merged and extended: S's writes are refused by T now (S suspends), T's host may take it over
    s.write(0, 10, DATA[:BS])
    assert s.table("rc_830")[0]["836"] == "SUSPENDED"
    t.mgmt("rc_takeover", volume=0)
    got = t.read(0, 0, 400)
    assert got[:100 * BS] == DATA[:100 * BS] and got[300 * BS:350 * BS] == DATA[300 * BS:350 * BS]


def test_extension_without_enough_spare_ldevs_changes_nothing(rig2):
    rig, s, t = rig2
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0)
    duplex(s, 0)
    t.mgmt("ldev_alloc", n=3, owner="other")              # no spare LDEV left on T
    before = (t.table("volumes"), t.table("ldevs"), t.table("rc_900"))
    assert status_of(t.mgmt, "rc_extend", volumes=[0]) == wire.E_NO_SPACE
    assert status_of(t.mgmt, "rc_takeover", volume=0) == wire.E_STATE      # 0..99 unmapped
    assert (t.table("volumes"), t.table("ldevs"), t.table("rc_900")) == before
    t.mgmt("ldev_free", ldevs=[4])
    assert t.mgmt("rc_extend", volumes=[0])["added_ldevs"] == [4]


def test_a_released_pairs_copy_destination_is_deleted_and_its_ldevs_are_free_again(rig2):
    rig, s, t = rig2
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0)
    duplex(s, 0)
    assert status_of(t.mgmt, "rc_delete", volume=3) == wire.E_NO_VOLUME
    s.mgmt("rc_release", pair=0)
    assert t.table("rc_900")[0]["released"] is True
    assert t.mgmt("rc_delete", volume=0)["freed"] == [0, 1]
    assert t.table("volumes") == [] and t.table("rc_900") == []
    assert [d["state"] for d in t.table("ldevs")] == ["free"] * 5
