"""Seed 004: online backup over FC-style ports on the emulator (rigs/online_backup.toml):
ports A0 (AL-PA 0x01) and A1 (0x02), hosts 0x10 / 0x11 on the allow-list, a tape device
0x20 played by the harness that accepts Logins from both ports."""
import random
import tomllib

import pytest
from conftest import have_micropython

from firmware import wire
from host.features import online_backup as ob
from host.features.tape import TapeDrive

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
RIG = "rigs/online_backup.toml"
BS = 512
A0, A1, TAPE, H1, H2 = 0x01, 0x02, 0x20, 0x10, 0x11


def desc(**settings):
    with open(RIG, "rb") as f:
        d = tomllib.load(f)
    d["unit"][0]["online_backup"].update(settings)
    return d


@pytest.fixture
def fab(make_rig, tmp_path):
    def make(accept=(A0, A1), **settings):
        rig = make_rig(desc(**settings))
        f = ob.FcFabric(rig)
        tape = f.add(ob.TapeDevice(TAPE, TapeDrive(tmp_path / "tape0"), accept=accept, block_size=BS))
        h1 = f.add(ob.FcHost(H1))
        h2 = f.add(ob.FcHost(H2))
        return rig.unit("da"), f, tape, h1, h2
    return make


def rand(n, seed):
    return random.Random(seed).randbytes(n * BS)


def fill(h, port, lu, n, seed):
    data = rand(n, seed)
    for lba in range(0, n, 8):
        assert h.write(port, lu, lba, data[lba * BS:(lba + 8) * BS]) == wire.OK
    return data


def test_login_data_logout_sequence_seen_by_the_tape_and_a_byte_correct_image(fab):
    u, f, tape, h1, _ = fab()
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 1)
    r = ob.backup(u, 2, TAPE, paused=True)
    assert r["t630"]["lu"] == 2 and r["t630"]["bp"] == 0 and r["t630"]["cp"] == 32
    assert tape.seen == []
    t = ob.step(u, 1)
    assert t["bp"] == 4 and t["bp"] <= t["cp"]
    port = t["ports"][0]
    src = A0 if port == "A0" else A1
    assert tape.seen == [("LOGIN", src), ("DATA", src, 2, 0, 4)]
    u.job("backup", "resume")
    u.wait_job("backup")
    assert u.table("ob_630")["state"] == "done" and u.table("ob_630")["bp"] == 32
    assert tape.seen == ([("LOGIN", src)] + [("DATA", src, 2, b, 4) for b in range(0, 32, 4)] + [("LOGOUT", src)])
    assert tape.image(2, 32) == img
    rec = u.table("ob_410" if port == "A0" else "ob_430")
    assert rec == {"port_id": TAPE, "command": ["WR", 2, 28, 4], "cache_adr": ["CACHE", 2, 28]}
    tr = [x[0] for x in u.table("ob_ports")[0 if port == "A0" else 1]["trace"]]
    assert tr[:2] == [1101, 1102] and 1201 in tr and 1203 in tr


def test_port_load_records_count_writes_four_times_and_tell_sequential_from_random(fab):
    u, f, tape, h1, h2 = fab(load_period=60)
    assert h1.login(A0) == wire.OK and h2.login(A1) == wire.OK
    assert h1.write(A0, 0, 0, rand(2, 1)) == wire.OK          # first command: random
    assert h1.write(A0, 0, 2, rand(3, 2)) == wire.OK          # continues it: sequential
    assert h1.read(A0, 0, 5, 1)[0] == wire.OK                 # continues (the op does not matter)
    assert u.table("ob_450") == {"io": 3, "amount": 2 * 4 + 3 * 4 + 1, "access": "sequential"}
    assert h2.read(A1, 0, 10, 2)[0] == wire.OK
    assert h2.read(A1, 0, 30, 1)[0] == wire.OK                # not after 10+2: random
    assert u.table("ob_460") == {"io": 2, "amount": 3, "access": "random"}
    assert u.table("ob_420") == {"port_id": H1, "command": ["RD", 0, 5, 1], "cache_adr": ["CACHE", 0, 5]}
    assert u.table("ob_440")["port_id"] == H2
    assert u.table("ob_610") == {"io": 5, "amount": 24}
    assert u.table("ob_620") == {"io": 0, "amount": 0}
    # a refused command is not counted
    assert h1.read(A0, 0, 47, 2)[0] == wire.E_OUT_OF_RANGE
    assert u.table("ob_450")["io"] == 3
    # the periodic clear runs at the multiples of load_period of the harness clock
    assert ob.tick(u, 59) == 59
    assert u.table("ob_610") == {"io": 5, "amount": 24}
    ob.tick(u, 1)
    assert u.table("ob_450") == {"io": 0, "amount": 0, "access": None}
    assert u.table("ob_610") == {"io": 0, "amount": 0}
    # the previous command survives the clear (RAM 400): the next one continues it
    assert h1.read(A0, 0, 6, 1)[0] == wire.OK
    assert u.table("ob_450") == {"io": 1, "amount": 1, "access": "sequential"}


