# Sparing settings (seed 001), checked at configure (validate) and read at attach
# (Settings): the unit's `sparing = {...}`, every key optional.
#
#   mode "auto" (Fig 6) | "manual" (Fig 7); judgement "per-type" | "combined" (+
#   combined_threshold); thresholds {read_recoverable, write_recoverable,
#   read_unrecoverable, write_unrecoverable}; track_blocks; copy "direct" | "reconstruct"
#   (Fig 26); backup "none" | "auto" (E1, then E2, then E3: the first available) |
#   "group" (E1) | "journal" (E2) | "workdisk" (E3); faulty_only (E5); share (E4);
#   switch_work_volume; work_volumes [{id, drive, start, tracks}]; work_disks [drive, ...];
#   pairs [{primary, secondary, status}] (other T2 rows, shown as they are);
#   start_paused, feedback_paused (the jobs start held: the host steps them).
# A bad setting is refused here with its reason, so a board always boots.
from firmware import volmap
from firmware.args import Refused, is_int, need_bool, need_choice, need_int, need_list, need_table, only_keys

TYPES = ("read_recoverable", "read_unrecoverable", "write_recoverable", "write_unrecoverable")
DEFAULT_TH = {"read_recoverable": 16, "write_recoverable": 16,
              "read_unrecoverable": 4, "write_unrecoverable": 4}
AREA_ORDER = ("group", "journal", "workdisk")          # tried in this order by backup "auto"
BACKUPS = ("none", "auto") + AREA_ORDER
KEYS = ("mode", "judgement", "combined_threshold", "thresholds", "track_blocks", "copy", "backup",
        "faulty_only", "share", "switch_work_volume", "work_volumes", "work_disks", "pairs",
        "start_paused", "feedback_paused")
MAX_TRACK_BLOCKS = 64


class Settings:
    """The checked settings with their defaults (validate() has refused anything else)."""

    def __init__(self, cfg):
        self.mode = cfg.get("mode", "auto")
        self.judgement = cfg.get("judgement", "per-type")
        self.combined_threshold = cfg.get("combined_threshold", 8)
        th = dict(DEFAULT_TH)
        th.update(cfg.get("thresholds", {}))
        self.th = th
        self.tb = cfg.get("track_blocks", 4)
        self.copy = cfg.get("copy", "direct")
        backup = cfg.get("backup", "none")
        self.kinds = AREA_ORDER if backup == "auto" else (() if backup == "none" else (backup,))
        self.faulty_only = cfg.get("faulty_only", False)
        self.share = cfg.get("share", False)
        self.switch_work_volume = cfg.get("switch_work_volume", False)
        self.work_volumes = cfg.get("work_volumes", [])
        self.work_disks = cfg.get("work_disks", [])
        self.pairs = cfg.get("pairs", [])
        self.start_paused = cfg.get("start_paused", False)
        self.feedback_paused = cfg.get("feedback_paused", False)


def _taken(tables):
    """Drives in RAID groups, as members or spares: {drive: group id}."""
    out = {}
    for g in tables["groups"]:
        for d in g["members"] + g["spares"]:
            out[d] = g["id"]
    return out


def _drive(x, what, tables, taken):
    if not is_int(x) or x < 0 or x >= len(tables["drives"]):
        raise Refused("sparing: %s: no drive %r" % (what, x))
    if x in taken:
        raise Refused("sparing: %s: drive %d belongs to group %d" % (what, x, taken[x]))
    return x


def _work_volumes(cfg, tb, tables, taken):
    vids = [v["id"] for v in tables["volumes"]]
    seen = []
    for w in need_list(cfg, "work_volumes", []):
        if not isinstance(w, dict):
            raise Refused("sparing: work_volumes entries are {id, drive, start, tracks}, got %r" % (w,))
        only_keys(w, ("id", "drive", "start", "tracks"), "sparing work volume")
        wid = need_int(w, "id", 0, 65535)
        if wid in vids:
            raise Refused("sparing: work volume %d: volume %d exists" % (wid, wid))
        d = _drive(w.get("drive"), "work volume %d" % wid, tables, taken)
        start = need_int(w, "start", 0, default=0)
        n = need_int(w, "tracks", 1, 65536, default=8)
        end = start + n * tb
        if end > tables["drives"][d]["blocks"]:
            raise Refused("sparing: work volume %d: %d tracks of %d blocks from block %d exceed drive %d's %d blocks"
                          % (wid, n, tb, start, d, tables["drives"][d]["blocks"]))
        for o in seen:
            if o[0] == wid:
                raise Refused("sparing: work volume %d defined twice" % wid)
            if o[1] == d and start < o[3] and o[2] < end:
                raise Refused("sparing: work volumes %d and %d overlap on drive %d" % (o[0], wid, d))
        seen.append((wid, d, start, end))
    return [s[1] for s in seen]


def validate(cfg, tables):
    """Refuse any sparing setting the unit cannot run (firmware/features contract)."""
    sc = need_table(cfg, "sparing")
    only_keys(sc, KEYS, "sparing")
    need_choice(sc, "mode", ("auto", "manual"), "auto")
    need_choice(sc, "judgement", ("per-type", "combined"), "per-type")
    need_int(sc, "combined_threshold", 1, 1 << 30, default=8)
    th = need_table(sc, "thresholds")
    only_keys(th, TYPES, "sparing thresholds")
    for t in th:
        need_int(th, t, 1, 1 << 30)
    tb = need_int(sc, "track_blocks", 1, MAX_TRACK_BLOCKS, default=4)
    need_choice(sc, "copy", ("direct", "reconstruct"), "direct")
    need_choice(sc, "backup", BACKUPS, "none")
    for k in ("faulty_only", "share", "switch_work_volume", "start_paused", "feedback_paused"):
        need_bool(sc, k)
    taken = _taken(tables)
    wdrives = _work_volumes(sc, tb, tables, taken)
    seen = []
    for d in need_list(sc, "work_disks", []):
        _drive(d, "work disk", tables, taken)
        if d in seen or d in wdrives:
            raise Refused("sparing: work disk %d is listed twice or holds a work volume" % d)
        seen.append(d)
    for p in need_list(sc, "pairs", []):
        if not isinstance(p, dict):
            raise Refused("sparing: pairs entries are {primary, secondary, status}, got %r" % (p,))
        only_keys(p, ("primary", "secondary", "status"), "sparing pair")
        need_int(p, "primary", 0, 65535)
        need_int(p, "secondary", 0, 65535)
        if not isinstance(p.get("status", "DUPLEX"), str):
            raise Refused("sparing: a pair's status must be a text, got %r" % (p.get("status"),))
    raid5 = [g["id"] for g in tables["groups"] if g["level"] == 5]
    for v in tables["volumes"]:
        if len(v["extents"]) > 1 and any(volmap.on_group(v, gid) for gid in raid5):
            raise Refused("sparing: volume %d is made of %d extents; a volume on a RAID5 group must be one "
                          "range of its group (the backup areas mirror it track by track)"
                          % (v["id"], len(v["extents"])))
