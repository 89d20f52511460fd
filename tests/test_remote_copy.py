"""Remote copy of partial areas (seed 003 E1 with the E5 tables) between two emulated
boards (rigs/remote_copy.toml): S holds an LV of 400 blocks on LDEVs of 100, T cuts its
group into LDEVs of 200.  PairGen for area 100..399, the initial copy as a job stepped
track by track, forwarding exactly at the copy pointer, the trace of a forwarded write
across both units, several areas, mainframe group numbering and the pools."""

import pytest
from conftest import have_micropython, random_blocks, status_of

from firmware import wire
from host.features import remote_copy as hr

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512


def rand(n, seed):
    return random_blocks(n, seed, BS)


@pytest.fixture
def pair(make_rig):
    rig = make_rig(hr.desc())
    s, t = rig.unit("s"), rig.unit("t")
    s.write(0, 0, rand(400, 1))          # the LV's data before the pair exists
    return rig, s, t


def duplex(u, i):
    return u.wait_for(lambda x: x.table("rc_830")[i]["836"] == "DUPLEX", what="pair %d duplex" % i)


def test_pairgen_maps_only_the_area_on_t_ldevs_of_200_and_the_copy_makes_t_equal_s(pair):
    rig, s, t = pair
    r = s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0, paused=True)
    assert (r["pair"], r["t_lv"], r["t_controller"], r["ldevs"]) == (0, 0, 2, [0, 1])
    # 410: entries i = 100..299, j = 300..499 (past S's capacity), 305 = the area's part
    lv = t.table("rc_300")[0]
    assert lv["304"] == "COPY DESTINATION" and lv["303"] == ["OPEN", 400]
    assert [(e["301"], e["308"], e["305"], e["302"], e["314"]) for e in lv["entries"]] == \
        [(0, [100, 299], [100, 299], "REMOTE COPY PRESENT", 1), (1, [300, 499], [300, 399], "REMOTE COPY PRESENT", 1)]
    src = s.table("rc_300")[0]
    assert [(e["301"], e["302"], e["305"], e["315"]) for e in src["entries"]] == \
        [(0, "COPY ABSENT", None, None), (1, "REMOTE COPY PRESENT", [100, 199], 0),
         (2, "REMOTE COPY PRESENT", [200, 299], 0), (3, "REMOTE COPY PRESENT", [300, 399], 0)]
    assert src["pairs"] == [{"306": 100, "307": "UNDER COPYING", "area": [100, 399]}]
    assert [(x["804"], x["805"], x["803"]) for x in s.table("rc_800")] == [("COPY SOURCE", 0, ["OPEN", 400])]
    assert [(x["804"], x["805"]) for x in t.table("rc_800")] == [("COPY DESTINATION", None)]
    d900 = t.table("rc_900")[0]
    assert (d900["903"], d900["904"], d900["905"], d900["906"], d900["907"]) == \
        (["OPEN", 400], "COPY DESTINATION", 1, 0, [[100, 399]])
    # the job: step N = N tracks scanned (OPEN: one block per track); info names 837
    s.job("rc0", "step", 25)
    s.wait_for(lambda x: x.job("rc0")["pointer"] == 25, what="25 tracks scanned")
    info = s.job("rc0")
    assert (info["copy_pointer"], info["total"], info["copied"], info["changed"]) == (125, 300, 25, 275)
    assert t.read(0, 100, 25) == rand(400, 1)[100 * BS:125 * BS]
    s.job("rc0", "resume")
    duplex(s, 0)
    assert t.read(0, 100, 300) == rand(400, 1)[100 * BS:]
    assert t.table("rc_900")[0]["state"] == "DUPLEX"
    # T maps only the area: 0..99 are not there, and T's host may not write
    assert status_of(t.read, 0, 99, 1) == wire.E_OUT_OF_RANGE
    assert status_of(t.write, 0, 200, rand(1, 9)) == wire.E_WRITE_PROTECTED
    # duplex: writes inside the area are forwarded, outside are not
    s.write(0, 398, rand(4, 2)[:2 * BS])
    s.write(0, 90, rand(20, 3))                    # 90..109: only 100..109 go to T
    assert t.read(0, 398, 2) == rand(4, 2)[:2 * BS]
    assert t.read(0, 100, 10) == rand(20, 3)[10 * BS:]
    c = s.table("remote_copy")["counters"]
    assert (c["forwarded"], c["forwarded_blocks"]) == (2, 12)


