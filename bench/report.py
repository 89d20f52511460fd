"""The benchmark report and plots, from one pytest-benchmark JSON file.

    python bench/report.py RESULTS.json [OUT_DIR]

Writes OUT_DIR (default: the JSON's folder):
  report.md          every goal with its measured value, the side-by-side ratios, the
                     fio-style table of every I/O job, copy engines, embedded fit
  report.json        the same data: goals, infos, fio jobs (fio's JSON job shape)
  io_throughput.png  MB/s against block size, per board and direction
  io_latency.png     p50 and p99 latency against block size
  io_iodepth.png     link efficiency against queue depth, per board and job, with the goals
  copy_dirty.png     volume-copy resync time against the fraction of dirty tracks
bench/run.py runs the suite and then this.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import fio  # noqa: E402


def load(path) -> dict:
    with open(path) as f:
        return json.load(f)


def _median(b) -> float | None:
    st = b.get("stats") or {}
    return st.get("median")


def goals(benches) -> list[dict]:
    out = []
    for b in benches:
        g = b.get("extra_info", {}).get("goal")
        if g:
            lower = g.get("lower", False)
            met = g["value"] <= g["goal"] if lower else g["value"] >= g["goal"]
            out.append({"name": g["name"], "value": g["value"], "goal": ("<= " if lower else ">= ") + str(g["goal"]),
                        "met": met, "test": label(b)})
    return out


def infos(benches) -> list[dict]:
    return [dict(b["extra_info"]["info"], test=label(b)) for b in benches if b.get("extra_info", {}).get("info")]


def md_table(head, rows) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _us(t):
    return "%.2f" % (t * 1e6) if t is not None else "n/a"


def side_by_side(benches, prefix, impls) -> list[list]:
    """Rows: group, median us per impl, then each ratio our / ref found in extra_info."""
    groups: dict[str, dict] = {}
    for b in benches:
        g = b.get("group") or ""
        if g.startswith(prefix):
            groups.setdefault(g, {})[b["extra_info"].get("impl") or b["params"].get("impl")] = b
    rows = []
    for g in sorted(groups):
        row = [g] + [_us(_median(groups[g][i])) if i in groups[g] else "-" for i in impls]
        ours = groups[g].get(impls[-1]) or {}
        ratios = {k: v for k, v in (ours.get("extra_info") or {}).items() if k.endswith("_ratio")}
        row.append(", ".join("%s %.2fx" % (k[:-6], v) for k, v in sorted(ratios.items())) or "-")
        rows.append(row)
    return rows


def core_rows(benches) -> list[list]:
    groups: dict[str, dict] = {}
    for b in benches:
        g = b.get("group") or ""
        impl = (b.get("params") or {}).get("impl")
        if impl and (g.startswith("xor5-") or g.startswith("parity-")):
            groups.setdefault(g, {})[impl] = b
    rows = []
    for g in sorted(groups, key=lambda x: (x.split("-")[0], _bytes(groups[x]))):
        t = {i: _median(b) for i, b in groups[g].items()}
        r = [g] + [_us(t.get(i)) for i in ("isal", "isal-cffi", "c", "c-raw", "numpy")]
        cc = (t.get("isal-cffi") / t["c-raw"]) if t.get("isal-cffi") and t.get("c-raw") else None
        pc = (t.get("isal") / t["c"]) if t.get("isal") and t.get("c") else None
        r += ["%.2fx" % cc if cc else "-", "%.2fx" % pc if pc else "-"]
        rows.append(r)
    return rows


def _bytes(impls):
    for b in impls.values():
        return b.get("extra_info", {}).get("bytes", 0)
    return 0


def fio_jobs(benches) -> list[dict]:
    return [b["extra_info"]["fio"] for b in benches if "fio" in b.get("extra_info", {})]


def depth_jobs(benches) -> list[dict]:
    """The queue-depth sweep's jobs (test_io_depth), by board, job and depth."""
    js = [b["extra_info"]["fio_depth"] for b in benches if "fio_depth" in b.get("extra_info", {})]
    return sorted(js, key=lambda j: (j["board"], j["rw"], j["bs"], j["iodepth"]))


