# Levelling statistics (seed 003 E4): per LDEV, the period's random / sequential reads and
# writes and a modelled busy time; per RAID group, the sum of its LDEVs' utilization.
#
# Counted by two stages of the I/O path, after the data is stored (after_commit) or read
# (after_read), on the LDEV that holds each part of the request.  A command is sequential
# on an LDEV when its LV address starts where the previous command that LDEV served ended,
# random otherwise.  Busy time is a model, not a measurement: random_cost clock ms per
# random command, seq_cost per sequential one; utilization = 100 x busy / period_ms.
#
# The clock is the unit's own and only the harness moves it (op mig_clock): no wall clock
# is read, so a test's workload gives exactly the figures it designed.  Each time the
# clock passes the end of a period, the period's figures become table "mig_period", the
# counters start again and (auto_level) the levelling check runs.  The counters live in SM
# (saved with the next save; a reset may lose the counts since it, never a finished
# period).
from firmware import volmap

RR, RW, SR, SW, BUSY, LAST = 0, 1, 2, 3, 4, 5
NAMES = ("random_read", "random_write", "seq_read", "seq_write")


class Stats:
    def __init__(self, u, cfg, res, t):
        self.u = u
        self.cfg = cfg
        self.res = res           # the LDEV resolver (lvmap.Resolver)
        self.t = t               # SM "migration"
        n = res.count()
        cur = t.get("cur")
        if not isinstance(cur, list) or len(cur) != n:
            cur = [[0, 0, 0, 0, 0, -1] for _ in range(n)]
            t["cur"] = cur
        self.cur = cur
        t.setdefault("clock", 0)
        t.setdefault("period_start", 0)
        t.setdefault("periods", 0)
        t.setdefault("last", None)

    # ---- the stages ----------------------------------------------------------------
    def stage(self, write):
        kinds = (RW, SW) if write else (RR, SR)

        async def count(u, v, lba, n, buf):
            self.count(v, lba, n, kinds)
        return count

    def count(self, v, lba, n, kinds):
        res = self.res
        rnd, seq = kinds
        rc = self.cfg["random_cost"]
        sc = self.cfg["seq_cost"]
        for gid, glba, off, k in volmap.segments(v, lba, n):
            a = lba + off           # LV address of this piece
            while k > 0:
                ld, end = res.at(gid, glba)
                take = end - glba if end - glba < k else k
                if ld >= 0:
                    r = self.cur[ld]
                    if r[LAST] == a:
                        r[seq] += 1
                        r[BUSY] += sc
                    else:
                        r[rnd] += 1
                        r[BUSY] += rc
                    r[LAST] = a + take
                glba += take
                a += take
                k -= take

    # ---- the clock and the period ------------------------------------------------
    def advance(self, ms):
        """Move the clock on by ms; the periods that ended, in order."""
        t = self.t
        t["clock"] += ms
        ended = []
        while t["clock"] - t["period_start"] >= self.cfg["period_ms"]:
            ended.append(self.end_period())
        self.u.sm.dirty = True
        return ended

    def end_period(self):
        t = self.t
        p = self.cfg["period_ms"]
        ldevs = [self.figures(i) for i in range(len(self.cur))]
        last = {"period": t["periods"], "start": t["period_start"], "end": t["period_start"] + p,
                "ldevs": ldevs, "groups": group_utilization(self.res, ldevs)}
        t["periods"] += 1
        self.restart()
        t["period_start"] = last["end"]
        t["last"] = last
        return last

    def restart(self):
        """A new period from now, the counters at zero (reset_stats of I-E4.1)."""
        for r in self.cur:
            for k in range(6):
                r[k] = 0 if k < LAST else -1
        self.t["period_start"] = self.t["clock"]

    def figures(self, i):
        """LDEV i in the running period: its counts, their rates per second of the clock,
        busy time and utilization."""
        r = self.cur[i]
        p = self.cfg["period_ms"]
        d = {"ldev": i, "group": self.res.group(i), "busy": r[BUSY], "utilization": 100 * r[BUSY] // p}
        for k in range(4):
            d[NAMES[k]] = r[k]
            d[NAMES[k] + "_per_s"] = 1000 * r[k] // p
        return d

    def current(self):
        """The running period's counters (table mig_stats)."""
        return {"clock": self.t["clock"], "period_start": self.t["period_start"],
                "period_ms": self.cfg["period_ms"], "ldevs": [self.figures(i) for i in range(len(self.cur))]}

    def moved(self, src, dst):
        """A moved LDEV's counters go with its data (I-E4.1)."""
        a = self.cur[src]
        b = self.cur[dst]
        for k in range(6):
            b[k] = a[k]
            a[k] = 0 if k < LAST else -1


def group_utilization(res, ldevs):
    """[{group, level, utilization}] in group order: the sum over the group's LDEVs."""
    out = []
    for gid, level in res.groups():
        s = 0
        for d in ldevs:
            if d["group"] == gid:
                s += d["utilization"]
        out.append({"group": gid, "level": level, "utilization": s})
    return out
