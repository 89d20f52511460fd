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
    assert h.login(B0) == wire.OK                           # B is standby: its ports serve too
    img = random.Random(1).randbytes(32 * BS)
    for lba in range(0, 32, 8):
        assert h.write(A0, 2, lba, img[lba * BS:(lba + 8) * BS]) == wire.OK
    t = ob.backup(u, 2, TAPE, port="A1", paused=True)["t630"]    # unpinned, B's idle ports would win
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
    assert h.login(A0) == wire.OK and h.login(B0) == wire.OK   # B's ports, standby again, serve
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


# ---- four ports: the standby's two ports count and can carry the backup -----------------
def four_port_loads(u, h):
    """Three sequential ports (A0, A1, B0) and one random (B1, with the largest 452)."""
    for p in (A0, A1, B0, B1):
        assert h.login(p) == wire.OK
    one = bytes(BS)
    assert h.write(A0, 0, 0, one * 2) == wire.OK and h.write(A0, 0, 2, one * 2) == wire.OK
    assert h.write(A1, 0, 10, one) == wire.OK and h.write(A1, 0, 11, one) == wire.OK
    assert h.write(B0, 0, 20, one) == wire.OK and h.read(B0, 0, 21, 1)[0] == wire.OK
    assert h.write(B1, 0, 24, one * 4) == wire.OK and h.write(B1, 0, 4, one * 4) == wire.OK
    rows = {r["name"]: (r["io"], r["amount"], r["access"], r["remote"]) for r in u.table("ob_loads")}
    assert rows == {"A0": (2, 16, "sequential", False), "A1": (2, 8, "sequential", False),
                    "B0": (2, 5, "sequential", True), "B1": (2, 32, "random", True)}
    assert u.table("ob_610") == {"io": 4, "amount": 24} and u.table("ob_620") == {"io": 4, "amount": 37}
    assert u.ctrl_table("B", "ob_standby")["reported"] == 4


def test_three_sequential_ports_and_one_random_on_the_standby_the_backup_leaves_by_the_random_one(dual):
    u, h, tape = dual
    img = random.Random(5).randbytes(32 * BS)
    u.write(2, 0, img)                     # the rig's own host port: not a port's load
    four_port_loads(u, h)
    t = ob.backup(u, 2, TAPE, paused=True)["t630"]
    assert t["ports"] == ["B1"]
    ob.step(u, 2)
    assert tape.seen == [("LOGIN", B1), ("DATA", B1, 2, 0, 4), ("DATA", B1, 2, 4, 4)]
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.seen == [("LOGIN", B1)] + [("DATA", B1, 2, b, 4) for b in range(0, 32, 4)] + [("LOGOUT", B1)]
    assert tape.image(2, 32) == img
    b1 = u.ctrl_table("B", "ob_ports")[1]
    steps = [x[0] for x in b1["trace"]]
    assert b1["name"] == "B1" and all(s in steps for s in (1102, 1104, 1201, 1203))
    assert u.ctrl_table("B", "ob_430") == {"port_id": TAPE, "command": ["WR", 2, 28, 4], "cache_adr": ["CACHE", 2, 28]}
    assert u.ctrl_table("B", "ob_standby")["chunks"] == 8
    assert u.table("online_backup")["counters"]["backup_reads"] == 32      # read on A, sent by B


def two_chunks_out_by_b1(u, h, seed):
    """LU 2 filled (returned), the four ports loaded, a paused backup two chunks in on B1."""
    img = random.Random(seed).randbytes(32 * BS)
    u.write(2, 0, img)
    four_port_loads(u, h)
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["B1"]
    ob.step(u, 2)
    return img


