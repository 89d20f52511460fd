"""Mirror with sub-host access (seed 002) on two emulated boards (rigs/mirror.toml):
the latency of a one-block write from the sub host, synchronous (forwarded to the main
unit, copied back, then GOOD) and asynchronous (GOOD first, Fig 9), against a write
from the main host, in one run (p50 / p99 and the ratio of the p50s); and the bytes
the cache-hit skip ([0056]) kept off path 202.  Asynchronous twice: with 603 on disk
(the data goes into 603 and its entry into SM before GOOD, so it survives a reset) and
with 603 in cache memory ([0071], nothing kept before GOOD).

    .venv/bin/pytest bench/test_bench_mirror.py --benchmark-only
"""
import os
import random
import time

import pytest

from host.features import mirror as hm
from host.rig import Rig

BS = 4096
QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
N = 30 if QUICK else 300
LAT = {}


MODES = {"sync": {"mode": "sync"},
         "async": {"mode": "async"},                                    # 603 on disk: kept before GOOD
         "async-cache": {"mode": "async", "comm": "cache", "comm_volume": None}}   # [0071]


@pytest.fixture(scope="module", params=list(MODES))
def pair(request, tmp_path_factory):
    rig = Rig(hm.desc(sub=MODES[request.param]), state_dir=tmp_path_factory.mktemp("mirror-" + request.param))
    rig.start()
    yield request.param, rig, rig.unit("main"), rig.unit("sub")
    rig.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def writes(u, seed):
    rnd = random.Random(seed)
    out = []
    for i in range(N):
        data = rnd.randbytes(BS)
        t = time.perf_counter()
        u.write(0, i % 48, data)
        out.append(time.perf_counter() - t)
    return out


def test_sub_host_write_latency_against_the_main_host(benchmark, pair):
    mode, rig, main, sub = pair
    benchmark.group = "mirror-write-" + mode
    lat = {}

    def run():
        lat["main"] = writes(main, 1)            # interleaved in one run: same load for both
        lat["sub"] = writes(sub, 2)
        sub.wait_for(lambda u: hm.settled(main, sub), what="both volumes equal")

    benchmark.pedantic(run, rounds=1, iterations=1)
    assert hm.settled(main, sub)
    ms = {k: (round(pct(v, 50) * 1e3, 3), round(pct(v, 99) * 1e3, 3)) for k, v in lat.items()}
    ratio = round(ms["sub"][0] / ms["main"][0], 2)
    LAT[mode] = ms
    benchmark.extra_info.update({
        "main_p50_ms": ms["main"][0], "main_p99_ms": ms["main"][1],
        "sub_p50_ms": ms["sub"][0], "sub_p99_ms": ms["sub"][1], "sub_over_main_p50": ratio,
        "info": {"name": "sub-host / main-host write latency p50, %s (one 4 KiB block)" % mode,
                 "value": ratio}})


def test_cache_hit_skip_bytes_saved(benchmark, pair):
    mode, rig, main, sub = pair
    if mode != "sync":
        pytest.skip("the same skip in both modes: measured once")
    benchmark.group = "mirror-skip"
    p202 = rig.fabric.paths[0]
    got = {}

    def run():
        before = main.table("mirror")["counters"]["skipped_bytes"]
        mark = len(main.link.trace)
        for i in range(N):
            sub.write(0, i % 48, random.Random(i).randbytes(BS))
        got["saved"] = main.table("mirror")["counters"]["skipped_bytes"] - before
        got["sent"] = sum(hm.peer_frames(main, mark))

    frames = p202.frames
    benchmark.pedantic(run, rounds=1, iterations=1)
    assert got["saved"] == N * BS and got["sent"] == N * hm.MSG_HEAD
    benchmark.extra_info.update({"writes": N, "bytes_saved": got["saved"], "bytes_sent_on_202": got["sent"],
                                 "frames_on_202": p202.frames - frames,
                                 "info": {"name": "bytes the cache-hit skip kept off path 202 per sub-host write",
                                          "value": got["saved"] // N}})
