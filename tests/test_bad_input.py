"""Bad input gets a precise error and changes nothing: out-of-range addresses, unknown
volumes and commands, malformed frames, impossible configurations."""
import json
import struct

import pytest
from conftest import have_micropython, rig_desc

from firmware import wire
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")


def snapshot(u):
    u.flush()
    return ({t: u.table(t) for t in ("config", "drives", "groups", "volumes", "warnings")},
            [d.image() for d in u.drives])


def req(u, ch, kind, payload):
    return u.link.request(ch, kind, payload, timeout=10)


@pytest.mark.parametrize("board", ["emulator", "inprocess"])
def test_bad_requests_get_precise_statuses_and_change_nothing(make_rig, board):
    rig = make_rig(rig_desc(), board=board)
    u, h = rig.unit(), rig.host()
    h.write(0, 0, 8)
    before = snapshot(u)
    bs = u.block_size
    cases = [
        (wire.CH_HOST, wire.K_READ, struct.pack(wire.IO_HEAD, 0, 127, 2), wire.E_OUT_OF_RANGE),
        (wire.CH_HOST, wire.K_READ, struct.pack(wire.IO_HEAD, 0, 0, 0), wire.E_OUT_OF_RANGE),
        (wire.CH_HOST, wire.K_WRITE, struct.pack(wire.IO_HEAD, 1, 64, 1) + bytes(bs), wire.E_OUT_OF_RANGE),
        (wire.CH_HOST, wire.K_WRITE, struct.pack(wire.IO_HEAD, 0, 0, 2) + bytes(bs), wire.E_BAD_LENGTH),
        (wire.CH_HOST, wire.K_WRITE, struct.pack(wire.IO_HEAD, 9, 0, 1) + bytes(bs), wire.E_NO_VOLUME),
        (wire.CH_HOST, wire.K_READ, b"\x00", wire.E_BAD_LENGTH),
        (wire.CH_HOST, wire.K_READ, b"\x00\x00\x01", wire.E_BAD_LENGTH),
        (wire.CH_HOST, 0x09, b"", wire.E_UNKNOWN_KIND),
        (wire.CH_HOST, wire.K_DWRITE, struct.pack(wire.DIO_HEAD, 0, 1) + bytes(bs), wire.E_UNKNOWN_KIND),
        (wire.CH_DRIVE, wire.K_READ, b"", wire.E_UNKNOWN_KIND),
        (0x7B, wire.K_READ, b"", wire.E_UNKNOWN_CHANNEL),
        (wire.CH_MGMT, wire.K_MGMT, b"{not json", wire.E_BAD_PARAM),
        (wire.CH_MGMT, wire.K_MGMT, b"[1, 2]", wire.E_BAD_PARAM),
        (wire.CH_MGMT, wire.K_MGMT, b'{"op": "explode"}', wire.E_UNKNOWN_KIND),
        (wire.CH_MGMT, wire.K_MGMT, b'{"op": "fail_drive", "drive": 99}', wire.E_BAD_PARAM),
        (wire.CH_MGMT, wire.K_MGMT, b'{"op": "rebuild", "group": 0}', wire.E_STATE),
        (wire.CH_MGMT, wire.K_MGMT, b'{"op": "job", "name": "nope", "action": "pause"}', wire.E_BAD_PARAM),
        (wire.CH_MGMT, wire.K_MGMT, b'{"op": "table", "name": "nope"}', wire.E_BAD_PARAM),
        (wire.CH_MGMT, wire.K_MGMT, b'{"op": "configure", "config": {}}', wire.E_STATE),
    ]
    for ch, kind, payload, want in cases:
        st, data = req(u, ch, kind, payload)
        assert st == want, (wire.channel_name(ch), wire.kind_name(kind), payload[:20], wire.status_name(st))
        if ch == wire.CH_MGMT:
            assert json.loads(data)["error"]
    assert snapshot(u) == before
    assert h.verify_all(0, 8) == 0


