"""Sparing (seed 001) on the emulator: time to copy a 4 MiB drive to the spare with the
unit idle and with a foreground workload running, and the foreground I/O rate during
the copy against the rate with no copy, for the direct and the reconstruct copy.

    .venv/bin/pytest bench/test_bench_sparing.py --benchmark-only -s
"""
import os
import threading
import time

import pytest

from host.hostio import Workload
from host.rig import Rig

QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))   # bench/run.py --quick: a smaller drive
ROWS = 256 if QUICK else 1024
VB = ROWS * 3 // 2          # blocks per volume: two volumes fill the RAID5 of 4


def desc(copy):
    return {"rig": {"name": "bench-sparing", "block_size": 4096},
            "unit": [{"name": "u0", "drives": 7, "drive_blocks": ROWS, "backing": "memory",
                      "features": ["sparing"],
                      "sparing": {"mode": "manual", "copy": copy, "backup": "journal", "track_blocks": 4,
                                  "work_volumes": [{"id": 10, "drive": 6, "start": 0, "tracks": ROWS // 8},
                                                   {"id": 11, "drive": 6, "start": ROWS // 2,
                                                    "tracks": ROWS // 8}]},
                      "group": [{"id": 0, "level": 5, "members": [0, 1, 2, 3], "chunk": 4, "spares": [4, 5],
                                 "auto_rebuild": False}],
                      "volume": [{"id": 0, "group": 0, "blocks": VB},
                                 {"id": 1, "group": 0, "start": VB, "blocks": VB}]}],
            "host": [{"name": "h0", "unit": "u0", "port": 0}]}


def ops_per_s(wl, seconds):
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        wl[n % 2].step()
        n += 1
    return n / (time.perf_counter() - t0)


def spare(u, drive, wl=None):
    """Start sparing `drive`; return (copy seconds, foreground ops/s during the copy)."""
    stop = threading.Event()
    count = [0]

    def fg():
        while not stop.is_set():
            wl[count[0] % 2].step()
            count[0] += 1

    th = threading.Thread(target=fg, daemon=True) if wl else None
    t0 = time.perf_counter()
    if th:
        th.start()
    u.mgmt("sparing", action="start", drive=drive)
    u.wait_job("sparing0", timeout=600)
    t = time.perf_counter() - t0
    stop.set()
    if th:
        th.join()
    u.wait_for(lambda x: x.table("sparing")[-1]["phase"] == "done", timeout=120, what="feedback done")
    return t, count[0] / t


@pytest.mark.parametrize("copy", ["direct", "reconstruct"])
def test_sparing_copy_time_and_foreground_rate(benchmark, tmp_path, copy):
    with Rig(desc(copy), state_dir=tmp_path, board="emulator") as rig:
        u, h = rig.unit(), rig.host()
        for v in u.table("volumes"):
            for lba in range(0, v["blocks"], 3):
                h.write(v["id"], lba, min(3, v["blocks"] - lba))
        u.flush()
        wl = [Workload(h, 0, VB, seed=1), Workload(h, 1, VB, seed=2)]
        base = ops_per_s(wl, 0.5 if QUICK else 3.0)
        idle, _ = spare(u, 2)                                    # unit idle
        u.job("sparing0")
        res = {}

        def busy():
            res["t"], res["rate"] = spare(u, 1, wl)              # the workload keeps going
        benchmark.pedantic(busy, rounds=1, iterations=1)
        bad = sum(w.bad for w in wl)
        for v in u.table("volumes"):
            bad += h.verify_all(v["id"], v["blocks"])
        assert bad == 0
        benchmark.extra_info.update({
            "copy": copy, "rows": ROWS, "idle_copy_s": round(idle, 2), "busy_copy_s": round(res["t"], 2),
            "fg_ops_per_s_no_copy": round(base, 1), "fg_ops_per_s_during_copy": round(res["rate"], 1)})
        print("\n%s: copy of %d rows idle %.2f s, with workload %.2f s; foreground %.1f ops/s without a copy, "
              "%.1f ops/s during it" % (copy, ROWS, idle, res["t"], base, res["rate"]))
