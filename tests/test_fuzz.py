"""Fuzzing: the frame decoder and every command parser.  Every malformed input gets a
clear error status or is dropped and counted; the firmware never crashes; no table
changes.  (The dedicated run: `storlab reliability --fuzz 100000`.)"""
import pytest
from conftest import have_micropython, rig_desc
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware import mgmt, wire
from firmware.unit import BOARD_DEFAULTS
from host.reliability import fuzz_run

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 40), 1 << 40) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)

config_like = st.fixed_dictionaries({}, optional={
    "block_size": json_values | st.sampled_from([512, 4096, 4097]),
    "drives": json_values | st.lists(st.fixed_dictionaries({"blocks": st.integers(-2, 64)}), max_size=6),
    "groups": json_values | st.lists(st.fixed_dictionaries({
        "id": st.integers(-1, 17), "level": st.sampled_from([0, 1, 5, 6, "5"]),
        "members": st.lists(st.integers(-1, 7) | st.booleans(), max_size=9),
        "chunk": st.integers(-1, 4)}, optional={"spares": st.lists(st.integers(-1, 7), max_size=2) | json_values}),
        max_size=3),
    "volumes": json_values | st.lists(st.fixed_dictionaries({
        "id": st.integers(-1, 3), "group": st.integers(-1, 2), "blocks": st.integers(-1, 600)},
        optional={"start": st.integers(-5, 600)}), max_size=3),
    "cache_mode": st.sampled_from(["write-back", "write-through", "x", 1]),
    "features": json_values,
})


@given(config_like)
@settings(max_examples=400, deadline=None)
def test_configuration_parser_only_ever_refuses_with_a_reason(cfg):
    try:
        tables = mgmt.build_tables(cfg, dict(BOARD_DEFAULTS))
    except ValueError as e:
        assert str(e)
        return
    # accepted: then it is coherent
    used = [d for g in tables["groups"] for d in g["members"]]
    assert len(used) == len(set(used))
    for v in tables["volumes"]:
        g = [g for g in tables["groups"] if g["id"] == v["group"]][0]
        assert 0 <= v["start"] and v["start"] + v["blocks"] <= g["capacity"]


@given(st.lists(st.binary(max_size=300), max_size=8))
@settings(max_examples=300, deadline=None)
def test_decoder_never_raises_and_accounts_for_every_delimited_chunk(chunks):
    d = wire.Decoder(1024)
    stream = b"\x00".join(chunks) + b"\x00"
    d.push(stream)
    good = 0
    while d.pop() is not None:
        good += 1
    nonempty = sum(1 for c in stream.split(b"\x00")[:-1] if c)
    assert good + d.dropped() == nonempty


@pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
@pytest.mark.parametrize("board", ["emulator", "inprocess"])
def test_malformed_frames_and_commands_are_refused_and_change_nothing(make_rig, board):
    rig = make_rig(rig_desc(), board=board)
    f = fuzz_run(rig, inputs=1500, seed=11)
    assert f["unanswered"] == 0
    assert f["answered_with_error"] + f["answered_ok"] == f["frames"]
    assert f["answered_with_error"] > 0.9 * f["frames"]
    assert f["board_dropped"] >= f["raw"]          # every junk chunk was dropped and counted
    assert f["board_alive"] and f["state_unchanged"] and f["bad_blocks"] == 0
