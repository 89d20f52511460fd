"""Board farms on labgrid: a real labgrid coordinator and `storlab farm export` (emulated
boards behind ser2net, published by a real labgrid-exporter) on 127.0.0.1, and rigs whose
boards are places acquired through the coordinator (docs/boards.md, "Board farms")."""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, have_micropython

from host import cli
from host.deploy import Ser2net
from host.hostio import Workload
from host.link import LinkError
from host.rig import Rig

pytest.importorskip("labgrid", reason="labgrid is not installed (pip install 'storlab[farm]')")

from host.farm import Coordinator, FarmClient, FarmError, PlaceHeld  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore:set.*is deprecated:DeprecationWarning"),   # pyserial's rfc2217
    pytest.mark.skipif(Ser2net.binary() is None,
                       reason="ser2net is not installed (Debian package ser2net; .ci/run installs it)"),
    pytest.mark.skipif(not have_micropython(), reason="the micropython binary is not installed"),
]

DOCS = ROOT / "docs" / "boards.md"
DOCS_ADDR = "127.0.0.1:20408"      # the coordinator address the docs use; replaced by the test's
BIN = Path(sys.executable).parent


def exe(name: str) -> str:
    p = BIN / name
    assert os.access(p, os.X_OK), f"{name} is not installed in this environment"
    return str(p)


def docs_block(lang: str, after: str) -> str:
    """The first ```lang block after the heading or text `after` in docs/boards.md."""
    text = DOCS.read_text()
    m = re.search(r"```" + lang + r"\n(.*?)```", text[text.index(after):], re.S)
    assert m, f"no {lang} block after {after!r} in {DOCS}"
    return m.group(1)


def farm_rig(addr: str) -> dict:
    """docs/boards.md's farm.toml, on the test's coordinator."""
    desc = tomllib.loads(docs_block("toml", "`farm.toml`"))
    assert desc["labgrid"]["coordinator"] == DOCS_ADDR
    desc["labgrid"]["coordinator"] = addr
    return desc


# ---- processes: everything a test starts is gone at its end ----------------------
def proc_stat(pid: int):
    """(state, start time) of a process, None if there is none."""
    try:
        s = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    f = s[s.rindex(")") + 2:].split()
    return f[0], int(f[19])


