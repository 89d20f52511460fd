"""The volume map and the I/O path's core: a volume made of extents on several RAID
groups (group ids past 15), the readable stage order, the cache -> disk adapter
handshake as trace events, and configurations refused before anything is saved."""
import os

import pytest
from conftest import BOARDS, rig_desc

from host.rig import StatusError

TWO_GROUPS = {
    "name": "u0", "drives": 7, "drive_blocks": 64, "backing": "memory",
    "group": [{"id": 3, "level": 5, "members": [0, 1, 2], "chunk": 2},
              {"id": 20, "level": 1, "members": [3, 4]}],
    # volume 0: blocks 0..9 on group 3 at 40, blocks 10..29 on group 20 at 5
    "volume": [{"id": 0, "extents": [{"group": 3, "start": 40, "blocks": 10},
                                     {"group": 20, "start": 5, "blocks": 20}]},
               {"id": 1, "group": 3, "start": 0, "blocks": 40}],
}


def block(vol, lba, bs, gen=0):
    return bytes([(vol * 37 + lba * 11 + gen) & 0xFF]) * bs


@pytest.mark.parametrize("board", BOARDS)
def test_a_volume_spanning_two_groups_reads_back_what_was_written_across_its_seam(make_rig, board):
    rig = make_rig(rig_desc(TWO_GROUPS, block_size=512), board=board)
    u = rig.unit()
    vols = {v["id"]: v for v in u.table("volumes")}
    assert vols[0]["blocks"] == 30
    assert vols[0]["extents"] == [[0, 10, 3, 40], [10, 20, 20, 5]]
    data = b"".join(block(0, i, 512) for i in range(6, 16))   # across the seam at 10
    u.write(0, 6, data)
    u.write(1, 0, b"".join(block(1, i, 512) for i in range(40)))
    u.flush(0)
    assert u.read(0, 6, 10) == data
    assert u.read(1, 0, 40) == b"".join(block(1, i, 512) for i in range(40))
    # the blocks past the seam are on the RAID1 group's drives at group block 5..
    d3 = u.drives[3]
    for i in range(10, 16):
        assert d3.read_raw(5 + i - 10, 1) == block(0, i, 512)
    u.restart()
    assert u.read(0, 6, 10) == data


def test_the_io_path_stage_order_is_readable(make_rig):
    rig = make_rig(rig_desc(TWO_GROUPS, block_size=512), board="inprocess")
    order = rig.unit().table("iopath")
    assert set(order) == {"check", "redirect", "before_cache", "cache", "after_commit",
                          "read_check", "read", "after_read"}
    assert all(v == [] for v in order.values())     # no feature configured


def test_trace_events_show_a_read_miss_and_a_destage(make_rig):
    rig = make_rig(rig_desc(block_size=512), board="emulator")
    u = rig.unit()
    u.mgmt("trace", on=True)
    u.write(0, 3, block(0, 3, 512))
    u.flush(0)
    u.read(0, 50, 1)        # never written: a miss staged from the group
    u.mgmt("trace", on=False)
    logs = [t for t in u.link.logs if t.startswith("T ")]
    assert "T destage 0 3" in logs
    assert any(t.startswith("T destaged 0 3 ") for t in logs)
    i = next(k for k, t in enumerate(logs) if t.startswith("T stage 0 50"))
    assert logs[i + 1].startswith("T staged 0 50 ")
    with pytest.raises(StatusError) as e:
        u.mgmt("trace", on="yes")
    assert "BAD_PARAM" in str(e.value)


@pytest.mark.parametrize("change, text", [
    ({"features": ["bogus"]}, "unknown feature 'bogus'"),
    ({"features": ["remote_copy"]}, "controller must be an integer"),    # a required setting missing
    ({"volume": [{"id": 0, "extents": [{"group": 3, "start": 0, "blocks": 8},
                                       {"group": 3, "start": 4, "blocks": 8}]}]}, "overlap"),
    ({"volume": [{"id": 0, "group": 3, "start": 0, "blocks": 8},
                 {"id": 1, "extents": [{"group": 20, "start": 0, "blocks": 4},
                                       {"group": 3, "start": 6, "blocks": 4}]}]}, "overlaps volume 0"),
    ({"volume": [{"id": 0, "extents": []}]}, "non-empty list"),
])
def test_a_refused_configuration_changes_nothing_and_the_board_still_boots(make_rig, tmp_path, change, text):
    rig = make_rig(rig_desc(TWO_GROUPS, block_size=512), board="emulator")
    u = rig.unit()
    u.write(1, 0, block(1, 0, 512))
    before = u.table("volumes")
    bad = dict(u.config)
    bad.update({k: v for k, v in change.items() if k not in ("volume",)})
    if "volume" in change:
        bad["volumes"] = change["volume"]
    with pytest.raises(StatusError) as e:
        u.mgmt("configure", config=bad, force=True)
    assert "BAD_PARAM" in str(e.value) and text in str(e.value)
    assert u.table("volumes") == before
    u.restart()
    assert u.table("volumes") == before
    assert u.read(1, 0, 1) == block(1, 0, 512)
    assert os.path.exists(u.state_dir)
