# Board entry point: `micropython -m firmware.main` (emulator, or main.py on a board),
# `python -m firmware.main` (CPython board).  Reads board.json from the working
# folder, keeps its shared memory there (sm.json), and serves the console link.
import asyncio
import json

from firmware.port import Port
from firmware.unit import Unit


def load_board(path="board.json"):
    try:
        with open(path) as f:
            return json.load(f)
    except OSError:
        return {}


def main():
    board = load_board()
    if board.get("core"):
        from firmware import core

        core.use(board["core"])   # e.g. "pure" to run the reference backend
    import gc

    gc.collect()
    imported = gc.mem_alloc() if hasattr(gc, "mem_alloc") else 0   # the firmware's modules loaded
    unit = Unit(board, Port())
    if imported:
        unit.mem_steps["imported"] = imported
    asyncio.run(unit.run())


main()
