# The management information unit 600 (seed 004, Fig 6-11) in SM, under sm.t["ob"]:
#   clock  the harness-controlled clock (seconds from day 0 00:00:00)
#   allow  identifiers (AL-PAs) of the hosts and storage systems allowed to log in
#   t610 / t620   controller A / B load: io (611), amount (612)
#   t630   backup progress: lu (631), bp (632 backup pointer), cp (633 copy pointer) and
#          the job's own fields (state, dest, ports, pinned, origin, reason, paused)
#   t640   port roles {port: "backup" | "online" | "both"}
#   t650   copy/backup timing: parallel, dest
#   t660   time supervision entries [{kind, time (time of day), at, lu | main+sub, fired}]
#   t670   priority: mode ("backup_first" | "online_first"), chunk (blocks), slice (seconds)
#   pairs  duplexed volumes [{main, sub, state: copying | duplex | split}]
# Records 410-460 and the previous command of each port are RAM 400 (ports.py): lost at
# a reset, like the seed's RAM.
from firmware.args import Refused, is_int, need_choice, need_int, need_list, need_table, only_keys

ROLES = ("backup", "online", "both")
MODES = ("backup_first", "online_first")
SETTINGS = ("controller", "ports", "ports_b", "allow", "roles", "dest", "parallel", "priority", "fc_channel",
            "load_period", "switch_interval", "timer_interval", "max_spread", "spread_threshold",
            "transfer_threshold", "copy_chunk")
IDLE = "idle"


def check_alpa(v, what):
    if not is_int(v) or v < 0x01 or v > 0xEF:
        raise Refused("%s must be an AL-PA in [1, 239], got %r" % (what, v))
    return v


def check_priority(p):
    only_keys(p, ("mode", "chunk", "slice"), "priority")
    mode = need_choice(p, "mode", MODES, default="backup_first")
    chunk = need_int(p, "chunk", 1, 4096, default=4)
    sl = need_int(p, "slice", 1, 86400, default=1)
    return {"mode": mode, "chunk": chunk, "slice": sl}


def port_names(cfg):
    c = cfg.get("controller", "A")
    return [c + str(i) for i in range(len(cfg.get("ports", [])))]


def _alpas(s, key, default):
    ports = need_list(s, key, default=default)
    if not ports or len(ports) > 2:
        raise Refused("online_backup: a controller has 1 or 2 ports, got %d in %s" % (len(ports), key))
    out = []
    for p in ports:
        only_keys(p, ("alpa",), "online_backup." + key)
        out.append(check_alpa(p.get("alpa"), "port alpa"))
    return out


def settings(cfg, letter=None):
    """The feature's settings, checked (raises Refused); defaults filled in.  `letter`
    is the controller this board is (a two-controller unit's board definition says):
    controller B uses `ports_b` (without it, A's AL-PAs: B takes the ports over)."""
    s = need_table(cfg, "online_backup")
    only_keys(s, SETTINGS, "online_backup")
    ctl = letter or need_choice(s, "controller", ("A", "B"), default="A")
    a_alpas = _alpas(s, "ports", [{"alpa": 0x01}, {"alpa": 0x02}])
    b_alpas = _alpas(s, "ports_b", None) if "ports_b" in s else []
    allow = need_list(s, "allow", default=[])
    for a in allow:
        check_alpa(a, "allow entry")
    every = a_alpas + b_alpas + allow
    for a in every:
        if every.count(a) > 1:
            raise Refused("online_backup: AL-PA 0x%02x used twice" % a)
    alpas = b_alpas if ctl == "B" and b_alpas else a_alpas
    names = [ctl + str(i) for i in range(len(alpas))]
    # the sibling controller's ports (a two-controller unit with ports of its own on B):
    # they take part in the backup's port choice (remote.py)
    other = "AB"[1 - "AB".index(ctl)]
    sib = (a_alpas if ctl == "B" else b_alpas) if letter and b_alpas else []
    every_name = ["A%d" % i for i in range(len(a_alpas))] + ["B%d" % i for i in range(max(len(b_alpas), len(a_alpas)))]
    roles = need_table(s, "roles")
    for k in roles:
        if k not in every_name:
            raise Refused("online_backup.roles: no port %r (ports: %s)" % (k, ", ".join(every_name)))
        need_choice(roles, k, ROLES)
    dest = check_alpa(s["dest"], "dest") if "dest" in s else 0
    out = {
        "controller": ctl, "alpas": alpas, "names": names,
        "sibling_alpas": sib, "sibling_names": [other + str(i) for i in range(len(sib))],
        "allow": list(allow), "roles": roles, "dest": dest,
        "parallel": bool(s.get("parallel", False)),
        "priority": check_priority(need_table(s, "priority")),
        "fc_channel": need_int(s, "fc_channel", 0, 14, default=14),
        "load_period": need_int(s, "load_period", 1, 86400, default=60),
        "switch_interval": need_int(s, "switch_interval", 1, 86400, default=10),
        "timer_interval": need_int(s, "timer_interval", 1, 86400, default=1),
        "max_spread": need_int(s, "max_spread", 1, 4, default=1),
        "spread_threshold": need_int(s, "spread_threshold", 0, default=64),
        "transfer_threshold": need_int(s, "transfer_threshold", 0, default=1024),
        "copy_chunk": need_int(s, "copy_chunk", 1, 4096, default=4),
    }
    if out["fc_channel"] + len(alpas) > 16:
        raise Refused("online_backup: fc_channel %d leaves no channel for port %d" % (out["fc_channel"], len(alpas)))
    return out


def fresh_630():
    return {"lu": None, "bp": None, "cp": None, "state": IDLE, "dest": 0, "ports": [], "pinned": None,
            "origin": None, "reason": "", "paused": False, "parallel": False, "main": None, "units": 0}


def init(sm, st):
    """sm.t["ob"], made from the settings on the first boot after a configure."""
    ob = sm.t.get("ob")
    if ob is not None:
        return ob
    roles = {}
    for n in ("A0", "A1", "B0", "B1"):
        roles[n] = st["roles"].get(n, "both")
    ob = {"clock": 0, "allow": list(st["allow"]),
          "t610": {"io": 0, "amount": 0}, "t620": {"io": 0, "amount": 0},
          "t630": fresh_630(), "t640": roles,
          "t650": {"parallel": st["parallel"], "dest": st["dest"]},
          "t660": [], "t670": dict(st["priority"]), "pairs": [],
          "counters": {"backup_reads": 0, "copy_reads": 0, "sent_from_copy": 0, "chunks": 0}}
    sm.t["ob"] = ob
    sm.dirty = True
    return ob
