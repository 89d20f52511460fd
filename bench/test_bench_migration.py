"""Migration (seed 003 E2) over a peer path: the copy's throughput against the path's raw
read rate, and the host read latency of an address the copy has not reached yet (fetched
from the old unit first) against one it has copied.

Copy: `migrate` of a whole LV, timed by the new board from the job's start to its end
(`ms` of the job info), bytes copied / time.  Raw: the same number of blocks read over
the same path in requests of the same size (`copy_blocks`) and stored nowhere
(`mig_path_rate`, timed by the board).  The ratio says what storing, destaging and saving
the pointer after every step cost against the path alone.

Latency: one-block host reads on the new unit with the copy held half-way; each
not-yet-copied read goes to a fresh address (a fetch from the old unit every time).

    .venv/bin/pytest bench/test_bench_migration.py --benchmark-only
"""
import os
import random

import pytest

from host.features import migration as mg
from host.rig import Rig

BS = 512
COPY_BLOCKS = 16
QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
LV_BLOCKS = 256 if QUICK else 1024
ROUNDS = 1 if QUICK else 3
READS = 16 if QUICK else 64


def rig_desc():
    ldevs = 2 * (ROUNDS + 1)          # every round and the latency test get their own LV
    rows = ldevs * LV_BLOCKS // 2 // 3 + 1
    return {
        "rig": {"name": "migbench", "block_size": BS},
        "unit": [
            {"name": "old", "drives": 2, "drive_blocks": LV_BLOCKS, "backing": "memory",
             "group": [{"id": 0, "level": 1, "members": [0, 1]}],
             "volume": [{"id": 0, "group": 0, "blocks": LV_BLOCKS}]},
            {"name": "new", "drives": 4, "drive_blocks": rows, "backing": "memory",
             "ldev_blocks": LV_BLOCKS // 2, "features": ["migration"],
             "migration": {"copy_blocks": COPY_BLOCKS, "auto_level": False},
             "group": [{"id": 0, "level": 5, "members": [0, 1, 2, 3]}]},
        ],
        "path": [{"a": "new", "b": "old"}],
    }


@pytest.fixture(scope="module")
def units(tmp_path_factory):
    rig = Rig(rig_desc(), state_dir=tmp_path_factory.mktemp("migbench"), board="emulator").start()
    old, new = rig.unit("old"), rig.unit("new")
    src = random.Random(1).randbytes(LV_BLOCKS * BS)
    old.write(0, 0, src)
    old.flush()
    state = {"lv": 1}
    yield old, new, src, state
    rig.close()


def test_migration_copy_throughput_against_the_path_raw_rate(benchmark, units, capsys):
    old, new, src, state = units
    benchmark.group = "migration-copy"
    runs = []

    def copy():
        lv = state["lv"]
        state["lv"] += 1
        mg.assign(new, lv, LV_BLOCKS)
        mg.migrate(new, lv, peer=0, src_lv=0, start=0, end=LV_BLOCKS - 1)
        j = new.wait_job(f"mig{lv}")
        assert j["state"] == "done"
        runs.append((lv, j["ms"]))

    benchmark.pedantic(copy, rounds=ROUNDS, iterations=1)
    lv, _ = runs[-1]
    assert new.read(lv, 0, LV_BLOCKS) == src
    ms = sorted(x[1] for x in runs)[len(runs) // 2]
    raw = new.mgmt("mig_path_rate", peer=0, src_lv=0, blocks=COPY_BLOCKS, repeat=LV_BLOCKS // COPY_BLOCKS)
    copy_rate = LV_BLOCKS * BS / max(ms, 1) * 1000
    raw_rate = raw["bytes"] / max(raw["ms"], 1) * 1000
    ratio = round(copy_rate / raw_rate, 3)
    benchmark.extra_info.update({"copy_bytes_per_s": round(copy_rate), "raw_bytes_per_s": round(raw_rate),
                                 "copy_ms": ms, "raw_ms": raw["ms"], "copy_blocks": COPY_BLOCKS,
                                 "info": {"name": "migration copy / peer path raw read rate", "value": ratio}})
    with capsys.disabled():
        print(f"\nmigration copy {copy_rate / 1e3:.0f} kB/s, path raw {raw_rate / 1e3:.0f} kB/s: ratio {ratio}")


@pytest.fixture(scope="module")
def held(units):
    """An LV whose migration is held with its first half copied."""
    old, new, src, state = units
    lv = state["lv"]
    state["lv"] += 1
    mg.assign(new, lv, LV_BLOCKS)
    mg.migrate(new, lv, peer=0, src_lv=0, start=0, end=LV_BLOCKS - 1, paused=True)
    mg.step(new, f"mig{lv}", LV_BLOCKS // 2 // COPY_BLOCKS)
    assert mg.migration(new, lv)["306"] == LV_BLOCKS // 2
    return new, src, lv, {"copied": 0, "ahead": LV_BLOCKS // 2}


@pytest.mark.parametrize("where", ["copied", "not_yet_copied"])
def test_host_read_latency_before_and_after_the_copy_reaches_an_address(benchmark, held, where):
    new, src, lv, at = held
    benchmark.group = "migration-read-latency"

    def setup():
        k = "copied" if where == "copied" else "ahead"
        a = at[k]
        at[k] += 1
        return (a,), {}

    def read(a):
        assert new.read(lv, a, 1) == src[a * BS:(a + 1) * BS]

    benchmark.pedantic(read, setup=setup, rounds=READS, iterations=1)
    benchmark.extra_info["fetched"] = mg.migration(new, lv)["fetched"]
