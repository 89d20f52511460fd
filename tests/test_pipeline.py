"""Many requests in flight: the host keeps `iodepth` requests outstanding, the board's
workers overlap them, and a request waiting on a busy drive does not hold up requests
to rows on other drives.  Order of completions, never time, shows it."""
import threading

import pytest
from conftest import rig_desc

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
    import random

    r = random.Random(5)
    ops = []
    for _ in range(300):
        n = r.randint(1, 4)
        lba = r.randrange(0, 128 - n)
        ops.append(("w" if r.random() < 0.5 else "r", 0, lba, n))
    assert h.run_queue(ops, iodepth=16) == 0
    assert h.verify_all(0, 128) == 0
    assert h.verifier.checked > 0