def descendants(pid: int) -> set[tuple[int, int]]:
    """Every process below pid, as (pid, start time)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                s = (d / "stat").read_text()
            except OSError:
                continue
            kids.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), []):
            st = proc_stat(k)
            if st:
                out.add((k, st[1]))
                todo.append(k)
    return out


def still_running(procs) -> list[int]:
    left = []
    for pid, start in procs:
        st = proc_stat(pid)
        if st and st[1] == start and st[0] != "Z":
            left.append(pid)
    return left


def no_client_threads():
    return not [t for t in threading.enumerate() if t.name.startswith("labgrid-client")]


class Export:
    """`storlab farm export ...` in a subprocess, up once it has said `ready`."""

    def __init__(self, argv: list[str], tmp: Path):
        assert argv[:3] == ["storlab", "farm", "export"]
        self.err_path = tmp / "export.stderr"
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen([exe("storlab"), *argv[1:], "--state", str(tmp / "export")],
                                     stdout=subprocess.PIPE, stderr=self.err, text=True, start_new_session=True)
        self.out = []
        for line in self.proc.stdout:      # until ready, or until it exits (EOF)
            self.out.append(line)
            if line.startswith("ready"):
                break
        text = "".join(self.out)
        assert text.rstrip().endswith("Ctrl-C stops"), f"export did not come up: {text}{self.stderr()}"
        self.exporter_pid = int(re.search(r"labgrid-exporter pid (\d+)", text).group(1))
        self.procs = descendants(self.proc.pid) | {(self.proc.pid, proc_stat(self.proc.pid)[1])}

    def stderr(self) -> str:
        return self.err_path.read_text()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)      # Ctrl-C
            self.proc.wait(timeout=60)
        self.proc.stdout.close()
        self.err.close()
        assert still_running(self.procs) == [], "storlab farm export left processes behind"


@pytest.fixture
def coordinator(tmp_path):
    c = Coordinator(tmp_path / "coordinator").start()
    cpid = (c.proc.pid, proc_stat(c.proc.pid)[1])
    try:
        yield c
    finally:
        c.stop()
    assert still_running({cpid}) == []
    assert no_client_threads()


def unit_io(u, host, rounds: int) -> int:
    wl = Workload(host, 0, u.table("volumes")[0]["blocks"], seed=len(u.name))
    for _ in range(rounds):
        wl.step()
    return wl.bad


def test_two_unit_rig_on_farm_places_and_the_exporter_killed_mid_run(tmp_path, coordinator):
    addr = coordinator.address
    exp = Export(["storlab", "farm", "export", "--coordinator", addr, "--name", "lab", "--create-places",
                  "emu-0", "emu-1"], tmp_path)
    try:
        assert "place created" in "".join(exp.out)
        with FarmClient(addr) as fc:
            assert [(p["name"], p["acquired"]) for p in fc.places()] == [("emu-0", None), ("emu-1", None)]
            rig = Rig(farm_rig(addr), state_dir=tmp_path / "rig")
            try:
                t0 = time.monotonic()
                rig.start()
                print(f"two-unit rig started on the farm in {time.monotonic() - t0:.2f} s")
                a, b = rig.unit("a"), rig.unit("b")
                held = {p["name"]: p["acquired"] for p in fc.places()}
                assert held == {"emu-0": fc.me(), "emu-1": fc.me()}
                for u in (a, b):
                    assert u.launcher.took and u.hello["impl"] == "micropython"
                    assert u.launcher.url.startswith("rfc2217://127.0.0.1:")
                    print(f"{u.name}: place {u.launcher.place} acquired in {u.launcher.acquire_s * 1000:.1f} ms")
                assert unit_io(a, rig.host("h0"), 60) == 0 and unit_io(b, rig.host("h1"), 60) == 0
                assert rig.host("h0").verify_all(0, 64) == 0
                a.restart()       # attaches again: the place stays held, the board keeps its state
                assert a.launcher.took and a.hello["configured"]
                assert rig.host("h0").verify_all(0, 64) == 0
                # the path a-b: peer frames from one place's link to the other's (the board's unit
                # name is its place's: storlab farm export named it)
                assert a.mgmt("peer_ping", peer=0, data="hi")["reply"] == "pong emu-1 hi"

                os.kill(exp.exporter_pid, signal.SIGKILL)     # the exporter dies mid-run
                with pytest.raises(LinkError) as err:
                    for _ in range(100000):   # ends at the first request after the place is lost
                        a.write(0, 0, bytes(512) * 4)
                assert "labgrid place emu-0" in str(err.value)
                with pytest.raises(LinkError) as err_b:
                    for _ in range(100000):
                        b.read(0, 0, 1)
                assert "labgrid place emu-1" in str(err_b.value)
                assert exp.proc.wait(timeout=60) == 1
                assert "labgrid-exporter exited (killed by SIGKILL); boards withdrawn" in exp.stderr()
                # the places are still ours until the rig stops
                assert {p["name"]: p["acquired"] for p in fc.places()} == held
            finally:
                rig.close()
            assert [(p["name"], p["acquired"]) for p in fc.places()] == [("emu-0", None), ("emu-1", None)]
    finally:
        exp.stop()


def test_the_exporter_killed_outright_leaves_no_board_or_server_running(tmp_path, coordinator):
    """SIGKILL of `storlab farm export` itself (no Ctrl-C, nothing of it runs again):
    its boards, ser2net and labgrid's exporter end with it (their parent-death signal)."""
    exp = Export(["storlab", "farm", "export", "--coordinator", coordinator.address, "--name", "lab",
                  "emu-0"], tmp_path)
    children = {p for p in exp.procs if p[0] != exp.proc.pid}
    assert len(children) >= 3, children        # a board, ser2net, labgrid-exporter
    os.kill(exp.proc.pid, signal.SIGKILL)
    assert exp.proc.wait(timeout=60) == -signal.SIGKILL
    end = time.monotonic() + 60               # a bound, not a timing: SIGTERM is handled at once
    while still_running(children) and time.monotonic() < end:
        time.sleep(0.1)
    assert still_running(children) == []
    exp.stop()


