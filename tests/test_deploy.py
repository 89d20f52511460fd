"""Deploy: mpy-cross + mpremote onto a board named in boards/, then a rig attaches to it.
Real boards cannot be reached here; the emulated board is the unix port at its REPL on a
pty, which mpremote drives as it drives a board's USB port."""
import json
from pathlib import Path

import pytest
from conftest import have_micropython, rig_desc

from host import cli
from host.boards import load_board
from host.deploy import EmulatedBoard, board_files, build, copy, deploy_settings, mpremote, reset
from host.rig import Rig
from host.scenarios import raid5_life

pytestmark = pytest.mark.skipif(not have_micropython(), reason="the micropython binary is not installed")

# mpy-cross -march -> the architecture code in an .mpy header (byte 2, bits 2..7)
ARCH_CODE = {"x64": 2, "armv6m": 4, "armv7emsp": 7, "xtensawin": 10}
REAL_BOARDS = ("rp2040", "esp32", "stm32_nucleo")


def test_deploy_puts_compiled_firmware_on_an_emulated_board_and_a_rig_runs_on_it(tmp_path):
    board = load_board("emulator")
    flash = tmp_path / "flash"
    with EmulatedBoard(board, flash) as eb:
        eb.power_on()
        # left over from an older deploy: a source module would shadow the new .mpy
        (flash / "firmware").mkdir()
        (flash / "firmware" / "wire.py").write_text("raise ImportError('stale firmware')\n")

        files = build(board, tmp_path / "staging", unit="u0")
        copy(board, eb.port, tmp_path / "staging")

        on_board = board_files(board, eb.port)
        assert on_board == sorted(f["path"] for f in files)
        assert [p for p in on_board if p.startswith("firmware/") and not p.endswith(".mpy")] == []
        assert "firmware/core/cffi_backend.mpy" not in on_board      # host-only module
        # the board imports the compiled module from its own filesystem
        assert mpremote(eb.port, board, "exec", "import firmware.wire as w; print(w.__file__)").strip() \
            == "firmware/wire.mpy"
        bj = json.loads((flash / "board.json").read_text())
        assert (bj["name"], bj["unit"], bj["max_payload"], bj["cache_slots"]) == ("emulator", "u0", 16384, 64)

        reset(board, eb.port, eb)
        with Rig(rig_desc(), state_dir=tmp_path / "rig", board=f"emulator@{eb.port}") as rig:
            u = rig.unit()
            assert (u.hello["impl"], u.hello["core"], u.hello["boots"]) == ("micropython", "viper", 1)
            res = raid5_life(rig, ops=30)
            assert res["bad"] == 0 and res["checked"] > 200
            assert res["group"]["state"] == "normal" and res["job"]["state"] == "done"
        assert eb.alive()


def test_storlab_deploy_command_deploys_attaches_and_verifies(tmp_path, capsys):
    rig_file = Path(__file__).resolve().parent.parent / "rigs" / "small.toml"
    rc = cli.main(["deploy", "emulator", "--rig", str(rig_file), "--ops", "20", "--state", str(tmp_path / "board")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "firmware/raid.mpy" in out and "0 bad" in out
    assert (tmp_path / "board" / "flash" / "firmware" / "raid.mpy").exists()
    assert not (tmp_path / "board" / "flash" / "firmware" / "raid.py").exists()


@pytest.mark.parametrize("name", ["emulator", *REAL_BOARDS])
def test_firmware_compiles_for_each_board_architecture_from_its_board_file(tmp_path, name):
    board = load_board(name)
    files = build(board, tmp_path / name, unit="u3")
    viper = (tmp_path / name / "firmware" / "core" / "viper.mpy").read_bytes()
    arch = board.get("mpy_arch") or deploy_settings(board)["mpy_arch"]
    if arch == "host":
        arch = "x64"
    assert viper[:2] == b"M\x06" and viper[2] & 3 == 3            # .mpy v6.3: MicroPython 1.23 and later
    assert viper[2] >> 2 == ARCH_CODE[arch]                       # native (viper) code for this board
    assert {f["path"] for f in files} >= {"main.py", "board.json", "firmware/unit.mpy", "firmware/main.mpy"}
    bj = json.loads((tmp_path / name / "board.json").read_text())
    for k in ("max_payload", "cache_slots", "max_members", "workers"):
        assert bj[k] == board[k]
    main = (tmp_path / name / "main.py").read_text()
    assert "import firmware.main" in main
    wait = deploy_settings(board).get("boot_wait_ms", 0)
    assert ("time.sleep_ms(%d)" % wait in main) == (name in REAL_BOARDS)


@pytest.mark.parametrize("name", REAL_BOARDS)
def test_real_board_files_say_everything_deploy_and_the_rig_need(name):
    b = load_board(name)
    d = deploy_settings(b)
    assert b["kind"] == "serial" and b["url"].startswith("/dev/tty")
    assert b["serial"]["baudrate"] > 0 and b["heap_budget"].endswith("K")
    assert b["max_block_size"] + 8 < b["max_payload"] and b["cache_slots"] >= 4
    assert d["reset"] in ("hard", "soft") and d["settle_s"] > 0 and d["boot_wait_ms"] > 0
    assert b["typecheck"]["stubs"].startswith("micropython-")