def test_malformed_frames_are_dropped_counted_and_reported(make_rig):
    rig = make_rig(rig_desc(), board="emulator")
    u, h = rig.unit(), rig.host()
    h.write(0, 0, 4)
    before = snapshot(u)
    link0 = u.table("link")
    good = bytearray(wire.pack(wire.CH_HOST, wire.K_WRITE, 999,
                               struct.pack(wire.IO_HEAD, 0, 0, 1) + bytes(u.block_size)))
    bad_crc = bytearray(good)
    bad_crc[len(bad_crc) // 2] ^= 0x11
    u.link.send_raw(bytes(bad_crc))                      # bad CRC
    u.link.send_raw(b"\x05\x01\x02\x00")                 # not valid COBS
    u.link.send_raw(b"\x03\x01\x02\x00")                 # too short for a header
    u.link.send_raw(b"\x07" * 40000 + b"\x00")           # longer than the board's frame buffer
    u.wait_for(lambda x: x.link.dropped_notices >= 4, timeout=10, what="DROPPED notices")
    link1 = u.table("link")
    assert link1["bad_crc"] == link0["bad_crc"] + 1
    assert link1["bad_cobs"] == link0["bad_cobs"] + 2
    assert link1["too_long"] == link0["too_long"] + 1
    assert any("BAD_CRC" in m for m in u.link.logs)
    assert snapshot(u) == before
    assert h.verify_all(0, 4) == 0


@pytest.mark.parametrize("config, words", [
    ({"block_size": 1000, "drives": [{"blocks": 8}] * 3}, "power of two"),
    ({"block_size": 4096, "drives": []}, "drives"),
    ({"block_size": 4096, "drives": [{"blocks": 8}] * 3,
      "groups": [{"id": 0, "level": 6, "members": [0, 1, 2]}]}, "level"),
    ({"block_size": 4096, "drives": [{"blocks": 8}] * 3,
      "groups": [{"id": 0, "level": 5, "members": [0, 1]}]}, "members"),
    ({"block_size": 4096, "drives": [{"blocks": 8}] * 3,
      "groups": [{"id": 0, "level": 5, "members": [0, 1, 7]}]}, "no drive"),
    ({"block_size": 4096, "drives": [{"blocks": 8}] * 4,
      "groups": [{"id": 0, "level": 1, "members": [0, 1]}, {"id": 1, "level": 1, "members": [1, 2]}]},
     "already in group"),
    ({"block_size": 4096, "drives": [{"blocks": 8}] * 3,
      "groups": [{"id": 0, "level": 5, "members": [0, 1, 2]}],
      "volumes": [{"id": 0, "group": 0, "blocks": 17}]}, "exceed"),
    ({"block_size": 4096, "drives": [{"blocks": 8}] * 3,
      "groups": [{"id": 0, "level": 5, "members": [0, 1, 2]}],
      "volumes": [{"id": 0, "group": 0, "blocks": 8}, {"id": 1, "group": 0, "start": 4, "blocks": 4}]},
     "overlaps"),
])
def test_impossible_configurations_are_refused_with_the_reason(make_rig, config, words):
    rig = make_rig(rig_desc(), board="inprocess", start=False)
    u = rig.unit()
    u.start(configure=False)
    with pytest.raises(StatusError) as e:
        u.mgmt("configure", config=config)
    assert e.value.status == wire.E_BAD_PARAM and words in str(e.value)
    assert u.mgmt("info")["configured"] is False


def test_a_feature_that_cannot_attach_on_this_board_is_refused_at_configure_and_nothing_changes(make_rig):
    """The sub side's pending-list bitmap of an 8 Mi-block volume does not fit an RP2040-sized
    heap: configure answers BAD_PARAM naming the feature and the MemoryError, the previous
    configuration stays, and the unit serves its volume as before (never without the
    feature it was told to run)."""
    blocks = 1 << 23
    unit = {"name": "u0", "drives": 2, "drive_blocks": blocks, "backing": "file",
            "group": [{"id": 0, "level": 1, "members": [0, 1]}],
            "volume": [{"id": 0, "group": 0, "blocks": blocks}]}
    rig = make_rig(rig_desc(unit, block_size=512), board="emulator-small")
    u, h = rig.unit(), rig.host()
    h.write(0, 5, 2)
    old = u.table("config")
    cfg = json.loads(json.dumps(old))
    cfg["features"] = ["mirror"]
    cfg["mirror"] = {"role": "sub", "volume": 0, "peer_volume": 0, "out_peer": 0}
    r = u.link.mgmt("configure", config=cfg, force=True, check=False)
    assert r["_status"] == wire.E_BAD_PARAM, r
    assert "configuration not applied: feature mirror" in r["error"] and "MemoryError" in r["error"], r
    assert u.table("config") == old and u.mgmt("info")["features"] == []
    assert "feature_errors" not in u.mgmt("info")
    assert h.verify_all(0, 16) == 0
    h.write(0, 7, 1)
    u.restart()
    assert u.table("config") == old and h.verify_all(0, 16) == 0
