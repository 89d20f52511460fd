"""Host I/O through a unit, fio-style, on the emulator (MicroPython) and on the CPython
board, and the link efficiency against the pty's own limit (bench/linkbench.py has the
definitions).

    .venv/bin/pytest bench/test_bench_io.py --benchmark-only

Rig: one unit, RAID5 of 5 drives (4 data + parity per row), chunk 4 blocks of 4 KiB,
so a full stripe is 64 KiB of data; one volume over the whole group (32 MiB, far
larger than either board's cache); drives in host memory.  The jobs are the sections
of the fio job file bench/jobs/io.fio, run by the same code as `storlab run`
(host/fio.py), one at a time, at queue depth 1:
  write-<bs>     sequential writes of bs (64K: one full stripe each, aligned); the
                 FLUSH that destages the tail is inside the elapsed time
  randread-<bs>  random aligned reads of bs over the volume (cache misses)
Each job's fio summary (IOPS, MB/s, latency p50/p90/p99/p99.9) is in extra_info["fio"]
and its fio-shaped JSON in extra_info["fio_json"].

Efficiency (goal: >= 0.7 on MicroPython, >= 0.9 on CPython) for the 64 KiB full-stripe
write and the 4 KiB random read: achieved MB/s / link-limited MB/s, the bound from the
echo rate of the same board's interpreter at the same frame sizes.
"""
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import linkbench as lb  # noqa: E402

from host import fio  # noqa: E402
from host.boards import load_board  # noqa: E402
from host.rig import Rig  # noqa: E402

JOB_FILE = os.path.join(HERE, "jobs", "io.fio")

QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
BOARDS = ["emulator", "cpython"]
SIZES = {"4K": 4096, "16K": 16384, "64K": 65536}
JOBS = [(rw, bs) for rw in ("write", "randread") for bs in SIZES]
SECONDS = 0.4 if QUICK else 3.0
GOAL = {"emulator": 0.7, "cpython": 0.9}
MEMBERS, CHUNK, BS = 5, 4, 4096
_ECHO = {}
_ECHO_LAT = {}      # board -> the bare round trip of one 4 KiB frame (linkbench.echo_latency)


def echo_rates(board, tmp):
    """{frame wire size: bytes/s} for the frame sizes this board's workloads use."""
    if board not in _ECHO:
        b = load_board(board)
        per = lb.host_frame_blocks(b["max_payload"], BS)
        sizes = sorted({lb.wire_bytes(1 + BS), lb.wire_bytes(lb.wire.DIO_HEAD_LEN + BS),
                        lb.wire_bytes(lb.wire.IO_HEAD_LEN + per * BS)})
        secs = 0.3 if QUICK else 1.5
        _ECHO[board] = {s: lb.echo_rate(b, tmp / ("echo-%d" % s), s, secs)["rate"] for s in sizes}
    return _ECHO[board]


@pytest.fixture(scope="module", params=BOARDS)
def unit(request, tmp_path_factory):
    board = request.param
    tmp = tmp_path_factory.mktemp("io-" + board)
    rates = echo_rates(board, tmp)      # before the rig: the echo has the machine to itself
    _ECHO_LAT[board] = lb.echo_latency(load_board(board), tmp / "echo-lat", lb.wire_bytes(1 + BS),
                                       300 if QUICK else 2000)
    rig = Rig(lb.io_desc(members=MEMBERS, chunk=CHUNK, bs=BS), state_dir=tmp / "rig", board=board).start()
    yield board, rig, rates
    rig.close()


def measure(rig, name, overrides):
    """Run job `name` of the job file once: the fio job, the link bytes both ways, and the
    share of one core the board and this process each used (neither near 1.0: both wait)."""
    u = rig.unit()
    plan = fio.plan(fio.load(JOB_FILE, sections=[name], overrides=overrides), rig)
    tx0, rx0 = lb.link_bytes(u)
    proc = getattr(u.launcher, "proc", None)
    pids = (proc.pid if proc else -1, os.getpid())
    c0 = [cpu_seconds(p) for p in pids]
    job = fio.run(plan, rig).jobs[0]
    c1 = [cpu_seconds(p) for p in pids]
    tx1, rx1 = lb.link_bytes(u)
    cpu = [round((b - a) / job.elapsed_s, 2) if a is not None and b is not None else None for a, b in zip(c0, c1)]
    return {"job": job, "link_bytes": (tx1 - tx0) + (rx1 - rx0), "cpu": cpu}