def test_master_killed_mid_backup_through_the_standbys_port_the_standby_finishes_it(dual):
    u, h, tape = dual
    img = two_chunks_out_by_b1(u, h, 6)
    u.mgmt("save")                         # 630 to SM, and to B
    u.kill_controller("A")
    assert u.master() == "B"
    t = u.table("ob_630")
    assert (t["bp"], t["ports"], t["paused"]) == (8, ["B1"], True)
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(2, 32) == img
    # B's own port now: it logs in again (the standby's task was cut: no Logout) and goes on from 632
    assert tape.seen == ([("LOGIN", B1), ("DATA", B1, 2, 0, 4), ("DATA", B1, 2, 4, 4), ("LOGIN", B1)]
                         + [("DATA", B1, 2, b, 4) for b in range(8, 32, 4)] + [("LOGOUT", B1)])
    assert h.login(B1) == wire.OK and h.read(B1, 2, 0, 4) == (wire.OK, img[:4 * BS])


def test_standby_killed_mid_backup_through_its_port_the_master_goes_on_by_its_lightest_port(dual):
    u, h, tape = dual
    img = two_chunks_out_by_b1(u, h, 7)
    u.kill_controller("B")
    assert u.master() == "A"
    u.job("backup", "resume")
    u.wait_job("backup")
    assert u.table("ob_630")["state"] == "done" and tape.image(2, 32) == img
    # A1: both of A's ports are sequential, A1 has the smaller 452
    assert tape.seen == ([("LOGIN", B1), ("DATA", B1, 2, 0, 4), ("DATA", B1, 2, 4, 4), ("LOGIN", A1)]
                         + [("DATA", A1, 2, b, 4) for b in range(8, 32, 4)] + [("LOGOUT", A1)])
    assert [r["up"] for r in u.table("ob_loads")] == [True, True, False, False]
    u.restart_controller("B")              # in step again: its ports are candidates again
    assert [r["up"] for r in u.table("ob_loads")] == [True, True, True, True]
    assert h.login(B0) == wire.OK


def test_the_standbys_ports_check_the_mirrored_allow_list_and_refuse_a_backup_instruction(dual):
    u, h, tape = dual
    h2 = h.fabric.add(ob.FcHost(0x11))
    assert h2.login(B0) == wire.E_LOGIN_REFUSED                      # not on the allow-list
    assert h2.write(B0, 0, 0, bytes(BS)) == wire.E_NOT_LOGGED_IN    # no session: nothing moves
    assert u.read(0, 0, 1) == bytes(BS)
    b0 = next(r for r in u.table("ob_loads") if r["name"] == "B0")
    assert (b0["io"], b0["amount"]) == (0, 0) and u.ctrl_table("B", "ob_standby")["reported"] == 0
    u.mgmt("ob_allow", alpas=[H1, 0x11])                           # on the master; mirrored to B
    assert h2.login(B0) == wire.OK and h2.write(B0, 0, 0, b"\x07" * BS) == wire.OK
    assert u.read(0, 0, 1) == b"\x07" * BS
    assert h2.backup(B0, 2, TAPE) == wire.E_STATE                   # a backup instruction: the master's ports
    assert u.table("ob_630")["state"] == "idle" and tape.seen == []
    assert h2.backup(A0, 2, TAPE) == wire.E_NOT_LOGGED_IN


def test_switch_check_moves_the_backup_between_the_standbys_ports_logout_then_login(dual):
    u, h, tape = dual
    img = random.Random(8).randbytes(32 * BS)
    u.write(2, 0, img)
    four_port_loads(u, h)
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["B1"]
    ob.step(u, 1)
    assert h.write(B1, 0, 8, bytes(4 * BS)) == wire.OK     # continues B1's last command: sequential now
    b1 = next(r for r in u.table("ob_loads") if r["name"] == "B1")
    assert (b1["access"], b1["amount"]) == ("sequential", 48)
    ob.tick(u, 10)                                          # the switch check: B0 (5) is the lightest
    assert u.table("ob_630")["ports"] == ["B0"]
    assert tape.seen == [("LOGIN", B1), ("DATA", B1, 2, 0, 4), ("LOGOUT", B1)]
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.seen[3:] == [("LOGIN", B0)] + [("DATA", B0, 2, b, 4) for b in range(4, 32, 4)] + [("LOGOUT", B0)]
    assert tape.image(2, 32) == img
    assert u.ctrl_table("B", "ob_standby")["logouts"] == 2