def depth_rows(js) -> list[list]:
    return [[j["job"], j["iodepth"], j["iops"], j["MBps"], j["p50_us"], j["p99_us"], j["p99_9_us"],
             j["bound_MBps"], j["efficiency"], j.get("board_cpu"), j.get("host_cpu")] for j in js]


def depth_plot(js, out: Path, plt, quick: bool) -> list[str]:
    if not js:
        return []
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[tuple, list] = {}
    for j in js:
        series.setdefault((j["board"], j["job"].split("-", 1)[1].rsplit("-qd", 1)[0]), []).append(j)
    for (board, name), pts in sorted(series.items()):
        pts.sort(key=lambda j: j["iodepth"])
        ax.plot([j["iodepth"] for j in pts], [j["efficiency"] for j in pts], marker="o",
                linestyle="-" if board == "cpython" else "--", label="%s %s" % (board, name))
    for board, goal in (("emulator", 0.7), ("cpython", 0.9)):
        ax.axhline(goal, color="grey", linestyle=":", linewidth=1)
        ax.text(1, goal, " goal %s %.1f" % (board, goal), va="bottom", fontsize=7, color="grey")
    ax.set_xscale("log", base=2)
    depths = sorted({j["iodepth"] for j in js})
    ax.set_xticks(depths, [str(d) for d in depths])
    ax.set_xlabel("queue depth (iodepth)")
    ax.set_ylabel("link efficiency (achieved / link-limited MB/s)")
    ax.set_title("Link efficiency against queue depth")
    ax.set_ylim(0, 1.0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _finish(fig, ax, quick)
    fig.tight_layout()
    fig.savefig(out / "io_iodepth.png", dpi=110)
    plt.close(fig)
    return ["io_iodepth.png"]


def label(b) -> str:
    """A benchmark's row label for people: `test_io[emulator-write-64K]` -> `io (emulator, write, 64K)`."""
    name = b.get("name", "")
    base, _, params = name.partition("[")
    base = base.removeprefix("test_").replace("_", " ")
    params = params.rstrip("]")
    return f"{base} ({params.replace('-', ', ')})" if params else base


QUICK_MARK = "QUICK smoke run: numbers not to be quoted"


def _finish(fig, ax, quick: bool):
    """Every plot: y from zero, and the smoke run's mark when it is one."""
    if ax.get_yscale() == "linear":
        ax.set_ylim(bottom=0)
    if quick:
        ax.set_title(ax.get_title() + "\n(quick run)", color="red")
        fig.text(0.99, 0.01, QUICK_MARK, ha="right", va="bottom", color="red", fontsize=8)


def plots(benches, out: Path, quick: bool = False) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    made = []
    jobs = fio_jobs(benches)
    series: dict[tuple, list] = {}
    for j in jobs:
        series.setdefault((j.get("board", "?"), j["rw"]), []).append(j)
    if series:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for (board, rw), js in sorted(series.items()):
            js.sort(key=lambda j: j["bs"])
            ax.plot([j["bs"] / 1024 for j in js], [j["MBps"] for j in js], marker="o", label="%s %s" % (board, rw))
        ax.set_xscale("log", base=2)
        ticks = sorted({j["bs"] / 1024 for j in jobs})
        ax.set_xticks(ticks, ["%g" % t for t in ticks])
        ax.set_xlabel("block size (KiB)")
        ax.set_ylabel("MB/s (queue depth 1)")
        ax.set_title("Host throughput through a RAID5 unit")
        ax.grid(True, alpha=0.3)
        ax.legend()
        _finish(fig, ax, quick)
        fig.tight_layout()
        fig.savefig(out / "io_throughput.png", dpi=110)
        plt.close(fig)
        made.append("io_throughput.png")
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for (board, rw), js in sorted(series.items()):
            js.sort(key=lambda j: j["bs"])
            x = [j["bs"] / 1024 for j in js]
            line, = ax.plot(x, [j["p50_us"] / 1e3 for j in js], marker="o", label="%s %s p50" % (board, rw))
            ax.plot(x, [j["p99_us"] / 1e3 for j in js], marker="x", linestyle="--", color=line.get_color(),
                    label="%s %s p99" % (board, rw))
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, ["%g" % t for t in ticks])
        ax.set_xlabel("block size (KiB)")
        ax.set_ylabel("completion latency (ms)")
        ax.set_title("Latency against block size")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        _finish(fig, ax, quick)
        fig.tight_layout()
        fig.savefig(out / "io_latency.png", dpi=110)
        plt.close(fig)
        made.append("io_latency.png")
    made += depth_plot(depth_jobs(benches), out, plt, quick)
    resync = [b for b in benches if (b.get("group") or "").startswith("volcopy-resync-")]
    if resync:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        by: dict[str, list] = {}
        for b in resync:
            e = b["extra_info"]
            if _median(b) is not None:
                by.setdefault(e.get("board", "?"), []).append((100.0 * e["dirty"] / e["tracks"], _median(b) * 1e3))
        zero = False
        for board, pts in sorted(by.items()):
            pts.sort()
            zero = zero or any(p <= 0 for p, _ in pts)
            pts = [(p, t) for p, t in pts if p > 0]       # a log axis has no 0
            ax.plot([p for p, _ in pts], [t for _, t in pts], marker="o", label="resync, %s" % board)
        ax.set_xscale("log")
        ax.set_xlabel("dirty tracks (%, log scale)" + ("; 0 % not shown" if zero else ""))
        ax.set_ylabel("copy time (ms)")
        ax.set_title("Volume-copy resync time against dirty fraction")
        ax.grid(True, alpha=0.3, which="both")
        ax.legend()
        _finish(fig, ax, quick)
        fig.tight_layout()
        fig.savefig(out / "copy_dirty.png", dpi=110)
        plt.close(fig)
        made.append("copy_dirty.png")
    return made