def test_a_place_held_by_another_user_is_refused(tmp_path, coordinator, capsys):
    addr = coordinator.address
    exp = Export(["storlab", "farm", "export", "--coordinator", addr, "--name", "lab", "emu-0", "emu-1"], tmp_path)
    client = [exe("labgrid-client"), "-x", addr]
    alice = dict(os.environ, LG_USERNAME="alice", LG_HOSTNAME="lab3")
    try:
        for p in ("emu-0", "emu-1"):
            subprocess.run([*client, "-p", p, "create"], check=True, capture_output=True)
            subprocess.run([*client, "-p", p, "add-match", f"lab/{p}/NetworkSerialPort"], check=True,
                           capture_output=True)
        subprocess.run([*client, "-p", "emu-1", "acquire"], env=alice, check=True, capture_output=True)
        capsys.readouterr()
        assert cli.main(["farm", "--coordinator", addr]) == 0
        listing = capsys.readouterr().out
        assert re.search(r"^emu-1 +lab3/alice +\d{4}-\d\d-\d\d", listing, re.M), listing
        assert re.search(r"^emu-0 +free +rfc2217://127\.0\.0\.1:\d+ +lab$", listing, re.M), listing
        assert cli.main(["farm", "--coordinator", addr, "--json"]) == 0
        places = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
        assert places["emu-1"]["acquired"] == "lab3/alice" and places["emu-0"]["acquired"] is None
        port = places["emu-0"]["resources"][0]
        assert port["path"] == "lab/emu-0/NetworkSerialPort/NetworkSerialPort" and port["avail"]
        assert port["args"]["host"] == "127.0.0.1" and port["args"]["protocol"] == "rfc2217"

        rig = Rig(farm_rig(addr), state_dir=tmp_path / "rig")
        with pytest.raises(PlaceHeld) as err:
            rig.start()
        msg = str(err.value)
        assert "labgrid place emu-1 is held by alice on lab3" in msg
        assert "labgrid-client -p emu-1 release" in msg and "allow" in msg
        with FarmClient(addr) as fc:      # emu-0, acquired before emu-1 was refused: released again
            assert {p["name"]: p["acquired"] for p in fc.places()} == {"emu-0": None, "emu-1": "lab3/alice"}
            with pytest.raises(FarmError, match=r"no labgrid place 'emu-7' .*places: emu-0, emu-1"):
                fc.acquire("emu-7")
            # alice lets us use it too: the rig runs on it and leaves it hers
            subprocess.run([*client, "-p", "emu-1", "allow", fc.me()], env=alice, check=True, capture_output=True)
            with Rig(farm_rig(addr), state_dir=tmp_path / "rig2") as rig:
                assert not rig.unit("b").launcher.took and rig.unit("a").launcher.took
                assert unit_io(rig.unit("b"), rig.host("h1"), 20) == 0
                assert {p["name"]: p["acquired"] for p in fc.places()} == {"emu-0": fc.me(), "emu-1": "lab3/alice"}
                # alice takes it back mid-run: the unit's link fails, naming the place
                subprocess.run([*client, "-p", "emu-1", "release"], env=alice, check=True, capture_output=True)
                with pytest.raises(LinkError) as err:
                    for _ in range(100000):
                        rig.unit("b").read(0, 0, 1)
                assert "labgrid place emu-1: the place was released" in str(err.value)
            assert {p["name"]: p["acquired"] for p in fc.places()} == {"emu-0": None, "emu-1": None}
            subprocess.run([*client, "-p", "emu-1", "acquire"], env=alice, check=True, capture_output=True)
            with pytest.raises(FarmError, match="labgrid place emu-0 is already in use by unit a"):
                Rig(farm_rig(addr), state_dir=tmp_path / "rig3", board="emulator@labgrid:emu-0").start()
            assert fc.place("emu-0")["acquired"] is None
            # the docs' way out when a holder is gone: take it from them
            r = subprocess.run([*client, "-p", "emu-1", "release", "--kick"], capture_output=True, text=True)
            assert r.returncode == 0 and "kicking user (lab3/alice)" in r.stdout, r.stdout + r.stderr
            assert fc.place("emu-1")["acquired"] is None
        assert no_client_threads()
    finally:
        subprocess.run([*client, "-p", "emu-1", "release"], env=alice, capture_output=True)
        exp.stop()


