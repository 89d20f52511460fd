# Roles of the two controllers: joining at boot, takeover when the master dies,
# resynchronisation and the handback to controller A when it returns (seed 004: "upon
# detecting an unrecoverable error in controller A, an error controller 900 notifies
# controller B ... controller B receives data and management information from the cache
# memory and continues execution"; after recovery the work may be switched back).
#
# join       a booting controller asks its sibling (control message "join").  A master
#            sibling starts mirroring to it, sends it the SM and every dirty block, then
#            answers: the new one is a standby in step.  No answer (the sibling is down)
#            or a sibling that is joining too (both booting; A wins): it becomes master.
# handback   controller A, once in step, asks the master B for its role back: B stops
#            taking host I/O and destaging, puts its features' state into SM, detaches
#            them, lets its destages in flight end, sends its last notices and SM, and
#            answers; A becomes master (features attached from the mirrored SM).
# takeover   the error controller's notice (op dual_takeover, which the harness sends
#            when it kills the master's board): the standby checks that its sibling is
#            gone, becomes master alone, attaches the features (jobs resume from their
#            SM records) and destages the mirrored dirty data.
import asyncio

from firmware import peer, wire
from firmware.cache import CLEAN
from firmware.features.dual import mirror, plog
from firmware.features.dual.state import JOINING, MASTER, STANDBY, SUB_CTL
from firmware.jobs import PAUSED, RUNNING
from firmware.link import sleep_ms
from firmware.volmap import key_gid

SEQ_GAP = 1 << 20     # a new master numbers its writes above anything in flight from the old one
ALIVE_MS = 1000
ROLE_MS = 60000       # a join or a handback waits for a whole resync
HANDOVER_MS = 20000   # a master handing over waits this long for its destages in flight
HANDBACK_RETRY_MS = 200


def attach_others(u):
    """The configured features this role runs: a standby only those whose package says
    STANDBY; a feature attached in its standby form (its object has standby_part, e.g.
    online backup's ports) is attached again whole on a master."""
    from firmware.features import attach_one  # here: the registry imports this package

    for name in u.sm.t["config"].get("features", []):
        reg = u.regs.get(name)
        if reg is not None and not u.standby and getattr(reg.obj, "standby_part", False):
            u.regs.pop(name).detach()
            u.features.pop(name, None)
        if name not in u.regs:
            attach_one(u, name)


def detach_others(u, own):
    for name in list(u.regs):
        if name != own:
            u.regs.pop(name).detach()
            u.features.pop(name, None)


def become_master(d, seq=0):
    u = d.u
    d.seq = max(d.seq, seq) + SEQ_GAP
    d.role = MASTER
    u.standby = False
    attach_others(u)
    for g in u.sm.t["groups"]:      # rebuilds go on from their SM records
        rb = g.get("rebuild")
        job = u.jobs.get("rebuild%d" % g["id"])
        if rb and not (job is not None and job.persist is rb and job.state in (RUNNING, PAUSED)):
            u.start_rebuild_job(g)
    u.destage_ev.set()
    u.trace("dual_master", d.letter(), d.peer_up)


def suspect_rows(u):
    """A takeover: the dead master may have left rows written part-way (a data block on
    its drive, the parity not), and which ones it had in flight died with it.  Every
    slot the mirror holds dirty is destaged with its row's parity recomputed from the
    row's data, as after a reset for the slots that were in flight (else its
    read-modify-write would keep the stale parity: old data read back = new data).
    Not in a degraded group, where it would count the absent member's block of every
    such row as lost (docs/dual.md)."""
    c = u.cache
    n = 0
    for i in range(c.n):
        if c.state[i] != CLEAN:
            g = u.group(key_gid(c.key[i]))
            if g is not None and g["level"] == 5 and not g["failed"]:
                c.resync[i] = 1
                n += 1
    return n


def stop_rebuilds(u, to):
    """A master handing over: its rebuilds stop where they are (the new master goes on
    from the same records; a fresh copy of each, so the old job sees it is not its own)."""
    for g in u.sm.t["groups"]:
        rb = g.get("rebuild")
        if rb:
            g["rebuild"] = dict(rb)
            job = u.jobs.get("rebuild%d" % g["id"])
            if job is not None:
                job.state = "moved"
                job.note = "handed over to controller %s" % to
                job.ev.set()


async def join(d):
    """At boot: find out the role (tries join_tries times while the sibling is joining too)."""
    u = d.u
    for _ in range(d.cfg["join_tries"]):
        if not d.live:
            return
        st, r = await peer.call(u, d.sib, SUB_CTL, {"op": "join", "from": d.me}, timeout=ROLE_MS)
        if st == wire.OK and r.get("role") == MASTER:
            d.role = STANDBY
            d.seq = max(d.seq, r.get("seq", 0))
            d.c["resyncs"] += 1
            u.trace("dual_standby", d.letter())
            if d.me == 0:
                await ask_handback(d)
            return
        if st != wire.OK or d.me == 0:
            become_master(d)
            return
        await sleep_ms(20)      # B: A is booting too and will be master; ask again
    become_master(d)


