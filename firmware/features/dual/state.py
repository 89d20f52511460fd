# Two controllers, one unit: this controller's side of the pair, its settings and its
# readable tables.
#
# Per controller (never mirrored): its role, whether its sibling is in step with it,
# the sequence numbers of its cache slots, its counters.  Per unit (mirrored): the
# cache's dirty contents and the SM tables but LOCAL_TABLES.
from firmware.args import Refused, need_int, need_table, only_keys

MASTER = "master"     # serves the hosts, runs the jobs and the features, destages
STANDBY = "standby"   # holds the mirror of the master's cache and SM; forwards host I/O
JOINING = "joining"   # just booted: asking its sibling which role it has

LETTERS = "AB"
SUB_CTL = 0x6B        # PEER subtype: JSON control messages between the two controllers
# features whose state lives in SM (mirrored) and that run on one controller at a time
DUAL_OK = ("dual", "volcopy", "online_backup")
# SM tables kept per controller: its boot count and warnings; the configuration is
# given to both boards by the rig (the seed's PC/WS talks to both controllers)
LOCAL_TABLES = ("boot", "warnings", "config")
DEFAULTS = {"clean_batch": (16, 1, 64), "join_tries": (50, 1, 1000)}


def settings(cfg):
    """cfg["dual"] checked in full -> {setting: value}; the feature list too."""
    given = need_table(cfg, "dual")
    only_keys(given, list(DEFAULTS), "dual")
    out = {}
    try:
        for k in DEFAULTS:
            d, lo, hi = DEFAULTS[k]
            out[k] = need_int(given, k, lo, hi, d)
    except Refused as e:
        raise Refused(e.status, "dual: %s" % e)
    names = cfg.get("features", [])
    if not names or names[0] != "dual":
        raise Refused("dual: must be the first feature listed (it decides the controller's role "
                      "before the others attach)")
    for name in names:
        if name not in DUAL_OK:
            raise Refused("dual: feature %r does not run on a two-controller unit (features that do: %s)"
                          % (name, ", ".join(DUAL_OK[1:])))
    return out


class Dual:
    """This controller of a two-controller unit."""

    def __init__(self, u, cfg):
        b = u.board.get("dual")
        if not isinstance(b, dict) or b.get("controller") not in (0, 1) or not isinstance(b.get("sibling"), int):
            raise ValueError("the board is not one of a pair (board definition has no dual controller/sibling)")
        self.u = u
        self.cfg = cfg
        self.me = b["controller"]
        self.sib = b["sibling"]       # peer path to the other controller of the unit
        self.role = JOINING
        self.peer_up = False          # the sibling is a standby in step: mirror to it
        self.peer_epoch = 0           # +1 each time the sibling comes in step (a new standby)
        self.seq = 0                  # mirror write sequence (highest seen or issued)
        n = u.cache.n
        self.sseq = [0] * n           # per slot: sequence number of the data in it
        ncl = 2 * n                   # clean notices waiting to go to the sibling
        self.cl_key = [0] * ncl
        self.cl_seq = [0] * ncl
        self.ncl = 0
        self.sm_gen = 1               # bumped before every SM save
        self.sm_sent = 0              # the generation the sibling has
        self.smbuf = None             # an SM image arriving in chunks
        self.live = True
        self.clean_fn = None
        self.nfwd = 0                 # host requests being forwarded to the master
        self.c = {"puts_sent": 0, "puts_applied": 0, "blocks_mirrored": 0, "stale_puts": 0,
                  "put_busy": 0, "cleans_sent": 0, "cleans_applied": 0, "clean_overflow": 0,
                  "sm_pushes": 0, "sm_applied": 0, "takeovers": 0, "suspect_rows": 0,
                  "plogs_sent": 0, "plogs_applied": 0, "plog_repairs": 0, "resyncs": 0,
                  "resync_blocks": 0, "handbacks": 0, "peer_lost": 0, "desyncs": 0, "refused_io": 0,
                  "forwarded": 0, "fwd_busy": 0}

    def detach(self):
        """The unit is reconfigured: its seams go back to a single controller's."""
        u = self.u
        self.live = False
        self.role = "detached"
        u.destage_filter = None
        if self.clean_fn in u.clean_observers:
            u.clean_observers.remove(self.clean_fn)
        u.standby = False

    def in_step(self):
        """The sibling has come in step (a new standby): mirror to it, a new epoch."""
        self.peer_up = True
        self.peer_epoch += 1

    def letter(self):
        return LETTERS[self.me]

    def owns(self, key):
        """store.destage_filter: the master destages every row of the unit; a standby none."""
        return self.role == MASTER

    def info(self):
        d = {"controller": self.letter(), "role": self.role, "peer_up": self.peer_up,
             "sibling_path": self.sib, "seq": self.seq, "dirty": self.u.cache.ndirty,
             "pending_cleans": self.ncl, "destaging": sum(self.u.cache.busy),
             "sm_gen": self.sm_gen, "sm_sent": self.sm_sent}
        d.update(self.c)
        return d

    def cache_rows(self, limit=256):
        """The cache's dirty and pinned slots: [group, block, state, seq]."""
        from firmware.cache import CLEAN
        from firmware.volmap import key_gid, key_glba

        c = self.u.cache
        out = []
        for s in range(c.n):
            if c.key[s] >= 0 and c.state[s] != CLEAN and len(out) < limit:
                out.append([key_gid(c.key[s]), key_glba(c.key[s]), "dirty" if c.state[s] == 1 else "pinned",
                            self.sseq[s]])
        out.sort()
        return out
