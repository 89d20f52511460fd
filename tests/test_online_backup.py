"""Seed 004: online backup over FC-style ports on the emulator (rigs/online_backup.toml):
ports A0 (AL-PA 0x01) and A1 (0x02), hosts 0x10 / 0x11 on the allow-list, a tape device
0x20 played by the harness that accepts Logins from both ports."""
import tomllib

import pytest
from conftest import have_micropython, random_blocks

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
    return random_blocks(n, seed, BS)


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


def load_ports(h1, h2, seq_a0, seq_a1, n_a0=4, n_a1=4):
    """Host load on A0 (h1) and A1 (h2): sequential or random reads of n blocks."""
    for h, port, seq, n in ((h1, A0, seq_a0, n_a0), (h2, A1, seq_a1, n_a1)):
        lbas = [0, n] if seq else [20, 0]
        for lba in lbas:
            assert h.read(port, 0, lba, n)[0] == wire.OK


def test_port_choice_by_load_sequential_counts_heavy_roles_and_a_named_port(fab):
    u, f, tape, h1, h2 = fab()
    assert h1.login(A0) == wire.OK and h2.login(A1) == wire.OK
    img = fill(h1, A0, 2, 32, 7)
    ob.tick(u, 60)
    # A0 sequential and light, A1 random and heavier: the random one
    load_ports(h1, h2, True, False, n_a0=1, n_a1=8)
    assert u.table("ob_450")["access"] == "sequential" and u.table("ob_460")["access"] == "random"
    assert u.table("ob_460")["amount"] > u.table("ob_450")["amount"]
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["A1"]
    u.job("backup", "resume")
    u.wait_job("backup")
    # both random: the smaller transfer amount
    ob.tick(u, 60)
    load_ports(h1, h2, False, False, n_a0=3, n_a1=2)
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["A1"]
    u.job("backup", "resume")
    u.wait_job("backup")
    ob.tick(u, 60)
    load_ports(h1, h2, False, False, n_a0=2, n_a1=3)
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["A0"]
    u.job("backup", "resume")
    u.wait_job("backup")
    # both sequential: the smaller amount again
    ob.tick(u, 60)
    load_ports(h1, h2, True, True, n_a0=4, n_a1=1)
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["A1"]
    u.job("backup", "resume")
    u.wait_job("backup")
    # 640: A1 for online only -> A0 although it is the heavier one
    u.mgmt("ob_roles", roles={"A1": "online"})
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["A0"]
    u.job("backup", "resume")
    u.wait_job("backup")
    # a user-named port is used whatever the load, and stays (pinned) at the switch check
    u.mgmt("ob_roles", roles={"A1": "both"})
    t = ob.backup(u, 2, TAPE, port="A0", paused=True)["t630"]
    assert t["ports"] == ["A0"] and t["pinned"] == "A0"
    ob.tick(u, 10)
    assert u.table("ob_630")["ports"] == ["A0"]
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(2, 32) == img


def test_switching_to_a_lighter_port_mid_backup_resumes_from_630_and_ends_byte_correct(fab):
    u, f, tape, h1, h2 = fab(switch_interval=10, load_period=1000)
    assert h1.login(A0) == wire.OK and h2.login(A1) == wire.OK
    img = fill(h1, A0, 2, 32, 5)
    ob.tick(u, 1000)                                      # a new load period: both ports idle
    assert ob.backup(u, 2, TAPE, paused=True)["t630"]["ports"] == ["A0"]
    t = ob.step(u, 2)
    assert t["bp"] == 8 and t["ports"] == ["A0"]
    load_ports(h1, h2, True, False, n_a0=2, n_a1=2)      # A0 turns sequential, A1 random
    ob.tick(u, 10)                                        # the switch check
    t = u.table("ob_630")
    assert t["ports"] == ["A1"] and t["bp"] == 8
    assert tape.seen[-1] == ("LOGOUT", A0)
    t = ob.step(u, 1)
    assert t["bp"] == 12
    assert tape.seen[-2:] == [("LOGIN", A1), ("DATA", A1, 2, 8, 4)]
    u.job("backup", "resume")
    u.wait_job("backup")
    assert [s[3] for s in tape.data_frames()] == list(range(0, 32, 4))   # each chunk once, in order
    assert tape.seen[-1] == ("LOGOUT", A1)
    assert tape.image(2, 32) == img


