# Backup port choice (seed 004, 3.7, 3.8): candidates are the live ports of both
# controllers (the standby's: remote.py) whose role in 640 is backup or both; they rank
# by (sequential?, transfer amount 452, I/O count 451, on the heavier controller?, port
# order A0 < A1 < B0 < B1), lightest first.  The seed's example (three
# sequential ports and one random: the random one) needs 453 first; the controller
# comparison of 610/620 is kept as the tie-break (the reading's I-12).
from firmware.features.online_backup.ports import SEQ


def heavier(ob):
    """The controller ("A" / "B") with the heavier load, or None on a tie: the larger
    612, unless both are below transfer_threshold, then the larger 611."""
    a = ob.sm["t610"]
    b = ob.sm["t620"]
    small = a["amount"] < ob.st["transfer_threshold"] and b["amount"] < ob.st["transfer_threshold"]
    ka = (a["io"], a["amount"]) if small else (a["amount"], a["io"])
    kb = (b["io"], b["amount"]) if small else (b["amount"], b["io"])
    if ka == kb:
        return None
    return "A" if ka > kb else "B"


def candidates(ob):
    return [p for p in ob.ports + ob.remote if p.up and ob.role(p.name) in ("backup", "both")]


def weight(p):
    """What "lighter" compares (3.8): a sequential port is heavy, then 452."""
    return (p.load["access"] == SEQ, p.load["amount"])


def rank(ob):
    heavy = heavier(ob)
    out = candidates(ob)
    out.sort(key=lambda p: (p.load["access"] == SEQ, p.load["amount"], p.load["io"], p.name[0] == heavy, p.name))
    return out


def spread(ob, ranked):
    """The ports a backup spreads over when two or more candidates are light (not
    sequential, 452 under spread_threshold), at most max_spread of them; else None."""
    if ob.st["max_spread"] < 2:
        return None
    light = [p for p in ranked if p.load["access"] != SEQ and p.load["amount"] < ob.st["spread_threshold"]]
    if len(light) < 2:
        return None
    return light[:ob.st["max_spread"]]