async def ask_handback(d):
    """Ask the master for the role (again while its destages in flight have not ended)."""
    while d.live and d.role == STANDBY:
        st, r = await peer.call(d.u, d.sib, SUB_CTL, {"op": "handback", "from": d.me}, timeout=ROLE_MS)
        if st == wire.OK:
            d.in_step()
            become_master(d, r.get("seq", 0))
            d.c["handbacks"] += 1
            return
        if not r.get("again"):
            d.u.warn("dual: handback refused: %s" % r.get("error"))
            return
        await sleep_ms(HANDBACK_RETRY_MS)


async def hand_over(d):
    """This master gives the role to its sibling (in step): see the header.  False if
    its destages in flight did not end within HANDOVER_MS (it stays master)."""
    u = d.u
    d.role = STANDBY          # no more host I/O, no new destage
    c = u.cache
    waited = 0
    while any(c.busy):        # destages in flight end (a slot is busy while on its way)
        if waited >= HANDOVER_MS:
            d.role = MASTER
            return False
        await sleep_ms(5)
        waited += 5
    u.standby = True
    u.sm.save()               # the features' runtime state into SM, then they stop
    detach_others(u, "dual")
    attach_others(u)          # their standby forms (online backup's ports)
    stop_rebuilds(u, "AB"[1 - d.me])
    await mirror.flush_notes(d)
    d.sm_sent = 0
    await mirror.push_sm(d, handing_over=True)
    d.c["handbacks"] += 1
    u.trace("dual_standby", d.letter())
    return True


async def take_over(d):
    """Op dual_takeover: (status, reply)."""
    if d.role == MASTER:
        return wire.OK, d.info()
    st, r = await peer.call(d.u, d.sib, SUB_CTL, {"op": "alive"}, timeout=ALIVE_MS)
    if st == wire.OK:
        return wire.E_STATE, {"error": "controller %s is alive (%s): no takeover" % ("AB"[1 - d.me], r.get("role"))}
    if d.role == JOINING:
        return wire.E_STATE, {"error": "controller %s never joined its sibling: its cache is not a mirror"
                              % d.letter()}
    d.peer_up = False
    d.c["takeovers"] += 1
    d.c["suspect_rows"] += suspect_rows(d.u)
    if plog.take_over(d):
        d.c["plog_repairs"] += 1
    become_master(d)
    return wire.OK, d.info()


async def _alive(d):
    return wire.OK, {"role": d.role}


async def _drop(d):
    if d.role == MASTER:
        return wire.E_STATE, {"error": "controller %s is master" % d.letter()}
    mirror.drop_cache(d)
    plog.drop(d)
    return wire.OK, {}


async def _join(d):
    if d.role != MASTER:
        return wire.OK, {"role": d.role}
    st = await mirror.resync(d)
    if st != wire.OK:
        return st, {"error": "resync failed: %s" % wire.status_name(st)}
    return wire.OK, {"role": MASTER, "seq": d.seq}


async def _handback(d):
    if d.role != MASTER or not d.peer_up:
        return wire.E_STATE, {"error": "controller %s is %s%s" % (
            d.letter(), d.role, "" if d.peer_up else " and not in step with its sibling")}
    if not await hand_over(d):
        return wire.E_STATE, {"error": "controller %s: destages still in flight" % d.letter(), "again": True}
    return wire.OK, {"role": STANDBY, "seq": d.seq}


async def _desync(d):
    """The master lost a mirror frame of ours: this mirror is out of step; join again."""
    if d.role != STANDBY:
        return wire.E_STATE, {"error": "controller %s is %s" % (d.letter(), d.role)}
    d.role = JOINING
    d.c["desyncs"] += 1
    d.u.warn("dual: controller %s out of step with its master: joining again" % d.letter())
    asyncio.create_task(join(d))
    return wire.OK, {}


CONTROLS = {"alive": _alive, "drop": _drop, "join": _join, "handback": _handback, "desync": _desync}


async def on_ctl(d, u, req, p):
    """A control message from the sibling (SUB_CTL): {"op": alive | drop | join | handback}."""
    msg = peer.decode(u, req, p)
    if msg is None:
        return
    fn = CONTROLS.get(msg.get("op"))
    if fn is None:
        return peer.answer(u, req, wire.E_BAD_PARAM, {"error": "unknown dual control %r" % (msg.get("op"),)})
    st, r = await fn(d)
    peer.answer(u, req, st, r)
