# Two controllers, one unit (seed 004): this board is controller A or B of a unit whose
# drives both boards reach; docs/dual.md describes the whole.
#   state.py    roles, settings, the per-controller tables
#   mirror.py   cache blocks, clean notices and the SM image to the sibling
#   roles.py    join at boot, takeover, resync and handback
#   forward.py  host I/O that reaches the standby, served by the master
#   plog.py     the RAID5 parity log's record on the sibling too
# The board definition says which controller this is and which peer path leads to its
# sibling ("dual": {"controller": 0 | 1, "sibling": k}); the rig writes it.
import binascii

from firmware import wire
from firmware.args import Refused, need_int
from firmware.cache import CLEAN, DIRTY
from firmware.features.dual import forward, mirror, plog, roles
from firmware.features.dual.state import MASTER, Dual, settings
from firmware.volmap import key_of

STANDBY = True   # attaches on a standby controller too (features/__init__.py attach_one)


def validate(cfg, tables):
    settings(cfg)


def attach(u, reg):
    d = Dual(u, settings(u.sm.t["config"]))
    mirror.setup(d)
    plog.setup(d)
    d.clean_fn = mirror.on_clean(d)
    reg.cache_observer(mirror.observer(d))
    reg.plog_observer(plog.observer(d))
    reg.peer(plog.SUB_PLOG, lambda u, req, p: plog.on_plog(d, u, req, p))
    reg.before_save(lambda: mirror.bump(d))
    reg.peer(mirror.SUB_PUT, lambda u, req, p: mirror.on_put(d, u, req, p))
    reg.peer(mirror.SUB_CLEAN, lambda u, req, p: mirror.on_clean_frame(d, u, req, p))
    reg.peer(mirror.SUB_SM, lambda u, req, p: mirror.on_sm(d, u, req, p))
    reg.peer(roles.SUB_CTL, lambda u, req, p: roles.on_ctl(d, u, req, p))

    reg.peer(forward.SUB_FWD, lambda u, req, p: forward.on_fwd(d, u, req, p))
    joining, fwd_write, fwd_read = forward.stages(d)
    reg.stage("check", joining, order=0)
    reg.stage("redirect", fwd_write, order=0)
    reg.stage("cache", mirror.pre_mirror(d), order=0, lock=d.wlock)
    reg.stage("after_commit", mirror.pre_done(d), order=0)
    reg.stage("read_check", joining, order=0)
    reg.stage("read", fwd_read, order=0)
    reg.table("dual", lambda u: d.info())
    reg.table("dual_cache", lambda u: d.cache_rows())
    reg.op("dual_block", lambda u, cmd: _block(d, cmd))
    reg.op("dual_takeover", lambda u, cmd: roles.take_over(d))
    reg.op("dual_sync", lambda u, cmd: _sync(d))
    reg.task(roles.join(d))
    reg.task(mirror.cleaner(d))
    reg.task(mirror.sm_pusher(d))
    # last, so a failed attach leaves the unit as it was (d.detach() undoes these)
    u.clean_observers.append(d.clean_fn)
    u.destage_filter = d.owns
    u.standby = True             # until the role is known the other features wait
    return d


async def _block(d, cmd):
    """One block as this controller's cache holds it (the mirror's evidence)."""
    u = d.u
    gid = need_int(cmd, "group", 0, 255)
    glba = need_int(cmd, "block", 0)
    s = u.cache.index.get(key_of(gid, glba), -1)
    if s < 0:
        raise Refused(wire.E_BAD_PARAM, "group %d block %d is not in controller %s's cache" % (gid, glba, d.letter()))
    st = u.cache.state[s]
    return wire.OK, {"state": "clean" if st == CLEAN else ("dirty" if st == DIRTY else "pinned"),
                     "seq": d.sseq[s], "data": binascii.hexlify(u.cache.slot[s]).decode()}


async def _sync(d):
    """Barrier: the SM image and the clean notices are on the sibling when it returns."""
    if d.role != MASTER:
        return wire.E_STATE, {"error": "controller %s is %s" % (d.letter(), d.role)}
    await mirror.flush_notes(d)
    st = await mirror.push_sm(d)
    return st, d.info()
