"""Embedded fit of the reference rig (rigs/demo.toml: RAID5 3+1 and a spare, 4 KiB
blocks, two volumes) on boards/emulator-small.toml, the emulator held to an RP2040's
buffer budget in a 256 KiB heap; docs/boards.md ("Where the heap goes") has the method.

  heap peak    the largest live heap (bytes still allocated right after gc.collect(),
               the firmware's "mem" table) seen while a workload runs: fill, random
               reads and writes, a drive failure, the rebuild onto the spare, a read-back.
               Once with the firmware from source (.py, compiled on the board at import)
               and once from .mpy (as `storlab deploy` puts it on a board's filesystem;
               the unix port loads its bytecode into the heap, as a board does for .mpy
               files that are not frozen).  Measured in a 1 MiB heap so that the peak is
               seen even where it does not fit; whether the rig boots, configures and
               runs in the board's own 256 KiB heap is reported beside it.
               Goal (issue 18): <= 128 KiB (the board's heap_budget).
  frozen       the same peak less the bytecode a board keeps in flash when the modules
               are frozen into its firmware image (bench/fitlib.py: frozen_split): what
               an RP2040 with a frozen firmware needs in RAM.  Goal: <= 128 KiB.
  pairs        the frozen peak of rigs/fit.toml: the reference rig with volcopy's two
               pairs (their bitmaps, the feature's modules and tables).  Goal: <= 128 KiB.
  frozen32     both frozen peaks with a 32-bit board's objects (an RP2040's; the unix
               port is 64-bit): bench/mp_fit.py after configure on the MicroPython
               webassembly port (bench/wasm), less the bytecode in flash and mp_fit.py's
               own code, plus what the workload added on the emulator (64-bit objects:
               an upper bound).  Goal: <= 128 KiB.
  breakdown    where the heap goes, from bench/mp_fit.py: per module (its import, and
               frozen: its RAM and its flash), after import / Unit() / configure, and by
               buffer.  Printed; no goal.
  boards       per board with a heap budget: the frozen peak above, plus what the
               board's own buffers add or save (bench/mp_fit.py after configure, the
               board against emulator-small; a board whose frames cannot carry 4 KiB
               blocks gets its own max_block_size): an estimated peak against the
               board's heap_budget.
  .mpy         size of the firmware compiled by mpy-cross for the RP2040 (armv6m) and
               for the emulator (x64): every file `storlab deploy` puts on a board, and
               the modules the reference rig loads (the firmware modules in sys.modules
               after configure, measured).  Goal: <= 256 KiB.

    .venv/bin/pytest bench/test_bench_fit.py --benchmark-only -s
"""
import os
import random
import sys
import threading
from pathlib import Path

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import fitlib  # noqa: E402

from host import deploy  # noqa: E402
from host.boards import BOARDS_DIR, load_board  # noqa: E402
from host.rig import Rig  # noqa: E402

QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "rigs" / "demo.toml"
PAIRS_RIG = ROOT / "rigs" / "fit.toml"      # the same with volcopy's two pairs
BOARD = "emulator-small"
KIB = 1024
PEAKS = {}     # load -> (live peak, live after configure) of the runs so far (frozen, boards)
PAIRS = {}     # the two-pair rig's run: peak, configured, config (frozen32)
BREAKDOWNS = {}   # emulator-small's .mpy breakdown and frozen split (boards)


def rig_config(tmp_path, board=BOARD, block_size=None):
    rig = Rig.load(RIG, state_dir=tmp_path, board=board)
    cfg = dict(rig.unit().config)
    if block_size:
        cfg["block_size"] = block_size
    return cfg


def budget(board):
    return fitlib.size(board.get("heap_budget") or board.get("heap"))


def poll_mem(u, stop, peak, interval=0.05):
    while not stop.is_set():
        try:
            m = u.table("mem")
            peak[0] = max(peak[0], m.get("live_peak", 0))
            peak[1] = m.get("heap", peak[1])
        except Exception:   # the unit is busy rebuilding: ask again
            pass
        stop.wait(interval)


def workload(u, ops):
    rnd = random.Random(1)
    vols = u.table("volumes")
    bs = u.block_size
    for v in vols:   # fill
        for lba in range(0, v["blocks"], 8 if QUICK else 1):
            u.write(v["id"], lba, rnd.randbytes(bs))
    for _ in range(ops):
        v = rnd.choice(vols)
        lba = rnd.randrange(v["blocks"] - 4)
        if rnd.random() < 0.5:
            u.write(v["id"], lba, rnd.randbytes(4 * bs))
        else:
            u.read(v["id"], lba, 4)
    u.flush()
    u.fail_drive(1)
    u.rebuild(0)
    u.wait_job("rebuild0", timeout=600)
    for v in vols:
        u.read(v["id"], 0, min(v["blocks"], 64))


