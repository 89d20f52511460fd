# Parity storage unit (seed 000): the PU's watch over its data units (program 840's
# failure detection, S7000 / S8000, done from the PU's side).  Every poll_ms the PU asks
# each member "who" over its peer path; a unit that has not answered down_after polls in a
# row (its board is dead, or its path is cut: PATH_DOWN or silence) is reported down (a
# warning and a row of table parity_down: which unit, since when, why).  When it answers
# again the PU, if the rig says so (auto_restore), restores it by itself with
# restore_method (Fig 28 method 1 or Figs 30-31 method 2); otherwise it reports it back
# and the operator decides (parity_restore on the unit if its data was lost).
import time

from firmware import wire
from firmware.args import Refused
from firmware.clock import ticks_ms
from firmware.features.parity_unit import exchange, ops, rows
from firmware.link import sleep_ms


def now():
    t = time.gmtime(int(time.time()))
    return "%04d-%02d-%02d %02d:%02d:%02d UTC" % t[:6]


class Monitor:
    def __init__(self, pu, cfg):
        self.pu = pu
        self.poll_ms = cfg.get("poll_ms", 1000)
        self.down_after = cfg.get("down_after", 2)
        self.auto = cfg.get("auto_restore", False)
        self.method = cfg.get("restore_method", 1)
        self.polls = 0
        self.t0 = ticks_ms()
        self.down = pu.st.setdefault("down", {})     # str(unit) -> its row (saved in SM)

    def table(self):
        return [self.down[k] for k in sorted(self.down)]

    def waits_restore(self, unit):
        """A unit found dead whose restoration is to come: its copies are not to be trusted."""
        r = self.down.get(str(unit))
        return bool(self.auto and r and r["state"] == "down")

    async def run(self):
        while True:
            await sleep_ms(self.poll_ms)
            for unit in rows.members(self.pu):
                await self.poll(unit)
            self.polls += 1

    async def poll(self, unit):
        pu = self.pu
        k = pu.peers.get(unit)
        if k is None:
            k = await exchange.peer(pu, unit)
        st = wire.E_PATH_DOWN
        if k >= 0:
            st, r = await exchange.ctrl(pu, k, {"m": "who"}, min(self.poll_ms, 1000))
            if st == wire.OK and r.get("unit") != unit:
                st = wire.E_STATE
        if st == wire.OK:
            await self.seen(unit)
        else:
            self.missed(unit, st)

    def missed(self, unit, st):
        pu = self.pu
        key = str(unit)
        r = self.down.get(key)
        if r is None or r["state"] not in ("down", "missing"):
            r = self.down[key] = {"unit": unit, "state": "missing", "missed": 0, "since": None,
                                  "since_ms": None, "status": None, "restore": None}
        r["missed"] += 1
        r["status"] = wire.status_name(st)
        if r["state"] == "missing" and r["missed"] >= self.down_after:
            r["state"] = "down"
            r["since"] = now()
            r["since_ms"] = ticks_ms() - self.t0
            pu.save()
            pu.u.warn("parity unit: data unit %d is down since %s (%d polls unanswered, %s)"
                      % (unit, r["since"], r["missed"], r["status"]))

    async def seen(self, unit):
        pu = self.pu
        key = str(unit)
        r = self.down.get(key)
        if r is None:
            return
        if r["state"] == "missing":          # one poll lost, no more
            del self.down[key]
            return
        if r["state"] == "restoring":
            rs = pu.st["restore"]
            if rs is None or rs["unit"] != unit:
                last = pu.st.get("last_restore") or {}
                r["state"] = "restored" if last.get("unit") == unit else "down"
                pu.save()
            return
        if r["state"] != "down":
            return
        if not self.auto:
            r["state"] = "back"
            pu.save()
            pu.u.warn("parity unit: data unit %d answers again (down since %s); run parity_restore on it if "
                      "its data was lost" % (unit, r["since"]))
            return
        await self.restore(unit, r)

    async def restore(self, unit, r):
        """auto_restore: the unit is told it is being restored, then the PU's job starts."""
        pu = self.pu
        s, reply = await exchange.ctrl(pu, pu.peers[unit], {"m": "lost", "method": self.method})
        if s != wire.OK:
            return                           # asked again at the next poll
        try:
            _, d = ops.start_restore(pu, unit, self.method, False)
        except Refused as e:
            pu.u.warn("parity unit: data unit %d cannot be restored yet: %s" % (unit, e))
            return
        r["state"] = "restoring"
        r["restore"] = d["job"]
        pu.save()
        pu.u.warn("parity unit: data unit %d answers again (down since %s): restoration by method %d started"
                  % (unit, r["since"], self.method))
