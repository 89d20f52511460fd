# Migration, placement and levelling (seed 003 E2, E3, E4).  docs/migration.md describes it.
#   E2  migrate an LV from an old unit that keeps no tables (it only answers PEER_VREAD),
#       with the host online on the new one: fetch.py
#   E3  place an area of an LV on a chosen RAID group; rearrange LDEVs holding data, host
#       I/O routed by the copy pointer: move.py (lvmap.py remaps)
#   E4  per-LDEV statistics on a harness-driven clock, levelling moves: stats.py, level.py
#   feature.py  the runtime and its jobs;  ops.py  the commands;  views.py  the tables
#   settings.py  cfg["migration"]
from firmware.features.migration import ops, views
from firmware.features.migration.feature import Migration
from firmware.features.migration.settings import settings


def validate(cfg, tables):
    s = settings(cfg)
    bs = cfg.get("block_size", 512)
    if s["copy_blocks"] * bs > 65536:
        from firmware.args import Refused

        raise Refused("migration: copy_blocks of %d blocks of %d bytes exceed the 64 KiB copy buffer"
                      % (s["copy_blocks"], bs))


def attach(u, reg):
    mig = Migration(u, settings(u.sm.t["config"]))
    mig.register(reg)
    ops.register(mig, reg)
    views.register(mig, reg)
    mig.resume_all()
    return mig
