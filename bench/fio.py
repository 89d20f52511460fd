"""The benchmark report's fio table: one row per I/O job, from the short summaries
the I/O benchmarks keep (host.fio.JobResult.summary: IOPS, MB/s, latency p50/p90/p99/
p99.9).  The jobs themselves are fio job files (bench/jobs/*.fio) run by host/fio.py,
the code behind `storlab run`; their fio-shaped JSON is in the report's report.json.

Percentiles are fio's: the value below which that fraction of the completions fall
(nearest rank on the sorted latencies).  MB/s is 10^6 bytes per second, as fio's
"MB/s"; bw_bytes is bytes per second.
"""
from __future__ import annotations

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from host.fio import PCTS, SHOWN, percentile  # noqa: E402, F401


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
