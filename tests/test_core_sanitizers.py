"""The C core built with AddressSanitizer + UndefinedBehaviorSanitizer, run on the
shared vectors (every buffer also at odd offsets) and on long / many-source XORs."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SAN = "-fsanitize=address,undefined"

# Extra work for the sanitized module beyond the vectors: lengths around the XOR
# block size, up to 12 sources, dst among the sources, and the streaming path.
EXTRA = r"""
import os, sys
sys.path.append(sys.argv[1])
import _storlab_core
from firmware.core import cffi_backend as c, pure as p
for n in (1, 63, 64, 65, 8191, 8192, 8193, 20001):
    for ns in (1, 2, 3, 4, 5, 6, 7, 9, 12):
        srcs = [os.urandom(n) for _ in range(ns)]
        a, b = bytearray(n), bytearray(n)
        c.xor_into(memoryview(a), srcs)
        v = 0
        for s in srcs:
            v ^= int.from_bytes(s, "little")
        assert a == v.to_bytes(n, "little"), (n, ns)
        c.xor_into(a, [srcs[0], a] + srcs[1:])  # dst is a source: a ^ all = 0
        assert not any(a), (n, ns)
    par, old, new = (bytearray(os.urandom(n)) for _ in range(3))
    want = bytearray(par); p.parity_update(want, old, new)
    c.parity_update(par, old, new)
    assert par == want
    bm = bytearray(os.urandom(n))
    assert c.count(bm, 3, n * 8 - 1) == p.count(bm, 3, n * 8 - 1)
    assert c.next_set(bytearray(n), 0, n * 8) == -1
    assert c.next_clear(bytearray(b"\xff" * n), 1, n * 8) == -1
    enc = bytearray(n + n // 254 + 1)
    k = c.cobs_encode(bm, enc)
    out = bytearray(n)
    assert c.cobs_decode(enc[:k], out) == n and out == bm
    c.cobs_decode(bytes(enc[:k - 1]) + b"\xff", out)  # broken input: must stay in bounds
# the streaming path (>= 4 MiB, nsrc <= 5), dst off a 64-byte boundary
n = (4 << 20) + 77
for ns in (1, 3, 5):
    srcs = [os.urandom(n) for _ in range(ns)]
    big = bytearray(n + 3)
    c.xor_into(memoryview(big)[3:], srcs)
    v = 0
    for s in srcs:
        v ^= int.from_bytes(s, "little")
    assert big[3:] == v.to_bytes(n, "little"), ns
print("extra ok", _storlab_core.__file__)
"""


def _runtime(name):
    try:
        path = subprocess.run(["gcc", "-print-file-name=" + name], capture_output=True, text=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    # gcc echoes the bare name back when it has no such file
    return path if os.path.isabs(path) and os.path.exists(path) else None


def test_c_core_under_asan_ubsan(tmp_path):
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    if not (asan and ubsan):
        pytest.skip("gcc has no sanitizer runtimes (libasan / libubsan); install libasan8 libubsan1")
    out = str(tmp_path / "asan")
    env = dict(os.environ,
               STORLAB_CFLAGS=SAN + " -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1",
               STORLAB_LDFLAGS=SAN,
               STORLAB_BUILD_DIR=out)
    build = subprocess.run([sys.executable, os.path.join(ROOT, "csrc", "build_core.py")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]

    run_env = {k: v for k, v in os.environ.items() if not k.startswith("STORLAB_")}
    run_env.update(
        LD_PRELOAD=asan + ":" + ubsan,
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1",
        PYTHONPATH=os.pathsep.join([out] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
        PYTHONMALLOC="malloc",  # so ASan sees Python's buffers too
    )
    proc = subprocess.run([sys.executable, os.path.join(HERE, "mp_core_vectors.py"), "c"], cwd=ROOT,
                          env=run_env, capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-5000:]
    assert "core vectors: " in text and " 0 failed (c)" in text, text[-5000:]
    module_line = [ln for ln in proc.stdout.splitlines() if ln.startswith("c backend module: ")]
    assert module_line and module_line[0].split(": ", 1)[1].startswith(out), text[-3000:]
    assert "runtime error" not in text and "AddressSanitizer" not in text, text[-5000:]

    proc = subprocess.run([sys.executable, "-c", EXTRA, ROOT], cwd=str(tmp_path), env=run_env,
                          capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-5000:]
    assert "extra ok " + out in text, text[-3000:]
    assert "runtime error" not in text, text[-5000:]
