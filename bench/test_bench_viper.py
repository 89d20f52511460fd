"""The core's viper backend against its pure-Python reference, both under the real
MicroPython binary (.venv/bin/micropython), on the firmware's sizes (4 KiB blocks,
5 members, 2^16-bit bitmaps).  bench/mp_core_timing.py does the timing inside
MicroPython (time.ticks_us); here each operation becomes one benchmark entry whose
extra_info carries both times and the ratio pure / viper (> 1: viper is faster).

    .venv/bin/pytest bench/test_bench_viper.py --benchmark-only
"""
import json
import os
import subprocess

import pytest

from host.boards import FIRMWARE_ROOT, micropython_binary

HERE = os.path.dirname(os.path.abspath(__file__))
_RUNS = {}


def mp_times():
    """{op: {backend: us}} from one MicroPython run (cached for the session)."""
    if "t" not in _RUNS:
        try:
            mp = micropython_binary()
        except FileNotFoundError:
            pytest.skip("the micropython binary is not installed")
        min_ms = "20" if os.environ.get("STORLAB_BENCH_QUICK") else "200"
        env = dict(os.environ, MICROPYPATH=".frozen:%s" % FIRMWARE_ROOT)
        r = subprocess.run([mp, os.path.join(HERE, "mp_core_timing.py"), min_ms, "viper", "pure"],
                           capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr or r.stdout
        t = {}
        for line in r.stdout.splitlines():
            d = json.loads(line)
            t.setdefault(d["op"], {})[d["backend"]] = d["us"]
        _RUNS["t"] = t
    return _RUNS["t"]


OPS = ["xor_into 5x4K", "parity_update 4K", "equal 4K", "range_set 2^16", "count 2^16", "scan 2^16 (16 set)",
       "or_merge 2^16", "cobs_encode 4K", "cobs_decode 4K"]


@pytest.mark.parametrize("op", OPS)
def test_viper_vs_pure(benchmark, op):
    t = mp_times()[op]
    benchmark.group = "viper-vs-pure"
    # the timing happened inside MicroPython; record it as one round of that duration
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    ratio = t["pure"] / t["viper"]
    benchmark.extra_info.update({"op": op, "viper_us": round(t["viper"], 2), "pure_us": round(t["pure"], 2),
                                 "pure_ratio": round(ratio, 2),
                                 "info": {"name": "viper vs pure under MicroPython: %s" % op,
                                          "value": round(ratio, 2)}})
    assert ratio > 1.0, "viper slower than pure on %s: %r" % (op, t)
