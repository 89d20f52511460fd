"""Differential runtime check: the demo scenario on MicroPython (the emulator) and on
CPython, with the same board limits, sends the same frames in the same order on every
channel and leaves the same drive contents and state tables (host/trace.py explains
why channels are compared one by one, not by their global interleaving)."""
import tomllib

import pytest
from conftest import ROOT, have_micropython, rig_desc

from host.scenarios import raid5_life
from host.trace import differential, differential_board

pytestmark = pytest.mark.skipif(not have_micropython(), reason="the micropython binary is not installed")


def demo_scenario(rig):
    res = raid5_life(rig, ops=60)
    assert res["bad"] == 0
    return {"checked": res["checked"], "group": res["group"]["state"]}


def test_demo_scenario_gives_the_same_frames_on_micropython_and_cpython(tmp_path):
    with open(ROOT / "rigs" / "demo.toml", "rb") as f:
        desc = tomllib.load(f)
    rep = differential(desc, demo_scenario, tmp_path)
    runs = rep["runs"]
    assert runs["micropython"]["impl"] == {"u0": "micropython"}
    assert runs["cpython"]["impl"] == {"u0": "cpython"}
    assert rep["channel_diffs"] == []
    assert rep["same_state"] and rep["equal"]
    # host port, management, log and all five drives, thousands of exchanges each way
    assert rep["channels"] == 8 and rep["compared"] > 5000
    assert runs["micropython"]["result"] == runs["cpython"]["result"] == {"checked": 1009, "group": "normal"}


def test_differential_check_reports_where_the_frames_part(tmp_path):
    small = differential_board("emulator", "cpython")
    small["cache_slots"] = 8      # fewer cache hits: other drive reads
    rep = differential(rig_desc(), demo_scenario, tmp_path,
                       boards={"micropython": differential_board("emulator", "emulator"), "cpython-8-slots": small})
    assert not rep["equal"]
    drive_diffs = [d for d in rep["channel_diffs"] if "/drive" in d["channel"]]
    assert drive_diffs
    first = drive_diffs[0]
    assert first["micropython"] != first["cpython-8-slots"]
    assert not any(d["channel"] == "u0/host0" for d in rep["channel_diffs"])   # the host saw the same answers
    assert rep["same_state"]                                               # and the drives end the same
