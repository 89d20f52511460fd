"""`storlab reliability --iodepth 8`: link faults, board kills and the model run with
requests outstanding at once, still 0 mismatches, and the figures show the overlap."""
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, have_micropython

from firmware import wire
from host import reliability
from host.model import model_rig_desc
from host.rig import Rig

BIN = ROOT / ".venv" / "bin" / "storlab"


@pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
def test_reliability_at_iodepth_8_as_typed(tmp_path):
    out_json = tmp_path / "figures.json"
    args = [str(BIN) if BIN.exists() else sys.executable, *([] if BIN.exists() else ["-m", "host.cli"]),
            "reliability", "--iodepth", "8", "--fuzz", "40", "--kills", "2", "--ops", "64", "--model-steps", "40",
            "--json", str(out_json)]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900, env=dict(os.environ, COLUMNS="160"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "mismatches found: 0 (goal 0)" in r.stdout
    f = json.loads(out_json.read_text())
    assert reliability.mismatches(f) == 0
    assert f["link_faults"]["iodepth"] == f["resets"]["iodepth"] == f["model"]["iodepth"] == 8
    assert f["resets"]["kills"] == 2 and f["resets"]["unacknowledged_in_flight"] > 0
    assert f["resets"]["blocks_checked"] > 0 and f["model"]["reads_with_overlap"] > 0


def test_concurrent_reset_run_finds_acknowledged_writes_that_never_landed():
    """The reset run's check can fail: with a write-through cache and one member's
    drive answering writes without storing them, blocks read back after the kill are
    found wrong."""
    desc = model_rig_desc(512)
    desc["unit"][0]["cache_mode"] = "write-through"
    with Rig(desc, board="inprocess") as rig:
        f = reliability.concurrent_reset_run(rig, kills=1, during_rebuild=False, iodepth=4)
        assert f["bad_blocks"] == 0 and f["kills"] == 1 and f["writes_acknowledged"] > 0
    with Rig(desc, board="inprocess") as rig:
        u = rig.unit()
        serve = u.link.drive_handler
        liar = u.table("groups")[0]["members"][2]

        def lose_writes(d, kind, payload):
            if d == liar and kind == wire.K_DWRITE:
                return wire.OK, b""
            return serve(d, kind, payload)

        u.link.drive_handler = lose_writes
        f = reliability.concurrent_reset_run(rig, kills=1, during_rebuild=False, iodepth=4)
        assert f["bad_blocks"] > 0
