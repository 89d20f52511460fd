"""The wire format: frames round-trip; every corruption is detected and counted."""
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import wire


def decode_all(data, max_payload=4096):
    d = wire.Decoder(max_payload)
    d.push(data)
    out = []
    while (fr := d.pop()) is not None:
        out.append((fr[0], fr[1], fr[2], bytes(fr[3])))
    return out, d


@given(ch=st.sampled_from([0, 5, wire.CH_DRIVE + 3, wire.CH_PEER, wire.CH_MGMT]),
       seq=st.integers(0, 0xFFFF), payload=st.binary(max_size=1200), resp=st.booleans())
@settings(max_examples=300, deadline=None)
def test_frames_round_trip(ch, seq, payload, resp):
    kind = {0: wire.K_WRITE, 5: wire.K_READ, wire.CH_DRIVE + 3: wire.K_DWRITE, wire.CH_PEER: wire.K_PEER,
            wire.CH_MGMT: wire.K_MGMT}[ch] | (wire.RESP if resp else 0)
    frame = wire.pack(ch, kind, seq, payload)
    assert frame.count(0) == 1 and frame[-1] == 0
    got, d = decode_all(frame)
    assert got == [(ch, kind, seq, payload)]
    assert d.dropped() == 0


def test_low_water_mark_travels_and_marks_older_requests_stale():
    got, d = decode_all(wire.pack(wire.CH_HOST, wire.K_WRITE, 70, b"x", low=65))
    assert got[0][2] == 70 and d.low == 65
    assert wire.stale(64, 65) and wire.stale(0xFFF0, 3) and not wire.stale(65, 65) and not wire.stale(70, 65)


def test_encoder_matches_pack():
    enc = wire.Encoder(4096)
    for n in (0, 1, 253, 254, 255, 4000):
        data = bytes((i * 7 + 1) % 256 for i in range(n))
        assert bytes(enc.frame(wire.CH_DRIVE, wire.K_DWRITE, 9, b"\x01\x02", data)) == \
            wire.pack(wire.CH_DRIVE, wire.K_DWRITE, 9, b"\x01\x02" + data)


def test_stream_split_anywhere():
    frames = [wire.pack(0, wire.K_READ, i, bytes([i]) * i) for i in range(20)]
    stream = b"".join(frames)
    d = wire.Decoder(4096)
    got = []
    for i in range(0, len(stream), 7):
        d.push(stream[i:i + 7])
        while (fr := d.pop()) is not None:
            got.append(fr[2])
    assert got == list(range(20))


def test_every_single_byte_corruption_is_detected():
    frame = wire.pack(wire.CH_HOST, wire.K_WRITE, 77, bytes(range(256)) * 2)
    assert decode_all(frame)[0]  # the undamaged frame decodes
    for i in range(len(frame) - 1):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(frame)
            bad[i] ^= flip
            got, d = decode_all(bytes(bad))
            # a corrupted frame never yields a frame
            assert got == [], (i, flip)
            assert d.dropped() >= 1


def test_truncation_is_detected():
    frame = wire.pack(wire.CH_HOST, wire.K_READ, 3, b"\x00\x00\x05\x00\x00\x00\x01\x00")
    for cut in range(1, len(frame) - 1):
        got, d = decode_all(frame[:cut] + b"\x00")
        assert got == [] and d.dropped() == 1


def _forge(ch, kind, seq, payload, declared_len):
    """A frame whose header says declared_len, with a valid CRC."""
    import binascii

    from firmware import core

    raw = struct.pack(wire.HDR, ch, kind, seq, declared_len, seq) + payload
    raw += struct.pack("<I", binascii.crc32(raw) & 0xFFFFFFFF)
    enc = bytearray(core.cobs_max(len(raw)) + 1)
    n = core.cobs_encode(raw, enc)
    return bytes(enc[:n]) + b"\x00"


def test_bad_length_is_rejected_with_a_precise_status():
    got, d = decode_all(_forge(wire.CH_HOST, wire.K_READ, 12, b"12345678", 9))
    assert got == [] and d.bad_len == 1
    assert d.rejects == [(wire.CH_HOST, wire.K_READ, 12, wire.E_BAD_LENGTH)]


def test_unknown_kind_and_channel_are_rejected():
    got, d = decode_all(_forge(wire.CH_HOST, 0x55, 4, b"", 0) + _forge(0x7A, wire.K_READ, 5, b"", 0)
                        + _forge(wire.CH_DRIVE, wire.K_READ, 6, b"", 0))
    assert got == []
    assert d.unknown_kind == 2 and d.unknown_channel == 1
    assert d.rejects == [(wire.CH_HOST, 0x55, 4, wire.E_UNKNOWN_KIND),
                         (0x7A, wire.K_READ, 5, wire.E_UNKNOWN_CHANNEL),
                         (wire.CH_DRIVE, wire.K_READ, 6, wire.E_UNKNOWN_KIND)]


def test_oversized_frame_is_dropped_and_the_next_one_survives():
    big = wire.pack(wire.CH_HOST, wire.K_WRITE, 1, bytes(5000))
    small = wire.pack(wire.CH_HOST, wire.K_READ, 2, b"abcdefgh")
    got, d = decode_all(big + small, max_payload=1024)
    assert [g[2] for g in got] == [2]
    assert d.too_long == 1


def test_garbage_between_frames_is_counted_not_acted_on():
    got, d = decode_all(b"\x01\x02\x03\x00" + wire.pack(0, wire.K_READ, 8, b"12345678") + b"\xff" * 30 + b"\x00")
    assert [g[2] for g in got] == [8]
    assert d.bad_cobs + d.bad_crc == 2


@pytest.mark.parametrize("payload", [b"", b"\x00" * 600, b"\xff" * 600])
def test_payload_extremes(payload):
    got, _ = decode_all(wire.pack(wire.CH_MGMT, wire.K_MGMT, 1, payload))
    assert got[0][3] == payload
