"""Several units in one rig: peer frames cross the harness's fabric; a cut path is reported."""
from pathlib import Path

import pytest
from conftest import have_micropython

from firmware import wire
from host.rig import Rig

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
PAIR = Path(__file__).resolve().parent.parent / "rigs" / "pair.toml"


def test_two_emulated_units_exchange_peer_frames_and_a_cut_path_is_reported(tmp_path):
    with Rig.load(PAIR, state_dir=tmp_path) as rig:
        a, b = rig.unit("a"), rig.unit("b")
        assert a.hello["impl"] == b.hello["impl"] == "micropython"
        r = a.mgmt("peer_ping", peer=0, data="hello")
        assert r["reply"] == "pong b hello"
        assert b.mgmt("peer_ping", peer=0, data="back")["reply"] == "pong a back"
        path = rig.fabric.path("a", "b")
        assert path.frames == 4
        path.cut = True
        r = a.link.mgmt("peer_ping", peer=0, data="lost", check=False)
        assert r["_status"] == wire.E_PATH_DOWN and r["status"] == "PATH_DOWN"
        assert path.refused == 1
        r = a.link.mgmt("peer_ping", peer=3, data="nobody", check=False)
        assert r["_status"] == wire.E_PATH_DOWN
        path.cut = False
        path.corrupt_every = 1
        r = a.link.mgmt("peer_ping", peer=0, data="garbled", timeout_ms=500, check=False)
        assert r["_status"] == wire.E_TIMEOUT
        assert b.table("link")["bad_crc"] >= 1
        path.corrupt_every = 0
        assert a.mgmt("peer_ping", peer=0, data="again")["reply"] == "pong b again"


def test_every_peer_subtype_has_one_owner_and_the_features_register_only_their_own():
    from firmware import peer

    spans = sorted((lo, hi) for lo, hi, _ in peer.OWNERS)
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:])), spans    # no two owners overlap
    assert peer.owner(0x60) == "mirror" and peer.owner(0x6A) == "dual" and peer.owner(0x61) is None
    from firmware.features import mirror
    from firmware.features.dual import mirror as dual_mirror
    from firmware.features.mirror import chain
    from firmware.features.remote_copy import copyjob

    assert peer.owner(chain.MSG) == "mirror" and mirror is not None
    assert peer.owner(dual_mirror.SUB_PUT) == peer.owner(dual_mirror.SUB_SM) == "dual"
    assert peer.owner(copyjob.RC_CTL) == peer.owner(copyjob.RC_DATA) == "remote_copy"