def test_forwarding_exactly_at_the_copy_pointer_and_the_stages_in_order_across_units(pair):
    rig, s, t = pair
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0, paused=True)
    s.job("rc0", "step", 40)
    s.wait_for(lambda x: x.job("rc0")["copy_pointer"] == 140, what="pointer at 140")
    for u in (s, t):
        u.mgmt("trace", on=True)
    s.write(0, 139, rand(1, 5))            # just below 837: forwarded now
    s.write(0, 140, rand(1, 6))            # at 837: left to the copy
    assert t.read(0, 139, 1) == rand(1, 5)
    assert t.read(0, 140, 1) == bytes(BS)              # T has nothing there yet (fresh drives)
    assert s.job("rc0")["changed"] == 260                            # 140..399
    ev = hr.timed_events(s) + hr.timed_events(t)
    ev.sort(key=lambda x: x[0])
    stages = [(f[0], f[2]) for _, f in ev if f[0] in ("s_cache", "sent", "t_cache", "t_ack", "t_acked", "host_ack")]
    assert stages == [("s_cache", "139"), ("sent", "139"), ("t_cache", "139"), ("t_ack", "139"), ("t_acked", "139"),
                      ("host_ack", "139"), ("s_cache", "140"), ("host_ack", "140")]
    # a write across the pointer: the part below is sent, the rest waits for the copy
    s.write(0, 138, rand(4, 7))            # 138..141
    assert t.read(0, 138, 2) == rand(4, 7)[:2 * BS]
    assert t.read(0, 140, 2) == bytes(2 * BS)
    s.job("rc0", "resume")
    duplex(s, 0)
    want = bytearray(rand(400, 1))
    want[138 * BS:142 * BS] = rand(4, 7)
    assert t.read(0, 100, 300) == bytes(want[100 * BS:])
    assert s.read(0, 0, 400) == bytes(want)


def test_several_areas_give_several_lv_t_and_the_pool_refuses_when_empty_and_recovers(make_rig):
    rig = make_rig(hr.desc(s={"pairs": 2, "groups": 1}))
    s, t = rig.unit("s"), rig.unit("t")
    s.write(0, 0, rand(400, 1))
    a = s.mgmt("rc_pair", volume=0, start=0, end=49, peer=0)
    b = s.mgmt("rc_pair", volume=0, start=300, end=349, peer=0)
    assert (a["t_lv"], b["t_lv"], a["group_table"], b["group_table"]) == (0, 1, 0, 0)
    duplex(s, 0)
    duplex(s, 1)
    before = (s.table("rc_830"), s.table("rc_820"), t.table("ldevs"), t.table("volumes"))
    assert status_of(s.mgmt, "rc_pair", volume=0, start=200, end=249, peer=0) == wire.E_NO_TABLE
    assert (s.table("rc_830"), s.table("rc_820"), t.table("ldevs"), t.table("volumes")) == before
    # 820: groups of 16 blocks; 0..49 -> groups 0..3 = pair 0, 300..349 -> 18..21 = pair 1
    ents = s.table("rc_820")[0]["entries"]
    assert [g for g in range(len(ents)) if ents[g] == 0] == [0, 1, 2, 3]
    assert [g for g in range(len(ents)) if ents[g] == 1] == [18, 19, 20, 21]
    s.write(0, 40, rand(270, 4))           # 40..309: two areas' parts are forwarded
    assert t.read(0, 40, 10) == rand(270, 4)[:10 * BS]
    assert t.read(1, 300, 10) == rand(270, 4)[260 * BS:]
    r = s.mgmt("rc_release", pair=0)
    assert r["state"] == "SIMPLEX"
    assert s.table("rc_830")[0]["use"] == 0 and s.table("rc_820")[0]["use"] == 1
    c = s.mgmt("rc_pair", volume=0, start=200, end=249, peer=0)
    assert (c["pair"], c["t_lv"]) == (0, 2)
    duplex(s, 0)
    assert t.read(2, 200, 50) == rand(270, 4)[160 * BS:210 * BS]
    s.mgmt("rc_release", pair=0)
    s.mgmt("rc_release", pair=1)
    assert s.table("rc_820")[0]["use"] == 0        # the LV's last pair: the 820 goes back too
    n = s.table("remote_copy")["counters"]["forwarded"]
    s.write(0, 200, rand(1, 8))
    assert s.table("remote_copy")["counters"]["forwarded"] == n


