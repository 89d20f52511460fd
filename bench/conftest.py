"""Benchmarks: run with `pytest bench --benchmark-only` (the default test run skips them),
or all of them with the report and plots: `make bench` / `python bench/run.py [--quick]`.

Pairs of benchmarks in one group (same benchmark.group) are compared at the end of the
session: a table of reference-time / our-time ratios, > 1.0 meaning we are faster.

--quick (or STORLAB_BENCH_QUICK=1): the smoke mode CI runs, every benchmark once on
small sizes, so the suite cannot rot; its numbers are not the ones to quote.
A benchmark states a goal by putting extra_info["goal"] = {"name", "value", "goal"}
(value >= goal is met) and a plain figure by extra_info["info"] = {"name", "value"};
bench/report.py collects them into the report.
"""

import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.append(ROOT)

def pytest_addoption(parser):
    parser.addoption("--quick", action="store_true", help="storlab smoke mode: small sizes, few rounds")


def pytest_configure(config):
    if config.getoption("--quick"):
        os.environ["STORLAB_BENCH_QUICK"] = "1"


def quick():
    return os.environ.get("STORLAB_BENCH_QUICK") == "1"


# group -> {impl: median seconds}, filled by the benchmarks (through the bench_record fixture)
RESULTS = {}


REFS = ("isal", "isal-cffi")


def _record(benchmark, group, impl):
    """Keep the median of a finished benchmark; return {"<ref>_ratio": ref / it} for
    the references (ISA-L) already measured in its group."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: nothing measured
        return {}
    times = RESULTS.setdefault(group, {})
    times[impl] = stats.stats.median
    if impl in REFS:
        return {}
    return {ref.replace("-", "_") + "_ratio": round(times[ref] / times[impl], 3)
            for ref in REFS if times.get(ref)}


@pytest.fixture
def bench_record():
    return _record


def pytest_terminal_summary(terminalreporter):
    rows = []
    for group, times in sorted(RESULTS.items(), key=lambda kv: (kv[0].split("-")[0], _size(kv[0]))):
        for impl, t in sorted(times.items()):
            if impl in REFS or not t:
                continue
            cols = ["%-12s %-6s %10.2f us" % (group, impl, t * 1e6)]
            for ref in REFS:
                if times.get(ref):
                    cols.append("%s %10.2f us  ratio %5.2fx" % (ref, times[ref] * 1e6, times[ref] / t))
            rows.append("  " + "   ".join(cols))
    if rows:
        terminalreporter.write_sep("-", "ISA-L time / our time (> 1.0: ours is faster)")
        for row in rows:
            terminalreporter.write_line(row)


def _size(group):
    tail = group.rsplit("-", 1)[-1]
    mult = {"K": 1 << 10, "M": 1 << 20}.get(tail[-1:], 1)
    try:
        return int(tail.rstrip("KM")) * mult
    except ValueError:
        return 0
