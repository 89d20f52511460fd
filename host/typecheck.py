"""storlab typecheck: mypy on the firmware against each board's MicroPython stubs.

Each board file names its stub package (`[typecheck] stubs`, e.g. micropython-rp2-stubs
for the Pico).  The packages of different ports define the same modules (machine,
micropython, ...), so each is installed into a folder of its own under the
environment (`.venv/stubs/BOARD`, with micropython-stdlib-stubs as its typeshed) and
mypy runs once per board with that folder as its whole world (no site-packages).

What it shows: every module, function, class and attribute the firmware uses exists in
that port's MicroPython, called with a valid number of arguments.  The firmware is
unannotated MicroPython code, so the inference-only error codes listed in pyproject's
[tool.mypy] are off (see docs/boards.md).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

from host.boards import BOARDS_DIR, FIRMWARE_ROOT, load_board

STUBS_ROOT = Path(sys.prefix) / "stubs"


def boards_with_stubs() -> list[str]:
    return [p.stem for p in sorted(BOARDS_DIR.glob("*.toml")) if load_board(str(p)).get("typecheck", {}).get("stubs")]


def stubs_of(board: str) -> str:
    s = load_board(board).get("typecheck", {}).get("stubs")
    if not s:
        raise ValueError(f"board {board!r} names no stubs ([typecheck] stubs in its board file)")
    return s


def stub_dir(board: str) -> Path:
    return STUBS_ROOT / board


def installed(board: str) -> bool:
    return (stub_dir(board) / ".requirement").exists() and \
        (stub_dir(board) / ".requirement").read_text() == stubs_of(board)


def install(board: str, quiet: bool = True) -> Path:
    """pip install the board's stubs (and micropython-stdlib-stubs) into its own folder."""
    d = stub_dir(board)
    req = stubs_of(board)
    if installed(board):
        return d
    cmd = [sys.executable, "-m", "pip", "install", "--upgrade", "--target", str(d), req]
    if quiet:
        cmd.insert(4, "-q")
    subprocess.run(cmd, check=True)
    (d / ".requirement").write_text(req)
    return d


def _fallback_lines(path: Path) -> set[int]:
    """Lines inside `except ImportError:` blocks: what runs where a MicroPython module is
    missing (CPython).  The CPython tests cover them; the stubs cannot."""
    try:
        tree = ast.parse(path.read_text())
    except (OSError, SyntaxError):
        return set()
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name) and node.type.id == "ImportError":
            for n in node.body:
                lines.update(range(n.lineno, (n.end_lineno or n.lineno) + 1))
    return lines


def _own_classes(paths: list[Path]) -> set[str]:
    names = {"type", "None"}   # inference only: a dict of classes, an attribute first set to None
    for p in paths:
        for f in ([p] if p.is_file() else p.rglob("*.py")):
            try:
                names.update(n.name for n in ast.walk(ast.parse(f.read_text())) if isinstance(n, ast.ClassDef))
            except (OSError, SyntaxError):
                pass
    return names


ERROR = re.compile(r'^(?P<path>[^:]+):(?P<line>\d+): error: (?P<msg>.*)  \[(?P<code>[a-z-]+)\]$')
OWN_ATTR = re.compile(r'^"(?P<cls>\w+)" has no attribute')


def check(board: str, paths: list[str] | None = None) -> tuple[int, str]:
    """Run mypy on the firmware (or `paths`) with the board's stubs.  Returns (number of
    errors, report).  Left out: lines of `except ImportError:` fallbacks, and missing
    attributes of classes the checked code defines itself (mixins: its own business,
    not the port's)."""
    d = stub_dir(board)
    if not installed(board):
        raise FileNotFoundError(f"stubs for {board} are not installed: storlab typecheck --install {board}")
    targets = paths or ["firmware"]
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(FIRMWARE_ROOT / "pyproject.toml"),
           "--no-site-packages", "--custom-typeshed-dir", str(d), "--no-error-summary", "--no-pretty",
           # other paths: no cache (mypy's cache knows a module by name, not by file)
           "--cache-dir", str(FIRMWARE_ROOT / ".mypy_cache" / board) if not paths else os.devnull, *targets]
    env = dict(os.environ, MYPYPATH=str(d))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=FIRMWARE_ROOT, env=env)
    if r.returncode not in (0, 1):
        raise RuntimeError(f"mypy failed ({r.returncode}): {r.stderr or r.stdout}")
    own = _own_classes([FIRMWARE_ROOT / t for t in targets])
    fallbacks: dict[str, set[int]] = {}
    kept = []
    for line in r.stdout.splitlines():
        m = ERROR.match(line)
        if not m:
            continue
        path = m["path"]
        if not any(Path(FIRMWARE_ROOT / path).resolve().is_relative_to((FIRMWARE_ROOT / t).resolve())
                   for t in targets):
            continue    # inside the stubs themselves: not ours to fix
        if path not in fallbacks:
            fallbacks[path] = _fallback_lines(FIRMWARE_ROOT / path)
        if int(m["line"]) in fallbacks[path]:
            continue
        a = OWN_ATTR.match(m["msg"])
        if m["code"] == "attr-defined" and a and a["cls"] in own:
            continue
        kept.append(line)
    return len(kept), "\n".join(kept)


def main(boards: list[str], do_install: bool = False) -> int:
    boards = boards or boards_with_stubs()
    worst = 0
    for b in boards:
        if do_install:
            install(b)
        n, out = check(b)
        print(f"{b} ({stubs_of(b)}): {n} error(s)")
        if n:
            print(out)
        worst = max(worst, 1 if n else 0)
    return worst
