"""Seed 004 on a two-controller unit (feature dual): a backup running from table 630
survives the kill of controller A's board; B carries on from the mirrored 632 on its own
ports, hosts re-route to B's ports, and A takes its ports back when it returns."""
import random

import pytest
from conftest import have_micropython

from firmware import wire
from host.features import online_backup as ob
from host.features.tape import TapeDrive
from host.rig import Rig

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 512
A0, A1, B0, B1, TAPE, H1 = 0x01, 0x02, 0x03, 0x04, 0x20, 0x10
UNIT = {
    "name": "da", "controllers": 2, "drives": 2, "drive_blocks": 128, "backing": "memory",
    "features": ["dual", "online_backup"],
    "online_backup": {"ports": [{"alpa": A0}, {"alpa": A1}], "ports_b": [{"alpa": B0}, {"alpa": B1}],
                      "allow": [H1], "dest": TAPE, "priority": {"chunk": 4}},
    "group": [{"id": 0, "level": 1, "members": [0, 1]}],
    "volume": [{"id": 0, "group": 0, "blocks": 32}, {"id": 2, "group": 0, "start": 32, "blocks": 32}],
}


@pytest.fixture
def dual(tmp_path):
    with Rig({"rig": {"name": "obdual", "block_size": BS}, "unit": [UNIT]}, state_dir=tmp_path / "rig",
             board="emulator") as rig:
        f = ob.FcFabric(rig)
        tape = f.add(ob.TapeDevice(TAPE, TapeDrive(tmp_path / "tape"), accept=[A0, A1, B0, B1], block_size=BS))
        yield rig.unit(), f.add(ob.FcHost(H1)), tape


def test_controller_failover_mid_backup_ends_in_a_complete_byte_correct_backup(dual):
    u, h, tape = dual
    assert u.master() == "A"
    assert h.login(A0) == wire.OK
    assert h.login(B0) == wire.E_PATH_DOWN                  # B is standby: its ports do not serve
    img = random.Random(1).randbytes(32 * BS)
    for lba in range(0, 32, 8):
        assert h.write(A0, 2, lba, img[lba * BS:(lba + 8) * BS]) == wire.OK
    t = ob.backup(u, 2, TAPE, paused=True)["t630"]
    a_port = {"A0": A0, "A1": A1}[t["ports"][0]]
    ob.step(u, 2)
    late = random.Random(2).randbytes(4 * BS)
    assert h.write(A0, 0, 4, late) == wire.OK              # acknowledged on A, in B's cache too
    u.mgmt("save")                                          # 630 to SM, and to B
    u.kill_controller("A")
    assert u.master() == "B"
    t = u.table("ob_630")
    assert (t["lu"], t["bp"], t["state"], t["paused"]) == (2, 8, "running", True)
    assert [p["name"] for p in u.table("ob_ports")] == ["B0", "B1"]
    # hosts re-route to B's ports
    assert h.login(A0) == wire.E_PATH_DOWN
    assert h.login(B0) == wire.OK
    assert h.read(B0, 0, 4, 4) == (wire.OK, late)
    t = ob.step(u, 1)
    b_port = {"B0": B0, "B1": B1}[t["ports"][0]]
    assert t["bp"] == 12
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(2, 32) == img
    assert [s[3] for s in tape.data_frames()] == list(range(0, 32, 4))      # each chunk once
    assert [s for s in tape.seen if s[0] != "DATA"] == [("LOGIN", a_port), ("LOGIN", b_port), ("LOGOUT", b_port)]
    assert {s[1] for s in tape.data_frames()[:2]} == {a_port} and {s[1] for s in tape.data_frames()[2:]} == {b_port}
    # A comes back, resynchronises and takes its ports back
    u.restart_controller("A")
    assert u.master() == "A"
    assert h.login(B0) == wire.E_PATH_DOWN and h.login(A0) == wire.OK
    assert h.read(A0, 0, 4, 4) == (wire.OK, late)
    assert u.table("ob_630")["state"] == "done" and [p["name"] for p in u.table("ob_ports")] == ["A0", "A1"]


def test_the_standby_killed_mid_backup_changes_nothing_for_the_backup(dual):
    u, h, tape = dual
    assert h.login(A1) == wire.OK
    img = random.Random(3).randbytes(32 * BS)
    for lba in range(0, 32, 8):
        assert h.write(A1, 2, lba, img[lba * BS:(lba + 8) * BS]) == wire.OK
    ob.backup(u, 2, TAPE, port="A0", paused=True)
    ob.step(u, 3)
    u.kill_controller("B")
    assert u.master() == "A"
    assert ob.step(u, 1)["bp"] == 16
    u.restart_controller("B")                               # B rejoins as standby, resynchronised
    assert u.master() == "A" and u.ctrl_table("B", "dual")["role"] == "standby"
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(2, 32) == img
    assert [s for s in tape.seen if s[0] != "DATA"] == [("LOGIN", A0), ("LOGOUT", A0)]
    assert [s[3] for s in tape.data_frames()] == list(range(0, 32, 4))
