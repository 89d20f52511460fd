# Volume copy driven by differential bitmaps (seed 003 E7-E9, E11), one unit's volumes
# copied into others track by track with one bit per track saying "differs".
#   state.py   settings, the SM tables 1310 / 2310 / 3109 and their bitmaps
#   writes.py  host writes to an original (Figs 19 / 28 / 38): a before_cache stage
#   copies.py  copy a track; the background copies as jobs (Figs 20-22, 29-30, 37, 39-40)
#   checks.py  request checks;  ops.py  the commands;  views.py  readable tables, VcBitmap
# docs/volcopy.md describes the feature.
from firmware.features.volcopy import copies, ops, views, writes
from firmware.features.volcopy.state import VolCopy, settings


def validate(cfg, tables):
    """cfg["volcopy"]: every setting known, an integer in range (or the split policy)."""
    settings(cfg)


def attach(u, reg):
    vc = VolCopy(u, settings(u.sm.t["config"]))
    ops.register(vc, reg)
    views.register(vc, reg)
    reg.stage("before_cache", writes.stage(vc), lock=vc.lock, when=vc.is_orig)
    reg.before_save(vc.sync)
    copies.resume_all(vc)
    return vc
