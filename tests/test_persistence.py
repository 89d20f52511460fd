"""Shared memory survives a board restart: tables, and a rebuild resumes from its pointer."""
import pytest
from conftest import have_micropython, rig_desc

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")


@pytest.mark.parametrize("board", ["emulator", "cpython"])
def test_sm_tables_survive_a_board_restart(make_rig, board):
    rig = make_rig(rig_desc(), board=board)
    u, h = rig.unit(), rig.host()
    h.write(0, 0, 16)
    u.flush()
    u.inject(2, "fail")
    h.write(0, 0, 16)
    u.flush()
    before = {t: u.table(t) for t in ("config", "drives", "groups", "volumes", "warnings")}
    boots = u.hello["boots"]
    u.restart()                       # kill -9 and boot again; not reconfigured by the host
    assert u.hello["configured"] is True and u.hello["boots"] == boots + 1
    after = {t: u.table(t) for t in ("config", "drives", "groups", "volumes", "warnings")}
    # plain read/write statistics are saved periodically (save_ms), so they may lag;
    # everything else, error counters included, was saved when it changed
    stats = [{k: d["io"].pop(k) for k in ("r", "w")} for t in (before, after) for d in t["drives"]]
    assert after == before
    assert after["drives"][2]["io"].get("r_not_ready", 0) + after["drives"][2]["io"].get("w_not_ready", 0) >= 1
    assert all(a["r"] <= b["r"] and a["w"] <= b["w"] for a, b in zip(stats[5:], stats[:5]))
    assert after["groups"][0]["state"] == "degraded"
    assert h.verify_all(0, 16) == 0


def test_rebuild_resumes_from_its_persisted_pointer_after_a_kill(make_rig):
    rig = make_rig(rig_desc(drive_blocks=256, volume=[{"id": 0, "group": 0, "blocks": 600}]),
                   board="emulator")
    u, h = rig.unit(), rig.host()
    for lba in range(0, 600, 8):
        h.write(0, lba, 8)
    u.flush()
    u.inject(1, "fail")
    h.write(0, 0, 8)
    u.flush()
    u.rebuild(0, paused=True)
    u.job("rebuild0", "step", n=150)
    u.wait_for(lambda x: x.job("rebuild0")["pointer"] == 150, what="150 rows rebuilt")
    u.mgmt("save")
    spare_writes = u.drives[4].counters["writes"]
    u.restart()
    j = u.job("rebuild0")
    assert j["pointer"] == 150 and j["state"] == "paused"     # persisted pointer, persisted pause
    u.job("rebuild0", "resume")
    done = u.wait_job("rebuild0")
    assert done["state"] == "done"
    # rows below the pointer were not rebuilt again: 256 - 150 more rows written to the spare
    assert u.drives[4].counters["writes"] - spare_writes == 256 - 150
    assert u.table("groups")[0]["members"] == [0, 4, 2, 3]
    assert h.verify_all(0, 600) == 0
