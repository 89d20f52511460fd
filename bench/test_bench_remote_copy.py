"""Remote copy (seed 003 E1 / E5) on two emulated boards joined by one path
(rigs/remote_copy.toml, scaled up: S's LV of 4000 blocks of 512 bytes).

  initial copy   the area's tracks copied to T (firmware time, job start -> DUPLEX) against
                 the path's raw rate: frames of the same size sent one after another and
                 answered without being stored (rc_path_rate) -> a ratio
  write latency  single-block host writes at random addresses of the area (and on 16
                 hot tracks), request to GOOD on the host: p50 / p99 with the pair DUPLEX
                 against the LV SIMPLEX; with and without the write-intent marks
  resync         the path cut, 1 % of the area's tracks rewritten, the path back: the
                 resync's time against the full initial copy (goal <= 0.02)

    .venv/bin/pytest bench/test_bench_remote_copy.py --benchmark-only
"""
import os
import random
import time

import pytest

from host.features import remote_copy as hr
from host.rig import Rig

BS = 512
QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
BLOCKS = 1000 if QUICK else 4000      # S's LV; the area is all of it (OPEN: one block a track)
WRITES = 50 if QUICK else 300
LINES = []


def desc(intent):
    d = hr.desc(s={"write_intent": intent})
    s, t = d["unit"]
    s["drive_blocks"] = BLOCKS
    s["volume"][0]["blocks"] = BLOCKS
    t["drive_blocks"] = BLOCKS + 400
    return d


@pytest.fixture(scope="module", params=[1, 0], ids=["write_intent", "no_write_intent"])
def rig(request, tmp_path_factory):
    r = Rig(desc(request.param), state_dir=tmp_path_factory.mktemp("rcbench")).start()
    r.intent = request.param
    s = r.unit("s")
    rng = random.Random(1)
    s.write(0, 0, rng.randbytes(BLOCKS * BS))
    s.flush(0)
    yield r
    r.close()
    if LINES and not request.param:
        print("\n" + "\n".join(LINES))


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def latencies(s, rng, span=BLOCKS):
    out = []
    for _ in range(WRITES):
        lba = rng.randrange(span)
        data = rng.randbytes(BS)
        t0 = time.perf_counter()
        s.write(0, lba, data)
        out.append(time.perf_counter() - t0)
    return out


def test_remote_copy_initial_copy_latency_and_resync(benchmark, rig):
    s, t = rig.unit("s"), rig.unit("t")
    rng = random.Random(2)
    simplex = latencies(s, rng)
    raw = s.mgmt("rc_path_rate", peer=0, blocks=1, frames=BLOCKS)
    raw_rate = raw["bytes"] / (raw["ms"] / 1e3)

    def pair():
        s.mgmt("rc_pair", volume=0, start=0, end=BLOCKS - 1, peer=0)
        return s.wait_for(lambda u: u.table("rc_830")[0]["836"] == "DUPLEX" and u.job("rc0"), 600, 0.002)

    job = benchmark.pedantic(pair, rounds=1, iterations=1)
    full_ms = job["ms"]
    copy_rate = BLOCKS * BS / (full_ms / 1e3)
    assert t.read(0, 0, BLOCKS) == s.read(0, 0, BLOCKS)
    duplex = latencies(s, rng)
    hot = latencies(s, rng, 16)          # the same 16 tracks again and again: their marks are mostly set
    assert t.read(0, 0, BLOCKS) == s.read(0, 0, BLOCKS)
    # resync after a cut with 1 % of the tracks rewritten
    rig.fabric.paths[0].cut = True
    k = BLOCKS // 100
    for lba in rng.sample(range(BLOCKS), k):
        s.write(0, lba, rng.randbytes(BS))
    assert s.table("rc_830")[0]["changed"] == k
    rig.fabric.paths[0].cut = False
    s.mgmt("rc_resync", pair=0)
    j = s.wait_for(lambda u: u.table("rc_830")[0]["836"] == "DUPLEX" and u.job("rc0"), 600, 0.002)
    assert t.read(0, 0, BLOCKS) == s.read(0, 0, BLOCKS)
    resync_ms = j["ms"]
    ratio = resync_ms / full_ms
    ms = [1e3 * x for x in (pct(simplex, 0.5), pct(simplex, 0.99), pct(duplex, 0.5), pct(duplex, 0.99),
                            pct(hot, 0.5), pct(hot, 0.99))]
    benchmark.group = "remote-copy-" + ("write-intent" if rig.intent else "no-write-intent")
    benchmark.extra_info.update({
        "write_intent": rig.intent, "tracks": BLOCKS, "raw_path_kib_s": round(raw_rate / 1024, 1),
        "copy_kib_s": round(copy_rate / 1024, 1),
        "copy_vs_raw": round(copy_rate / raw_rate, 3), "full_copy_ms": full_ms, "resync_ms": resync_ms,
        "simplex_p50_ms": round(ms[0], 3), "simplex_p99_ms": round(ms[1], 3),
        "duplex_p50_ms": round(ms[2], 3), "duplex_p99_ms": round(ms[3], 3),
        "duplex_hot_p50_ms": round(ms[4], 3), "duplex_hot_p99_ms": round(ms[5], 3),
        "goal": {"name": "resync 1% / full copy <= 0.02 (as 0.02 / ratio >= 1)", "value": round(0.02 / ratio, 2),
                 "goal": 1.0}})
    LINES.append("remote copy (write_intent %d), %d tracks of %d bytes: initial copy %.1f KiB/s vs path raw "
                 "%.1f KiB/s (ratio %.2f); "
                 "host write p50/p99 simplex %.2f/%.2f ms, duplex %.2f/%.2f ms (16 hot tracks %.2f/%.2f ms); "
                 "resync of 1%% %d ms vs full %d ms (ratio %.4f)"
                 % (rig.intent, BLOCKS, BS, copy_rate / 1024, raw_rate / 1024, copy_rate / raw_rate, ms[0], ms[1],
                    ms[2], ms[3], ms[4], ms[5], resync_ms, full_ms, ratio))
    assert QUICK or ratio <= 0.02, LINES[-1]