def test_refused_logins_get_an_error_and_move_no_data(fab):
    u, f, tape, h1, _ = fab()
    stranger = f.add(ob.FcHost(0x30))
    assert h1.login(A0) == wire.OK
    old = fill(h1, A0, 2, 8, 3)
    assert stranger.login(A0) == wire.E_LOGIN_REFUSED
    assert stranger.write(A0, 2, 0, rand(1, 9)) == wire.E_NOT_LOGGED_IN
    st, data = stranger.read(A0, 2, 0, 1)
    assert st == wire.E_NOT_LOGGED_IN and data == b""
    assert stranger.backup(A0, 2, TAPE) == wire.E_NOT_LOGGED_IN
    assert u.table("ob_630")["state"] == "idle"
    assert h1.read(A0, 2, 0, 8) == (wire.OK, old)
    assert u.table("ob_450")["io"] == 2                       # only h1's write and read
    assert sorted(u.table("ob_ports")[0]["sessions"]) == [H1]
    notes = [x[1] for x in u.table("ob_ports")[0]["trace"] if x[0] == 1301]
    assert "Login refused: 0x30 not on the allow-list" in notes
    # a second Login of a logged-in host is accepted and makes no second session
    assert h1.login(A0) == wire.OK and u.table("ob_ports")[0]["sessions"] == [H1]
    # a port for backup only takes no host Login at all
    u.mgmt("ob_roles", roles={"A1": "backup"})
    assert h1.login(A1) == wire.E_LOGIN_REFUSED
    assert h1.logout(A0) == wire.OK and h1.write(A0, 2, 0, rand(1, 4)) == wire.E_NOT_LOGGED_IN


def test_a_destination_that_refuses_our_login_gets_no_data_and_the_backup_fails(fab):
    u, f, tape, h1, _ = fab(accept=())
    ob.backup(u, 2, TAPE)
    t = u.wait_for(lambda x: (t := x.table("ob_630"))["state"] == "failed" and t, what="backup failed")
    assert t["bp"] == 0 and t["reason"].startswith("LOGIN_REFUSED")
    assert sorted(tape.seen) == [("LOGIN_REFUSED", A0), ("LOGIN_REFUSED", A1)]
    assert tape.tape.records() == []


def test_bad_input_gets_a_precise_status_and_changes_nothing(fab):
    u, f, tape, h1, _ = fab()
    before = {n: u.table("ob_%d" % n) for n in (630, 640, 650, 660, 670)}
    assert ob.refused(u, "ob_backup", lu=9, dest=TAPE)[0] == wire.E_NO_VOLUME
    st, text = ob.refused(u, "ob_priority", mode="backup_first", chunk=0)
    assert st == wire.E_BAD_PARAM and "zero chunk" in text
    assert ob.refused(u, "ob_priority", mode="sideways")[0] == wire.E_BAD_PARAM
    assert ob.refused(u, "ob_roles", roles={"A7": "both"})[0] == wire.E_BAD_PARAM
    assert ob.refused(u, "ob_roles", roles={"A0": "often"})[0] == wire.E_BAD_PARAM
    assert ob.refused(u, "ob_backup", lu=2, dest=0x200)[0] == wire.E_BAD_PARAM
    assert ob.refused(u, "ob_duplex", main=0, sub=2)[0] == wire.E_BAD_PARAM     # sizes differ
    assert ob.refused(u, "ob_timer", kind="backup", time=86400, lu=2)[0] == wire.E_BAD_PARAM
    assert ob.refused(u, "ob_allow", alpas=[A0])[0] == wire.E_BAD_PARAM
    u.mgmt("ob_roles", roles={"A0": "online"})
    assert ob.refused(u, "ob_backup", lu=2, dest=TAPE, port="A0")[0] == wire.E_STATE
    u.mgmt("ob_roles", roles={"A0": "both"})
    assert {n: u.table("ob_%d" % n) for n in (630, 640, 650, 660, 670)} == before
    assert u.table("jobs") == [] and tape.seen == []
