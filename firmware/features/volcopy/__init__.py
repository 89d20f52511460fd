# Volume copy driven by differential bitmaps (seed 003 E7-E9, E11).
#   engine.py  bitmaps, the write paths of Figs 19 / 28 / 38, the copies as jobs
#   ops.py     management commands and readable tables (checked in full first)
from firmware.features.volcopy import ops
from firmware.features.volcopy.engine import VolCopy


def attach(u):
    vc = VolCopy(u)
    ops.register(u, vc)
    u.write_hooks.append(vc.write_hook)
    u.sm.before_save.append(vc.sync)
    return vc
