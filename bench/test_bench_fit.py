"""Embedded fit of the reference rig (rigs/demo.toml on boards/emulator-small.toml, the
emulator held to an RP2040's buffer budget in a 256 KiB heap):

  heap   the largest live heap (bytes still allocated right after gc.collect(), the
         firmware's "mem" table) seen while a workload runs: fill, random reads and
         writes, a drive failure, the rebuild onto the spare, a read-back.  Once with the
         firmware loaded from source (.py, compiled on the board at import) and once
         precompiled by mpy-cross (.mpy files on the board's filesystem, as `storlab
         deploy` puts them on a board; the unix port loads their bytecode into the heap,
         as a board does for .mpy files that are not frozen into its flash).
         Goal (issue 6): <= 128 KiB.  Measured in a 1 MiB heap (the board's buffers
         otherwise), so that the peak is seen even where it does not fit;
         whether the rig boots, configures and runs in the board's own 256 KiB heap is
         reported beside it (fits_board_heap).
  .mpy   total size of the firmware compiled by mpy-cross for the RP2040 (armv6m) and
         for the emulator (x64): every module a board gets, and those the reference rig
         loads (no feature modules, no pure core).  Goal: <= 256 KiB.

    .venv/bin/pytest bench/test_bench_fit.py --benchmark-only
"""
import os
import random
import threading
import time
from pathlib import Path

import pytest

from host import deploy
from host.boards import EmulatorLauncher, load_board
from host.rig import Rig

QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
ROOT = Path(__file__).resolve().parent.parent
RIG = ROOT / "rigs" / "demo.toml"
BOARD = "emulator-small"
KIB = 1024
# modules only a configured feature loads (firmware/features/), and the reference
# backend (core.use("pure"))


def in_reference(path):
    return "features/" not in path.replace("\\", "/") and Path(path).stem != "pure"


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


class MpyLauncher(EmulatorLauncher):
    """The emulator with the firmware precompiled: .mpy files in the board's folder
    `mpy/`, found before anything of the host's (".frozen" is the binary's own frozen
    modules: asyncio)."""

    def command(self):
        cmd, env = super().command()
        env["MICROPYPATH"] = ".frozen:mpy"
        return cmd, env


def use_mpy(u, board):
    deploy.build(board, u.state_dir / "board" / "mpy", u.name)
    u.launcher = MpyLauncher(u.board, u.state_dir / "board", u.name)


def fits(tmp_path, load):
    """True if the reference rig boots and configures in the board's own heap."""
    rig = Rig.load(RIG, state_dir=tmp_path, board=BOARD)
    u = rig.unit()
    if load == "mpy":
        use_mpy(u, load_board(BOARD))
    try:
        rig.start()
        u.write(0, 0, bytes(u.block_size))
        u.flush()
        return True
    except Exception:
        return False
    finally:
        rig.close()


@pytest.mark.parametrize("load", ["source", "mpy"])
def test_heap_peak(benchmark, tmp_path, load):
    fit = fits(tmp_path / "fit", load)
    board = dict(load_board(BOARD), heap="1M")
    rig = Rig.load(RIG, state_dir=tmp_path / "run", board=board)
    u = rig.unit()
    if load == "mpy":
        use_mpy(u, board)
    peak = [0, 0]
    stop = threading.Event()
    t = {}

    def run():
        rig.start()
        th = threading.Thread(target=poll_mem, args=(u, stop, peak), daemon=True)
        th.start()
        t0 = time.perf_counter()
        try:
            workload(u, 40 if QUICK else 400)
        finally:
            stop.set()
            th.join(timeout=5)
        t["s"] = time.perf_counter() - t0
        m = u.table("mem")
        peak[0] = max(peak[0], m.get("live_peak", 0))

    try:
        benchmark.group = "fit-heap"
        benchmark.pedantic(run, rounds=1, iterations=1)
        info = u.mgmt("info")
    finally:
        rig.close()
    live = peak[0]
    benchmark.extra_info.update({"load": load, "board": BOARD, "rig": "demo", "live_peak_bytes": live,
                                 "fits_board_heap": fit,
                                 "live_peak_KiB": round(live / KIB, 1), "heap_KiB": round(peak[1] / KIB, 1),
                                 "core": info.get("core"),
                                 "goal": {"name": "MicroPython live heap peak, reference rig, firmware from %s (KiB)"
                                          % ("source" if load == "source" else ".mpy"),
                                          "value": round(live / KIB, 1), "goal": 128, "lower": True}})
    print("\nheap peak (%s): %.1f KiB live (measured in a %.0f KiB heap); runs in the board's own heap: %s"
          % (load, live / KIB, peak[1] / KIB, fit))
    assert live > 0


@pytest.mark.parametrize("board", ["rp2040", "emulator-small"])
def test_mpy_size(benchmark, tmp_path, board):
    files = {}

    def build():
        files["f"] = deploy.build(load_board(board), tmp_path / "out", "u0")

    benchmark.group = "fit-mpy"
    benchmark.pedantic(build, rounds=1, iterations=1)
    mods = [f for f in files["f"] if f["path"].endswith(".mpy")]
    total = sum(f["bytes"] for f in mods)
    ref = sum(f["bytes"] for f in mods if in_reference(f["path"]))
    arch = deploy.mpy_arch(load_board(board))
    benchmark.extra_info.update({"board": board, "arch": arch, "modules": len(mods), "total_bytes": total,
                                 "reference_bytes": ref,
                                 "per_module": {f["path"]: f["bytes"] for f in mods},
                                 "goal": {"name": ".mpy size, reference rig modules, %s (KiB)" % arch,
                                          "value": round(ref / KIB, 1), "goal": 256, "lower": True},
                                 "info": {"name": ".mpy size, every firmware module, %s (KiB)" % arch,
                                          "value": round(total / KIB, 1)}})
    print("\n.mpy for %s (%s): %d modules, %.1f KiB in all, %.1f KiB for the reference rig"
          % (board, arch, len(mods), total / KIB, ref / KIB))
    assert total > 0
