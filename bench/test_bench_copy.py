"""Copy engines, time against work: the rebuild of a failed RAID5 member onto the
spare, for drives of several sizes, on the emulator.  The rebuild job walks every row
(firmware/unit.py Unit._rebuild), so its time must follow the rows: the report holds
the time per row of each size side by side.  (The sparing copy and the volume-copy
resync at 1 / 10 / 100 % dirty tracks: bench/test_bench_sparing.py and
bench/test_bench_volcopy.py.)

    .venv/bin/pytest bench/test_bench_copy.py --benchmark-only
"""
import os
import time

import pytest

from host.rig import Rig

QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
ROWS = [64, 128] if QUICK else [256, 1024]
BS = 4096
MEMBERS = 4
_PER_ROW = {}


def desc(rows):
    return {"rig": {"name": "bench-rebuild", "block_size": BS},
            "unit": [{"name": "u0", "drives": MEMBERS + 1, "drive_blocks": rows, "backing": "memory",
                      "group": [{"id": 0, "level": 5, "members": list(range(MEMBERS)), "chunk": 4,
                                 "spares": [MEMBERS], "auto_rebuild": False}],
                      "volume": [{"id": 0, "group": 0, "blocks": rows * (MEMBERS - 1)}]}],
            "host": [{"name": "h0", "unit": "u0", "port": 0}]}


@pytest.mark.parametrize("rows", ROWS)
def test_rebuild_time_follows_rows(benchmark, tmp_path, rows):
    with Rig(desc(rows), state_dir=tmp_path, board="emulator") as rig:
        u = rig.unit()
        data = os.urandom(rows * (MEMBERS - 1) * BS)
        u.write(0, 0, data)
        u.flush()
        u.fail_drive(1)
        t = {}

        def rebuild():
            t0 = time.perf_counter()
            u.rebuild(0)
            u.wait_for(lambda x: x.job("rebuild0")["state"] in ("done", "failed"), timeout=600, interval=0.005)
            t["s"] = time.perf_counter() - t0

        benchmark.group = "copy-rebuild"
        benchmark.pedantic(rebuild, rounds=1, iterations=1)
        assert u.job("rebuild0")["state"] == "done"
        assert u.read(0, 0, rows * (MEMBERS - 1)) == data
        s = t["s"]
        moved = rows * MEMBERS * BS     # per row: 3 blocks read in, 1 written out
        _PER_ROW[rows] = s / rows
        benchmark.extra_info.update({"engine": "rebuild", "rows": rows, "work_blocks": rows, "seconds": round(s, 3),
                                     "rows_per_s": round(rows / s, 1), "link_MBps": round(moved / s / 1e6, 2),
                                     "us_per_row": round(s / rows * 1e6, 1)})
        if len(_PER_ROW) == len(ROWS):
            a, b = ROWS[0], ROWS[-1]
            benchmark.extra_info["info"] = {
                "name": "rebuild: time per row at %d rows / at %d rows (1.0 = time proportional to rows)" % (b, a),
                "value": round(_PER_ROW[b] / _PER_ROW[a], 3)}
        print("\nrebuild of %d rows: %.3f s, %.0f rows/s, %.0f us per row" % (rows, s, rows / s, s / rows * 1e6))
