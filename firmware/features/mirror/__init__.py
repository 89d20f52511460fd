# Mirror with sub-host access (seed 002): a main volume on the main unit and its
# mirrored sub volume on the sub unit.  docs/mirror.md describes it.
#   main unit: a host write is stored, then copied to the sub unit over path 202
#              (JOB5 -> JOB2, after_commit), acknowledged only after the sub's answer.
#   sub unit:  a host write is forwarded to the main unit over path 203 first
#              (JOB1 -> JOB3 -> JOB4, a redirect stage); the sub volume is written only
#              by the copy that comes back from the main unit (JOB5 -> JOB2).
# Settings cfg["mirror"]: role "main" | "sub", volume (this unit's), peer_volume (the
# other unit's), out_peer (peer index of this unit's outgoing path: main 202, sub 203).
from firmware.args import Refused, need_choice, need_int, need_table, only_keys
from firmware.features.mirror import chain

KEYS = ("role", "volume", "peer_volume", "out_peer")


def validate(cfg, tables):
    c = need_table(cfg, "mirror")
    only_keys(c, KEYS, "mirror")
    need_choice(c, "role", ("main", "sub"))
    vid = need_int(c, "volume", 0, 65535)
    need_int(c, "peer_volume", 0, 65535)
    need_int(c, "out_peer", 0, 15)
    if not [v for v in tables["volumes"] if v["id"] == vid]:
        raise Refused("mirror: no volume %d" % vid)


def attach(u, reg):
    m = chain.Mirror(u, u.sm.t["config"]["mirror"])
    m.register(reg)
    return m
