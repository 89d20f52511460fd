"""Seed 002 in a model-based test: the pair (rigs/mirror.toml) as one volume seen by two
hosts, a seeded run of concurrent batches from both hosts (overlapping blocks too), path
cuts and board resets.  Every read from either host is checked against one golden model
(host.model's Golden); after every step both volumes are equal on the drives.

A batch under a fault carries writes only: a write that ends in CHECK was stored on the
main volume and put back, and a read in between may have seen it (docs/mirror.md)."""
import random

import pytest
from conftest import have_micropython

from firmware import wire
from host.features import mirror as hm
from host.model import Golden
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 4096
BLOCKS = 16          # the run works on the first blocks: overlaps are frequent


def steps(rng, n, reads=True):
    out = []
    for _ in range(n):
        r = rng.random()
        fault = None if r < 0.5 else ("cut", rng.choice([0, 1])) if r < 0.75 else ("kill", rng.choice(["main", "sub"]))
        ops = []
        for _ in range(rng.randint(2, 6)):
            kind = "w" if fault or not reads or rng.random() < 0.6 else "r"
            lba = rng.randrange(BLOCKS)
            ops.append((rng.choice(["main", "sub"]), kind, lba, rng.randint(1, min(3, BLOCKS - lba))))
        out.append({"fault": fault, "ops": ops})
    return out


class PairRun:
    def __init__(self, rig):
        self.rig = rig
        self.u = {"main": rig.unit("main"), "sub": rig.unit("sub")}
        self.g = Golden(BS)
        self.bad = []

    def issue(self, who, kind, lba, n):
        g = self.g
        op = g.write_issued(lba, n) if kind == "w" else g.read_issued(lba, n)
        return [who, op, self.u[who].start_io(kind, 0, lba, op.data if kind == "w" else n)]

    def finish(self, f):
        who, op, h = f
        try:
            data = self.u[who].finish_io(h)
        except (StatusError, OSError, TimeoutError) as e:
            st = getattr(e, "status", None)
            assert st is None or st in (wire.E_CHECK, wire.E_PATH_DOWN, wire.E_TIMEOUT), e
            (self.g.write_unknown if op.kind == "w" else self.g.read_dropped)(op)
            return
        if op.kind == "w":
            self.g.write_acked(op)
        else:
            self.bad += self.g.read_done(op, data)

    def step(self, s):
        fault = s["fault"]
        if fault and fault[0] == "cut":
            self.rig.fabric.paths[fault[1]].cut = True
        inflight = [self.issue(*op) for op in s["ops"]]
        if fault and fault[0] == "kill":
            dead = self.u[fault[1]]
            dead.kill()
            for f in inflight:
                if f[0] == fault[1]:
                    self.g.write_unknown(f[1])
                else:
                    self.finish(f)
            dead.start(configure=False)
        else:
            for f in inflight:
                self.finish(f)
        if fault and fault[0] == "cut":
            self.rig.fabric.paths[fault[1]].cut = False
        main, sub = self.u["main"], self.u["sub"]
        sub.wait_for(lambda u: not main.table("mirror")["resync"] and not sub.table("mirror")["resync"]
                     and self.quiet(main, sub), timeout=60, what="both volumes equal")

    def quiet(self, main, sub):
        if main.table("mirror")["role"] == "sym":
            return main.table("mirror")["held"] == sub.table("mirror")["held"] == "" and \
                hm.on_drives(main) == hm.on_drives(sub)
        return hm.settled(main, sub)

    def read_all(self):
        for who in ("main", "sub"):
            op = self.g.read_issued(0, BLOCKS)
            self.bad += self.g.read_done(op, self.u[who].read(0, 0, BLOCKS))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_pair_under_concurrent_writes_path_cuts_and_resets_matches_the_model(make_rig, seed):
    run = PairRun(make_rig(hm.desc()))
    plan = steps(random.Random(seed), 12)
    for i, s in enumerate(plan):
        run.step(s)
        run.read_all()
        assert run.bad == [], f"step {i} {s}: {run.bad[:3]}"
    assert run.g.writes_acked > 0 and run.g.checked > 0 and any(s["fault"] for s in plan)


@pytest.mark.parametrize("seed", [4, 5])
def test_example_3_under_concurrent_writes_path_cuts_and_resets_matches_the_model(make_rig, seed):
    # example 3 promises no read freshness while writes are in flight ([0079]): its
    # batches carry writes only, and both hosts read everything after each step
    run = PairRun(make_rig(hm.desc_sym()))
    plan = steps(random.Random(seed), 10, reads=False)
    for i, s in enumerate(plan):
        run.step(s)
        run.read_all()
        assert run.bad == [], f"step {i} {s}: {run.bad[:3]}"
    assert run.g.writes_acked > 0 and any(s["fault"] for s in plan)
