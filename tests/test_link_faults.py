"""A lossy serial link: corrupted, dropped, duplicated and delayed frames in both
directions.  The protocol recovers (retransmission, duplicate suppression) and a
verifying workload completes with no wrong or lost block, each retry counted."""
import pytest
from conftest import have_micropython, rig_desc

from host.hostio import Workload
from host.linkfaults import FaultyPort, LinkFaults

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")


@pytest.mark.parametrize("board", ["emulator", "inprocess"])
def test_workload_survives_1e3_byte_corruption_drops_duplicates_and_delays(make_rig, board):
    rig = make_rig(rig_desc(block_size=512), board=board)
    u, h = rig.unit(), rig.host()
    u.set_link_faults(corrupt=1e-3, drop=0.01, duplicate=0.01, delay=0.01)
    wl = Workload(h, 0, 128, max_count=1, seed=5)
    bad = wl.run(150)
    u.flush()
    bad += h.verify_all(0, 128, chunk=1)
    f = u.link_faults
    u.set_link_faults()
    assert bad == 0, h.verifier.mismatches[:5]
    assert f.corrupted_frames > 50 and f.dropped > 0 and f.duplicated > 0 and f.delayed > 0
    host_side = u.link.counters()
    board_side = u.table("link")
    # every loss was noticed and repaired by a resend from one side or the other
    assert host_side["retransmits"] > 0 and board_side["retransmits"] > 0
    assert host_side["bad_crc"] + host_side["bad_cobs"] > 0 and board_side["bad_crc"] + board_side["bad_cobs"] > 0
    assert board_side["dup_requests"] + board_side["stale_requests"] > 0
    assert host_side["dup_drive_requests"] + host_side["stale_drive_requests"] > 0
    assert board_side["timeouts"] == 0


class _Sink:
    def __init__(self):
        self.out = []
        self.in_waiting = 0

    def write(self, b):
        self.out.append(bytes(b))
        return len(b)


def test_faulty_port_is_transparent_at_zero_rates_and_counts_what_it_does():
    sink = _Sink()
    p = FaultyPort(sink, LinkFaults())
    p.write(b"\x02a\x00\x02b\x00")
    assert sink.out == [b"\x02a\x00\x02b\x00"]
    p.faults.drop = 1.0
    p.write(b"\x02a\x00\x02b\x00")
    assert len(sink.out) == 1 and p.faults.dropped == 2
    p.faults.drop, p.faults.duplicate = 0.0, 1.0
    p.write(b"\x02a\x00")
    assert sink.out[1:] == [b"\x02a\x00", b"\x02a\x00"] and p.faults.duplicated == 1
    p.faults.duplicate, p.faults.corrupt = 0.0, 1.0
    p.write(b"\x02a\x00")
    assert sink.out[-1] != b"\x02a\x00" and sink.out[-1][-1] == 0 and p.faults.corrupted_bytes >= 1
