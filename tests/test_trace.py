"""Traces: every frame on every link as JSON Lines; replay on a fresh rig reproduces the
drive contents and the state tables; export as a Chrome/Perfetto timeline."""
import json

import pytest
from conftest import have_micropython, rig_desc

from host.rig import Rig
from host.scenarios import raid5_life
from host.trace import Recorder, read, replay, state_of, to_chrome

pytestmark = pytest.mark.skipif(not have_micropython(), reason="the micropython binary is not installed")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The RAID5 life scenario (fill, workload, drive failure, degraded I/O, paused and
    stepped rebuild with writes mid-way, verify) on the emulator, recorded from boot."""
    d = tmp_path_factory.mktemp("trace")
    rig = Rig(rig_desc(), state_dir=d / "original", board="emulator")
    rec = Recorder(rig, d / "trace.jsonl")
    try:
        rig.start()
        res = raid5_life(rig, ops=40)
        state = state_of(rig)
        rec.end(state)
        link_frames = len(rig.unit().link.trace)
    finally:
        rec.close()
        rig.close()
    assert res["bad"] == 0
    return {"path": d / "trace.jsonl", "dir": d, "state": state, "frames": rec.frames, "link_frames": link_frames}


def test_trace_has_every_frame_of_the_link_with_a_timestamp(recorded):
    header, records = read(recorded["path"])
    frames = [r for r in records if "event" not in r]
    assert header["units"] == {"u0": {"board": "emulator", "started": False}}
    assert len(frames) == recorded["frames"] == recorded["link_frames"] > 1000
    assert all(a["t"] <= b["t"] for a, b in zip(frames, frames[1:]))
    kinds = {(r["dir"], r["kind"]) for r in frames}
    assert {("rx", "HELLO"), ("tx", "MGMT"), ("tx", "WRITE"), ("rx", "WRITE.resp"), ("rx", "DREAD"),
            ("tx", "DREAD.resp"), ("rx", "DWRITE"), ("rx", "LOG")} <= kinds
    assert [(r["event"], r.get("drive"), r.get("fault")) for r in records if "event" in r] == \
        [("inject", 1, "fail"), ("end", None, None)]
    assert records[-1]["state"] == recorded["state"]
    writes = [r for r in frames if r["kind"] == "WRITE"]
    assert all(len(r["digest"]) == 16 and "data" in r for r in writes)      # what a replay needs
    assert {r["status"] for r in frames if r["ch"] == "drive1" and r["kind"] == "DREAD.resp"} >= {"NOT_READY"}


def test_replay_on_a_fresh_rig_reproduces_drive_contents_and_tables(recorded):
    res = replay(recorded["path"], state_dir=recorded["dir"] / "replay")
    try:
        state = state_of(res["rig"])
    finally:
        res["rig"].close()
    assert state == recorded["state"]
    assert state["u0"]["tables"]["groups"][0]["state"] == "normal"
    _, records = read(recorded["path"])
    assert res["requests"] == sum(1 for r in records if r.get("dir") == "tx" and "data" in r)
    # every host-port answer (READ data included) came back as recorded; only job
    # progress polls may differ (they catch a running rebuild at other rows)
    assert [d for d in res["differ"] if d["ch"] != "mgmt"] == []
    assert res["same"] >= res["requests"] - 10


def test_replay_without_the_recorded_drive_failure_ends_elsewhere(recorded, tmp_path):
    header, records = read(recorded["path"])
    cut = tmp_path / "no-fault.jsonl"
    with open(cut, "w") as f:
        f.write(json.dumps(header) + "\n")
        for r in records:
            if r.get("event") != "inject":
                f.write(json.dumps(r) + "\n")
    res = replay(cut, state_dir=tmp_path / "replay", timeout=10)
    try:
        state = state_of(res["rig"])
    finally:
        res["rig"].close()
    assert state["u0"]["drives"] != recorded["state"]["u0"]["drives"]


def test_trace_exports_to_a_chrome_perfetto_timeline(recorded, tmp_path):
    doc = json.loads(json.dumps(to_chrome(recorded["path"])))
    ev = doc["traceEvents"]
    _, records = read(recorded["path"])
    frames = [r for r in records if "event" not in r]
    slices = [e for e in ev if e["ph"] == "X"]
    instants = [e for e in ev if e["ph"] == "i"]
    requests = [r for r in frames if not r["kind"].endswith(".resp")]
    assert len(slices) + len([e for e in instants if e["cat"] != "harness"]) == len(requests)
    assert all(e["dur"] >= 0 and e["ts"] >= 0 for e in slices)
    assert {e["cat"] for e in slices} >= {"host", "drive", "mgmt"}
    names = {(e["name"], e["args"]["name"]) for e in ev if e["ph"] == "M"}
    assert ("process_name", "unit u0") in names and ("thread_name", "drive1") in names
    fault = [e for e in instants if e["cat"] == "harness"]
    assert [(e["name"], e["args"]["fault"]) for e in fault] == [("inject", "fail")]
    # a drive request's slice covers the host's answer: it starts at the request, ends at the response
    w = next(e for e in slices if e["name"] == "DWRITE")
    assert w["args"]["status"] == "OK" and w["args"]["resp_len"] == 1
