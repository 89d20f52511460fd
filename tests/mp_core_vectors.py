# Run tests/core_vectors.json against core backends; MicroPython and CPython alike.
#
#   MICROPYPATH=.frozen:<repo> micropython tests/mp_core_vectors.py viper pure
#   python tests/mp_core_vectors.py c pure
#
# Every case runs twice: through the public wrapper (firmware.core) with plain bytes /
# bytearray arguments, and straight into the backend module with every buffer a
# memoryview at an odd offset, which takes the unaligned paths of the C and viper code.
# Prints "core vectors: N passed, M failed (backend)" per backend; exits 1 on any failure.
# The file is read one case per line (as gen_core_vectors.py writes it) to keep the
# memory use small.

import json
import sys

try:
    from binascii import unhexlify
except ImportError:  # very small ports
    from ubinascii import unhexlify


def _dirname(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else "."


HERE = _dirname(__file__)
ROOT = _dirname(HERE) if HERE != "." else ".."
# Appended, not prepended: a module found earlier on the path (e.g. a sanitizer build
# of _storlab_core given in PYTHONPATH) must win over one lying in the repo root.
if ROOT not in sys.path:
    sys.path.append(ROOT)

import firmware.core as core  # noqa: E402

MAX_REPORTS = 10


def unhex(s):
    return unhexlify(s) if s else b""


def plain_ro(b):
    return b


def plain_rw(b):
    return bytearray(b)


def odd_view(b):
    # The same bytes at offset 1 of a bigger bytearray, as a writable memoryview.
    buf = bytearray(len(b) + 3)
    buf[1:1 + len(b)] = b
    return memoryview(buf)[1:1 + len(b)]


def run_case(api, case, ro, rw):
    """None if the case passes, else a short description of what differed."""
    fn = case["fn"]
    if fn == "xor_into":
        srcs = [ro(unhex(s)) for s in case["srcs"]]
        want = unhex(case["out"])
        dst = rw(bytearray(len(want)))
        api.xor_into(dst, srcs)
        return None if bytes(dst) == want else "output"
    if fn in ("xor_acc", "or_merge", "and_not", "copy"):
        dst = rw(unhex(case["dst"]))
        getattr(api, fn)(dst, ro(unhex(case["src"])))
        return None if bytes(dst) == unhex(case["out"]) else "output"
    if fn == "parity_update":
        p = rw(unhex(case["parity"]))
        api.parity_update(p, ro(unhex(case["old"])), ro(unhex(case["new"])))
        return None if bytes(p) == unhex(case["out"]) else "output"
    if fn == "equal":
        got = api.equal(ro(unhex(case["a"])), ro(unhex(case["b"])))
        return None if got is case["out"] else "got %r" % (got,)
    if fn == "is_zero":
        got = api.is_zero(ro(unhex(case["a"])))
        return None if got is case["out"] else "got %r" % (got,)
    if fn in ("bit_set", "bit_clear"):
        bm = rw(unhex(case["bm"]))
        getattr(api, fn)(bm, case["i"])
        return None if bytes(bm) == unhex(case["out"]) else "bit %d" % case["i"]
    if fn in ("range_set", "range_clear"):
        bm = rw(unhex(case["bm"]))
        getattr(api, fn)(bm, case["start"], case["count"])
        ok = bytes(bm) == unhex(case["out"])
        return None if ok else "range %d+%d" % (case["start"], case["count"])
    if fn in ("bit_test", "count", "next_set", "next_clear"):
        bm = ro(unhex(case["bm"]))
        f = getattr(api, fn)
        for probe in case["probes"]:
            got = f(bm, *probe[:-1])
            if got != probe[-1] or type(got) is not int:
                return "%s%r gave %r" % (fn, tuple(probe[:-1]), got)
        return None
    if fn == "cobs":
        plain, enc = unhex(case["plain"]), unhex(case["enc"])
        dst = rw(bytearray(len(plain) + len(plain) // 254 + 1))
        n = api.cobs_encode(ro(plain), dst)
        if n != len(enc) or bytes(dst[:n]) != enc:
            return "encode gave %r bytes" % (n,)
        for cap in (len(plain) - 1, len(plain), len(plain) + 5):
            if cap < 0:
                continue
            out = rw(bytearray(cap))
            n = api.cobs_decode(ro(enc), out)
            want = len(plain) if cap >= len(plain) else -1
            if n != want or (n >= 0 and bytes(out[:n]) != plain):
                return "decode cap %d gave %r" % (cap, n)
        return None
    if fn == "cobs_decode":
        out = rw(bytearray(case["cap"]))
        n = api.cobs_decode(ro(unhex(case["src"])), out)
        if n != case["ret"] or (n >= 0 and bytes(out[:n]) != unhex(case["out"])):
            return "gave %r" % (n,)
        return None
    return "unknown fn"


def cases(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.endswith(","):
                line = line[:-1]
            if line.startswith('{"version"'):
                if not line.startswith('{"version":1,'):
                    raise ValueError("core_vectors.json: unknown version")
            elif line.startswith("{"):
                yield json.loads(line)


def run(backend, path):
    core.use(backend)
    backend_mod = core._b
    passed = failed = 0
    for k, case in enumerate(cases(path)):
        why = None
        for api, ro, rw, how in ((core, plain_ro, plain_rw, "wrapper"),
                                 (backend_mod, odd_view, odd_view, "backend, odd offsets")):
            try:
                why = run_case(api, case, ro, rw)
            except Exception as e:  # report, then go on with the other cases
                why = "raised %r" % (e,)
            if why:
                why = "%s (%s)" % (why, how)
                break
        if why:
            failed += 1
            if failed <= MAX_REPORTS:
                print("FAIL case %d %s: %s" % (k, case["fn"], why))
        else:
            passed += 1
    print("core vectors: %d passed, %d failed (%s)" % (passed, failed, backend))
    return failed == 0 and passed > 0


def main(argv):
    backends = argv or [core.BACKEND]
    ok = True
    for name in backends:
        try:
            core.use(name)
        except ImportError as e:
            print("core vectors: backend %s unavailable: %r" % (name, e))
            ok = False
            continue
        if name == "c":
            import _storlab_core
            print("c backend module: %s" % (_storlab_core.__file__,))
        ok = run(name, HERE + "/core_vectors.json") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
