"""The LV/LDEV layer (seed 003 tables 300 and 310): groups cut into LDEVs of a fixed
capacity, volumes as LVs of LDEVs, an address resolved to (entry, LDEV, offset), LDEV
allocation and release kept across a reset, and bad input refused with nothing
changed."""
from conftest import rig_desc, status_of

from firmware import wire

# two RAID1 groups of 400 blocks each: LDEVs of 100 -> 0..3 on group 0, 4..7 on group 1
UNIT = {
    "name": "u0", "drives": 4, "drive_blocks": 400, "backing": "memory", "ldev_blocks": 100,
    "group": [{"id": 0, "level": 1, "members": [0, 1]}, {"id": 1, "level": 1, "members": [2, 3]}],
    # the seed's LV of 400 on LDEVs of 100; volume 1 starts inside LDEV 4 (not aligned)
    "volume": [{"id": 0, "group": 0, "blocks": 400},
               {"id": 1, "group": 1, "start": 50, "blocks": 100, "emulation": "3390"}],
}


def test_tables_300_and_310_and_the_resolution_of_an_address(make_rig):
    rig = make_rig(rig_desc(UNIT, block_size=512), board="emulator")
    u = rig.unit()
    ldevs = u.table("ldevs")
    assert [(d["id"], d["group"], d["start"], d["count"]) for d in ldevs] == \
        [(i, i // 4, (i % 4) * 100, 100) for i in range(8)]
    # LDEVs 0-3 hold volume 0, 4 and 5 hold volume 1 (50..149 of group 1), 6 and 7 are free
    assert [d["state"] for d in ldevs] == ["used"] * 6 + ["free"] * 2
    lvs = {x["lv"]: x for x in u.table("lvs")}
    assert lvs[0]["capacity"] == 400 and lvs[0]["emulation"] == "OPEN"
    assert [(e["ldev"], e["range"], e["offset"]) for e in lvs[0]["entries"]] == \
        [(k, [k * 100, k * 100 + 99], 0) for k in range(4)]
    assert lvs[1]["emulation"] == "3390"
    assert [(e["ldev"], e["range"], e["offset"]) for e in lvs[1]["entries"]] == [(4, [0, 49], 50), (5, [50, 99], 0)]
    # entry = addr // LDEV capacity, offset = the remainder (the seed's example)
    for lba in (0, 99, 100, 250, 399):
        r = u.mgmt("lv_resolve", volume=0, lba=lba)
        assert (r["entry"], r["ldev"], r["offset"], r["group"], r["group_block"]) == \
            (lba // 100, lba // 100, lba % 100, 0, lba)
    r = u.mgmt("lv_resolve", volume=1, lba=60)
    assert (r["entry"], r["ldev"], r["offset"], r["group"], r["group_block"]) == (1, 5, 10, 1, 110)
    # the volumes keep working as before
    data = bytes(range(256)) * 2 * 3
    u.write(1, 48, data)
    assert u.read(1, 48, 3) == data


def test_allocation_and_release_survive_a_reset_and_bad_input_changes_nothing(make_rig):
    rig = make_rig(rig_desc(UNIT, block_size=512), board="emulator")
    u = rig.unit()
    before = u.table("ldevs")
    assert status_of(u.mgmt, "ldev_alloc", n=3) == wire.E_NO_SPACE          # only 6 and 7 are free
    assert status_of(u.mgmt, "ldev_alloc", n=1, group=0) == wire.E_NO_SPACE
    assert status_of(u.mgmt, "ldev_alloc", n=1, group=9) == wire.E_BAD_PARAM
    assert status_of(u.mgmt, "ldev_free", ldevs=[6]) == wire.E_BAD_PARAM      # not allocated
    assert status_of(u.mgmt, "ldev_free", ldevs=[0]) == wire.E_STATE          # part of volume 0
    assert status_of(u.mgmt, "lv_resolve", volume=7, lba=0) == wire.E_NO_VOLUME
    assert status_of(u.mgmt, "lv_resolve", volume=0, lba=400) == wire.E_OUT_OF_RANGE
    assert u.table("ldevs") == before
    got = u.mgmt("ldev_alloc", n=1, group=1, owner="test")["ldevs"]
    assert got == [6]
    u.restart()
    d = u.table("ldevs")[6]
    assert (d["state"], d["use"]) == ("used", "test")
    assert u.mgmt("ldev_alloc", n=1, owner="test")["ldevs"] == [7]
    u.mgmt("ldev_free", ldevs=[6, 7])
    assert u.table("ldevs") == before


def test_bad_ldev_settings_are_refused_and_the_unit_keeps_its_configuration(make_rig):
    rig = make_rig(rig_desc(UNIT, block_size=512), board="inprocess")
    u = rig.unit()
    for bad in ({"ldev_blocks": 0}, {"ldev_blocks": 401}, {"emulations": ["XYZ"]},
                {"emulations": ["OPEN"], "volume": UNIT["volume"]}):
        cfg = dict(u.config)
        cfg.update({k: v for k, v in bad.items() if k != "volume"})
        assert status_of(u.mgmt, "configure", config=cfg, force=True) == wire.E_BAD_PARAM
    assert len(u.table("ldevs")) == 8


def test_without_ldev_blocks_each_group_is_one_ldev(make_rig):
    rig = make_rig(rig_desc(block_size=512), board="inprocess")
    u = rig.unit()
    g = u.table("groups")[0]
    assert [(d["group"], d["start"], d["count"], d["state"]) for d in u.table("ldevs")] == \
        [(0, 0, g["capacity"], "used")]
    r = u.mgmt("lv_resolve", volume=1, lba=5)
    assert (r["entry"], r["ldev"], r["offset"]) == (0, 0, 133)
