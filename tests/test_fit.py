"""The RP2040 fit: the demo on boards/emulator-small.toml (the unix port with a Pico's
buffers in a 256 KiB heap, the firmware as .mpy as `storlab deploy` puts it on a board),
and the reference rig's heap against the board's heap_budget (docs/boards.md, "Where
the heap goes"; the benchmark figures: bench/test_bench_fit.py)."""
import io
import sys
from pathlib import Path

import pytest
from conftest import have_micropython
from rich.console import Console

from host import demo
from host.boards import load_board

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
import fitlib  # noqa: E402

pytestmark = pytest.mark.skipif(not have_micropython(), reason="the micropython binary is not installed")
BOARD = "emulator-small"
KIB = 1024
# rigs/demo.toml as the firmware's configure op gets it
DEMO_CONFIG = {"block_size": 4096, "drives": [{"blocks": 1024}] * 5,
               "groups": [{"id": 0, "level": 5, "members": [0, 1, 2, 3], "chunk": 4, "spares": [4]}],
               "volumes": [{"id": 0, "group": 0, "blocks": 512}, {"id": 1, "group": 0, "start": 512, "blocks": 256}]}


@pytest.fixture(scope="module")
def demo_run():
    con = Console(file=io.StringIO(), width=160)
    r = demo.run(board=BOARD, ops=40, console=con)
    return r, con.file.getvalue()


def test_the_demo_runs_on_the_rp2040_sized_board(demo_run):
    r, out = demo_run
    assert r["board"] == BOARD and r["impl"] == "micropython"
    assert r["rebuild"]["state"] == "done", out
    assert r["bad"] == 0 and r["checked"] > 0, out
    assert "board heap" in out and 0 < r["mem"]["live_peak"] < r["mem"]["heap"]


def test_the_mem_table_tells_where_the_heap_went(demo_run):
    mem = demo_run[0]["mem"]
    assert 0 < mem["imported"] < mem["unit"] < mem["configured"] <= mem["live_peak"] < mem["heap"]
    b = mem["buffers"]
    assert b["cache"] == 8 * 4096 and b["raid_scratch"] == 4 * 4096      # the widest group: 4 members
    assert b["link.workers"] == 2 * 4608 and b["request_slots"] == 16     # no feature: no feature slots
    assert b["link.encoder"] == b["link.decoder"] < 4608 + 64             # one frame each


def test_the_board_loads_the_firmware_as_mpy_and_holds_its_heap(tmp_path):
    board = load_board(BOARD)
    assert board["load"] == "mpy"
    heap = fitlib.size(board["heap"])
    d = fitlib.breakdown(board, DEMO_CONFIG, "mpy", tmp_path)
    assert d["configured"] < heap
    assert not d["features"]          # a rig without features loads none
    assert not any(m.startswith("firmware.features.") for m in d["loaded"])
    bufs = dict(d["buffers"])
    assert bufs["cache (8 slots)"] == 8 * 4096
    assert bufs["raid scratch (4 blocks)"] == 4 * 4096   # the widest group, not max_members


def test_the_reference_rig_within_the_board_budget(demo_run, tmp_path):
    """The largest live heap the firmware's "mem" table saw in the demo (read at its end,
    after the rebuild and the verification; bench/test_bench_fit.py polls it through a
    workload), with the bytecode a frozen firmware keeps in flash taken out, against
    heap_budget."""
    r, _ = demo_run
    peak = r["mem"]["live_peak"]
    board = load_board(BOARD)
    split = fitlib.frozen_split(fitlib.breakdown(board, DEMO_CONFIG, "source", tmp_path))
    assert 0 < split["flash"] < peak
    frozen = peak - split["flash"]
    budget = fitlib.size(board["heap_budget"])
    assert frozen <= budget, ("live peak %.1f KiB from .mpy, %.1f KiB with the firmware frozen (%.1f KiB of "
                              "bytecode in flash): over the %.0f KiB heap_budget"
                              % (peak / KIB, frozen / KIB, split["flash"] / KIB, budget / KIB))


WASM32 = fitlib.have_wasm32()
need_wasm32 = pytest.mark.skipif(WASM32 is not None, reason=WASM32 or "")


@need_wasm32
def test_the_32_bit_port_measures_a_boards_object_sizes(tmp_path):
    """The webassembly port is a 32-bit MicroPython: the same firmware's objects take
    well under the unix port's (64-bit) heap, its byte buffers exactly the same."""
    board = load_board(BOARD)
    d64 = fitlib.breakdown(board, DEMO_CONFIG, "source", tmp_path / "u")
    d32 = fitlib.breakdown(board, DEMO_CONFIG, "source", tmp_path / "w", port="wasm32")
    assert "Emscripten" in d32["port"] and "linux" in d64["port"]
    assert d32["buffers"] == d64["buffers"]
    assert d32["loaded"] == d64["loaded"] or set(d32["loaded"]) ^ set(d64["loaded"]) <= {
        "firmware.core.viper", "firmware.core.pure"}   # no native emitter on wasm: the pure core
    s32, s64 = fitlib.frozen_split(d32), fitlib.frozen_split(d64)
    assert 0.4 < s32["ram"] / s64["ram"] < 0.75
    assert 0 < d32["bare"] < d32["base"] < d32["imported"] < d32["unit"] < d32["configured"]


def test_the_reference_rig_with_two_pairs_within_the_board_budget(tmp_path):
    """rigs/fit.toml: the reference rig with volcopy's two pairs (their bitmaps, the
    feature's modules and tables), run in a 1 MiB heap so that its peak is seen, every
    volume read back; frozen, with a 32-bit board's objects (an RP2040's), against
    heap_budget.  The 64-bit figure (the emulator's own objects) is over the budget and
    given in the message."""
    if WASM32:
        pytest.skip(WASM32)
    board = dict(load_board(BOARD), heap="1M")
    peak, cfg, mem = fitlib.pairs_peak(ROOT / "rigs" / "fit.toml", board, tmp_path / "run", 40)
    split = fitlib.frozen_split(fitlib.breakdown(load_board(BOARD), cfg, "source", tmp_path / "split"))
    assert any("volcopy" in m[0] for m in split["modules"].items())
    frozen64 = peak - split["flash"]
    f32 = fitlib.frozen32(load_board(BOARD), cfg, dict(mem, live_peak=peak), tmp_path / "w")
    assert any("volcopy" in m for m in f32["breakdown"]["loaded"])
    b = mem["buffers"]
    assert b["volcopy.track"] == 4096                    # track_blocks = 1
    # three bitmaps a pair (G, D, U), a bit a track: 0 -> 1 of 256 blocks, 2 -> 3 of 128
    assert b["volcopy.bitmaps"] == 3 * 256 // 8 + 3 * 128 // 8
    budget = fitlib.size(load_board(BOARD)["heap_budget"])
    figures = ("live peak %.1f KiB from .mpy; frozen: %.1f KiB with 64-bit objects (%.1f KiB of bytecode in flash), "
               "%.1f KiB with 32-bit objects (%.1f after configure + %.1f the workload added); heap_budget %.0f KiB"
               % (peak / KIB, frozen64 / KIB, split["flash"] / KIB, f32["peak"] / KIB, f32["configured"] / KIB,
                  f32["workload"] / KIB, budget / KIB))
    assert 0 < f32["peak"] < frozen64, figures
    assert f32["peak"] <= budget, figures