def on(load, board=BOARD):
    """The board definition with the firmware loaded from source or from .mpy (the
    emulator's `load` setting, host/boards.py)."""
    b = dict(load_board(board) if isinstance(board, str) else board)
    b["load"] = load
    return b


def fits(tmp_path, load):
    """True if the reference rig boots and configures in the board's own heap."""
    rig = Rig.load(RIG, state_dir=tmp_path, board=on(load))
    u = rig.unit()
    try:
        rig.start()
        u.write(0, 0, bytes(u.block_size))
        u.flush()
        return True
    except Exception:
        return False
    finally:
        rig.close()


def run_peak(tmp_path, load):
    """The workload on the reference rig: (live peak, live after configure, fits, core)."""
    fit = fits(tmp_path / "fit", load)
    rig = Rig.load(RIG, state_dir=tmp_path / "run", board=dict(on(load), heap="1M"))
    u = rig.unit()
    peak = [0, 0]
    stop = threading.Event()
    try:
        rig.start()
        m0 = u.table("mem")
        configured = m0.get("configured", m0["live"])   # "configured": the live heap after the last configure
        th = threading.Thread(target=poll_mem, args=(u, stop, peak), daemon=True)
        th.start()
        try:
            workload(u, 40 if QUICK else 400)
        finally:
            stop.set()
            th.join(timeout=5)
        m = u.table("mem")
        peak[0] = max(peak[0], m.get("live_peak", 0))
        core = u.mgmt("info").get("core")
    finally:
        rig.close()
    PEAKS[load] = (peak[0], configured)
    return {"live_peak_bytes": peak[0], "configured_bytes": configured, "fits_board_heap": fit,
            "heap_KiB": round(peak[1] / KIB, 1), "core": core}


