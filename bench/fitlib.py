"""Heap figures of the firmware under the MicroPython unix port (bench/mp_fit.py) and
the split between what a board keeps in flash and what must live in RAM.

    d = breakdown(board, config, "source", tmp)   # modules, buffers, after import/configure
    s = frozen_split(d)                            # flash (bytecode) vs RAM per module
    f = frozen32(board, config, mem, tmp)          # the frozen peak with 32-bit objects

docs/boards.md ("Where the heap goes") explains the method.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import threading
from pathlib import Path

from host import deploy
from host.boards import FIRMWARE_KEYS, FIRMWARE_ROOT, micropython_binary

KIB = 1024
MP_FIT = Path(__file__).resolve().parent / "mp_fit.py"
WASM = Path(__file__).resolve().parent / "wasm"    # the webassembly port (npm), `make` installs it


def size(text) -> int:
    """'256K' / '2M' / 4096 -> bytes (None: 0)."""
    if text is None:
        return 0
    if isinstance(text, int):
        return text
    t = str(text).strip().upper()
    mult = {"K": KIB, "M": KIB * KIB}.get(t[-1:], 1)
    return int(t[:-1] if mult > 1 else t) * mult


def board_json(board: dict, unit: str = "u0") -> dict:
    d = {k: board[k] for k in FIRMWARE_KEYS if k in board}
    d["unit"] = unit
    return d


def have_wasm32() -> str | None:
    """Why the 32-bit port cannot run here, or None when it can."""
    if not shutil.which("node"):
        return "node is not installed"
    if not (WASM / "node_modules" / "@micropython" / "micropython-webassembly-pyscript").is_dir():
        return "the MicroPython webassembly port is not installed (npm ci --prefix bench/wasm; make does it)"
    return None


def breakdown(board: dict, config: dict, load: str, tmp: Path, root: Path = FIRMWARE_ROOT,
              port: str = "unix") -> dict:
    """bench/mp_fit.py on the unix port (64-bit) or, port="wasm32", on the webassembly
    port (32-bit: a board's object sizes; from source only), in a 1 MiB heap so that
    every figure is seen, with `board`'s buffers: the firmware of `root` from source
    (with the frozen split) or from .mpy."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    if port == "wasm32":
        return _breakdown_wasm32(board, config, tmp, root)
    if load == "mpy":   # built for this machine: the unix port runs it (the bytecode is the
        # same for every board; only the viper module's native code differs)
        deploy.build(dict(board, mpy_arch="host"), tmp / "mpy", "u0")
        path, source = tmp / "mpy", ""
    else:
        path, source = root, str(root)
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    env = dict(os.environ, MICROPYPATH=f".frozen:{path}")
    args = tmp / "fit_args.json"
    args.write_text(json.dumps({"board": board_json(board), "config": config, "source": source,
                                "state": str(state), "boot": boot_modules(env, tmp)}))
    r = subprocess.run([micropython_binary(), "-X", "heapsize=1M", str(MP_FIT), str(args)],
                       env=env, capture_output=True, text=True, timeout=300, cwd=tmp)
    if r.returncode:
        raise RuntimeError(f"mp_fit ({load}) failed: {r.stderr.strip()[-2000:]}")
    d = json.loads(r.stdout)
    d["load"] = load
    return d


def _breakdown_wasm32(board: dict, config: dict, tmp: Path, root: Path) -> dict:
    why = have_wasm32()
    if why:
        raise RuntimeError("the 32-bit measurement cannot run: " + why)
    env = dict(os.environ, MICROPYPATH=f".frozen:{root}")
    args = tmp / "fit_args32.json"
    args.write_text(json.dumps({"board": board_json(board), "config": config,
                                "boot": boot_modules(env, tmp)}))   # the same modules as on the unix port
    r = subprocess.run(["node", str(WASM / "mp_fit.mjs"), str(root), str(args), str(1 << 20)],
                       capture_output=True, text=True, timeout=300, cwd=tmp)
    if r.returncode:
        raise RuntimeError(f"mp_fit (wasm32) failed: {r.stderr.strip()[-2000:]}")
    d = json.loads(r.stdout)
    d["load"] = "source"
    return d


def frozen32(board: dict, config: dict, mem: dict, tmp: Path) -> dict:
    """The frozen peak with a 32-bit board's objects: the firmware after configure on
    the webassembly port, less its bytecode in flash and less mp_fit.py's own code (a
    board's main.py is frozen too), plus what the rig's workload added on the unix port
    (its "mem" table: live_peak - configured; 64-bit objects, so an upper bound)."""
    d = breakdown(board, config, "source", Path(tmp), port="wasm32")
    split = frozen_split(d)
    own = d["base"] - d["bare"]
    workload = max(0, mem["live_peak"] - mem["configured"])
    configured = d["configured"] - own - split["flash"]
    return {"configured": configured, "workload": workload, "peak": configured + workload,
            "flash": split["flash"], "ram": split["ram"], "mp_fit": own, "breakdown": d, "split": split}


def boot_modules(env: dict, cwd: Path) -> list[str]:
    """The firmware modules loaded when the firmware starts (firmware/main.py imports
    the port and the unit), so that mp_fit.py imports no module the board would not."""
    probe = "import sys, firmware.port, firmware.unit; print(' '.join(sorted(sys.modules)))"
    r = subprocess.run([micropython_binary(), "-c", probe], env=env, capture_output=True, text=True,
                       timeout=60, cwd=cwd)
    if r.returncode:
        raise RuntimeError(f"boot probe failed: {r.stderr.strip()[-2000:]}")
    return [m for m in r.stdout.split() if m.startswith("firmware.")]


def frozen_split(d: dict) -> dict:
    """From a source breakdown: per module (import, ram, flash) and the totals; flash =
    what the imports put in the heap beyond the objects the modules' bodies make
    (bytecode, constants, names), which frozen modules keep in flash.  A module
    imported by another's import (or a feature package's submodules) has its import
    counted with that one: the totals hold, per module there is only its RAM."""
    mods = {}
    for name, imp, ram in d["modules"]:
        mods[name] = {"import": imp, "ram": ram,
                      "flash": max(0, imp - ram) if imp is not None and ram is not None else None}
    imp = sum(m["import"] or 0 for m in mods.values())
    ram = sum(m["ram"] or 0 for m in mods.values())
    return {"modules": mods, "flash": max(0, imp - ram), "ram": ram, "import": imp}


def mpy_sizes(board: dict, out: Path) -> dict:
    """path -> bytes of every file `storlab deploy` puts on the board."""
    return {f["path"]: f["bytes"] for f in deploy.build(board, out, "u0")}


def module_path(name: str, files: dict) -> str | None:
    base = name.replace(".", "/")
    for p in (base + ".mpy", base + "/__init__.mpy"):
        if p in files:
            return p
    return None


def table(d: dict, split: dict | None = None) -> str:
    """The breakdown as plain text (printed by the benchmarks)."""
    lines = [f"  base (the interpreter, before the firmware) {d['base'] / KIB:7.1f} KiB"]
    lines.append("  module                          import KiB   frozen: RAM KiB  flash KiB")
    sm = (split or {}).get("modules", {})
    for name, imp, _ram in d["modules"]:
        s = sm.get(name)
        lines.append("  %-32s %9s   %15s  %9s" % (
            name, "-" if imp is None else "%.1f" % (imp / KIB),
            "%.1f" % (s["ram"] / KIB) if s and s["ram"] is not None else "",
            "%.1f" % (s["flash"] / KIB) if s and s["flash"] is not None else ""))
    lines.append(f"  after import {d['imported'] / KIB:.1f} KiB, after Unit() {d['unit'] / KIB:.1f} KiB "
                 f"({d['pending']} request slots), after configure {d['configured'] / KIB:.1f} KiB")
    for what, n in d["buffers"]:
        lines.append(f"    buffer {what:34s} {n / KIB:6.1f} KiB")
    if split:
        lines.append(f"  frozen: {split['flash'] / KIB:.1f} KiB of the modules stay in flash, "
                     f"{split['ram'] / KIB:.1f} KiB of their objects in RAM")
    return "\n".join(lines)


def poll_peak(u, stop, peak, interval=0.05):
    """peak[0] = the largest live_peak of u's "mem" table until stop is set."""
    while not stop.is_set():
        try:
            peak[0] = max(peak[0], u.table("mem").get("live_peak", 0))
        except Exception:   # the unit is busy: ask again
            pass
        stop.wait(interval)


def pairs_peak(rig_path, board: dict, tmp: Path, writes: int) -> tuple[int, dict, dict]:
    """A rig with volcopy (rigs/fit.toml): the two pairs 0 -> 1 and 2 -> 3 created and
    copied, `writes` random block writes to both originals (bits set in both bitmaps),
    a flush and a read-back of every volume: (the live heap peak, the unit's config,
    its "mem" table at the end)."""
    from host.features import volcopy as vc
    from host.rig import Rig

    rig = Rig.load(rig_path, state_dir=tmp, board=board)
    u = rig.unit()
    peak = [0]
    stop = threading.Event()
    try:
        rig.start()
        th = threading.Thread(target=poll_peak, args=(u, stop, peak), daemon=True)
        th.start()
        try:
            vc.pair_create(u, 0, 1)
            vc.pair_create(u, 2, 3)
            u.wait_job("vcgen0", timeout=600)
            u.wait_job("vcgen1", timeout=600)
            rnd = random.Random(2)
            for _ in range(writes):
                v = rnd.choice((0, 2))
                u.write(v, rnd.randrange(120), rnd.randbytes(u.block_size))
            u.flush()
            for v in (0, 1, 2, 3):
                u.read(v, 0, 16)
        finally:
            stop.set()
            th.join(timeout=5)
        mem = u.table("mem")
        peak[0] = max(peak[0], mem["live_peak"])
        return peak[0], u.config, mem
    finally:
        rig.close()
