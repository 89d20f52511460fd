"""Seed 002: a main volume and its mirrored sub volume on two emulated boards
(rigs/mirror.toml); writes from the main host (101) and the sub host (102)."""
import tomllib
from pathlib import Path

import pytest
from conftest import have_micropython, random_blocks

from firmware import wire
from host.features import mirror as hm
from host.rig import StatusError

pytestmark = pytest.mark.skipif(not have_micropython(), reason="micropython binary not installed")
BS = 4096


@pytest.fixture
def pair(make_rig):
    with open(hm.RIG, "rb") as f:
        rig = make_rig(tomllib.load(f))
    main, sub = rig.unit("main"), rig.unit("sub")
    for u in (main, sub):
        u.mgmt("trace", on=True)
    return rig, main, sub


def rand(n, seed):
    return random_blocks(n, seed, BS)


def test_sub_host_write_reaches_the_main_volume_first_and_the_copy_skips_cached_data(pair):
    rig, main, sub = pair
    mark = len(main.link.trace)
    data = rand(3, 1)
    sub.write(0, 5, data)
    ev = [e[:2] for e in hm.events(sub) if e[0] != "603"]
    # JOB1 -> JOB3 forward, then JOB2 writes the sub volume (only after the main unit
    # had the data: the copy comes from it), then JOB3 and JOB1 end
    assert ev == [["JOB1", "701"], ["JOB1", "704"], ["JOB3", "714"], ["JOB2", "711"], ["JOB3", "718"],
                  ["JOB1", "707"]]
    assert [e[:2] for e in hm.events(main)] == [["JOB4", "719"], ["JOB5", "726"]]
    assert hm.events(main)[1][4] == "skip"
    # the copy back to the sub unit carried no data frame (cache hit, [0056])
    assert hm.peer_frames(main, mark) == [hm.MSG_HEAD]
    assert main.table("mirror")["counters"]["skipped_bytes"] == 3 * BS
    assert main.read(0, 5, 3) == data and sub.read(0, 5, 3) == data
    assert hm.on_drives(main) == hm.on_drives(sub)
    assert sub.table("mirror_515") == [] and sub.table("mirror_514") == []


def test_main_host_write_is_copied_with_its_data_and_both_volumes_stay_equal(pair):
    rig, main, sub = pair
    mark = len(main.link.trace)
    data = rand(2, 2)
    main.write(0, 10, data)
    # the write notice ([0061], no data), then the copy with the data
    assert hm.peer_frames(main, mark) == [hm.MSG_HEAD, hm.MSG_HEAD + 2 * BS]
    assert [e[:2] for e in hm.events(sub)] == [["JOB2", "notice"], ["JOB2", "711"]]
    assert sub.read(0, 10, 2) == data
    for i in range(8):      # both hosts, the same blocks
        (main if i % 2 else sub).write(0, 10 + i % 3, rand(1, 10 + i))
    assert hm.on_drives(main) == hm.on_drives(sub)
    assert sub.table("mirror")["counters"]["direct_reads"] >= 1


def test_mirror_abnormal_gives_check_at_job1_and_at_job2_with_nothing_changed(pair):
    rig, main, sub = pair
    main.write(0, 0, rand(4, 3))
    before = (hm.on_drives(main), hm.on_drives(sub))
    mark = len(sub.link.trace)
    sub.mgmt("mirror_state", state="abnormal")
    with pytest.raises(StatusError) as e:          # 702 -> 703: nothing forwarded
        sub.write(0, 1, rand(1, 4))
    assert e.value.status == wire.E_CHECK and hm.peer_frames(sub, mark) == []
    with pytest.raises(StatusError) as e:          # 709 -> 710: main volume put back
        main.write(0, 2, rand(1, 5))
    assert e.value.status == wire.E_CHECK
    assert hm.on_drives(sub) == before[1]
    assert hm.on_drives(main) == before[0]
    assert ["JOB2", "710"] in [x[:2] for x in hm.events(sub)]
    sub.mgmt("mirror_state", state="normal")
    sub.write(0, 1, rand(1, 6))
    assert hm.on_drives(main) == hm.on_drives(sub)
    r = sub.link.mgmt("mirror_state", state="odd", check=False)
    assert r["_status"] == wire.E_BAD_PARAM


