"""Model-based test of a two-controller unit (docs/dual.md): seeded concurrent batches on
two host ports; mid-batch the master's board is killed (SIGKILL; every request in
flight abandoned, the standby takes over), or the standby's (the master goes on
alone), or both boards lose power; killed boards boot again later (resync, handback);
every read is checked against the golden model (host.golden), and at the end every
block is what the model says it may be."""
import contextlib
import copy
import random

import pytest
from conftest import have_micropython

from host.golden import Golden
from host.model import run_batch
from host.rig import Rig
from tests.test_dual import UNIT

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython not installed")

BLOCKS = 64


def model_desc():
    u = copy.deepcopy(UNIT)
    u["features"] = ["dual"]
    del u["volcopy"]
    return {"rig": {"name": "mdual", "block_size": 512}, "unit": [u],
            "host": [{"name": "h0", "unit": "u0", "port": 0}, {"name": "h1", "unit": "u0", "port": 1}]}


def batch(rng, n):
    ops = []
    hot = rng.randrange(BLOCKS - 8)
    for _ in range(n):
        lba = hot + rng.randrange(8) if rng.random() < 0.5 else rng.randrange(BLOCKS - 6)
        kind = "w" if rng.random() < 0.6 else "r"
        ops.append((rng.randrange(2), kind, lba, min(rng.randint(1, 6), BLOCKS - lba)))
    return ops


def check_all(u, g):
    bad = []
    for lba in range(0, BLOCKS, 8):
        op = g.read_issued(lba, 8)
        bad += g.read_done(op, u.read(0, lba, 8))
    return bad


@pytest.mark.parametrize("seed", [1, 2])
def test_controller_kills_lose_no_acknowledged_write(seed):
    rng = random.Random(seed)
    kills = {"A": 0, "B": 0}
    with Rig(model_desc(), board="emulator") as rig:
        u = rig.unit()
        g = Golden(u.block_size)
        down = None
        for step in range(12):
            ops = batch(rng, rng.randint(6, 16))
            kill_after = victim = None
            # the master (A: the standby takes over) at step 2, the standby (B: the master
            # goes on alone) at step 6, then either, at a seeded point of a batch
            if down is None and (step in (2, 6) or (step == 11 and rng.random() < 0.5)):
                kill_after = rng.randrange(len(ops))
                victim = {2: "A", 6: "B"}.get(step) or rng.choice("AB")
            if down is None and step == 10:   # both boards lose power mid-batch; both boot again
                bad = run_batch(u, g, ops, iodepth=4, kill_after=rng.randrange(len(ops)))
                assert not bad, f"step {step}: " + "; ".join(bad)
                assert u.master() == "A" and u.ctrl_table("B", "dual")["role"] == "standby"
                assert not check_all(u, g), f"step {step}"
                continue
            # some batches address the standby, which passes them on to the master
            via = u.via("B") if step in (1, 5, 9) and down is None else contextlib.nullcontext()
            with via:
                if victim is not None and victim != u.master():
                    # the standby: the master's requests in flight go on and are all answered
                    bad = run_batch(u, g, ops, iodepth=4, fail_after=kill_after,
                                    on_fail=lambda v=victim: u.kill_controller(v))
                else:      # the master: its requests in flight are abandoned (may or may not have landed)
                    bad = run_batch(u, g, ops, iodepth=4, kill_after=kill_after,
                                    kill=lambda v=victim: u.kill_controller(v))
            assert not bad, f"step {step}: " + "; ".join(bad)
            if victim is not None:
                kills[victim] += 1
                down = victim
                assert u.master() != victim
            elif down is not None and (step in (4, 8, 11) or rng.random() < 0.3):
                u.restart_controller(down)     # resync from the survivor; A takes its role back
                down = None
                assert u.master() == "A"
            if rng.random() < 0.2:
                u.flush()
            assert not check_all(u, g), f"step {step}"
        assert kills["A"] >= 1 and kills["B"] >= 1
        if down is not None:
            u.restart_controller(down)
        u.flush()
        assert not check_all(u, g)
        a, b = u.ctrl_table("A", "dual"), u.ctrl_table("B", "dual")
        assert (a["role"], b["role"]) == ("master", "standby")