def test_mainframe_numbering_by_cylinder_and_areas_sharing_a_group_are_refused(make_rig):
    d = hr.desc()
    d["unit"][0]["volume"][0]["emulation"] = "3390"        # 4 blocks a track, 15 tracks a cylinder
    rig = make_rig(d)
    s, t = rig.unit("s"), rig.unit("t")
    s.write(0, 0, rand(400, 1))
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0, paused=True)
    ents = s.table("rc_820")[0]["entries"]
    assert len(ents) == 7 and ents == [-1, 0, 0, 0, 0, 0, 0]   # cylinders of 60 blocks; 100 is in cylinder 1
    assert s.job("rc0")["total"] == 75                          # tracks 25..99
    s.job("rc0", "step", 3)
    s.wait_for(lambda x: x.job("rc0")["copy_pointer"] == 112, what="3 tracks")
    assert status_of(s.mgmt, "rc_pair", volume=0, start=60, end=80, peer=0) == wire.E_CONFLICT   # cylinder 1
    assert s.mgmt("rc_pair", volume=0, start=0, end=59, peer=0)["pair"] == 1                  # cylinder 0
    assert s.table("rc_820")[0]["entries"] == [1, 0, 0, 0, 0, 0, 0]
    s.job("rc0", "resume")
    duplex(s, 0)
    duplex(s, 1)
    assert t.read(1, 0, 60) == rand(400, 1)[:60 * BS]
    assert t.table("rc_300")[0]["303"] == ["3390", 400]
    assert t.read(0, 100, 300) == rand(400, 1)[100 * BS:]


def snapshot(s, t):
    return (s.table("rc_830"), s.table("rc_820"), s.table("volumes"), t.table("ldevs"), t.table("volumes"),
            t.table("rc_900"))


def test_bad_input_gets_a_precise_status_and_changes_nothing(pair):
    rig, s, t = pair
    s.mgmt("rc_pair", volume=0, start=100, end=199, peer=0, paused=True)
    before = snapshot(s, t)
    for args, st in (({"volume": 5, "start": 0, "end": 9}, wire.E_NO_VOLUME),           # unknown LV
                     ({"volume": 0, "start": 300, "end": 400}, wire.E_OUT_OF_RANGE),    # outside the LV
                     ({"volume": 0, "start": 250, "end": 240}, wire.E_OUT_OF_RANGE),
                     ({"volume": 0, "start": 150, "end": 250}, wire.E_CONFLICT),        # overlaps 100..199
                     ({"volume": 0, "start": 200, "end": 210}, wire.E_CONFLICT),        # shares group 12
                     ({"volume": 0, "start": 300, "end": 310, "peer": 3}, wire.E_PATH_DOWN),   # no such path
                     ({"volume": 0, "start": 300, "end": 310, "peer": 16}, wire.E_BAD_PARAM),
                     ({"volume": 0, "start": "a", "end": 310}, wire.E_BAD_PARAM),
                     ({"volume": 0, "start": 300, "end": 310, "t_group": 1}, wire.E_BAD_PARAM)):   # T has group 0
        args.setdefault("peer", 0)
        assert status_of(s.mgmt, "rc_pair", **args) == st, args
    assert status_of(s.mgmt, "rc_resync", pair=0) == wire.E_STATE         # not suspended
    assert status_of(s.mgmt, "rc_release", pair=0) == wire.E_STATE        # still copying
    assert status_of(s.mgmt, "rc_suspend", pair=7) == wire.E_BAD_PARAM
    assert status_of(t.mgmt, "rc_extend", volumes=[9]) == wire.E_NO_VOLUME
    assert status_of(t.mgmt, "rc_takeover", volume=0) == wire.E_STATE    # 0..99 are not mapped yet
    assert snapshot(s, t) == before