def test_path_cut_gives_check_and_leaves_both_volumes_equal(pair):
    rig, main, sub = pair
    main.write(0, 0, rand(4, 7))
    before = hm.on_drives(main)
    rig.fabric.paths[0].cut = True                 # 202
    with pytest.raises(StatusError) as e:
        main.write(0, 1, rand(1, 8))
    assert e.value.status == wire.E_CHECK
    with pytest.raises(StatusError) as e:          # the copy back cannot come
        sub.write(0, 2, rand(1, 9))
    assert e.value.status == wire.E_CHECK
    rig.fabric.paths[0].cut = False
    rig.fabric.paths[1].cut = True                 # 203
    with pytest.raises(StatusError) as e:
        sub.write(0, 3, rand(1, 10))
    assert e.value.status == wire.E_CHECK
    assert hm.on_drives(main) == before == hm.on_drives(sub)
    rig.fabric.paths[1].cut = False
    sub.write(0, 3, rand(1, 11))
    assert hm.on_drives(main) == hm.on_drives(sub)


def test_areas_hold_a_pending_sub_host_write_and_reads_route_by_the_pending_list(pair):
    rig, main, sub = pair
    for d in (0, 1):
        main.inject(d, "hold")     # the main unit's pre-image read waits: the chain stops at JOB4
    data = rand(2, 12)
    w = sub.start_io("w", 0, 20, data)
    sub.wait_for(lambda u: u.table("mirror_515"), what="entry in 515")
    e = sub.table("mirror_515")[0]
    assert (e["516"], e["517"], e["518"], e["519"], e["520"]) == (0, 0, 1, "write", [20, 2])
    assert sub.table("mirror_514") == [[20, 2]]
    assert sub.table("mirror_521") == [{"entry": e["entry"], "bytes": 2 * BS}]
    assert hm.on_drives(sub)[20 * BS:22 * BS] == bytes(2 * BS)        # not written yet
    mark = len(sub.link.trace)
    assert sub.read(0, 30, 1) == bytes(BS)      # no overlap: read on the sub unit itself
    assert hm.peer_frames(sub, mark) == []
    r = sub.start_io("r", 0, 21, 1)             # overlaps: sent to the main volume
    sub.wait_for(lambda u: u.table("mirror")["counters"]["main_reads"] == 1, what="read sent to main")
    for d in (0, 1):
        main.inject(d, "release")
    sub.finish_io(w)
    assert sub.finish_io(r) == data[BS:]
    assert sub.table("mirror_515") == [] and hm.on_drives(main) == hm.on_drives(sub)


def test_sub_board_killed_mid_write_leaves_both_volumes_equal_after_restart(pair):
    rig, main, sub = pair
    main.write(0, 0, rand(4, 13))
    for d in (0, 1):
        main.inject(d, "hold")
    w = sub.start_io("w", 0, 1, rand(1, 14))
    sub.wait_for(lambda u: u.table("mirror_515"), what="entry in 515")
    sub.kill()                                   # the write is never acknowledged
    for d in (0, 1):
        main.inject(d, "release")
    sub.start(configure=False)
    sub.mgmt("trace", on=True)
    assert w is not None and sub.table("mirror_515") == []
    # the main unit finishes the cut-short copy (or puts its old data back) on its own
    # time: poll, flushing both, until the two volumes agree on the drives
    sub.wait_for(lambda u: (main.flush(), sub.flush(), hm.on_drives(main) == hm.on_drives(sub))[-1],
                 timeout=60, what="both volumes equal on the drives")
    sub.write(0, 2, rand(1, 15))                 # and the pair works on
    main.write(0, 3, rand(1, 16))
    assert hm.on_drives(main) == hm.on_drives(sub)


