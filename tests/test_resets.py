"""Board resets: the board is killed (SIGKILL) at random moments under a write workload
and during a rebuild; it boots from its persisted SM and non-volatile cache, the rebuild
goes on from its persisted pointer, and every acknowledged write reads back.  A write
in flight at the kill holds either its old or its new data (never anything else)."""
import pytest
from conftest import have_micropython, rig_desc

from host.reliability import reset_run

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")


@pytest.mark.parametrize("board", ["emulator", "cpython"])
def test_acknowledged_writes_survive_random_kills_mid_write_and_mid_rebuild(make_rig, board):
    rig = make_rig(rig_desc(drive_blocks=512, volume=[{"id": 0, "group": 0, "blocks": 600}]), board=board)
    f = reset_run(rig, kills=5, seed=3)
    assert f["kills"] == 5
    assert f["bad_blocks"] == 0 and f["unacknowledged_bad"] == 0
    assert f["writes_acknowledged"] > 100
    # the rebuild was cut by the first kill and went on from where it was, not from 0
    assert f["rebuild_resumed_from"][0] >= f["rebuild_pointer_before_kills"] > 0
    assert f["group_after"] == "normal"
    u = rig.unit()
    g = u.table("groups")[0]
    assert g["rebuild"] is None and g["failed"] == [] and 4 in g["members"]
