# Features: the seeds' capabilities, one package each under firmware/features/, plugged
# into a unit through one contract.  docs/architecture.md explains it with examples.
#
# A feature package has
#   validate(cfg, tables)   check its settings (cfg[name], and the unit's drives / groups /
#                           volumes in `tables`); raise ValueError (args.Refused) to refuse.
#                           Runs at configure before anything is saved: a bad setting is
#                           refused there, so a board always boots.
#   attach(u, reg)          build its runtime from SM and register everything it adds
#                           through `reg` (a Registration); return the feature object.
#                           An optional detach() on that object stops its work.
# and registers, through reg:
#   reg.op(name, fn)              management op: async fn(u, cmd) -> (status, reply dict);
#                                 raising args.Refused answers (e.status, {"error": text})
#   reg.table(name, fn)           readable table: fn(u) -> data
#   reg.stage(stage, fn, order=50, lock=None, when=None)   a stage of the I/O path
#                                 (firmware/iopath.py: check, redirect, before_cache,
#                                 cache, after_commit; read_check, read, after_read)
#   reg.peer(subtype, fn)         K_PEER subtype on peer channels: async fn(u, req, payload)
#   reg.peer_kind(kind, fn)       a whole frame kind on peer channels (same signature)
#   reg.drive_observer(fn)        fn(d, op, status) for every drive status
#   reg.cache_observer(fn)        async fn(u, gid, glba, count, data) for every cache write
#   reg.before_save(fn)           fn() before each SM save (put runtime state into SM)
#   reg.frame_observer(fn)        fn(ch, kind, seq, payload) for link frames that are not
#                                 requests (e.g. PEER_RESET)
#   reg.task(coro)                a background task, cancelled when the feature detaches
# Jobs (firmware/jobs.py) are added with u.jobs.add() and persisted by the feature in SM
# (job.persist); trace events with u.trace(event, ...) (shown when tracing is on).
# Names of ops and tables are unique across the core and every feature: a clash is
# refused when the feature attaches.
from firmware import iopath
from firmware.args import Refused

BUILT = ("sparing", "volcopy", "parity_unit", "mirror", "online_backup", "migration", "dual", "remote_copy")
# Where the coming capabilities go (firmware/features/<name>/): not built yet.
PLANNED = ()
CORE_OPS = ("info", "table", "configure", "fail_drive", "rebuild", "job", "flush", "save", "peer_ping",
            "trace", "lv_resolve", "ldev_alloc", "ldev_free")


# Features whose work is local to the unit (drive I/O through the RAID, no requests of
# their own to other units or controllers): they need no request slots beyond the core's.
LOCAL = ("sparing", "volcopy")


def need_requests(names):
    """True if a configured feature sends requests of its own (peer paths, controllers)."""
    for name in names:
        if name not in LOCAL:
            return True
    return False


def load(name):
    """The package of a feature, by name, imported when first configured."""
    if name in BUILT:
        return __import__("firmware.features." + name, None, None, (name,))
    if name in PLANNED:
        raise Refused("feature %r is not built yet" % (name,))
    raise Refused("unknown feature %r (features: %s)" % (name, ", ".join(BUILT)))


def validate(cfg, tables):
    """Every configured feature's settings; raises ValueError."""
    names = cfg.get("features", [])
    if not isinstance(names, list):
        raise Refused("features must be a list of names")
    seen = []
    for name in names:
        if name in seen:
            raise Refused("feature %r listed twice" % (name,))
        seen.append(name)
        load(name).validate(cfg, tables)


