"""Seed 002: the mirror's settings refused with a precise reason (firmware validate on
CPython), and bad mirror messages on a peer channel answered with a precise status,
changing nothing (two emulated boards)."""
import struct

import pytest
from conftest import have_micropython

from firmware import wire
from firmware.args import Refused
from firmware.features import mirror
from host.features import mirror as hm

TABLES = {"volumes": [{"id": 0, "blocks": 64}, {"id": 1, "blocks": 64}, {"id": 2, "blocks": 32}]}
GOOD = {"role": "sub", "volume": 0, "peer_volume": 0, "out_peer": 1}


@pytest.mark.parametrize("change, says", [
    ({"role": "backup"}, "role"),
    ({"volume": 7}, "no volume 7"),
    ({"out_peer": 16}, "out_peer"),
    ({"mode": "later"}, "mode"),
    ({"slots": 0}, "slots"),
    ({"comm": "tape"}, "comm"),
    ({"comm": "disk"}, "comm_volume"),
    ({"comm": "disk", "comm_volume": 0}, "another volume"),
    ({"comm": "disk", "comm_volume": 2}, "at least as large"),
    ({"comm_volume": 1}, "needs comm"),
    ({"role": "main", "out_peer": 0, "comm": "cache"}, "belongs to the sub unit"),
    ({"exclusive": "main"}, "role \"sym\""),
    ({"role": "sym", "host": 101}, "exclusive"),
    ({"role": "sym", "exclusive": "main"}, "host"),
    ({"colour": "red"}, "colour"),
])
def test_bad_settings_are_refused_with_the_reason(change, says):
    cfg = {"mirror": dict(GOOD, **change)}
    with pytest.raises(Refused) as e:
        mirror.validate(cfg, TABLES)
    assert says in str(e.value)


def test_good_settings_pass():
    mirror.validate({"mirror": dict(GOOD, comm="disk", comm_volume=1, mode="async", slots=2)}, TABLES)
    mirror.validate({"mirror": dict(GOOD, role="sym", exclusive="sub", host=102)}, TABLES)


@pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
def test_bad_mirror_messages_get_a_precise_status_and_change_nothing(make_rig):
    rig = make_rig(hm.desc())
    main, sub = rig.unit("main"), rig.unit("sub")
    before = (hm.on_drives(main), hm.on_drives(sub))

    def msg(u, op, vol=0, lba=0, count=1, entry=0, data=b""):
        # sent from the host on the unit's channel of the path it only answers on (the
        # sub unit's 203, the main unit's 202): the real peer's requests are not disturbed
        p = struct.pack("<BBHIHH", 0x60, op, vol, lba, count, entry) + data
        st, _ = u.link.request(wire.CH_PEER + (1 if u is sub else 0), wire.K_PEER, p, timeout=10)
        return st

    st, _ = sub.link.request(wire.CH_PEER + 1, wire.K_PEER, bytes([0x60, 2, 0]), timeout=10)
    assert st == wire.E_BAD_LENGTH                                   # shorter than the header
    assert msg(sub, 2, vol=5) == wire.E_BAD_PARAM                    # not the mirrored volume
    assert msg(sub, 2, lba=63, count=2) == wire.E_BAD_PARAM          # past its end
    assert msg(sub, 2, count=0) == wire.E_BAD_PARAM
    assert msg(sub, 2, entry=77) == wire.E_STATE                     # a skipped copy of no 515 entry
    assert msg(sub, 5, entry=1, data=b"x" * 10) == wire.E_BAD_LENGTH  # data not count blocks
    assert msg(sub, 1, data=bytes(4096)) == wire.E_STATE             # a forward sent to the sub unit
    assert msg(main, 1, data=b"short") == wire.E_BAD_LENGTH
    assert msg(main, 2) == wire.E_STATE                              # a copy sent to the main unit
    assert (hm.on_drives(main), hm.on_drives(sub)) == before
    main.job("mirror", "pause")                  # a main-host write's notice (note 1) in 514
    w = main.start_io("w", 0, 8, bytes(range(256)) * 16)
    sub.wait_for(lambda u: u.table("mirror_514") == [[8, 1]], what="the notice")
    assert msg(sub, 5, lba=8, entry=1, data=b"x" * 10) == wire.E_BAD_LENGTH
    assert sub.table("mirror_514") == [[8, 1]]   # the bad copy removed nothing
    main.job("mirror", "resume")
    main.finish_io(w)
    assert hm.settled(main, sub)