def test_a_backup_spreads_over_light_ports_sharing_630(fab):
    u, f, tape, h1, h2 = fab(max_spread=2, spread_threshold=64)
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 6)
    ob.tick(u, 60)
    t = ob.backup(u, 2, TAPE, paused=True)["t630"]
    assert t["ports"] == ["A0", "A1"]
    ob.step(u, 4)
    srcs = [s[1] for s in tape.data_frames()]
    assert srcs == [A0, A1, A0, A1]
    assert [s[3] for s in tape.data_frames()] == [0, 4, 8, 12]
    u.job("backup", "resume")
    u.wait_job("backup")
    assert sorted(s for s in tape.seen if s[0] != "DATA") == [("LOGIN", A0), ("LOGIN", A1), ("LOGOUT", A0),
                                                               ("LOGOUT", A1)]
    assert tape.image(2, 32) == img


def test_parallel_copy_and_backup_pointer_bound_at_every_step_sends_the_staged_data(fab):
    u, f, tape, h1, _ = fab(copy_chunk=3)
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 0, 48, 8)
    u.mgmt("flush")
    u.mgmt("ob_timing", parallel=True, dest=TAPE)
    r = u.mgmt("ob_duplex", main=0, sub=1, paused=True)
    assert r["job"] == "backup" and r["t630"]["lu"] == 1 and (r["t630"]["bp"], r["t630"]["cp"]) == (0, 0)
    seen = []
    while u.job("backup")["state"] == "paused":
        t = ob.step(u, 1)
        seen.append((t["bp"], t["cp"]))
        assert t["bp"] <= t["cp"]
        if t["bp"] == 48:
            break
    assert any(bp < cp for bp, cp in seen)              # the copy runs ahead of the backup
    assert [bp for bp, _ in seen] == sorted(bp for bp, _ in seen)
    u.wait_job("backup")
    assert tape.image(1, 48) == img
    c = u.table("online_backup")["counters"]
    assert c["backup_reads"] == 0 and c["sent_from_copy"] == 48 and c["copy_reads"] == 48
    assert u.table("ob_pairs") == [{"main": 0, "sub": 1, "state": "split"}]
    assert h1.read(A0, 1, 0, 16) == (wire.OK, img[:16 * BS])


def test_split_backup_is_the_sub_volume_at_the_suspension_point(fab):
    u, f, tape, h1, _ = fab()
    assert h1.login(A0) == wire.OK
    fill(h1, A0, 0, 48, 9)
    u.mgmt("ob_duplex", main=0, sub=1)
    u.wait_job("copy")
    assert u.table("ob_pairs")[0]["state"] == "duplex"
    new = rand(4, 10)
    assert h1.write(A0, 0, 8, new) == wire.OK             # duplexed: reflected to the sub
    assert h1.read(A0, 1, 8, 4) == (wire.OK, new)
    assert h1.write(A0, 1, 0, rand(1, 11)) == wire.E_STATE   # a paired sub takes no host write
    at_split = b"".join(h1.read(A0, 1, lba, 16)[1] for lba in (0, 16, 32))
    ob.backup(u, 1, TAPE, paused=True)                    # split first: the suspension point
    assert u.table("ob_pairs")[0]["state"] == "split"
    later = rand(8, 12)
    assert h1.write(A0, 0, 0, later) == wire.OK           # no longer reflected
    assert h1.read(A0, 1, 0, 8) == (wire.OK, at_split[:8 * BS])
    ob.step(u, 3)
    assert h1.write(A0, 0, 40, rand(8, 13)) == wire.OK
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(1, 48) == at_split
    assert h1.read(A0, 0, 0, 8) == (wire.OK, later)


def test_backup_state_survives_a_board_reset_and_ends_byte_correct(fab):
    u, f, tape, h1, _ = fab()
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 14)
    u.mgmt("flush")
    u.mgmt("ob_priority", chunk=2)
    u.mgmt("ob_roles", roles={"A1": "backup"})
    ob.backup(u, 2, TAPE, paused=True)
    ob.step(u, 3)
    u.mgmt("save")
    u.restart()
    t = u.table("ob_630")
    assert (t["lu"], t["bp"], t["cp"], t["state"], t["paused"]) == (2, 6, 32, "running", True)
    assert u.table("ob_670")["chunk"] == 2 and u.table("ob_640")["A1"] == "backup"
    assert u.job("backup")["state"] == "paused" and u.job("backup")["pointer"] == 6
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(2, 32) == img
    src = tape.seen[0][1]
    data = [s[3] for s in tape.data_frames()]
    assert data == [0, 2, 4] + list(range(6, 32, 2))     # from 632 on after the reset: nothing twice
    assert [s for s in tape.seen if s[0] != "DATA"] == [("LOGIN", src), ("LOGIN", src), ("LOGOUT", src)]