def test_pairing_a_volume_with_itself_is_refused(make_rig):
    rig = make_rig(hr.desc(t={"controller": 1}))       # the path leads back to controller 1
    s, t = rig.unit("s"), rig.unit("t")
    before = snapshot(s, t)
    assert status_of(s.mgmt, "rc_pair", volume=0, start=0, end=9, peer=0) == wire.E_BAD_PARAM
    assert snapshot(s, t) == before


@pytest.mark.parametrize("why", ["space", "emulation"])
def test_impossible_to_generate_a_copy_leaves_s_simplex(make_rig, why):
    rig = make_rig(hr.desc(t={"unit": {"emulations": ["3390"]}}) if why == "emulation" else hr.desc())
    s, t = rig.unit("s"), rig.unit("t")
    if why == "space":
        t.mgmt("ldev_alloc", n=4, owner="other")              # one LDEV of 200 left: 300 blocks do not fit
    before = snapshot(s, t)
    s.mgmt("trace", on=True)
    assert status_of(s.mgmt, "rc_pair", volume=0, start=100, end=399, peer=0) == wire.E_COPY_IMPOSSIBLE
    assert snapshot(s, t) == before
    assert s.table("rc_300") == []                            # S stays simplex
    assert [e[0] for e in hr.events(s)] == ["pairgen", "pairgen_refused"]
    s.write(0, 100, rand(1, 3))
    assert s.table("remote_copy")["counters"]["forwarded"] == 0


def test_full_capacity_copy_user_suspend_and_resync_and_takeover_as_it_is(pair):
    rig, s, t = pair
    r = s.mgmt("rc_pair", volume=0, start=100, end=199, peer=0, full_capacity=True, t_lv=5, t_group=0)
    assert (r["t_lv"], r["ldevs"]) == (5, [0, 1])
    assert [(e["ldev"], e["range"]) for e in t.table("lvs")[0]["entries"]] == [(0, [0, 199]), (1, [200, 399])]
    duplex(s, 0)
    s.mgmt("rc_suspend", pair=0)
    assert s.table("rc_830")[0]["836"] == "SUSPENDED" and t.table("rc_900")[0]["state"] == "SUSPENDED"
    assert status_of(s.mgmt, "rc_suspend", pair=0) == wire.E_STATE
    s.write(0, 150, rand(2, 4))
    s.write(0, 250, rand(2, 5))                  # outside the area: never T's
    assert s.table("rc_830")[0]["changed"] == 2 and t.read(5, 150, 2) == rand(400, 1)[150 * BS:152 * BS]
    s.mgmt("rc_resync", pair=0)
    duplex(s, 0)
    assert t.read(5, 150, 2) == rand(2, 4) and t.table("rc_900")[0]["state"] == "DUPLEX"
    info = t.mgmt("rc_failover_info", volume=5)
    assert (info["missing"], info["extend"]) == ([], False)
    out = hr.failover(t, [5])                    # nothing to extend: used as it is
    assert out["lv"] == 5 and t.volinfo(5)[0] == 400
    assert t.read(5, 100, 100)[50 * BS:52 * BS] == rand(2, 4)
    assert t.read(5, 250, 2) == bytes(2 * BS)
