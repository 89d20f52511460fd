"""The command line as a user types it: every command the README and the docs show,
run as a subprocess of the installed `storlab` (exit status, first and last lines),
on every board the docs name for it; errors in one line with the documented exit
status; the live view in a real terminal (tmux)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import have_micropython

from host import cli

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "storlab"
needs_mp = pytest.mark.skipif(not have_micropython(), reason="the micropython binary is not installed")

SMALL_RIG = (ROOT / "rigs" / "small.toml").read_text()


def storlab(*args, timeout=600, cwd=ROOT):
    """Run `storlab ARGS` as a user would; (exit status, stdout, stderr)."""
    env = dict(os.environ, COLUMNS="160")
    env.pop("STORLAB_DEBUG", None)
    r = subprocess.run([str(BIN), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env=env)
    return r.returncode, r.stdout, r.stderr


def lines(text):
    return [x.rstrip() for x in text.splitlines() if x.strip()]


def one_line_error(err: str) -> str:
    out = lines(err)
    assert len(out) == 1 and out[0].startswith("storlab: error: "), err
    assert "Traceback" not in err
    return out[0]


@pytest.fixture
def small_rig(tmp_path):
    p = tmp_path / "small.toml"
    p.write_text(SMALL_RIG)
    return p


# ---- the demo, on every board the README names -------------------------------------------
@pytest.mark.parametrize("board", ["emulator", "cpython", "inprocess"])
def test_demo_runs_on_each_board(board):
    if board == "emulator" and not have_micropython():
        pytest.skip("no micropython binary")
    rc, out, err = storlab("demo", "--board", board, "--ops", 20)
    assert rc == 0, out + err
    assert lines(out)[0].startswith("storlab demo rig demo on board " + board)
    assert "group 0 = RAID5 of drives [0, 1, 2, 3]" in lines(out)[0]
    assert "drive 1 fails" in out and "rebuild done" in out
    assert lines(out)[-1].startswith("PASS: ") and lines(out)[-1].endswith(" 0 bad")


def test_demo_json_is_machine_readable_and_names_the_raid_level_of_the_rig(tmp_path):
    rig = tmp_path / "mirror.toml"
    rig.write_text(SMALL_RIG.replace("level = 5", "level = 1").replace("members = [0, 1, 2]", "members = [0, 1]")
                   .replace("chunk = 2\n", "").replace("spares = [3]", "spares = [2]")
                   .replace("blocks = 96", "blocks = 64"))
    rc, out, err = storlab("demo", "--board", "inprocess", "--rig", rig, "--ops", 10, "--json")
    assert rc == 0, out + err
    d = json.loads(out)
    assert d["ok"] is True and d["bad"] == 0 and d["checked"] > 100
    s = d["scenarios"][0]
    assert s["scenario"] == "rebuild" and s["board"] == "inprocess" and s["group"]["level"] == 1
    assert s["rebuild"]["state"] == "done" and [r["drive"] for r in s["drives"]] == [0, 1, 2, 3]
    assert "RAID1 of drives [0, 1]" in err and "PASS" in err       # the human view went to stderr


@needs_mp
def test_demo_scenarios_sparing_and_all_take_ops():
    rc, out, err = storlab("demo", "--scenario", "sparing", "--ops", 30)
    assert rc == 0, out + err
    assert lines(out)[0].startswith("storlab demo: proactive sparing on board emulator")
    assert "judged faulty" in out and lines(out)[-1].startswith("PASS")
    rc, out, err = storlab("demo", "--scenario", "all", "--ops", 15, "--board", "inprocess", "--json")
    assert rc == 0, err
    assert [s["scenario"] for s in json.loads(out)["scenarios"]] == ["rebuild", "sparing"]
    rc, out, err = storlab("demo", "--scenario", "sparing", "--ops", 15, "--board", "cpython", "--live")
    assert rc == 0, err
    assert lines(out)[-1].startswith("PASS")


def test_demo_on_a_board_too_small_for_the_rig_is_a_one_line_board_error(tmp_path):
    # emulator-small runs the demo (tests/test_fit.py); the same board with a 160 KiB heap
    # cannot hold the reference rig's 200 KiB
    board = tmp_path / "tiny.toml"
    board.write_text((ROOT / "boards" / "emulator-small.toml").read_text()
                     .replace('heap = "256K"', 'heap = "160K"').replace('name = "emulator-small"', 'name = "tiny"'))
    rc, out, err = storlab("demo", "--board", board, "--ops", 5)
    assert rc == 3, err
    assert "MemoryError" in one_line_error(err)


# ---- errors: one line, the documented status ------------------------------------------------
@pytest.mark.parametrize("args,status,says", [
    (["live", "--board", "inprocess", "--fail", "9"], 2, "--fail 9: no such member drive on unit u0 (members: 0, 1"),
    (["demo", "--ops", "0"], 2, "argument --ops: 0: must be at least 1"),
    (["demo", "--board", "emulatr"], 2, "no board 'emulatr' (choose from cpython, emulator"),
    (["demo", "--scenario", "rebuilt"], 2, "invalid choice: 'rebuilt'"),
    (["tables", "--rig", "rigs/nope.toml"], 2, "rigs/nope.toml: no such rig file"),
    (["tables", "--board", "inprocess", "--table", "grups"], 2,
     "unit u0 has no table 'grups' (its tables: config, drives, groups, volumes"),
    (["run", "nope.fio"], 2, "nope.fio: no such job file"),
    (["trace", "replay", "README.md"], 2, "README.md: not a storlab trace"),
    (["deploy", "pico"], 2, "no board 'pico'"),
    (["status", "emulatr@/dev/ttyACM0"], 2, "status: no board 'emulatr'"),
    (["status", "--board", "emulator@labgrid:"], 2, "no place named after 'labgrid:'"),
])
def test_user_errors_are_one_line_with_exit_status_2(args, status, says):
    rc, out, err = storlab(*args)
    assert rc == status, out + err
    assert says in one_line_error(err)


def test_a_board_that_cannot_be_reached_is_a_board_error_exit_3(tmp_path):
    rc, out, err = storlab("status", f"emulator@{tmp_path / 'no-such-port'}")
    assert rc == 3 and "board or link failure: " in one_line_error(err) and "could not open port" in err


def test_a_rig_without_a_host_is_refused_before_any_board_starts(small_rig, tmp_path):
    no_host = tmp_path / "nohost.toml"
    no_host.write_text(SMALL_RIG.split("[[host]]")[0])
    rc, out, err = storlab("live", "--rig", no_host, "--board", "inprocess")
    assert rc == 2 and "live needs a [[host]]" in one_line_error(err)


def test_a_typo_in_a_rig_file_is_refused_with_the_nearest_key_and_its_line(tmp_path):
    bad = tmp_path / "typo.toml"
    bad.write_text(SMALL_RIG.replace("drive_blocks = 64", "drive_blokcs = 64"))
    rc, out, err = storlab("status", "--rig", bad, "--board", "inprocess")
    assert rc == 2
    line = one_line_error(err)
    assert line == (f"storlab: error: {bad}:9: unit u0: unknown key 'drive_blokcs' "
                    f"(did you mean 'drive_blocks'?)")


def test_debug_shows_the_traceback():
    rc, out, err = storlab("--debug", "tables", "--rig", "rigs/nope.toml")
    assert rc != 0 and "Traceback" in err and "RigError" in err
    rc, out, err = storlab("tables", "--rig", "rigs/nope.toml", "--debug")
    assert "Traceback" in err


def test_every_option_has_help_with_its_default_and_the_lists_of_choices():
    ap = cli.build_parser()
    seen = 0

    def walk(p, name):
        nonlocal seen
        for act in p._actions:
            if isinstance(act, type(ap._subparsers._group_actions[0])):
                for sub_name, sub in act.choices.items():
                    walk(sub, f"{name} {sub_name}")
                continue
            if act.dest == "help":
                continue
            seen += 1
            assert act.help, f"{name}: option {act.option_strings or act.dest} has no help"
        return p
    walk(ap, "storlab")
    assert seen > 50
    rc, out, _ = storlab("demo", "--help")
    assert rc == 0 and "(default: 300)" in out and "emulator-small" in out and "sparing:" in out
    assert "exit status: 0 ok; 1 data mismatch" in out


# ---- status, tables, boards --------------------------------------------------------------
def test_status_shows_groups_members_cache_and_a_verdict(small_rig):
    rc, out, err = storlab("status", small_rig, "--board", "inprocess")
    assert rc == 0, err
    assert lines(out)[0].startswith("unit u0  board inprocess (cpython, core c), boot 1, configured")
    for want in ("Raid Level :  raid5", "State :  clean", "Raid Devices :  3", "Spare Devices :  1",
                 "active sync", "spare", "cache: 256 slots", "errors: none", "warnings: none"):
        assert want in out, want
    assert lines(out)[-1] == "PASS: every group of every unit is in its normal state"
    rc, out, _ = storlab("status", "--rig", small_rig, "--board", "inprocess", "--json")
    d = json.loads(out)["u0"]
    assert rc == 0 and d["groups"][0]["state"] == "normal" and d["impl"] == "cpython"


def test_status_of_a_degraded_rebuilding_group(make_rig):
    from conftest import rig_desc
    from rich.console import Console

    from host import status

    rig = make_rig(rig_desc(), board="inprocess")
    u = rig.unit()
    u.fail_drive(1)
    u.rebuild(0, paused=True)
    u.job("rebuild0", "step", n=16)
    u.wait_for(lambda x: x.job("rebuild0")["pointer"] == 16, what="16 rows rebuilt")
    d = status.gather(u)
    con = Console(width=160, color_system=None, record=True)
    con.print(status.render("u0", d))
    out = con.export_text()
    assert "State :  clean, degraded, recovering (paused)" in out
    assert "Rebuild Status :  25% complete (row 16 of 64), member 1 onto drive 4" in out
    assert re.search(r"1\s+1\s+faulty", out) and re.search(r"-\s+4\s+spare rebuilding", out)
    assert "drive 1 failed (operator)" in out
    assert "Total Devices :  5" in out and "Spare Devices :  1" in out
    assert status.problems(d) == ["group 0 is rebuilding"]


def test_tables_pretty_by_default_json_on_request(small_rig):
    rc, out, err = storlab("tables", "--rig", small_rig, "--board", "inprocess", "--table", "volumes")
    assert rc == 0, err
    assert lines(out)[0] == "unit u0: volumes" and "┃ id ┃ blocks ┃ extents" in out and "│ 0  │ 96     │" in out
    rc, out, _ = storlab("tables", "--rig", small_rig, "--board", "inprocess", "--json")
    d = json.loads(out)["u0"]
    assert rc == 0 and d["volumes"][0]["id"] == 0 and d["volumes"][0]["blocks"] == 96 and "groups" in d


def test_boards_lists_every_board_file():
    rc, out, _ = storlab("boards")
    assert rc == 0
    for b in cli.board_names():
        assert re.search(rf"│ {re.escape(b)}\s+│", out), b


# ---- storlab run: fio job files ------------------------------------------------------------
JOB = """; a verifying mixed workload, a drive dies part-way
[global]
bs=4k
verify=crc32c
iodepth=4
size=256k