def test_a_recorded_trace_shows_the_job_chain_and_the_path_traffic_in_order(pair, tmp_path):
    from host.trace import Recorder, read

    rig, main, sub = pair
    rec = Recorder(rig, tmp_path / "t.jsonl")
    sub.write(0, 5, rand(2, 20))
    rec.close()
    seen = []
    for r in read(tmp_path / "t.jsonl")[1]:
        if r.get("event") == "trace" and r["text"].startswith("mirror ") and " 603 " not in " " + r["text"]:
            seen.append((r["unit"], " ".join(r["text"].split()[1:3])))
        elif r.get("kind") == "PEER" and r.get("dir") == "rx" and not r.get("status"):
            seen.append((r["unit"], "PEER %d" % r["len"]))
    # which job sent what, in order: the forward carries the data, the copy back none
    assert seen == [("sub", "JOB1 701"), ("sub", "JOB1 704"), ("sub", "JOB3 714"), ("sub", "PEER %d" % (12 + 2 * BS)),
                    ("main", "JOB4 719"), ("main", "JOB5 726"), ("main", "PEER 12"), ("sub", "JOB2 711"),
                    ("sub", "JOB3 718"), ("sub", "JOB1 707")]


def test_the_sub_volume_is_not_written_before_the_main_unit_has_the_data(pair):
    rig, main, sub = pair
    main.job("mirror", "pause")                  # the chain stops after the main unit's store
    data = rand(2, 21)
    w = sub.start_io("w", 0, 40, data)
    main.wait_for(lambda u: ["JOB5", "726"] in [e[:2] for e in hm.events(u)], what="stored on the main unit")
    assert main.read(0, 40, 2) == data           # the main unit has it ...
    assert hm.on_drives(sub)[40 * BS:42 * BS] == bytes(2 * BS)      # ... the sub volume not yet
    assert "711" not in [e[1] for e in hm.events(sub)]
    main.job("mirror", "step", 1)                # JOB5 -> JOB2: now the sub volume
    sub.finish_io(w)
    assert hm.on_drives(sub)[40 * BS:42 * BS] == data and hm.on_drives(main) == hm.on_drives(sub)


def test_the_trace_recorder_for_users_lists_the_chain_and_exports(tmp_path):
    from host.trace import export_chrome

    lines = hm.record(tmp_path / "m.jsonl", state_dir=tmp_path / "rig")
    assert [x for x in lines if "603" not in x] == [
        "sub: JOB1 701 4 2 1", "sub: JOB1 704 4 2 1", "sub: JOB3 714 4 2 1", "sub: PEER %d bytes" % (12 + 2 * BS),
        "main: JOB4 719 4 2 1", "main: JOB5 726 4 2 skip", "main: PEER 12 bytes", "sub: JOB2 711 4 2 1",
        "sub: JOB3 718 4 2 OK", "sub: JOB1 707 4 2 OK",
        "main: MW notice 8 1 1", "main: PEER 12 bytes", "sub: JOB2 notice 8 1 1", "main: JOB5 726 8 1 data",
        "main: PEER %d bytes" % (12 + BS), "sub: JOB2 711 8 1 1", "sub: JOB1 DR 20 1"]
    assert export_chrome(tmp_path / "m.jsonl", tmp_path / "m.json") > 0


def test_the_documented_trace_command_records_the_job_chain(tmp_path):
    """docs/mirror.md: `python -m host.features.mirror OUT.jsonl` prints the chain in order."""
    import subprocess
    import sys

    out = tmp_path / "mirror.jsonl"
    r = subprocess.run([sys.executable, "-m", "host.features.mirror", str(out)], capture_output=True, text=True,
                       timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert out.exists() and any("PEER" in x for x in lines)
    first = [x for x in lines if "JOB" in x]
    assert first and first[0].startswith("sub: JOB1"), lines[:5]
