"""The firmware type-checks against each board's MicroPython stubs (mypy), and the
check catches what a board's MicroPython does not have."""
import pytest

from host import typecheck

BOARDS = typecheck.boards_with_stubs()


def need(board):
    if not typecheck.installed(board):
        pytest.skip(f"stubs for {board} not installed: run `storlab typecheck --install` (CI does)")


def test_every_micropython_board_names_its_stubs():
    assert set(BOARDS) >= {"emulator", "rp2040", "esp32", "stm32_nucleo"}
    assert typecheck.stubs_of("rp2040").startswith("micropython-rp2-stubs")
    assert typecheck.stubs_of("emulator").startswith("micropython-unix-stubs")


@pytest.mark.parametrize("board", ["emulator", "rp2040", "esp32", "stm32_nucleo"])
def test_firmware_passes_the_type_check_against_the_board_stubs(board):
    need(board)
    n, report = typecheck.check(board)
    assert n == 0, report


def test_type_check_reports_what_the_port_lacks(tmp_path):
    need("emulator")
    need("rp2040")
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import asyncio\n"
        "import time\n"
        "\n"
        "import rp2\n"
        "\n"
        "t = time.monotonic()\n"              # CPython only
        "asyncio.get_running_loop()\n"         # CPython only
        "sm = rp2.StateMachine(0)\n"           # the Pico's PIO: only in the rp2 port
        "time.sleep_ms(1)\n"                   # MicroPython: fine
        "try:\n"
        "    from time import ticks_ms\n"
        "except ImportError:\n"
        "    ticks_ms = time.perf_counter\n"   # a CPython fallback: not the port's business
    )
    n, report = typecheck.check("emulator", [str(bad)])
    lines = report.splitlines()
    assert n == 3, report
    assert any(":4: " in x and '"rp2"' in x for x in lines)
    assert any(":6: " in x and "monotonic" in x for x in lines)
    assert any(":7: " in x and "get_running_loop" in x for x in lines)
    n, report = typecheck.check("rp2040", [str(bad)])
    assert n == 2 and '"rp2"' not in report, report
