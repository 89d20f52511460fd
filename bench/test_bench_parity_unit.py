"""Parity storage unit (seed 000) on emulated boards: initial-build throughput, and
restore time and bytes moved for restoration methods 1 and 2.

The rig is rigs/parity.toml (3 data units of 50 / 60 / 70 blocks, a parity unit of 80,
4096-byte blocks), and the same rig scaled by 10 (500 / 600 / 700 / 800 blocks, the
seed's example divided by 1000).  Timed on the host, request to job done; the parity
unit also times the restore itself (extra_info firmware_ms).  Bytes moved = the Fig 33
frames that carry a block (PBLOCK header + data) on the fabric during the restore.

    .venv/bin/pytest bench/test_bench_parity_unit.py --benchmark-only
"""
import copy
import os
import random
import time
import tomllib

import pytest

from firmware import wire
from host.features import parity_unit as hp
from host.rig import Rig

BS = 4096
QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))   # bench/run.py --quick: the small rig, one round
SCALES = (1,) if QUICK else (1, 10)
ROUNDS = 1 if QUICK else 3
LINES = []


def rig_desc(scale):
    with open(hp.RIG, "rb") as f:
        desc = copy.deepcopy(tomllib.load(f))
    for u in desc["unit"]:
        u["drive_blocks"] *= scale
        for v in u["volume"]:
            v["blocks"] *= scale
            if "start" in v:
                v["start"] *= scale
    return desc


def wait(u, pred, poll=0.005):
    while True:
        v = pred(u)
        if v:
            return v
        time.sleep(poll)


@pytest.fixture(scope="module", params=SCALES, ids=["x%d" % s for s in SCALES])
def group(request, tmp_path_factory):
    scale = request.param
    rig = Rig(rig_desc(scale), state_dir=tmp_path_factory.mktemp("parity-x%d" % scale)).start()
    dus = [rig.unit("su%d" % i) for i in (1, 2, 3)]
    pu = rig.unit("su4")
    rnd = random.Random(scale)
    for u in dus:
        hp.write_area(u, 0, rnd.randbytes(hp.area_blocks(u) * BS))
    yield scale, rig, dus, pu
    rig.close()


def build(pu):
    r = pu.mgmt("parity_setup", block_length=BS, data_units=[1, 2, 3])
    wait(pu, lambda u: u.job("pbuild")["state"] in ("done", "failed"))
    return r["parity_blocks"]


def test_initial_build_throughput(benchmark, group, capsys):
    scale, rig, dus, pu = group
    benchmark.group = "parity-build-x%d" % scale
    np_ = benchmark.pedantic(build, args=(pu,), rounds=ROUNDS, iterations=1)
    assert hp.bad_blocks(pu, dus) == []
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return
    t = stats.stats.median
    copies = sum(hp.area_blocks(u) for u in dus)
    benchmark.extra_info.update({"parity_blocks": np_, "blocks_per_s": round(np_ / t, 1),
                                 "copies_per_s": round(copies / t, 1),
                                 "data_MB_per_s": round(copies * BS / t / 1e6, 2)})
    line = ("parity build x%d: %d parity blocks from %d copies in %.3f s: %.0f parity blocks/s, "
            "%.0f copies/s (%.2f MB/s of data)" % (scale, np_, copies, t, np_ / t, copies / t, copies * BS / t / 1e6))
    LINES.append(line)
    with capsys.disabled():
        print("\n" + line)


@pytest.mark.parametrize("method", (1, 2))
def test_restore_time_and_bytes_moved(benchmark, group, method, capsys):
    scale, rig, (s1, s2, s3), pu = group
    if pu.table("parity_740") is None:
        build(pu)
    want = hp.area(s1)
    marks = {}
    benchmark.group = "parity-restore-x%d" % scale

    def lose():
        hp.lose_data(s1)
        for u in (s2, s3, pu):
            marks[u.name] = hp.trace_mark(u)

    def restore():
        s1.mgmt("parity_restore", method=method)
        wait(pu, lambda u: u.job("prestore1")["state"] in ("done", "failed"))
        wait(s1, lambda u: u.table("parity_unit")["restoring"] is None)

    benchmark.pedantic(restore, setup=lose, rounds=ROUNDS, iterations=1)
    assert hp.area(s1) == want
    assert hp.bad_blocks(pu, [s1, s2, s3]) == []
    served = [hp.pblock_frames(u, marks[u.name], served=True) for u in (s2, s3)]
    pushed = hp.pblock_frames(pu, marks[pu.name], served=False)
    frames = sum(served) + pushed
    moved = frames * (wire.PBLK_HEAD_LEN + BS)
    last = pu.table("parity_unit")["last_restore"]
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return
    t = stats.stats.median
    benchmark.extra_info.update({"method": method, "range": last["range"], "survivor_blocks": served,
                                 "restored_blocks": pushed, "bytes_moved": moved, "firmware_ms": last["ms"]})
    line = ("restore x%d method %d: range %d, survivors sent %s, parity unit sent %d; %d frames, %.2f MB moved; "
            "%.3f s (firmware %d ms), %.0f blocks/s" % (scale, method, last["range"], served, pushed, frames,
                                                        moved / 1e6, t, last["ms"], last["range"] / t))
    LINES.append(line)
    with capsys.disabled():
        print("\n" + line)
