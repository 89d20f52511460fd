"""One command for the whole benchmark suite, its report and its plots:

    python bench/run.py [--quick] [--out DIR] [--compare [ID]] [-k EXPR]
    make bench            (make bench-quick: the smoke run CI does)

Runs `pytest bench --benchmark-only`, saves the results as pytest-benchmark JSON (in
.benchmarks/, named "full" or "quick", for `--benchmark-compare` / `pytest-benchmark
compare`, and as OUT/results.json), then writes OUT/report.md, OUT/report.json and the
plots (bench/report.py).  OUT defaults to reports/bench.  --compare compares this run
with a saved one (the latest, or ID) in pytest-benchmark's table.  Exits with pytest's
status: a goal not met is a finding in the report, not a failure.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
QUICK_FLAGS = ["--quick", "--benchmark-min-rounds=1", "--benchmark-max-time=0.02", "--benchmark-warmup=off",
               "--benchmark-min-time=0.000005"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke mode: small sizes, one round each (CI)")
    ap.add_argument("--out", default=str(ROOT / "reports" / "bench"))
    ap.add_argument("--compare", nargs="?", const="", default=None, metavar="ID",
                    help="compare with a saved run (default: the latest)")
    ap.add_argument("-k", default=None, help="only the benchmarks matching this pytest -k expression")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res = out / "results.json"
    cmd = [sys.executable, "-m", "pytest", str(HERE), "--benchmark-only", "-p", "no:cacheprovider", "-q",
           "--benchmark-json", str(res), "--benchmark-save", "quick" if a.quick else "full",
           "--benchmark-columns=min,median,max,rounds", "--benchmark-sort=name"]
    if a.quick:
        cmd += QUICK_FLAGS
    if a.compare is not None:
        cmd.append("--benchmark-compare" + ("=" + a.compare if a.compare else ""))
    if a.k:
        cmd += ["-k", a.k]
    env = dict(os.environ)
    if a.quick:
        env["STORLAB_BENCH_QUICK"] = "1"
    rc = subprocess.call(cmd, cwd=ROOT, env=env)
    if not res.exists():
        print("bench/run.py: no results written (pytest exit %d)" % rc)
        return rc or 1
    sys.path.insert(0, str(HERE))
    import report

    report.make(res, out, quick=a.quick)
    print(report.summary(out))
    print("report: %s  plots: %s" % (out / "report.md", ", ".join(str(p) for p in sorted(out.glob("*.png")))))
    return rc


if __name__ == "__main__":
    sys.exit(main())
