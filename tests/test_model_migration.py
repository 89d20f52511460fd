"""Migration (seed 003 E2) and rearrangement (E3) in a model-based test (host/model.py's
Golden and run_batch): seeded runs of concurrent host batches on two ports of the new
unit (overlapping blocks too), single copy steps in between, and the new board killed
mid-batch.  Every read returns what the golden model allows (for an address the copy
has not reached: the old unit's block, fetched first); at the end, with the copy done,
the whole LV reads back as the model says and the old unit's volume is unchanged."""
import copy
import random

import pytest
from conftest import have_micropython
from test_migration import RIG

from host.features import migration as mg
from host.model import Golden, run_batch

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512
STEPS = 20


def desc():
    d = copy.deepcopy(RIG)
    d["host"] = [{"name": "h0", "unit": "new", "port": 0}, {"name": "h1", "unit": "new", "port": 1}]
    return d


def run(new, g, job, vol, blocks, rng):
    for _ in range(STEPS):
        what = rng.choice(["batch", "batch", "step", "step", "kill"])
        if what == "step":
            if new.job(job)["state"] != "done":
                mg.step(new, job, rng.randint(1, 3))
            continue
        ops = [(rng.randrange(2), rng.choice("wwr"), lba, min(rng.randint(1, 4), blocks - lba))
               for lba in [rng.randrange(blocks) for _ in range(rng.randint(3, 10))]]
        kill = rng.randint(1, len(ops)) if what == "kill" else None
        assert run_batch(new, g, ops, iodepth=4, vol=vol, kill_after=kill) == []
    new.job(job, "resume")
    assert new.wait_job(job)["state"] == "done"
    assert run_batch(new, g, [(0, "r", 0, blocks)], iodepth=1, vol=vol) == []


@pytest.mark.parametrize("seed", [1, 2])
def test_model_migration_with_concurrent_io_and_resets(make_rig, seed):
    rig = make_rig(desc())
    old, new = rig.unit("old"), rig.unit("new")
    g = Golden(BS, vol=1, seed=seed)
    op = g.write_issued(0, 64)                  # S's volume: the model's first generation
    old.write(0, 0, op.data)
    g.write_acked(op)
    old.flush()
    mg.assign(new, 1, 64)
    mg.migrate(new, 1, peer=0, src_lv=0, start=0, end=63, paused=True)
    run(new, g, "mig1", 1, 64, random.Random(seed))
    assert mg.migration(new, 1)["307"] == "SIMPLEX"
    assert old.read(0, 0, 64) == op.data


@pytest.mark.parametrize("seed", [3, 4])
def test_model_rearrangement_with_concurrent_io_and_resets(make_rig, seed):
    rig = make_rig(desc())
    new = rig.unit("new")
    g = Golden(BS, vol=0, seed=seed)
    assert run_batch(new, g, [(0, "w", 0, 32)], iodepth=1) == []
    mg.place(new, 0, 0, 31, group=1, paused=True)
    run(new, g, "mv0", 0, 32, random.Random(seed))
    assert mg.entries(new, 0) == [(6, [0, 15]), (7, [16, 31])]
