"""Online backup (seed 004): backup throughput while online I/O goes on, for each
priority mode of table 670, against the backup alone (a ratio), and what the backup
costs the online I/O (p50 / p99 latency against the online I/O alone).

One unit on the emulator (rigs/online_backup.toml's layout, bigger volumes), a tape
device on the FC fabric.  The backup of LU 2 is pinned to port A1; a host on port A0
keeps reading and writing LU 0 (random 4-block commands, half writes) for as long as
the backup runs.  online_first needs the harness clock to move: a thread ticks it by one
second every TICK_MS of wall time, so its slice is slice x TICK_MS of real time.

    .venv/bin/pytest bench/test_bench_online_backup.py --benchmark-only
"""
import os
import random
import threading
import time

import pytest

from firmware import wire
from host.features import online_backup as ob
from host.features.tape import TapeDrive
from host.rig import Rig

BS = 512
QUICK = bool(os.environ.get("STORLAB_BENCH_QUICK"))
BLOCKS = 128 if QUICK else 512
ROUNDS = 1 if QUICK else 3
CHUNK = 16
TICK_MS = 2
MODES = {"alone": None, "backup_first": {"mode": "backup_first", "chunk": CHUNK, "slice": 1},
         "online_first": {"mode": "online_first", "chunk": CHUNK, "slice": 1}}
A0, A1, TAPE, HOST = 0x01, 0x02, 0x20, 0x10
RESULTS = {}      # mode -> median backup seconds
LAT = {}          # mode -> (p50, p99) of the online commands, ms


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


@pytest.fixture(scope="module")
def unit(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ob-bench")
    ud = {"name": "da", "board": "emulator", "drives": 2, "drive_blocks": 2 * BLOCKS + 64, "backing": "memory",
          "features": ["online_backup"],
          "online_backup": {"ports": [{"alpa": A0}, {"alpa": A1}], "allow": [HOST], "dest": TAPE},
          "group": [{"id": 0, "level": 1, "members": [0, 1]}],
          "volume": [{"id": 0, "group": 0, "blocks": 64}, {"id": 2, "group": 0, "start": 64, "blocks": BLOCKS}]}
    rig = Rig({"rig": {"name": "obbench", "block_size": BS}, "unit": [ud]}, state_dir=tmp).start()
    f = ob.FcFabric(rig)
    tape = f.add(ob.TapeDevice(TAPE, TapeDrive(tmp / "tape"), accept=[A0, A1], block_size=BS))
    h = f.add(ob.FcHost(HOST))
    u = rig.unit()
    assert h.login(A0) == wire.OK and h.login(A1) == wire.OK
    data = random.Random(1).randbytes(BLOCKS * BS)
    for lba in range(0, BLOCKS, 16):
        assert h.write(A1, 2, lba, data[lba * BS:(lba + 16) * BS]) == wire.OK
    yield u, h, tape, data
    rig.close()


class Online:
    """Random 4-block reads and writes of LU 0 on port A0 until stopped; latencies in s."""

    def __init__(self, h):
        self.h = h
        self.lat = []
        self.stop = threading.Event()
        self.rng = random.Random(2)
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            lba = self.rng.randrange(0, 60)
            t0 = time.perf_counter()
            if self.rng.random() < 0.5:
                st = self.h.write(A0, 0, lba, bytes(4 * BS))
            else:
                st = self.h.read(A0, 0, lba, 4)[0]
            self.lat.append(time.perf_counter() - t0)
            assert st == wire.OK


class Ticker:
    def __init__(self, u):
        self.u = u
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.wait(TICK_MS / 1000):
            ob.tick(self.u, 1)


def test_online_latency_alone(benchmark, unit):
    u, h, tape, data = unit
    benchmark.group = "online-backup-latency"
    lat = []

    def run():
        rng = random.Random(3)
        for _ in range(40 if QUICK else 200):
            lba = rng.randrange(0, 60)
            t0 = time.perf_counter()
            st = h.write(A0, 0, lba, bytes(4 * BS)) if rng.random() < 0.5 else h.read(A0, 0, lba, 4)[0]
            lat.append(time.perf_counter() - t0)
            assert st == wire.OK
    benchmark.pedantic(run, rounds=1, iterations=1)
    LAT["alone"] = (pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3)
    benchmark.extra_info["info"] = {"name": "online p50 / p99 without a backup (ms)",
                                    "value": "%.2f / %.2f" % LAT["alone"]}


@pytest.mark.parametrize("mode", list(MODES))
def test_backup_throughput_while_online_io_continues(benchmark, unit, mode, capsys):
    u, h, tape, data = unit
    benchmark.group = "online-backup"
    lat = []

    def run():
        tape.tape.erase()
        o = Online(h) if MODES[mode] else None
        tk = Ticker(u) if mode == "online_first" else None
        if MODES[mode]:
            u.mgmt("ob_priority", **MODES[mode])
        else:
            u.mgmt("ob_priority", mode="backup_first", chunk=CHUNK)
        for x in (o, tk):
            if x:
                x.t.start()
        try:
            ob.backup(u, 2, TAPE, port="A1")
            u.wait_for(lambda x: x.table("ob_630")["state"] in ("done", "failed"), timeout=600, interval=0.01)
        finally:
            for x in (o, tk):
                if x:
                    x.stop.set()
                    x.t.join()
        assert u.table("ob_630")["state"] == "done"
        if o:
            lat.extend(o.lat)

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    assert tape.image(2, BLOCKS) == data
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return
    RESULTS[mode] = stats.stats.median
    kb_s = BLOCKS * BS / 1024 / stats.stats.median
    benchmark.extra_info.update({"mode": mode, "blocks": BLOCKS, "chunk": CHUNK, "backup_KiB_s": round(kb_s, 1)})
    if mode == "alone":
        benchmark.extra_info["info"] = {"name": "backup alone (KiB/s)", "value": round(kb_s, 1)}
        return
    LAT[mode] = (pct(lat, 0.5) * 1e3, pct(lat, 0.99) * 1e3)
    ratio = RESULTS["alone"] / RESULTS[mode] if "alone" in RESULTS else None
    benchmark.extra_info.update({"online_ops": len(lat), "online_p50_ms": round(LAT[mode][0], 2),
                                 "online_p99_ms": round(LAT[mode][1], 2),
                                 "throughput_ratio": round(ratio, 3) if ratio else None})
    benchmark.extra_info["info"] = {"name": "backup with online I/O, %s: throughput vs alone; online p50 / p99 ms"
                                    % mode, "value": "%.2f; %.2f / %.2f" % (ratio or 0, LAT[mode][0], LAT[mode][1])}
    with capsys.disabled():
        base = LAT.get("alone", (0, 0))
        print("\nonline backup %s: %.1f KiB/s (%.2f x alone); online p50 %.2f ms p99 %.2f ms "
              "(alone %.2f / %.2f), %d ops"
              % (mode, kb_s, ratio or 0, LAT[mode][0], LAT[mode][1], base[0], base[1], len(lat)))
