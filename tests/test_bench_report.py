"""The benchmark report (bench/report.py): rows labelled for people, the smoke run's
mark, plots with y from zero and a log axis for dirty fractions."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import report  # noqa: E402


def bench(name, group, **extra):
    return {"name": name, "group": group, "params": {}, "stats": {"median": 0.002}, "extra_info": extra}


def results(tmp_path):
    fio_row = {"job": "emulator-write-4K", "rw": "write", "bs": 4096, "ios": 10, "iops": 100.0, "MBps": 0.4,
               "p50_us": 1.0, "p90_us": 2.0, "p99_us": 3.0, "p99_9_us": 4.0, "board": "emulator"}
    benches = [bench("test_io[emulator-write-4K]", "io-emulator", fio=fio_row, fio_json={"jobname": "x"},
                     bound_MBps=1.0, efficiency=0.4, echo_MBps={},
                     goal={"name": "link efficiency", "value": 0.4, "goal": 0.7}),
               bench("test_resync_time_follows_the_dirty_tracks[1]", "volcopy-resync-emulator", board="emulator",
                     tracks=100, dirty=1),
               bench("test_resync_time_follows_the_dirty_tracks[100]", "volcopy-resync-emulator", board="emulator",
                     tracks=100, dirty=100)]
    p = tmp_path / "results.json"
    p.write_text(json.dumps({"benchmarks": benches, "datetime": "now"}))
    return p


def test_rows_are_labelled_for_people_and_a_smoke_run_says_so(tmp_path):
    out = report.make(results(tmp_path), tmp_path / "out", quick=True)
    md = (out / "report.md").read_text()
    assert "| io (emulator, write, 4K) | 1.0 | 0.4 |" in md
    assert "| resync time follows the dirty tracks (100) | emulator | 100 | 100 |" in md
    assert "test_io[" not in md and "QUICK smoke run" in md
    assert json.loads((out / "report.json").read_text())["goals"][0]["test"] == "io (emulator, write, 4K)"


def test_plots_start_at_zero_with_a_log_axis_for_dirty_fractions_and_the_quick_mark(tmp_path, monkeypatch):
    plt = pytest.importorskip("matplotlib.pyplot")
    seen = {}
    save = plt.Figure.savefig

    def keep(fig, path, *a, **kw):
        ax = fig.axes[0]
        seen[Path(path).name] = (ax.get_ylim()[0], ax.get_xscale(), [t.get_text() for t in fig.texts])
        return save(fig, path, *a, **kw)
    monkeypatch.setattr(plt.Figure, "savefig", keep)
    report.make(results(tmp_path), tmp_path / "out", quick=True)
    assert seen["io_throughput.png"][0] == 0 and seen["io_latency.png"][0] == 0
    assert seen["copy_dirty.png"][1] == "log" and seen["copy_dirty.png"][0] == 0
    assert all(report.QUICK_MARK in s[2] for s in seen.values())