@pytest.mark.parametrize("load", ["source", "mpy"])
def test_heap_peak(benchmark, tmp_path, load):
    r = {}
    benchmark.group = "fit-heap"
    benchmark.pedantic(lambda: r.update(run_peak(tmp_path, load)), rounds=1, iterations=1)
    live = r["live_peak_bytes"]
    goal = budget(load_board(BOARD))
    benchmark.extra_info.update(dict(r, load=load, board=BOARD, rig="demo", live_peak_KiB=round(live / KIB, 1),
                                     goal={"name": "MicroPython live heap peak, reference rig, firmware from %s (KiB)"
                                           % ("source" if load == "source" else ".mpy"),
                                           "value": round(live / KIB, 1), "goal": goal // KIB, "lower": True}))
    print("\nheap peak (%s): %.1f KiB live (%.1f KiB after configure; measured in a %.0f KiB heap); "
          "runs in the board's own heap: %s" % (load, live / KIB, r["configured_bytes"] / KIB, r["heap_KiB"],
                                                r["fits_board_heap"]))
    assert live > r["configured_bytes"] > 0


def test_heap_frozen(benchmark, tmp_path):
    """The .mpy peak less the bytecode a frozen firmware keeps in flash."""
    out = {}

    def run():
        if "mpy" not in PEAKS:
            run_peak(tmp_path / "peak", "mpy")
        d = fitlib.breakdown(load_board(BOARD), rig_config(tmp_path / "cfg"), "source", tmp_path / "split")
        out["d"] = d
        out["split"] = fitlib.frozen_split(d)

    benchmark.group = "fit-heap"
    benchmark.pedantic(run, rounds=1, iterations=1)
    peak, configured = PEAKS["mpy"]
    flash = out["split"]["flash"]
    value = peak - flash
    benchmark.extra_info.update({"board": BOARD, "rig": "demo", "load": "frozen (computed)",
                                 "live_peak_KiB": round(value / KIB, 1),
                                 "flash_bytes": flash, "ram_bytes": out["split"]["ram"],
                                 "peak_mpy_bytes": peak, "frozen_peak_bytes": value,
                                 "modules": out["split"]["modules"], "buffers": out["d"]["buffers"],
                                 "goal": {"name": "MicroPython live heap peak, reference rig, firmware frozen "
                                          "(computed: .mpy peak less the bytecode in flash) (KiB)",
                                          "value": round(value / KIB, 1), "goal": budget(load_board(BOARD)) // KIB,
                                          "lower": True}})
    print("\n" + fitlib.table(out["d"], out["split"]))
    print("frozen: %.1f KiB peak = %.1f KiB (.mpy peak) - %.1f KiB (bytecode in flash)"
          % (value / KIB, peak / KIB, flash / KIB))
    assert 0 < flash < peak


def pairs_run(tmp_path):
    """The two-pair rig's run (fitlib.pairs_peak), once per session: (peak, config)."""
    if not PAIRS:
        p, c, mem = fitlib.pairs_peak(PAIRS_RIG, dict(on("mpy"), heap="1M"), tmp_path / "run",
                                      40 if QUICK else 400)
        PAIRS.update(peak=p, configured=mem["configured"], config=c)
    return PAIRS["peak"], PAIRS["config"]


def test_heap_pairs_frozen(benchmark, tmp_path):
    """rigs/fit.toml (the reference rig with volcopy's two pairs): the .mpy peak less the
    bytecode in flash (the volcopy modules' too)."""
    out = {}

    def run():
        out["peak"], cfg = pairs_run(tmp_path)
        out["d"] = fitlib.breakdown(load_board(BOARD), cfg, "source", tmp_path / "split")

    benchmark.group = "fit-heap"
    benchmark.pedantic(run, rounds=1, iterations=1)
    split = fitlib.frozen_split(out["d"])
    value = out["peak"] - split["flash"]
    benchmark.extra_info.update({"board": BOARD, "rig": "fit", "load": "frozen (computed), two pairs",
                                 "live_peak_KiB": round(value / KIB, 1), "peak_mpy_bytes": out["peak"],
                                 "flash_bytes": split["flash"], "frozen_peak_bytes": value,
                                 "features": out["d"]["features"],
                                 "goal": {"name": "MicroPython live heap peak, reference rig with two volcopy pairs "
                                          "(rigs/fit.toml), firmware frozen (computed) (KiB)",
                                          "value": round(value / KIB, 1), "goal": budget(load_board(BOARD)) // KIB,
                                          "lower": True}})
    print("\nreference rig with two pairs: %.1f KiB peak from .mpy, %.1f KiB frozen (%.1f KiB of bytecode in flash)"
          % (out["peak"] / KIB, value / KIB, split["flash"] / KIB))
    assert 0 < split["flash"] < out["peak"]


@pytest.mark.skipif(fitlib.have_wasm32() is not None, reason=fitlib.have_wasm32() or "")
@pytest.mark.parametrize("rig", ["demo", "fit"])
def test_heap_frozen32(benchmark, tmp_path, rig):
    """The frozen peak with a 32-bit board's objects (an RP2040 is 32-bit; the unix port
    here is 64-bit): the firmware after configure on the webassembly port, less the
    bytecode in flash, plus what the workload added on the emulator (64-bit: an upper
    bound).  Runs after test_heap_frozen / test_heap_pairs_frozen (their runs are reused)."""
    out = {}

    def run():
        if rig == "demo":
            if "mpy" not in PEAKS:
                run_peak(tmp_path / "peak", "mpy")
            peak, configured = PEAKS["mpy"]
            cfg = rig_config(tmp_path / "cfg")
        else:
            pairs_run(tmp_path)
            peak, configured, cfg = PAIRS["peak"], PAIRS["configured"], PAIRS["config"]
        out.update(fitlib.frozen32(load_board(BOARD), cfg, {"live_peak": peak, "configured": configured},
                                   tmp_path / "w"))

    benchmark.group = "fit-heap"
    benchmark.pedantic(run, rounds=1, iterations=1)
    value = out["peak"]
    benchmark.extra_info.update({"board": BOARD, "rig": rig, "load": "frozen (computed), 32-bit objects",
                                 "live_peak_KiB": round(value / KIB, 1), "configured_bytes": out["configured"],
                                 "workload_bytes": out["workload"], "flash_bytes": out["flash"],
                                 "ram_bytes": out["ram"], "mp_fit_bytes": out["mp_fit"],
                                 "modules": out["split"]["modules"],
                                 "goal": {"name": "MicroPython live heap peak, %s, firmware frozen, 32-bit objects "
                                          "(KiB)" % ("reference rig" if rig == "demo" else
                                                     "reference rig with two volcopy pairs (rigs/fit.toml)"),
                                          "value": round(value / KIB, 1), "goal": budget(load_board(BOARD)) // KIB,
                                          "lower": True}})
    print("\n%s rig, frozen, 32-bit objects: %.1f KiB peak = %.1f KiB after configure (webassembly port, "
          "less %.1f KiB of bytecode in flash and %.1f KiB of mp_fit.py) + %.1f KiB the workload added (64-bit)"
          % (rig, value / KIB, out["configured"] / KIB, out["flash"] / KIB, out["mp_fit"] / KIB,
             out["workload"] / KIB))
    assert 0 < out["configured"] <= value


@pytest.mark.parametrize("load", ["source", "mpy"])
def test_heap_breakdown(benchmark, tmp_path, load):
    out = {}

    def run():
        out["d"] = fitlib.breakdown(load_board(BOARD), rig_config(tmp_path / "cfg"), load, tmp_path / "b")

    benchmark.group = "fit-breakdown"
    benchmark.pedantic(run, rounds=1, iterations=1)
    d = out["d"]
    benchmark.extra_info.update({"board": BOARD, "load": load, "imported_bytes": d["imported"],
                                 "unit_bytes": d["unit"], "configured_bytes": d["configured"],
                                 "modules": d["modules"], "buffers": d["buffers"], "loaded": d["loaded"],
                                 "info": {"name": "live heap after configure, reference rig, from %s (KiB)" % load,
                                          "value": round(d["configured"] / KIB, 1)}})
    print("\nwhere the heap goes (%s):\n%s" % (load, fitlib.table(d)))
    assert d["imported"] < d["unit"] < d["configured"]


BUDGETED = sorted(p.stem for p in BOARDS_DIR.glob("*.toml") if budget(load_board(p.stem)) and
                  load_board(p.stem).get("kind") in ("serial", "emulator"))


@pytest.mark.parametrize("name", BUDGETED)
def test_board_budget(benchmark, tmp_path, name):
    """Per board: the reference rig's .mpy peak on emulator-small, less the bytecode in
    flash, plus what the board's own buffers add or save after configure (bench/mp_fit.py
    on both boards)."""
    board = load_board(name)
    bs = min(4096, board.get("max_block_size", 4096))
    out = {}

    def run():
        if "mpy" not in PEAKS:
            run_peak(tmp_path / "peak", "mpy")
        if "small" not in BREAKDOWNS:
            small = load_board(BOARD)
            BREAKDOWNS["small"] = fitlib.breakdown(small, rig_config(tmp_path / "c0"), "mpy", tmp_path / "s0")
            BREAKDOWNS["split"] = fitlib.frozen_split(
                fitlib.breakdown(small, rig_config(tmp_path / "c0"), "source", tmp_path / "s1"))
        out["m"] = fitlib.breakdown(board, rig_config(tmp_path / "cfg", block_size=bs), "mpy", tmp_path / "mpy")

    benchmark.group = "fit-boards"
    benchmark.pedantic(run, rounds=1, iterations=1)
    peak = PEAKS["mpy"][0]
    flash = BREAKDOWNS["split"]["flash"]
    delta = out["m"]["configured"] - BREAKDOWNS["small"]["configured"]
    est = peak - flash + delta
    goal = budget(board)
    benchmark.extra_info.update({"board": name, "block_size": bs, "configured_mpy_bytes": out["m"]["configured"],
                                 "buffers_delta_bytes": delta, "flash_bytes": flash, "peak_small_mpy_bytes": peak,
                                 "estimated_peak_bytes": est, "budget_bytes": goal, "buffers": out["m"]["buffers"],
                                 "goal": {"name": "estimated heap peak, frozen firmware, %s (%d-byte blocks) vs its "
                                          "heap_budget (KiB)" % (name, bs),
                                          "value": round(est / KIB, 1), "goal": goal // KIB, "lower": True}})
    print("\n%s: %.1f KiB (.mpy peak on %s) - %.1f KiB (bytecode in flash) %+.1f KiB (its buffers) = %.1f KiB "
          "estimated peak; budget %.0f KiB: %s" % (name, peak / KIB, BOARD, flash / KIB, delta / KIB, est / KIB,
                                                   goal / KIB, "fits" if est <= goal else "OVER"))
    assert est > 0


@pytest.mark.parametrize("board", ["rp2040", "emulator-small"])
def test_mpy_size(benchmark, tmp_path, board):
    files = {}

    def build():
        files["f"] = fitlib.mpy_sizes(load_board(board), tmp_path / "out")
        files["loaded"] = fitlib.breakdown(load_board(board), rig_config(tmp_path / "cfg"), "mpy",
                                           tmp_path / "b")["loaded"]

    benchmark.group = "fit-mpy"
    benchmark.pedantic(build, rounds=1, iterations=1)
    f = files["f"]
    total = sum(f.values())
    paths = [fitlib.module_path(m, f) for m in files["loaded"]]
    ref = sum(f[p] for p in paths if p)
    arch = deploy.mpy_arch(load_board(board))
    benchmark.extra_info.update({"board": board, "arch": arch, "files": len(f), "total_bytes": total,
                                 "modules": len([p for p in f if p.endswith(".mpy")]),
                                 "reference_bytes": ref, "loaded": files["loaded"], "per_file": f,
                                 "goal": {"name": ".mpy size, modules the reference rig loads, %s (KiB)" % arch,
                                          "value": round(ref / KIB, 1), "goal": 256, "lower": True},
                                 "info": {"name": "every file deployed (.mpy, main.py, board.json), %s (KiB)" % arch,
                                          "value": round(total / KIB, 1)}})
    print("\n.mpy for %s (%s): %d files, %.1f KiB in all, %.1f KiB in the %d modules the reference rig loads"
          % (board, arch, len(f), total / KIB, ref / KIB, len(files["loaded"])))
    assert 0 < ref < total
