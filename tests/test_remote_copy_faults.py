"""Remote copy under faults (rigs/remote_copy.toml): a cut path suspends the pair and
the changed tracks are recorded; after the path returns a resync sends only those; a
board killed mid-copy (S or T) and the copy going on from its pointer; pair state
across resets of either board.  Jobs are paused and stepped: nothing depends on timing."""
import random

import pytest
from conftest import have_micropython, random_blocks, status_of

from firmware import wire
from host.features import remote_copy as hr

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512
DATA = random.Random(1).randbytes(400 * BS)


def rand(n, seed):
    return random_blocks(n, seed, BS)


def start(make_rig, **s):
    rig = make_rig(hr.desc(s=s or None))
    su, tu = rig.unit("s"), rig.unit("t")
    su.write(0, 0, DATA)
    return rig, su, tu


def state(u, i=0):
    return u.table("rc_830")[i]["836"]


def wait_state(u, want, i=0):
    return u.wait_for(lambda x: x.table("rc_830")[i]["836"] == want, what="pair %d %s" % (i, want))


@pytest.mark.parametrize("intent", [1, 0])
def test_a_cut_path_suspends_and_the_resync_sends_only_the_changed_tracks(make_rig, intent):
    rig, s, t = start(make_rig, write_intent=intent)
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0)
    wait_state(s, "DUPLEX")
    s.write(0, 120, DATA[120 * BS:124 * BS])          # duplex: forwarded (T lacks nothing)
    assert s.table("rc_830")[0]["changed"] == 0
    if not intent:                                     # and no write-intent mark was made
        assert bytes.fromhex(s.table("rc_830")[0]["bits"]) == bytes(38)
    want = bytearray(DATA)
    rig.fabric.paths[0].cut = True
    for lba, n, seed in ((150, 2, 2), (300, 4, 3), (50, 3, 4)):       # 50..52 lie outside the area
        s.write(0, lba, rand(n, seed))                                # acknowledged from S alone
        want[lba * BS:(lba + n) * BS] = rand(n, seed)
    p = s.table("rc_830")[0]
    assert (p["836"], p["changed"]) == ("SUSPENDED", 6)
    assert p["why"].startswith("write: PATH_DOWN")
    assert t.table("rc_900")[0]["state"] == "DUPLEX"                  # T keeps its last state
    assert status_of(s.mgmt, "rc_resync", pair=0) == wire.E_PATH_DOWN
    assert s.table("rc_830")[0] == p                                  # nothing changed
    rig.fabric.paths[0].cut = False
    before = s.table("remote_copy")["counters"]["copied_blocks"]
    r = s.mgmt("rc_resync", pair=0)
    assert (r["state"], r["changed"]) == ("UNDER COPYING", 6)
    wait_state(s, "DUPLEX")
    assert s.table("remote_copy")["counters"]["copied_blocks"] - before == 6
    assert s.job("rc0")["copied"] - 300 == 6                          # 300 initial tracks, then 6
    assert t.read(0, 100, 300) == bytes(want[100 * BS:])
    assert s.read(0, 0, 400) == bytes(want)
    assert t.table("rc_900")[0]["state"] == "DUPLEX"


def test_a_path_cut_during_the_initial_copy_and_the_prober_resuming_it(make_rig):
    rig, s, t = start(make_rig, probe_ms=50)
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0, paused=True)
    s.job("rc0", "step", 10)
    s.wait_for(lambda x: x.job("rc0")["copy_pointer"] == 110, what="10 tracks")
    rig.fabric.paths[0].cut = True
    s.job("rc0", "step", 1)
    wait_state(s, "SUSPENDED")
    p = s.table("rc_830")[0]
    assert (p["837"], p["changed"], p["why"]) == (110, 290, "copy: PATH_DOWN")
    s.write(0, 105, rand(1, 5))                 # behind the pointer: recorded while suspended
    assert s.table("rc_830")[0]["changed"] == 291
    rig.fabric.paths[0].cut = False             # the prober finds the path and resynchronizes
    wait_state(s, "DUPLEX")
    want = bytearray(DATA)
    want[105 * BS:106 * BS] = rand(1, 5)
    assert t.read(0, 100, 300) == bytes(want[100 * BS:])
    assert s.table("remote_copy")["counters"]["copied_blocks"] == 10 + 291


def test_s_killed_mid_copy_resumes_from_its_pointer(make_rig):
    rig, s, t = start(make_rig)
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0, paused=True)
    s.job("rc0", "step", 50)
    s.wait_for(lambda x: x.job("rc0")["copy_pointer"] == 150, what="50 tracks")
    s.write(0, 120, rand(1, 6))                 # forwarded
    s.write(0, 200, rand(1, 7))                 # ahead of the pointer: for the copy
    s.flush(0)
    s.mgmt("save")
    s.restart()
    job = s.job("rc0")
    assert (job["state"], job["copy_pointer"], job["copied"], job["pair_state"]) == ("paused", 150, 50, "UNDER COPYING")
    s.job("rc0", "step", 10)
    s.wait_for(lambda x: x.job("rc0")["copy_pointer"] == 160, what="10 more tracks")
    s.job("rc0", "resume")
    wait_state(s, "DUPLEX")
    assert s.job("rc0")["copied"] == 300        # no track sent twice
    want = bytearray(DATA)
    want[120 * BS:121 * BS] = rand(1, 6)
    want[200 * BS:201 * BS] = rand(1, 7)
    assert t.read(0, 100, 300) == bytes(want[100 * BS:])


def test_t_killed_mid_copy_suspends_the_pair_and_the_resync_goes_on_from_the_pointer(make_rig):
    rig, s, t = start(make_rig)
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0, paused=True)
    s.job("rc0", "step", 50)
    s.wait_for(lambda x: x.job("rc0")["copy_pointer"] == 150, what="50 tracks")
    t.kill()
    s.job("rc0", "step", 1)
    wait_state(s, "SUSPENDED")
    assert s.table("rc_830")[0]["changed"] == 250
    t.start(configure=False)
    assert t.table("rc_900")[0]["906"] == 0 and t.read(0, 100, 50) == DATA[100 * BS:150 * BS]
    s.mgmt("rc_resync", pair=0)
    wait_state(s, "DUPLEX")
    assert s.job("rc0")["copied"] == 300        # 50 before, 250 after: only what T lacked
    assert t.read(0, 100, 300) == DATA[100 * BS:]


def test_pair_state_survives_a_reset_of_either_board(make_rig):
    rig, s, t = start(make_rig)
    s.mgmt("rc_pair", volume=0, start=100, end=399, peer=0)
    wait_state(s, "DUPLEX")
    before = (s.table("rc_830"), s.table("rc_820"), t.table("rc_900"), t.table("lvs"))
    s.mgmt("save")
    s.restart()
    t.restart()
    assert (s.table("rc_830"), s.table("rc_820"), t.table("rc_900"), t.table("lvs")) == before
    s.write(0, 250, rand(3, 8))
    assert t.read(0, 250, 3) == rand(3, 8)
    assert status_of(t.write, 0, 250, rand(1, 9)) == wire.E_WRITE_PROTECTED