@pytest.mark.parametrize("rw,size", JOBS, ids=["%s-%s" % j for j in JOBS])
def test_io(benchmark, unit, rw, size):
    board, rig, rates = unit
    u = rig.unit()
    bs = SIZES[size]
    name = "%s-%s" % (rw, size)
    side = "read" if rw == "randread" else "write"
    res = {}
    benchmark.group = "io-%s" % board
    benchmark.pedantic(lambda: res.update(measure(rig, name, {"runtime": SECONDS})), rounds=1, iterations=1)
    job = res["job"]
    assert job.planned.spec.bs == bs and not job.io_errors
    s = job.summary(side, board=board, iodepth=1)
    s["job"] = "%s-%s" % (board, name)
    fio_json = dict(job.json(), jobname=s["job"])
    benchmark.extra_info.update({"board": board, "rw": rw, "bs": bs, "fio": s, "fio_json": fio_json,
                                 "link_MBps": round(res["link_bytes"] / job.elapsed_s / 1e6, 2)})
    bound, what = bound_of(rw, bs, u, rates)
    if bound:
        eff = s["MBps"] / bound
        benchmark.extra_info.update({"bound_MBps": round(bound, 2), "efficiency": round(eff, 3),
                                     "echo_MBps": {str(k): round(v / 1e6, 1) for k, v in rates.items()},
                                     "goal": {"name": "link efficiency, %s, %s" % (what, board),
                                              "value": round(eff, 3), "goal": GOAL[board]}})
    print("\n%s %s: %.1f IOPS %.2f MB/s p50 %.0f us p99 %.0f us%s" % (
        board, name, s["iops"], s["MBps"], s["p50_us"], s["p99_us"],
        "; bound %.2f MB/s, efficiency %.3f" % (bound, s["MBps"] / bound) if bound else ""))
    assert s["ios"] > 0


# ---- queue depth ------------------------------------------------------------------------
# The same rig, three jobs at iodepth 1, 4 and 16.  Goals: link efficiency at iodepth 16
# (>= 0.7 emulator, >= 0.9 CPython) and p99 <= 3 x p50 at iodepth 1.  The figures go to
# extra_info["fio_depth"] (not "fio": the block-size plots stay at queue depth 1).
DEPTH_JOBS = [("randread", "4K"), ("randwrite", "4K"), ("write", "64K")]
DEPTHS = [1, 4, 16]
TAIL_GOAL = 3.0


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (Linux /proc), None elsewhere."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read().rsplit(")", 1)[1].split()
        return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None


def bound_of(rw, bs, u, rates):
    """(link-limited MB/s, what) for the jobs the efficiency is defined for."""
    rate_of = lb.nearest_rate(rates)
    if rw == "write" and bs == 64 * 1024:
        return (lb.bound_mbps(lb.frames_write_stripe(MEMBERS - 1, CHUNK, BS, u.link.max_payload), bs, rate_of),
                "64 KiB full-stripe RAID5 writes")
    if rw == "randread" and bs == 4096:
        return lb.bound_mbps(lb.frames_read_block(BS), bs, rate_of), "4 KiB random reads"
    if rw == "randwrite" and bs == 4096:
        return lb.bound_mbps(lb.frames_write_block(BS), bs, rate_of), "4 KiB random RAID5 writes"
    return None, None


@pytest.mark.parametrize("rw,size,depth", [(rw, size, d) for rw, size in DEPTH_JOBS for d in DEPTHS],
                         ids=["%s-%s-qd%d" % (rw, size, d) for rw, size in DEPTH_JOBS for d in DEPTHS])
def test_io_depth(benchmark, unit, rw, size, depth):
    board, rig, rates = unit
    u = rig.unit()
    bs = SIZES[size]
    name = "%s-%s" % (rw, size)
    side = "read" if rw == "randread" else "write"
    res = {}
    benchmark.group = "iodepth-%s-%s" % (board, name)
    benchmark.pedantic(lambda: res.update(measure(rig, name, {"runtime": SECONDS, "iodepth": depth})),
                       rounds=1, iterations=1)
    job = res["job"]
    assert job.planned.spec.iodepth == depth and not job.io_errors
    s = job.summary(side, board=board, iodepth=depth)
    s["job"] = "%s-%s-qd%d" % (board, name, depth)
    bound, what = bound_of(rw, bs, u, rates)
    s["bound_MBps"] = round(bound, 2)
    s["efficiency"] = round(s["MBps"] / bound, 3)
    s["link_MBps"] = round(res["link_bytes"] / job.elapsed_s / 1e6, 2)
    s["board_cpu"], s["host_cpu"] = res["cpu"]
    benchmark.extra_info.update({"board": board, "rw": rw, "bs": bs, "iodepth": depth, "fio_depth": s,
                                 "fio_json": dict(job.json(), jobname=s["job"])})
    if depth == 16:
        benchmark.extra_info["goal"] = {"name": "link efficiency, %s, %s, iodepth 16" % (what, board),
                                        "value": s["efficiency"], "goal": GOAL[board]}
    elif depth == 1:
        tail = round(s["p99_us"] / s["p50_us"], 2) if s["p50_us"] else 0.0
        benchmark.extra_info["goal"] = {"name": "p99 / p50, %s, %s, iodepth 1" % (what, board),
                                        "value": tail, "goal": TAIL_GOAL, "lower": True}
        e = _ECHO_LAT[board]
        if rw == "randread":      # what the pty and the machine alone give (once per board)
            benchmark.extra_info["info"] = {
                "name": "bare echo round trip of one 4 KiB frame, %s: p50 / p99 us (p99 / p50)" % board,
                "value": "%.0f / %.0f (%.1f)" % (e["p50_us"], e["p99_us"], e["p99_us"] / max(e["p50_us"], 1))}
    print("\n%s %s qd%d: %.1f IOPS %.2f MB/s p50 %.0f us p99 %.0f us p99.9 %.0f us; efficiency %.3f; cpu %s" % (
        board, name, depth, s["iops"], s["MBps"], s["p50_us"], s["p99_us"], s["p99_9_us"], s["efficiency"],
        res["cpu"]))
    assert s["ios"] > 0
