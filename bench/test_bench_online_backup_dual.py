"""Online backup on a two-controller unit (seed 004, docs/online_backup.md "Four ports"):
what a standby port costs.  The backup of LU 2 pinned to the master's port A1 against
the standby's port B1 (each chunk one more round over the controllers' path: R_DATA to
the standby, DATA from its port), and a host's 4-block write on a master port (A0)
against a standby port (B0: a COUNT report to the master, then the write forwarded to it).

    .venv/bin/pytest bench/test_bench_online_backup_dual.py --benchmark-only
"""
import os
import random
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
WRITES = 50 if QUICK else 200
CHUNK = 16
A0, A1, B0, B1, TAPE, HOST = 0x01, 0x02, 0x03, 0x04, 0x20, 0x10
SECS = {}         # port -> median backup seconds


@pytest.fixture(scope="module")
def dual(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("obd-bench")
    ud = {"name": "da", "controllers": 2, "board": "emulator", "drives": 2, "drive_blocks": 2 * BLOCKS + 64,
          "backing": "memory", "features": ["dual", "online_backup"],
          "online_backup": {"ports": [{"alpa": A0}, {"alpa": A1}], "ports_b": [{"alpa": B0}, {"alpa": B1}],
                            "allow": [HOST], "dest": TAPE, "priority": {"chunk": CHUNK}},
          "group": [{"id": 0, "level": 1, "members": [0, 1]}],
          "volume": [{"id": 0, "group": 0, "blocks": 64}, {"id": 2, "group": 0, "start": 64, "blocks": BLOCKS}]}
    rig = Rig({"rig": {"name": "obdbench", "block_size": BS}, "unit": [ud]}, state_dir=tmp).start()
    f = ob.FcFabric(rig)
    tape = f.add(ob.TapeDevice(TAPE, TapeDrive(tmp / "tape"), accept=[A0, A1, B0, B1], block_size=BS))
    h = f.add(ob.FcHost(HOST))
    u = rig.unit()
    for p in (A0, A1, B0, B1):
        assert h.login(p) == wire.OK
    data = random.Random(1).randbytes(BLOCKS * BS)
    u.write(2, 0, data)
    yield u, h, tape, data
    rig.close()


@pytest.mark.parametrize("port", ["A1", "B1"])
def test_backup_through_a_master_port_and_a_standby_port(benchmark, dual, port, capsys):
    u, h, tape, data = dual
    benchmark.group = "online-backup-dual"

    def run():
        tape.tape.erase()
        ob.backup(u, 2, TAPE, port=port)
        u.wait_for(lambda x: x.table("ob_630")["state"] in ("done", "failed"), timeout=600, interval=0.01)
        assert u.table("ob_630")["state"] == "done"

    benchmark.pedantic(run, rounds=ROUNDS, iterations=1)
    assert tape.image(2, BLOCKS) == data
    if getattr(benchmark, "stats", None) is None:
        return
    SECS[port] = benchmark.stats.stats.median
    kb_s = round(BLOCKS * BS / 1024 / SECS[port], 1)
    benchmark.extra_info.update(port=port, blocks=BLOCKS, chunk=CHUNK, backup_KiB_s=kb_s,
                                info={"name": "backup through %s (KiB/s)" % port, "value": kb_s})
    with capsys.disabled():
        ratio = " (%.2f x A1)" % (SECS["A1"] / SECS[port]) if "A1" in SECS and port != "A1" else ""
        print("\nbackup through %s: %.1f KiB/s%s" % (port, kb_s, ratio))


@pytest.mark.parametrize("port", ["A0", "B0"])
def test_host_write_latency_on_a_master_port_and_a_standby_port(benchmark, dual, port, capsys):
    u, h, tape, data = dual
    benchmark.group = "online-backup-dual-latency"
    alpa = {"A0": A0, "B0": B0}[port]
    lat = []

    def run():
        rng = random.Random(3)
        for _ in range(WRITES):
            t0 = time.perf_counter()
            assert h.write(alpa, 0, rng.randrange(60), bytes(4 * BS)) == wire.OK
            lat.append(time.perf_counter() - t0)

    benchmark.pedantic(run, rounds=1, iterations=1)
    lat.sort()
    p50, p99 = lat[len(lat) // 2] * 1e3, lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3
    benchmark.extra_info["info"] = {"name": "4-block write on %s: p50 / p99 ms" % port,
                                    "value": "%.2f / %.2f" % (p50, p99)}
    with capsys.disabled():
        print("\nwrite on %s: p50 %.2f ms p99 %.2f ms (%d writes)" % (port, p50, p99, len(lat)))