class Registration:
    """What one feature attached to a unit; detach() takes all of it back."""

    def __init__(self, u, name):
        self.u = u
        self.name = name
        self.ops = []
        self.tables = []
        self.peers = []
        self.undo = []
        self.tasks = []
        self.obj = None

    def op(self, name, fn):
        u = self.u
        if name in CORE_OPS or name in u.ops:
            raise ValueError("feature %s: op %r already exists" % (self.name, name))

        async def guarded(u, cmd):
            try:
                return await fn(u, cmd)
            except Refused as e:
                return e.status, {"error": str(e)}
        u.ops[name] = guarded
        self.ops.append(name)

    def table(self, name, fn):
        from firmware import mgmt

        u = self.u
        if name in mgmt.TABLES or name in u.table_fns:
            raise ValueError("feature %s: table %r already exists" % (self.name, name))
        u.table_fns[name] = fn
        self.tables.append(name)

    def stage(self, stage, fn, order=50, lock=None, when=None):
        self.u.path.add(stage, self.name, fn, order, lock, when)

    def peer(self, sub, fn):
        from firmware.peer import owner

        u = self.u
        who = owner(sub)
        if who != self.name:
            raise ValueError("feature %s: peer subtype 0x%02x belongs to %s (firmware/peer.py OWNERS)"
                             % (self.name, sub, who))
        if sub in u.peer_handlers:
            raise ValueError("feature %s: peer subtype 0x%02x already taken" % (self.name, sub))
        u.peer_handlers[sub] = fn
        self.peers.append(sub)

    def peer_kind(self, kind, fn):
        from firmware.peer import KIND_KEY

        self.peer(KIND_KEY | kind, fn)

    def _listed(self, lst, fn):
        lst.append(fn)
        self.undo.append((lst, fn))

    def drive_observer(self, fn):
        self._listed(self.u.dka.observers, fn)

    def cache_observer(self, fn):
        self._listed(self.u.cache_observers, fn)

    def plog_observer(self, fn):
        self._listed(self.u.plog_observers, fn)

    def before_save(self, fn):
        self._listed(self.u.sm.before_save, fn)

    def frame_observer(self, fn):
        self._listed(self.u.frame_observers, fn)

    def task(self, coro):
        import asyncio

        t = asyncio.create_task(coro)
        self.tasks.append(t)
        return t

    def detach(self):
        u = self.u
        obj = self.obj
        if obj is not None and hasattr(obj, "detach"):
            obj.detach()
        for t in self.tasks:
            try:
                t.cancel()
            except Exception:
                pass
        for name in self.ops:
            u.ops.pop(name, None)
        for name in self.tables:
            u.table_fns.pop(name, None)
        for sub in self.peers:
            u.peer_handlers.pop(sub, None)
        for lst, fn in self.undo:
            if fn in lst:
                lst.remove(fn)
        u.path.remove_owner(self.name)
        self.ops = []
        self.tables = []
        self.peers = []
        self.undo = []
        self.tasks = []


def attach_all(u):
    """(Re)attach the configured features: every attached one detaches first (its SM
    state may have been replaced by a configure), then each configured one attaches.
    A feature that fails to attach (e.g. no memory for its buffers on a small board) is
    detached again and recorded in u.feature_errors: configure then puts the previous
    configuration back, and at boot the unit refuses host I/O (NOT_READY) rather than
    serve its volumes without the feature."""
    for reg in list(u.regs.values()):
        reg.detach()
    u.regs = {}
    u.features = {}
    u.feature_errors = {}
    u.path = iopath.Path()
    for name in u.sm.t["config"].get("features", []):
        attach_one(u, name)


def attach_one(u, name):
    """Attach one configured feature (reported and skipped if it fails).  A standby
    controller of a dual unit (u.standby) attaches only the features that run there
    (STANDBY = True in their package); the others attach when it takes over."""
    reg = Registration(u, name)
    try:
        mod = load(name)
        if u.standby and not getattr(mod, "STANDBY", False):
            return
        reg.obj = mod.attach(u, reg)
    except Exception as e:
        reg.detach()
        u.feature_errors[name] = "%s: %s" % (type(e).__name__, e)
        u.warn("feature %s not attached: %s" % (name, e))
        return
    u.regs[name] = reg
    u.features[name] = reg.obj
