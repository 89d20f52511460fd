# The clock the harness controls (seed 004: the disk array controller's timer) and what
# runs on it, at the multiples of each interval a tick passes, in this order:
#   timer check (timer_interval)   table 660: an entry fires once at the first check at
#                                  or after its instant; refused (busy, no port): again
#                                  at the next check
#   switch check (switch_interval) the backup moves to a lighter port (3.8)
#   load clear (load_period)       450/460 and 610/620 start a new period
from firmware.args import Refused, need_choice, need_int

DAY = 86400


def passes(old, new, every):
    """True if a multiple of `every` lies in (old, new]."""
    return new // every > old // every


def arm(now, tod):
    """The first instant >= now whose time of day is tod."""
    at = now - now % DAY + tod
    return at if at >= now else at + DAY


def entry(ob, cmd):
    """A 660 entry from a management command (raises Refused)."""
    kind = need_choice(cmd, "kind", ("backup", "copy"))
    tod = need_int(cmd, "time", 0, DAY - 1)
    e = {"kind": kind, "time": tod, "at": arm(ob.sm["clock"], tod), "fired": None, "last": ""}
    if kind == "backup":
        e["lu"] = need_int(cmd, "lu", 0, 65535)
        e["dest"] = need_int(cmd, "dest", 0, 0xEF, default=0)
    else:
        e["main"] = need_int(cmd, "main", 0, 65535)
        e["sub"] = need_int(cmd, "sub", 0, 65535)
    return e


def timer_check(ob, now):
    for e in ob.sm["t660"]:
        if e["fired"] is not None or e["at"] > now:
            continue
        try:
            if e["kind"] == "backup":
                ob.backup.request(e["lu"], e["dest"], "timer")
            else:
                ob.pairs.duplex(e["main"], e["sub"], "timer")
            e["fired"] = now
            e["last"] = "started"
        except Refused as x:
            e["last"] = "refused: %s" % x     # stays armed


async def tick(ob, secs):
    sm = ob.sm
    st = ob.st
    old = sm["clock"]
    new = old + secs
    sm["clock"] = new
    if passes(old, new, st["timer_interval"]):
        timer_check(ob, new - new % st["timer_interval"])
    if passes(old, new, st["switch_interval"]):
        await ob.backup.switch_check()
    if passes(old, new, st["load_period"]):
        ob.clear_loads()
    ob.clock_ev.set()
    ob.u.sm.dirty = True
