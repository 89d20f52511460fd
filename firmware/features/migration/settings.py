# Migration, placement and levelling: the settings (cfg["migration"]), every one checked
# in full when the unit is configured.
from firmware.args import Refused, need_bool, need_int, need_table, only_keys

# setting: (default, lowest, highest)
INTS = {
    "copy_blocks": (4, 1, 64),        # blocks one copy step moves: the unit `step N` counts
    "period_ms": (1000, 1, 1 << 30),  # the levelling period, on the unit's clock (mig_clock)
    "random_cost": (10, 0, 1 << 20),  # modelled busy time of a random command, clock ms
    "seq_cost": (2, 0, 1 << 20),      # ... of a sequential command
    "spread": (30, 1, 1 << 20),       # max - min group utilization that triggers levelling
    "share": (70, 51, 100),           # percent of R or Q that makes an LDEV RANDOM / SEQUENTIAL
    "max_moves": (4, 0, 64),          # moves one levelling check may start
    "pairs": (8, 1, 64),              # E6: the 830 pool holds at least this many (firmware/pairtables.py)
    "groups": (4, 1, 64),             # E6: ... and the 820 pool
    "group_blocks": (16, 1, 1 << 20),  # E6: open systems: group = address // group_blocks (I-5.2)
}
BOOLS = {"auto_level": True}          # level at the end of each period


def settings(cfg):
    """cfg["migration"] -> {setting: value} (raises args.Refused)."""
    given = need_table(cfg, "migration")
    only_keys(given, list(INTS) + list(BOOLS), "migration")
    try:
        out = {k: need_int(given, k, INTS[k][1], INTS[k][2], INTS[k][0]) for k in INTS}
        out.update({k: need_bool(given, k, BOOLS[k]) for k in BOOLS})
        return out
    except Refused as e:
        raise Refused(e.status, "migration: %s" % e)