def test_backup_first_online_commands_wait_for_the_chunk_then_go_before_the_next(fab):
    import threading

    u, f, tape, h1, _ = fab(priority={"mode": "backup_first", "chunk": 4, "slice": 1})
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 15)
    u.mgmt("flush")
    u.restart()                                   # an empty cache: the backup's reads go to the drives
    assert h1.login(A0) == wire.OK
    online = rand(1, 16)
    assert h1.write(A0, 0, 0, online) == wire.OK  # in the cache: this read needs no drive
    for d in (0, 1):
        u.inject(d, "hold")
    ob.backup(u, 2, TAPE)
    u.wait_for(lambda x: x.table("online_backup")["sched"]["in_chunk"], what="first chunk under way")
    got = []
    t = threading.Thread(target=lambda: got.append(h1.read(A0, 0, 0, 1)))
    t.start()
    u.wait_for(lambda x: x.table("online_backup")["sched"]["online_arrived"] == 2, what="the read arrived")
    assert got == [] and tape.data_frames() == []     # it waits for the chunk
    for d in (0, 1):
        u.inject(d, "release")
    t.join(30)
    assert got == [(wire.OK, online)]
    u.wait_job("backup")
    starts = u.table("online_backup")["sched"]["chunk_starts"]
    assert starts[0][0] == 1 and all(s[0] == 2 for s in starts[1:])   # chunk 2 on: after the read
    assert tape.image(2, 32) == img


def test_online_first_sends_one_chunk_per_time_slice_of_the_harness_clock(fab):
    u, f, tape, h1, _ = fab(priority={"mode": "online_first", "chunk": 4, "slice": 5})
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 17)
    ob.backup(u, 2, TAPE)
    assert h1.read(A0, 2, 0, 4) == (wire.OK, img[:4 * BS])   # online goes on meanwhile
    assert u.table("ob_630")["bp"] == 0
    ob.tick(u, 4)
    assert u.table("ob_630")["bp"] == 0                       # the window is not over
    for k in range(1, 9):
        ob.tick(u, 5)
        u.wait_for(lambda x, k=k: x.table("ob_630")["bp"] == 4 * k, what="chunk %d" % k)
        assert len(tape.data_frames()) == k                   # exactly one chunk per window
    u.wait_job("backup")
    assert tape.image(2, 32) == img


def test_start_by_host_command_and_by_the_timer_of_660(fab):
    u, f, tape, h1, _ = fab(timer_interval=60)
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 18)
    assert h1.backup(A0, 9, TAPE) == wire.E_NO_VOLUME and u.table("ob_630")["state"] == "idle"
    assert h1.backup(A0, 2, TAPE) == wire.OK
    u.wait_job("backup")
    assert u.table("ob_630")["origin"] == "host" and tape.image(2, 32) == img
    # a backup at 01:00 of the harness clock; a busy 630 at that moment leaves it armed
    u.mgmt("ob_timer", kind="backup", time=3600, lu=2, dest=TAPE)
    assert u.table("ob_660")[0]["at"] == 3600
    ob.backup(u, 0, TAPE, paused=True)
    ob.tick(u, 3599)
    assert u.table("ob_660")[0]["fired"] is None and u.table("ob_660")[0]["last"] == ""
    ob.tick(u, 60)
    e = u.table("ob_660")[0]
    assert e["fired"] is None and e["last"].startswith("refused: 630 is in use")
    u.job("backup", "resume")
    u.wait_job("backup")
    ob.tick(u, 60)
    assert u.table("ob_660")[0]["fired"] == 3660
    u.wait_job("backup")
    t = u.table("ob_630")
    assert (t["origin"], t["lu"], t["state"]) == ("timer", 2, "done")
    ob.tick(u, 86400)                                        # once only
    assert u.table("ob_630")["origin"] == "timer" and u.table("ob_660")[0]["fired"] == 3660
    # a copy entry starts duplexing (650: not parallel) at its time of the next day
    clock = u.table("online_backup")["clock"]
    u.mgmt("ob_timer", kind="copy", time=120, main=0, sub=1)
    assert u.table("ob_660")[1]["at"] == clock - clock % 86400 + 86400 + 120
    ob.tick(u, u.table("ob_660")[1]["at"] - clock)
    u.wait_job("copy")
    assert u.table("ob_pairs") == [{"main": 0, "sub": 1, "state": "duplex"}]
    assert u.table("ob_630")["origin"] == "timer" and h1.read(A0, 1, 0, 8) == h1.read(A0, 0, 0, 8)


