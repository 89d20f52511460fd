"""fio-style results for the I/O benchmarks: IOPS, bandwidth and completion-latency
percentiles, as JSON shaped like fio's `--output-format=json` job entry and as one
table row, so a user can hold our numbers next to a fio run's.

    job = Job("randread-4k", "read", block_bytes=4096)
    for ...:
        t0 = time.perf_counter_ns(); do_io(); job.add(time.perf_counter_ns() - t0)
    job.finish(elapsed_s)                 # wall time of the whole run (IOPS, MB/s)
    job.json()  -> {"jobname": ..., "read": {"iops", "bw_bytes", "clat_ns": {...}}}
    table([job, ...])  -> text

Percentiles are fio's: the value below which that fraction of the completions fall
(nearest rank on the sorted latencies).  MB/s is 10^6 bytes per second, as fio's
"MB/s"; bw_bytes is bytes per second.
"""
from __future__ import annotations

import math

PCTS = (1.0, 5.0, 10.0, 50.0, 90.0, 95.0, 99.0, 99.9, 99.99)
SHOWN = (50.0, 90.0, 99.0, 99.9)


def percentile(sorted_vals, pct):
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_vals:
        return 0
    k = max(1, math.ceil(pct / 100.0 * len(sorted_vals)))
    return sorted_vals[min(k, len(sorted_vals)) - 1]


class Job:
    def __init__(self, name: str, rw: str, block_bytes: int, **info):
        if rw not in ("read", "write"):
            raise ValueError("rw must be read or write")
        self.name = name
        self.rw = rw
        self.bs = block_bytes
        self.lat_ns: list[int] = []
        self.elapsed_s = 0.0
        self.info = info

    def add(self, lat_ns: int):
        self.lat_ns.append(int(lat_ns))

    def finish(self, elapsed_s: float):
        self.elapsed_s = elapsed_s
        return self

    @property
    def ios(self) -> int:
        return len(self.lat_ns)

    @property
    def iops(self) -> float:
        return self.ios / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def bw_bytes(self) -> float:
        return self.iops * self.bs

    def clat(self) -> dict:
        v = sorted(self.lat_ns)
        n = len(v)
        mean = sum(v) / n if n else 0.0
        sd = math.sqrt(sum((x - mean) ** 2 for x in v) / n) if n else 0.0
        return {"min": v[0] if v else 0, "max": v[-1] if v else 0, "mean": round(mean, 1),
                "stddev": round(sd, 1), "N": n,
                "percentile": {"%.6f" % p: percentile(v, p) for p in PCTS}}

    def json(self) -> dict:
        """One fio job entry (only the direction this job did is filled in)."""
        side = {"io_bytes": self.ios * self.bs, "bw_bytes": round(self.bw_bytes),
                "bw": round(self.bw_bytes / 1024), "iops": round(self.iops, 2),
                "runtime": round(self.elapsed_s * 1e3), "total_ios": self.ios, "clat_ns": self.clat()}
        other = "write" if self.rw == "read" else "read"
        return {"jobname": self.name, "job options": {"rw": self.rw, "bs": str(self.bs), **self.info},
                self.rw: side, other: {"io_bytes": 0, "iops": 0, "total_ios": 0}}

    def summary(self) -> dict:
        """The short form carried in a benchmark's extra_info (and in the report)."""
        p = self.clat()["percentile"]
        d = {"job": self.name, "rw": self.rw, "bs": self.bs, "ios": self.ios, "iops": round(self.iops, 1),
             "MBps": round(self.bw_bytes / 1e6, 3)}
        for q in SHOWN:
            d["p%s_us" % _pname(q)] = round(p["%.6f" % q] / 1e3, 1)
        d.update(self.info)
        return d


def _pname(q: float) -> str:
    return ("%g" % q).replace(".", "_")


HEAD = ("job", "rw", "bs", "ios", "IOPS", "MB/s", "p50 us", "p90 us", "p99 us", "p99.9 us")


def rows(summaries: list[dict]) -> list[tuple]:
    out = []
    for s in summaries:
        out.append((s["job"], s["rw"], _size(s["bs"]), s["ios"], "%.1f" % s["iops"], "%.2f" % s["MBps"],
                    *("%.1f" % s["p%s_us" % _pname(q)] for q in SHOWN)))
    return out


def table(summaries: list[dict]) -> str:
    """A fixed-width text table, one row per job."""
    r = [HEAD] + rows(summaries)
    w = [max(len(str(x[i])) for x in r) for i in range(len(HEAD))]
    lines = ["  ".join(str(x[i]).rjust(w[i]) if i else str(x[i]).ljust(w[i]) for i in range(len(HEAD)))
             for x in r]
    lines.insert(1, "  ".join("-" * k for k in w))
    return "\n".join(lines)


def _size(n: int) -> str:
    for unit, k in (("M", 1 << 20), ("K", 1 << 10)):
        if n >= k and n % k == 0:
            return "%d%s" % (n // k, unit)
    return str(n)