def test_the_docs_farm_commands(tmp_path, coordinator, capsys, monkeypatch):
    """docs/boards.md, "Trying a farm on one machine": every command, in order."""
    addr = coordinator.address
    monkeypatch.chdir(tmp_path)
    (tmp_path / "farm.toml").write_text(docs_block("toml", "`farm.toml`").replace(DOCS_ADDR, addr))
    lines = [shlex.split(x, comments=True) for x in docs_block("sh", "### Trying a farm on one machine").splitlines()]
    lines = [x for x in lines if x]
    assert lines[0] == ["labgrid-coordinator", "--listen", DOCS_ADDR]   # the fixture runs it on a free port
    exp = None
    ran = []
    try:
        for argv in lines[1:]:
            argv = [w.replace(DOCS_ADDR, addr) for w in argv]
            if argv[:3] == ["storlab", "farm", "export"]:
                exp = Export(argv, tmp_path)
            elif argv[0] == "storlab":
                capsys.readouterr()
                rc = cli.main(argv[1:])
                out = capsys.readouterr().out
                assert rc == 0, f"{argv}: {out}"
                ran.append((argv, out))
            else:
                r = subprocess.run([exe(argv[0]), *argv[1:]], capture_output=True, text=True, cwd=tmp_path)
                assert r.returncode == 0, f"{argv}: {r.stdout}{r.stderr}"
                ran.append((argv, r.stdout))
            if argv[:2] == ["storlab", "tables"]:
                with FarmClient(addr) as fc:
                    held = {p["name"]: p["acquired"] for p in fc.places()}
                # released at the end of the run, except a place held before it
                assert held["emu-1"] is None
                assert (held["emu-0"] is not None) == any(a[-1:] == ["acquire"] for a, _ in ran)
        assert exp is not None
        listing = next(out for a, out in ran if a[:2] == ["storlab", "farm"])
        assert re.search(r"^emu-0 +free +rfc2217://127\.0\.0\.1:\d+ +lab$", listing, re.M), listing
        tables = [out for a, out in ran if a[:2] == ["storlab", "tables"]]
        assert len(tables) == 2 and all('"a"' in t and '"b"' in t and '"groups"' in t for t in tables)
    finally:
        if exp:
            exp.stop()


def test_farm_bad_input(tmp_path, coordinator, capsys):
    from host.boards import load_board

    with pytest.raises(ValueError, match="no place named after 'labgrid:'"):
        load_board("emulator@labgrid:")
    desc = farm_rig(coordinator.address)
    with pytest.raises(FarmError, match=r"\[labgrid\]: unknown key\(s\) coordnator \(known: coordinator, timeout\)"):
        Rig(dict(desc, labgrid={"coordnator": coordinator.address}), state_dir=tmp_path / "r1")
    with pytest.raises(FarmError, match=r"\[labgrid\] timeout = '30': a number of seconds above 0"):
        Rig(dict(desc, labgrid={"coordinator": coordinator.address, "timeout": "30"}), state_dir=tmp_path / "r0")
    with pytest.raises(FarmError, match="address 'lab3' is not HOST:PORT"):
        Rig(dict(desc, labgrid={"coordinator": "lab3"}), state_dir=tmp_path / "r2")
    capsys.readouterr()
    assert cli.main(["farm", "--coordinator", "127.0.0.1:1"]) == 2      # nobody listens there
    assert "storlab farm: no labgrid coordinator answers at 127.0.0.1:1" in capsys.readouterr().err
    assert cli.main(["farm", "export", "--coordinator", coordinator.address, "--board", "rp2040"]) == 2
    assert "board 'rp2040' is a serial board: storlab farm export runs emulated boards" in capsys.readouterr().err
    assert cli.main(["farm", "export", "--coordinator", coordinator.address, "emu/0"]) == 2
    assert "board name 'emu/0': letters, digits" in capsys.readouterr().err
    # a place that matches no serial port
    subprocess.run([exe("labgrid-client"), "-x", coordinator.address, "-p", "bare", "create"], check=True,
                   capture_output=True)
    rig = Rig(dict(desc, unit=[dict(desc["unit"][0], board="emulator@labgrid:bare")], path=[],
                   host=desc["host"][:1]), state_dir=tmp_path / "r3")
    with pytest.raises(FarmError, match="labgrid place bare has no NetworkSerialPort: it matches no resource"):
        rig.start()
    subprocess.run([exe("labgrid-client"), "-x", coordinator.address, "-p", "bare", "add-match", "lab/bare/*"],
                   check=True, capture_output=True)
    with pytest.raises(FarmError, match=r"its matches \(lab/bare/\*\) find nothing on the coordinator \(is its "
                                        r"exporter running\?\)"):
        rig.start()
    with FarmClient(coordinator.address) as fc:
        assert fc.place("bare")["acquired"] is None
