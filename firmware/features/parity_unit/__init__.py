# Parity storage unit (seed 000, JP 2004-019739): several data storage units (DUs), each
# on its own board, backed up by one parity storage unit (PU) that stores the XOR of
# their parity blocks; any one unit, the PU included, can be rebuilt from the others.
#
# Every unit cuts its storage area (its logical volumes, laid out in declaration order,
# reading I2) into parity blocks of one length L (a multiple of the block size).  Block n
# of every DU belongs to block n of the PU: P[n] = XOR of D_i[n], a unit without block n
# counting as zeros (I4).  The PU keeps its parity in its own volumes, through its cache.
#
# The modules, read in this order:
#   state.py     the unit's settings, SM table "parity" (710-740), geometry, its blocks
#   rows.py      table 740 (Figs 13A-C): ON / OFF, positions, included-block bitmaps
#   exchange.py  the peer paths: PBLOCK frames (Fig 33), control messages, retry, discovery,
#                blocks counted per path and procedure
#   transfer.py  the one block-transfer loop every procedure of the PU runs
#   procs.py     the PU's jobs: build, add, delete, restore, rebuild, recompute; resume
#   ops.py       management ops (Fig 15 / Fig 25 screens, restore request)
#   ctrl.py      control messages between the units
#   frames.py    PBLOCK frames arriving (copies served, deltas applied, blocks restored)
#   stages.py    the DU's stages of the I/O path (Fig 27 write delta) and blocks in doubt
#   monitor.py   the PU's watch over its data units (a dead board found, auto restore)
#
# Settings (cfg["parity_unit"]): role "data" | "parity", unit 1..255, group, form
# 13A | 13B | 13C; PU only: poll_ms, down_after, auto_restore, restore_method.
from firmware import wire
from firmware.args import Refused, need_bool, need_choice, need_int, need_table, only_keys
from firmware.features.parity_unit import ctrl, exchange, frames, monitor, ops, procs, rows, stages
from firmware.features.parity_unit.state import FORMS, ParityUnit

KEYS = ("role", "unit", "group", "form", "poll_ms", "down_after", "auto_restore", "restore_method")
PU_ONLY = ("poll_ms", "down_after", "auto_restore", "restore_method")


def validate(cfg, tables):
    c = need_table(cfg, "parity_unit")
    only_keys(c, KEYS, "parity_unit")
    try:
        _check(c)
    except Refused as e:
        raise Refused(e.status, "parity_unit: %s" % e)


def _check(c):
    role = need_choice(c, "role", ("data", "parity"))
    need_int(c, "unit", 1, 255)
    need_int(c, "group", 0, 255, default=1)
    need_choice(c, "form", FORMS, default="13B")
    need_int(c, "poll_ms", 0, 600000, default=1000)
    need_int(c, "down_after", 1, 1000, default=2)
    need_bool(c, "auto_restore")
    need_choice(c, "restore_method", (1, 2), default=1)
    if role == "data":
        for k in PU_ONLY:
            if k in c:
                raise Refused("%s is a setting of the parity unit (role parity)" % k)


def _bound(pu, fn):
    async def op(u, cmd):
        return await fn(pu, cmd)
    return op


def attach(u, reg):
    cfg = u.sm.t["config"]["parity_unit"]
    pu = ParityUnit(u, reg, cfg)
    for name, fn in ops.OPS:
        reg.op(name, _bound(pu, fn))
    st = pu.st
    reg.table("parity_710", lambda u: st["t710"])
    reg.table("parity_720", lambda u: st["t720"])
    reg.table("parity_730", lambda u: st["t730"])
    reg.table("parity_740", lambda u: rows.view(pu))
    reg.table("parity_740A", lambda u: rows.view(pu, "13A"))
    reg.table("parity_740B", lambda u: rows.view(pu, "13B"))
    reg.table("parity_740C", lambda u: rows.view(pu, "13C"))
    reg.table("parity_unit", lambda u: pu.info())
    reg.table("parity_paths", lambda u: exchange.paths_table(pu))
    stages.register(pu, reg)

    async def on_ctrl(u, req, p):
        await ctrl.on_ctrl(pu, req, p)

    async def on_block(u, req, p):
        await frames.on_block(pu, req, p)

    reg.peer(exchange.CTRL, on_ctrl)
    reg.peer_kind(wire.K_PBLOCK, on_block)
    reg.before_save(pu.sync)
    if pu.role == "parity":
        pu.monitor = monitor.Monitor(pu, cfg)
        reg.table("parity_down", lambda u: pu.monitor.table())
        if pu.monitor.poll_ms:
            reg.task(pu.monitor.run())
        procs.resume(pu)
    else:
        stages.reconcile(pu)
    return pu
