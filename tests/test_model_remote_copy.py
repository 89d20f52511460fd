"""Model-based test of remote copy (host/model.py's Golden and run_batch): random
concurrent host I/O on S's LV with two areas paired to T, copy steps, path cuts and
restores with resyncs, and S killed mid-batch.  After every step:
  - every read on S returned what the golden model allows (run_batch checks it);
  - an area track whose mark is clear (rc_830's live bitmap) holds S's data on T;
  - T's blocks outside the areas were never written;
and at the end, with the path back and every pair DUPLEX, T equals S over the areas."""
import binascii
import random

import pytest
from conftest import have_micropython

from host.features import remote_copy as hr
from host.model import Golden, run_batch

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512
AREAS = [(0, 49), (200, 299)]       # LV(T) 0 maps 0..199, LV(T) 1 maps 200..399 (T LDEVs of 200)
STEPS = 24


def check(s, t):
    """The invariants between steps (nothing in flight)."""
    pairs = s.table("rc_830")
    for i, (a, b) in enumerate(AREAS):
        p = pairs[i]
        bm = binascii.unhexlify(p["bits"])
        src = s.read(0, a, b - a + 1)
        dst = t.read(p["832"], a, b - a + 1)
        for k in range(b - a + 1):
            bit = k                     # OPEN: one block a track, bit 0 = the area's first block
            if not bm[bit >> 3] & (1 << (bit & 7)):
                assert dst[k * BS:(k + 1) * BS] == src[k * BS:(k + 1) * BS], \
                    "pair %d: block %d clean on S but different on T (%s)" % (i, a + k, p["836"])
    assert t.read(0, 50, 150) == bytes(150 * BS)       # LV(T) 0 outside 0..49
    assert t.read(1, 300, 100) == bytes(100 * BS)      # LV(T) 1 outside 200..299


def copying(s):
    return [i for i, p in enumerate(s.table("rc_830")[:len(AREAS)]) if p["836"] == "UNDER COPYING"]


@pytest.mark.parametrize("seed", [1, 2])
def test_model_remote_copy_with_path_cuts_and_resets(make_rig, seed):
    rig = make_rig(hr.desc())
    s, t = rig.unit("s"), rig.unit("t")
    g = Golden(BS, seed=seed)
    assert run_batch(s, g, [(0, "w", 0, 400)], iodepth=1) == []
    for a, b in AREAS:
        s.mgmt("rc_pair", volume=0, start=a, end=b, peer=0, paused=True)
    rng = random.Random(seed)
    path = rig.fabric.paths[0]
    for _ in range(STEPS):
        what = rng.choice(["batch", "batch", "batch", "step", "step", "cut", "restore", "kill"])
        if what in ("batch", "kill"):
            ops = [(rng.randrange(2), rng.choice("wwr"), lba, min(rng.randint(1, 8), 400 - lba))
                   for lba in [rng.randrange(400) for _ in range(rng.randint(4, 16))]]
            kill = rng.randint(1, len(ops)) if what == "kill" else None
            assert run_batch(s, g, ops, iodepth=4, kill_after=kill) == []
        elif what == "step":
            for i in copying(s):
                s.job("rc%d" % i, "step", rng.randint(1, 40))
        elif what == "cut":
            path.cut = True
        else:
            path.cut = False
            for i in range(len(AREAS)):
                if s.table("rc_830")[i]["836"] == "SUSPENDED":
                    s.mgmt("rc_resync", pair=i)
        for i in copying(s):               # a stepped job uses up its steps (or suspends)
            s.wait_for(lambda x, i=i: x.job("rc%d" % i)["budget"] == 0 or x.job("rc%d" % i)["state"] != "paused",
                       what="job rc%d's steps" % i)
        check(s, t)
    path.cut = False
    for i in range(len(AREAS)):
        if s.table("rc_830")[i]["836"] == "SUSPENDED":
            s.mgmt("rc_resync", pair=i)
    for i in copying(s):
        s.job("rc%d" % i, "resume")
    for i in range(len(AREAS)):
        s.wait_for(lambda x, i=i: x.table("rc_830")[i]["836"] == "DUPLEX", what="pair %d duplex" % i)
    check(s, t)
    r = g.read_issued(0, 400)
    assert g.read_done(r, s.read(0, 0, 400)) == []
    for i, (a, b) in enumerate(AREAS):
        assert t.read(i, a, b - a + 1) == s.read(0, a, b - a + 1)