def extra_rows(benches, prefix, keys) -> list[list]:
    """One row per benchmark whose group (or, without a group, its name) starts with prefix."""
    rows = []
    for b in benches:
        if (b.get("group") or b["name"]).startswith(prefix):
            e = b.get("extra_info", {})
            rows.append([label(b)] + [e.get(k, "-") for k in keys])
    return rows


def make(path, out=None, quick=None) -> Path:
    data = load(path)
    out = Path(out or Path(path).parent)
    out.mkdir(parents=True, exist_ok=True)
    benches = data.get("benchmarks", [])
    if quick is None:
        quick = bool(os.environ.get("STORLAB_BENCH_QUICK"))
    gs, ins, jobs = goals(benches), infos(benches), fio_jobs(benches)
    pngs = plots(benches, out, quick=quick)
    md = ["# storlab benchmark report", "",
          "From `%s` (%s, %s)%s." % (Path(path).name, data.get("datetime", "?"),
                                    (data.get("machine_info") or {}).get("cpu", {}).get("brand_raw", "?"),
                                    " - QUICK smoke run: numbers not to be quoted" if quick else ""), "",
          "## Goals", "", md_table(["measure", "value", "goal", "met"],
                                   [[g["name"], g["value"], g["goal"], "yes" if g["met"] else "**no**"] for g in gs]),
          "", "## Other figures", "", md_table(["measure", "value"], [[i["name"], i["value"]] for i in ins]), "",
          "## C core XOR against ISA-L (median us; ratio = ISA-L time / ours)", "",
          md_table(["group", "isal (ctypes)", "isal (cffi)", "c (API)", "c-raw", "numpy", "C vs C", "API vs ctypes"],
                   core_rows(benches)), "",
          "## Bitmaps (median us; ratio = their time / ours)", "",
          md_table(["group", "bitarray", "pyroaring", "core", "ratios"],
                   side_by_side(benches, "bitmap-", ["bitarray", "pyroaring", "core"])), "",
          "## viper against pure under MicroPython", "",
          md_table(["op", "viper us", "pure us", "pure / viper"],
                   [[b["extra_info"]["op"], b["extra_info"]["viper_us"], b["extra_info"]["pure_us"],
                     b["extra_info"]["pure_ratio"]] for b in benches if b.get("group") == "viper-vs-pure"]), "",
          "## I/O (fio style, queue depth 1)", "", "```", fio.table(jobs) if jobs else "(none)", "```", "",
          md_table(["test", "bound MB/s", "efficiency", "echo MB/s by frame size"],
                   extra_rows([b for b in benches if "efficiency" in b.get("extra_info", {})], "io-",
                              ["bound_MBps", "efficiency", "echo_MBps"])), "",
          "## I/O against queue depth (link efficiency as above; goals at iodepth 16 and p99 / p50 at 1)", "",
          md_table(["job", "iodepth", "IOPS", "MB/s", "p50 us", "p99 us", "p99.9 us", "bound MB/s", "efficiency",
                    "board CPU", "host CPU"],
                   depth_rows(depth_jobs(benches))), "",
          "## Copy engines", "",
          md_table(["test", "rows", "seconds", "rows/s", "us per row"],
                   extra_rows(benches, "copy-rebuild", ["rows", "seconds", "rows_per_s", "us_per_row"])), "",
          md_table(["test", "board", "tracks", "dirty", "copy ms (median)", "flush ms"],
                   [[label(b), b["extra_info"].get("board"), b["extra_info"].get("tracks"),
                     b["extra_info"].get("dirty"), "%.1f" % (_median(b) * 1e3) if _median(b) else "n/a",
                     b["extra_info"].get("flush_ms")]
                    for b in benches if (b.get("group") or "").startswith("volcopy-resync")]), "",
          md_table(["test", "copy", "idle copy s", "busy copy s", "fg ops/s without", "fg ops/s during"],
                   extra_rows(benches, "test_sparing", ["copy", "idle_copy_s", "busy_copy_s", "fg_ops_per_s_no_copy",
                                                   "fg_ops_per_s_during_copy"])), "",
          "## Embedded fit", "",
          md_table(["test", "load", "live peak KiB", "fits the board's heap"],
                   extra_rows(benches, "fit-heap", ["load", "live_peak_KiB", "fits_board_heap"])), "",
          md_table(["test", "arch", "modules", "total bytes", "reference-rig bytes"],
                   extra_rows(benches, "fit-mpy", ["arch", "modules", "total_bytes", "reference_bytes"])), "",
          "## Plots", ""] + ["![%s](%s)" % (p, p) for p in pngs] + [""]
    (out / "report.md").write_text("\n".join(md))
    (out / "report.json").write_text(json.dumps(
        {"source": str(path), "quick": quick, "goals": gs, "infos": ins,
         "fio": {"fio version": "storlab-bench", "jobs": [b["extra_info"]["fio_json"] for b in benches
                                                          if "fio_json" in b.get("extra_info", {})]}},
        indent=1))
    return out


def summary(out: Path) -> str:
    """The goals as plain text lines (for the terminal)."""
    d = json.loads((out / "report.json").read_text())
    lines = ["%-4s %-80s %8s  goal %s" % ("ok" if g["met"] else "SHORT", g["name"][:80], g["value"], g["goal"])
             for g in d["goals"]]
    return "\n".join(lines)


if __name__ == "__main__":
    o = make(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    print(summary(o))
    print("report: %s" % (o / "report.md"))