[mixed]
rw=randrw
rwmixread=70
number_ios=120

[fill-second-half]
rw=write
offset=256k
size=128k
bs=8k
end_fsync=1

[fault-one]
drive=1
what=fail
after_ops=60
"""


@needs_mp
def test_run_a_fio_job_file_end_to_end_with_fio_json(small_rig, tmp_path):
    jf = tmp_path / "job.fio"
    jf.write_text(JOB)
    rc, out, err = storlab("run", jf, "--rig", small_rig, "--output-format", "json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["fio version"].startswith("storlab")
    jobs = {j["jobname"]: j for j in d["jobs"]}
    m, w = jobs["mixed"], jobs["fill-second-half"]
    assert m["error"] == 0 and m["job options"]["rw"] == "randrw" and m["job options"]["iodepth"] == "4"
    assert m["read"]["total_ios"] + m["write"]["total_ios"] == 120
    assert m["read"]["io_bytes"] == 4096 * m["read"]["total_ios"] and m["read"]["iops"] > 0
    assert m["read"]["bw"] == round(m["read"]["bw_bytes"] / 1024)
    pct = m["read"]["clat_ns"]["percentile"]
    assert list(pct)[:3] == ["1.000000", "5.000000", "10.000000"] and "99.990000" in pct
    assert pct["50.000000"] <= pct["99.000000"] <= m["read"]["clat_ns"]["max"]
    assert w["write"]["total_ios"] == 16 and w["write"]["io_bytes"] == 128 * 1024 and w["read"]["total_ios"] == 0
    assert w["storlab"]["region_blocks"] == [64, 32] and w["storlab"]["verify"]["read_back"] == 32
    s = d["storlab"]
    assert s["ok"] and s["bad_blocks"] == 0 and s["io_errors"] == 0 and s["blocks_checked"] > 32
    assert s["faults"][0]["fired_op"] == 60 and s["faults"][0]["what"] == "fail"
    assert "PASS" in err


def test_run_prints_fio_text_and_refuses_a_bad_option_with_the_nearest_name(small_rig, tmp_path):
    jf = tmp_path / "job.fio"
    jf.write_text("[randread]\nrw=randread\nbs=4k\nnumber_ios=40\niodepth=2\n")
    rc, out, err = storlab("run", jf, "--rig", small_rig, "--board", "inprocess")
    assert rc == 0, err
    assert lines(out)[0].startswith("randread: (groupid=0, jobs=1): err= 0: rw=randread, bs=4096, iodepth=2")
    assert re.search(r"read: IOPS=\d+, BW=", out) and "clat percentiles (usec):" in out and "99.90th=[" in out
    assert "Run status group 0 (all jobs):" in out and lines(out)[-1].startswith("PASS: 1 job(s), 40 I/Os")
    jf.write_text("[randread]\nrw=randread\nbz=4k\n")
    rc, out, err = storlab("run", jf, "--rig", small_rig, "--board", "inprocess")
    assert rc == 2 and one_line_error(err) == (f"storlab: error: {jf}:3: [randread] unknown job option 'bz' "
                                               f"(did you mean 'bs'?)")
    jf.write_text("[w]\nrw=write\nsize=1m\n")
    rc, out, err = storlab("run", jf, "--rig", small_rig, "--board", "inprocess")
    assert rc == 2 and "beyond volume 0's 393216 bytes" in one_line_error(err)
    jf.write_text("[a]\nrw=write\nverify=md5\n[b]\nrw=randrw\nverify=md5\n")
    rc, out, err = storlab("run", jf, "--rig", small_rig, "--board", "inprocess")
    assert rc == 2 and "overlapping blocks of volume 0 with verify" in one_line_error(err)


# ---- trace, reliability, deploy, the model replay -----------------------------------------
@needs_mp
def test_trace_record_replay_export(tmp_path):
    t = tmp_path / "t.jsonl"
    rc, out, err = storlab("trace", "record", t, "--ops", 10)
    assert rc == 0, err
    assert re.match(r"PASS: \d+ frames recorded to .*t.jsonl; workload: \d+ blocks checked, 0 bad", lines(out)[-1])
    rc, out, err = storlab("trace", "replay", t)
    assert rc == 0, err
    assert lines(out)[-1] == "PASS: drive contents and state tables identical to the recorded run"
    rc, out, err = storlab("trace", "export", t, tmp_path / "timeline.json")
    assert rc == 0 and json.loads((tmp_path / "timeline.json").read_text())["traceEvents"]
    # without the drive failure the replay ends elsewhere: it says where
    recs = [json.loads(x) for x in t.read_text().splitlines()]
    cut = tmp_path / "cut.jsonl"
    cut.write_text("".join(json.dumps(r) + "\n" for r in recs if r.get("event") != "inject"))
    rc, out, err = storlab("trace", "replay", cut)
    assert rc == 1, err
    assert "first difference in the end state: u0." in out
    assert lines(out)[-1] == "FAIL: drive contents and state tables DIFFERENT from the recorded run"


@needs_mp
def test_reliability_ends_with_a_verdict():
    rc, out, err = storlab("reliability", "--fuzz", 40, "--kills", 1, "--ops", 10, "--model-steps", 10)
    assert rc == 0, out + err
    assert "mismatches found: 0 (goal 0)" in out
    assert lines(out)[-1].startswith("PASS: 0 mismatches (goal 0): link faults")


@needs_mp
def test_deploy_to_an_emulated_board_as_typed(tmp_path):
    rc, out, err = storlab("deploy", "emulator", "--state", tmp_path / "board")
    assert rc == 0, out + err
    assert lines(out)[0].startswith("emulated emulator board powered on at /dev/pts/")
    assert "firmware/raid.mpy" in out and "attach a rig with board emulator@/dev/pts/" in out
    assert lines(out)[-1].startswith("PASS: deployed to emulator; it answers as micropython")


def test_typecheck_as_typed():
    from host.typecheck import stub_dir

    if not stub_dir("emulator").exists():
        pytest.skip("stubs for emulator not installed: run `storlab typecheck --install` (CI does)")
    rc, out, err = storlab("typecheck", "emulator")
    assert rc == 0, out + err
    assert lines(out)[0].startswith("emulator (micropython-unix-stubs")
    rc, out, err = storlab("typecheck", "pico")
    assert rc == 2 and "no board 'pico'" in one_line_error(err)


def test_model_replay_as_the_readme_shows(tmp_path):
    f = tmp_path / "steps.json"
    f.write_text(json.dumps({"error": "", "steps": [{"op": "write", "lba": 0, "count": 3},
                                                    {"op": "read", "lba": 0, "count": 3}]}))
    r = subprocess.run([sys.executable, "-m", "host.model", "replay", str(f)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and "replayed 2 steps" in r.stdout and "no difference" in r.stdout


# ---- the live view, in a real terminal ------------------------------------------------------
def in_tmux(tmp_path, command: str, timeout: float = 600) -> str:
    """Run command in a tmux pane (a real terminal, 160x60); return the screen once it ended."""
    sock = f"storlab-test-{uuid.uuid4().hex[:8]}"
    mark = f"EXIT-{uuid.uuid4().hex[:6]}="
    script = tmp_path / "run.sh"
    script.write_text(f"cd {ROOT}\n{command}\necho {mark}$?\nexec cat\n")
    tm = ["tmux", "-L", sock, "-f", "/dev/null"]
    subprocess.run(tm + ["new-session", "-d", "-x", "160", "-y", "60", "sh", str(script)], check=True,
                   env=dict(os.environ, TERM="xterm-256color"))
    try:
        end = time.monotonic() + timeout
        while True:
            screen = subprocess.run(tm + ["capture-pane", "-p", "-J"], capture_output=True, text=True).stdout
            if mark in screen or time.monotonic() > end:
                return screen.replace(mark, "EXIT=")
            time.sleep(0.5)
    finally:
        subprocess.run(tm + ["kill-server"], capture_output=True)


@needs_mp
@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed (.ci/run installs it)")
def test_live_in_a_real_terminal(tmp_path):
    screen = in_tmux(tmp_path, f"{BIN} live --ops 80")
    assert "EXIT=0" in screen, screen
    assert "u0: drives" in screen and "u0: RAID groups" in screen and "RAID5" in screen
    assert re.search(r"PASS: \d+ blocks verified, 0 bad; groups: 0 normal", screen), screen


@needs_mp
@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed (.ci/run installs it)")
def test_demo_live_in_a_real_terminal(tmp_path):
    screen = in_tmux(tmp_path, f"{BIN} demo --live --ops 20")
    assert "EXIT=0" in screen, screen
    assert "unit u0 on emulator (micropython)" in screen and "u0: background jobs" in screen
    assert re.search(r"PASS: \d+ blocks verified, 0 bad", screen)


# ---- the docs' commands are the ones tested here ----------------------------------------------
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TESTED = {"demo", "live", "run", "status", "tables", "boards", "reliability", "deploy", "trace", "typecheck",
          "farm"}      # farm: tests/test_farm.py


def documented_commands():
    for doc in DOCS:
        in_code = False
        for line in doc.read_text().splitlines():
            if line.startswith("```"):
                in_code = not in_code
                continue
            cand = [line] if in_code else re.findall(r"`((?:\.venv/bin/)?storlab [^`]+)`", line)
            for c in cand:
                c = c.split("#")[0].strip()
                m = re.match(r"(?:\.venv/bin/)?storlab (\S.*)", c)
                if m:
                    yield doc.name, m.group(1)


def test_every_documented_command_and_option_exists():
    ap = cli.build_parser()
    subs = ap._subparsers._group_actions[0].choices
    found = 0
    for doc, cmd in documented_commands():
        words = cmd.replace("[", " ").replace("]", " ").replace("|", " ").split()
        name = words[0]
        if name == "COMMAND":       # `storlab COMMAND --help`
            continue
        assert name in subs, f"{doc}: `storlab {cmd}`: no command {name!r}"
        assert name in TESTED, f"{doc}: `storlab {name}` is documented but no test here runs it"
        p = subs[name]
        if p._subparsers and len(words) > 1 and words[1] in p._subparsers._group_actions[0].choices:
            p = p._subparsers._group_actions[0].choices[words[1]]      # trace record, farm export, ...
        opts = {o for a in p._actions for o in a.option_strings} | {"--debug"}
        for w in words[1:]:
            if w.startswith("--"):
                assert w.split("=")[0] in opts, f"{doc}: `storlab {cmd}`: {name} has no option {w}"
        found += 1
    assert found >= 15


def test_the_generated_doc_sections_are_what_the_generators_write():
    from host import fio, rigschema

    assert rigschema.doc_section((ROOT / "docs" / "rig.md").read_text()) == rigschema.markdown(), \
        "docs/rig.md is stale: python -m host.rigschema --write"
    assert fio.doc_section((ROOT / "docs" / "cli.md").read_text()) == fio.markdown(), \
        "docs/cli.md is stale: python -m host.fio --write"


def test_the_job_file_of_docs_cli_md_runs(tmp_path):
    text = (ROOT / "docs" / "cli.md").read_text()
    jf = tmp_path / "doc.fio"
    jf.write_text(re.search(r"```ini\n(.*?)```", text, re.S).group(1))
    rc, out, err = storlab("run", jf, "--board", "inprocess", "--output-format", "json+normal")
    assert rc == 0, err
    assert "fault [fault-drive1]: unit u0 drive 1 fail after 200 I/Os: fired at I/O 200" in out
    assert lines(out)[-1].startswith("PASS: 2 job(s)")


def test_a_description_given_as_data_is_checked_too():
    from conftest import rig_desc

    from host.rig import Rig, RigError

    d = rig_desc()
    d["unit"][0]["group"][0]["spare"] = [4]
    with pytest.raises(RigError, match=r"unit u0 group 0: unknown key 'spare' \(did you mean 'spares'\?\)"):
        Rig(d)
    d = rig_desc(sparing={"mode": "auto"}, features=["sparing"])     # feature sections go to the firmware
    Rig(d).close()


def test_live_json_without_a_terminal():
    rc, out, err = storlab("live", "--board", "inprocess", "--ops", 40, "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["ok"] and d["bad"] == 0 and d["failed_drive"] == 1 and d["rebuilt_groups"] == [0]
    assert d["groups"][0]["state"] == "normal" and "PASS" in err


@needs_mp
def test_status_and_tables_of_a_running_board_at_board_at_url(tmp_path, small_rig):
    from host.boards import load_board
    from host.deploy import EmulatedBoard, deploy

    board = load_board("emulator")
    with EmulatedBoard(board, tmp_path / "flash") as eb:
        eb.power_on()
        attach = deploy(board, None, "u0", emulated=eb)["attach"]
        rc, out, err = storlab("status", attach)          # deployed, never configured
        assert rc == 0, err
        assert lines(out)[0].startswith("unit emulator  board emulator (micropython, core viper)")
        assert "NOT configured" in lines(out)[0]
        rc, out, err = storlab("demo", "--rig", small_rig, "--board", attach, "--ops", 10)   # configures it
        assert rc == 0, out + err
        rc, out, err = storlab("status", attach, "--json")
        assert out, err
        d = json.loads(out)["emulator"]
        assert rc == 0 and d["configured"] and d["groups"][0]["members"] == [0, 3, 2]
        rc, out, err = storlab("tables", "--board", attach, "--table", "groups")
        assert rc == 0 and lines(out)[0] == "unit emulator: groups [0]" and "│ members      │ [0, 3, 2]" in out
