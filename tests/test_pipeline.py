"""Many requests in flight: the host keeps `iodepth` requests outstanding, the board's
workers overlap them, and a request waiting on a busy drive does not hold up requests
to rows on other drives.  Order of completions, never time, shows it."""
import random
import threading

import pytest
from conftest import rig_desc, rows_not_whole

from firmware import wire
from firmware.raid import locate


def member_drive(g, glba):
    return g["members"][locate(g, glba)[1]]


def filled(make_rig, board):
    rig = make_rig(rig_desc(block_size=512), board=board)
    u, h = rig.unit(), rig.host()
    assert h.run_queue([("w", 0, lba, 1) for lba in range(128)], iodepth=8) == 0
    u.flush(0)
    u.restart()                   # an empty cache: every read goes to the drives
    h.completed.clear()
    return rig, u, h


@pytest.mark.parametrize("board", ["emulator", "cpython"])
def test_reads_of_rows_off_a_held_drive_complete_while_it_holds_its_answer(make_rig, board):
    rig, u, h = filled(make_rig, board)
    g = u.table("groups")[0]
    slow = 1
    first = next(b for b in range(128) if member_drive(g, b) == slow)
    others = [b for b in range(128) if member_drive(g, b) != slow][:6]
    u.inject(slow, "hold")
    res = {}
    t = threading.Thread(target=lambda: res.update(bad=h.run_queue(
        [("r", 0, first, 1)] + [("r", 0, b, 1) for b in others], iodepth=8)))
    t.start()
    try:
        # all six reads of other drives are answered while drive 1 holds its one
        u.wait_for(lambda _: len(h.completed) >= 6, timeout=60, what="six reads past the held drive")
        assert sorted(c[2] for c in h.completed) == sorted(others)
        assert first not in [c[2] for c in h.completed]
    finally:
        u.inject(slow, "release")
        t.join(60)
    assert res["bad"] == 0
    assert [c[2] for c in h.completed][-1] == first
    assert len(h.completed) == 7


def test_a_read_waiting_on_a_slow_drive_does_not_stall_the_link(make_rig):
    """50 ms latency on one drive: at iodepth 8 the reads of other drives are answered
    before the slow one, which was issued first."""
    rig, u, h = filled(make_rig, "emulator")
    g = u.table("groups")[0]
    first = next(b for b in range(128) if member_drive(g, b) == 1)
    others = [b for b in range(128) if member_drive(g, b) != 1][:3]
    u.inject(1, "latency", seconds=0.05)
    u.inject(1, "hold")          # the order must not depend on how fast this machine is
    t = threading.Thread(target=h.run_queue, args=([("r", 0, first, 1)] + [("r", 0, b, 1) for b in others], 8))
    t.start()
    u.wait_for(lambda _: len(h.completed) >= 3, timeout=60, what="three reads")
    u.inject(1, "release")
    t.join(60)
    assert [c[2] for c in h.completed][-1] == first


def test_iodepth_16_random_writes_and_reads_verify_every_block(make_rig):
    rig = make_rig(rig_desc(block_size=512), board="emulator")
    h = rig.host()
    r = random.Random(5)
    ops = []
    for _ in range(300):
        n = r.randint(1, 4)
        lba = r.randrange(0, 128 - n)
        ops.append(("w" if r.random() < 0.5 else "r", 0, lba, n))
    assert h.run_queue(ops, iodepth=16) == 0
    assert h.verify_all(0, 128) == 0
    assert h.verifier.checked > 0


@pytest.mark.parametrize("board,cache_mode", [("emulator", "write-through"), ("emulator", "write-back"),
                                              ("cpython", "write-through")])
def test_two_writers_and_a_rebuild_on_the_same_rows_leave_parity_whole(make_rig, board, cache_mode):
    """A rebuild held mid-row on a survivor's drive while two host ports write the same
    rows (their requests wait on the board meanwhile: counted in the raid table's lock
    waits), then everything let go at once: after the flush and the rebuild every row's
    parity agrees with its data, read from the drives, and every block reads back as
    the model allows."""
    from host.golden import Golden
    from host.model import run_batch

    rig = make_rig(rig_desc(block_size=512, cache_mode=cache_mode), board=board)
    u = rig.unit()
    gold = Golden(u.block_size)
    assert run_batch(u, gold, [[lba % 2, "w", lba, 4] for lba in range(0, 128, 4)], 4) == []
    u.flush(0)
    g = u.table("groups")[0]
    survivor, failed = g["members"][0], g["members"][1]
    u.inject(failed, "fail")
    u.fail_drive(failed, "pulled")
    arrivals = {"r": 0, "w": 0}
    serve = u.link.drive_handler

    def count(d, kind, payload):
        if d == survivor:
            arrivals["r" if kind == wire.K_DREAD else "w"] += 1
        return serve(d, kind, payload)

    u.link.drive_handler = count
    u.rebuild(0, paused=True)
    u.inject(survivor, "hold")
    try:
        u.job("rebuild0", "step", n=8)
        u.wait_for(lambda _: arrivals["r"] >= 1, timeout=60, what="the rebuild waiting on the held drive")
        waits = u.table("raid")["lock_waits"]
        r = random.Random(3)
        # rows 0..15 (group blocks 0..47): the rebuild's first rows and the next ones
        ops = [[i % 2, "w", r.randrange(44), r.randint(1, 4)] for i in range(120)]
        res = {}

        def writers():
            res["bad"] = run_batch(u, gold, ops, 4)
            u.flush(0)

        t = threading.Thread(target=writers)
        t.start()
        need = 2 if cache_mode == "write-through" else 1
        u.wait_for(lambda x: x.table("raid")["lock_waits"] >= waits + need, timeout=60,
                   what="writes waiting behind the held rebuild")
    finally:
        u.inject(survivor, "release")
    u.job("rebuild0", "resume")
    t.join(120)
    assert not t.is_alive() and res["bad"] == []
    u.wait_job("rebuild0")
    u.flush(0)
    g = u.table("groups")[0]
    assert g["state"] == "normal" and failed not in g["members"]
    assert rows_not_whole(u, g) == []
    d = u.drives[g["members"][2]]
    d.write_raw(5, bytes([d.read_raw(5)[0] ^ 1]) + d.read_raw(5)[1:])
    assert rows_not_whole(u, g) == [5]          # the check sees one flipped bit
    d.write_raw(5, bytes([d.read_raw(5)[0] ^ 1]) + d.read_raw(5)[1:])
    assert run_batch(u, gold, [[0, "r", lba, 8] for lba in range(0, 128, 8)], 4) == []
    assert gold.checked >= 128