def test_a_port_that_fails_mid_backup_hands_it_to_another_port_from_632(fab):
    u, f, tape, h1, h2 = fab()
    assert h1.login(A0) == wire.OK and h2.login(A1) == wire.OK
    img = fill(h1, A0, 2, 32, 19)
    t = ob.backup(u, 2, TAPE, port="A0", paused=True)["t630"]
    ob.step(u, 2)
    p = u.mgmt("ob_port", port="A0", up=False)["port"]
    assert p["up"] is False and p["sessions"] == []
    assert h1.read(A0, 2, 0, 1)[0] == wire.E_PATH_DOWN          # the host must go elsewhere
    t = ob.step(u, 1)
    assert t["ports"] == ["A1"] and t["pinned"] is None and t["bp"] == 12
    assert tape.seen[-2:] == [("LOGIN", A1), ("DATA", A1, 2, 8, 4)]
    assert ("LOGOUT", A0) not in tape.seen                        # the cut task sends nothing more
    assert h1.login(A1) == wire.OK and h1.read(A1, 2, 0, 4) == (wire.OK, img[:4 * BS])
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(2, 32) == img and [s[3] for s in tape.data_frames()] == list(range(0, 32, 4))


def test_another_unit_as_the_backup_destination_checks_our_login_and_stores_the_lu(make_rig, tmp_path):
    import copy

    d = desc()
    db = copy.deepcopy(d["unit"][0])
    db["name"] = "db"
    db["online_backup"] = {"ports": [{"alpa": 0x03}, {"alpa": 0x04}], "allow": [A0, H1]}
    d["unit"].append(db)
    rig = make_rig(d)
    f = ob.FcFabric(rig)
    h1 = f.add(ob.FcHost(H1))
    u, v = rig.unit("da"), rig.unit("db")
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 20)
    t = ob.backup(u, 2, 0x03, port="A0")["t630"]
    assert t["dest"] == 0x03
    u.wait_job("backup")
    assert u.table("ob_630")["state"] == "done"
    assert h1.login(0x03) == wire.OK
    got = b"".join(h1.read(0x03, 2, lba, 16)[1] for lba in (0, 16))
    assert got == img
    notes = [x[1] for x in v.table("ob_ports")[0]["trace"] if x[0] in (1301, 1303)]
    assert notes[:2] == ["Login of 0x01 accepted", "Logout of 0x01"]
    assert v.table("ob_450") == {"io": 2, "amount": 32, "access": "sequential"}   # only h1's two reads
    # a named port db does not allow: its Login is refused, the next candidate takes over
    img0 = fill(h1, A0, 0, 32, 21)
    r = ob.backup(u, 0, 0x03, port="A1")
    assert r["t630"]["ports"] == ["A1"]
    u.wait_job("backup")
    t = u.table("ob_630")
    assert (t["state"], t["ports"], t["pinned"]) == ("done", ["A0"], None)
    tr = [x[1] for x in v.table("ob_ports")[0]["trace"] if x[0] == 1301]
    assert tr[-2:] == ["Login refused: 0x02 not on the allow-list", "Login of 0x01 accepted"]
    assert b"".join(h1.read(0x03, 0, lba, 16)[1] for lba in (0, 16)) == img0[:32 * BS]


def test_one_port_carries_online_io_and_the_backup_at_once(fab):
    from firmware.features.online_backup import fc

    u, f, tape, h1, h2 = fab(roles={"A1": "online"})
    assert h1.login(A0) == wire.OK
    img = fill(h1, A0, 2, 32, 22)
    ob.backup(u, 2, TAPE, paused=True)
    ob.step(u, 1)                                            # A0's initiator task is logged in
    assert h2.login(A0) == wire.OK                           # the dispatcher made a target task meanwhile
    tasks = sorted(map(tuple, u.table("ob_ports")[0]["tasks"]))
    assert tasks == [("initiator", TAPE), ("target", H1), ("target", H2)]
    assert h2.write(A0, 0, 0, rand(2, 23)) == wire.OK
    ob.step(u, 1)
    assert h2.read(A0, 2, 4, 4) == (wire.OK, img[4 * BS:8 * BS])
    # frames that do not check out move nothing
    assert h2._req(A0, fc.WRITE, 2, 0, 2, rand(1, 24))[0] == wire.E_BAD_LENGTH
    assert h2._req(A0, 99, 2, 0, 1)[0] == wire.E_UNKNOWN_KIND
    assert h2.write(A0, 9, 0, rand(1, 25)) == wire.E_NO_VOLUME
    assert h2.read(A0, 2, 0, 4) == (wire.OK, img[:4 * BS])
    u.job("backup", "resume")
    u.wait_job("backup")
    assert tape.image(2, 32) == img
    assert sorted(map(tuple, u.table("ob_ports")[0]["tasks"])) == [("target", H1), ("target", H2)]
