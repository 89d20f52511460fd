"""Heap figures of the firmware under the MicroPython unix port (bench/mp_fit.py) and
the split between what a board keeps in flash and what must live in RAM.

    d = breakdown(board, config, "source", tmp)   # modules, buffers, after import/configure
    s = frozen_split(d)                            # flash (bytecode) vs RAM per module

docs/boards.md ("Where the heap goes") explains the method.
"""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from host import deploy
from host.boards import FIRMWARE_KEYS, FIRMWARE_ROOT, micropython_binary

KIB = 1024
MP_FIT = Path(__file__).resolve().parent / "mp_fit.py"


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


def breakdown(board: dict, config: dict, load: str, tmp: Path, root: Path = FIRMWARE_ROOT) -> dict:
    """bench/mp_fit.py on the unix port (a 1 MiB heap, so every figure is seen) with
    `board`'s buffers: the firmware of `root` from source (with the frozen split) or
    from .mpy."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    if load == "mpy":   # built for this machine: the unix port runs it (the bytecode is the
        # same for every board; only the viper module's native code differs)
        deploy.build(dict(board, mpy_arch="host"), tmp / "mpy", "u0")
        path, source = tmp / "mpy", ""
    else:
        path, source = root, str(root)
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    args = tmp / "fit_args.json"
    args.write_text(json.dumps({"board": board_json(board), "config": config, "source": source,
                                "state": str(state)}))
    env = dict(os.environ, MICROPYPATH=f".frozen:{path}")
    r = subprocess.run([micropython_binary(), "-X", "heapsize=1M", str(MP_FIT), str(args)],
                       env=env, capture_output=True, text=True, timeout=300, cwd=tmp)
    if r.returncode:
        raise RuntimeError(f"mp_fit ({load}) failed: {r.stderr.strip()[-2000:]}")
    d = json.loads(r.stdout)
    d["load"] = load
    return d


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
