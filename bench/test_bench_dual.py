"""Two boards, one unit (seed 004, docs/dual.md): the write latency added by mirroring
the cache to the second controller.  A one-controller unit and a two-controller unit
(same drives, groups and volume, emulated boards) take one-block writes in turns of 20
within one run, so both see the same machine load; p50 / p99 of each and the ratio of
the p50s.  The dual write is acknowledged once the block is in the standby's cache too
(one more round over the controllers' path before the local store).  A third series:
the same writes from a host on controller B (the standby passes them on to A).

    .venv/bin/pytest bench/test_bench_dual.py --benchmark-only
"""
import copy
import os
import random
import time

import pytest

from host.rig import Rig

BS = 4096
QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
N = 40 if QUICK else 400
TURN = 20
UNIT = {"name": "u0", "drives": 4, "drive_blocks": 256, "backing": "memory",
        "group": [{"id": 0, "level": 5, "members": [0, 1, 2], "spares": [3], "auto_rebuild": False}],
        "volume": [{"id": 0, "group": 0, "blocks": 256}]}


def desc(name, **changes):
    u = copy.deepcopy(UNIT)
    u.update(changes)
    return {"rig": {"name": name, "block_size": BS}, "unit": [u]}


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    single = Rig(desc("single"), state_dir=tmp_path_factory.mktemp("single")).start()
    dual = Rig(desc("dual", controllers=2), state_dir=tmp_path_factory.mktemp("dual")).start()
    yield single.unit(), dual.unit()
    dual.close()
    single.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def test_write_latency_added_by_cache_mirroring(benchmark, units):
    single, dual = units
    benchmark.group = "dual-write"
    lat = {"single": [], "dual": [], "via_b": []}
    rnd = random.Random(4)

    def turn(name, u, i):
        for j in range(i, i + TURN):
            data = rnd.randbytes(BS)
            t = time.perf_counter()
            u.write(0, j % 256, data)
            lat[name].append(time.perf_counter() - t)

    def run():
        for i in range(0, N, TURN):
            turn("single", single, i)
            turn("dual", dual, i)
            with dual.via("B"):           # the host on the standby: forwarded to A
                turn("via_b", dual, i)

    benchmark.pedantic(run, rounds=1, iterations=1)
    d = dual.ctrl_table("B", "dual")
    assert d["role"] == "standby" and d["puts_applied"] >= 2 * N and d["forwarded"] == N
    ms = {k: (round(pct(v, 50) * 1e3, 3), round(pct(v, 99) * 1e3, 3)) for k, v in lat.items()}
    ratio = round(ms["dual"][0] / ms["single"][0], 2)
    benchmark.extra_info.update({
        "single_p50_ms": ms["single"][0], "single_p99_ms": ms["single"][1],
        "dual_p50_ms": ms["dual"][0], "dual_p99_ms": ms["dual"][1], "dual_over_single_p50": ratio,
        "via_b_p50_ms": ms["via_b"][0], "via_b_p99_ms": ms["via_b"][1],
        "via_b_over_single_p50": round(ms["via_b"][0] / ms["single"][0], 2), "writes": N,
        "info": {"name": "two-controller / one-controller write latency p50 (one 4 KiB block, cache mirrored)",
                 "value": ratio}})
    print("\ndual write latency: single p50 %.3f p99 %.3f ms, dual p50 %.3f p99 %.3f ms, ratio %.2f; "
          "via B p50 %.3f p99 %.3f ms" % (ms["single"] + ms["dual"] + (ratio,) + ms["via_b"]))
