# Where the MicroPython heap goes: the firmware imported module by module, a unit
# built on a board definition, then configured with a rig's configuration.
#
#   MICROPYPATH=.frozen:<repo or .mpy folder> micropython -X heapsize=1M bench/mp_fit.py ARGS
#
# ARGS: a JSON file {"board": <board.json>, "config": <the configure op's config>,
# "source": <repo folder, or "" when the modules are .mpy>, "boot": <the modules the
# firmware loads at boot, to import in ORDER; every one of ORDER when absent>} (a file: the unix port's
# command line takes no argument with a space in it).  One JSON object on stdout:
#   base        bytes live before any firmware import
#   modules     [[name, import, ram], ...]: import = bytes the module's import added (its
#               bytecode, constants and names, and the objects its body makes);
#               ram = the objects its body makes (functions, classes, dicts, tables):
#               what stays in RAM when the module is frozen into flash (null from .mpy)
#   imported    live after every import; unit: after Unit(board); configured: after
#               configure (tables, cache, RAID); buffers: [[what, bytes], ...]
#   features    feature modules loaded by the configuration; loaded: every firmware module
#               loaded at the end (the ones a board needs for this rig)
# "live" = gc.mem_alloc() right after gc.collect().  The measurement is the generator
# steps(): each `yield` is answered with the live heap, taken by its driver outside the
# generator's frames: drive() here on the unix port (64-bit), bench/wasm/mp_fit.mjs on the
# webassembly port (32-bit), whose collector frees garbage only between top-level calls.
#
# The split (bench/test_bench_fit.py, docs/boards.md): the module is imported for real
# first (leaves first, so each module's own cost), then its source is compiled again
# and its body executed in a fresh namespace: the compiled code is counted before the
# body runs, so what the body adds is what a frozen module puts in RAM.  Its names are
# interned already by the real import, as a frozen module's are in flash.
import gc
import json
import sys

ORDER = ("firmware.core.viper", "firmware.core", "firmware.wire", "firmware.args", "firmware.geometry",
         "firmware.rowlock", "firmware.writehole", "firmware.volmap", "firmware.cache", "firmware.raid",
         "firmware.store",
         "firmware.iopath", "firmware.cha", "firmware.link", "firmware.peer", "firmware.features",
         "firmware.ldev", "firmware.mgmt", "firmware.dka", "firmware.jobs", "firmware.nvcache",
         "firmware.sm", "firmware.port", "firmware.unit")


def live():
    gc.collect()
    gc.collect()
    return gc.mem_alloc()


class NullPort:
    closed = False

    def write(self, mv):
        return len(mv)


def source_of(root, name):
    base = root + "/" + name.replace(".", "/")
    for p in (base + ".py", base + "/__init__.py"):
        try:
            with open(p) as f:
                return p, f.read()
        except OSError:
            pass
    return None, None


def body_ram(root, name):
    """Bytes the module's body makes when run again from compiled code (see above)."""
    path, src = source_of(root, name)
    if src is None:
        return None
    code = compile(src, path, "exec")
    src = None
    g = {"__name__": name}
    if path.endswith("__init__.py"):
        g["__path__"] = path[:-len("/__init__.py")]
    before = yield
    try:
        exec(code, g)
    except Exception:   # a module whose body cannot run twice: no split for it
        return None
    code = None
    n = (yield) - before
    g = None
    return max(0, n)


def imports(names, root, d):
    for name in names:
        if name in sys.modules:
            continue
        before = yield
        try:
            __import__(name)
        except (ImportError, SyntaxError):   # a module this tree does not have, or (viper) this port cannot build
            continue
        n = (yield) - before
        d["modules"].append([name, n, (yield from body_ram(root, name)) if root else None])


def buffers(u):
    """Bytes of the unit's preallocated buffers, by owner."""
    ln = u.link
    out = [["link.encoder (frame out)", len(ln.enc.enc) + len(getattr(ln.enc, "raw", b""))],
           ["link.decoder (frame in)", len(ln.dec.acc) + (len(ln.dec.raw) if ln.dec.raw is not ln.dec.acc else 0)],
           ["link.rxbuf (console read)", len(ln.rxbuf)],
           ["link.workers (%d requests)" % len(ln.workers), sum(len(w.buf) for w in ln.workers)]]
    if u.cache is not None:
        c = u.cache
        out.append(["cache (%d slots)" % len(c.slot), sum(len(s) for s in c.slot)])
        if c.nv is not None:   # the record is built in the encoder's buffer where it lends it
            shared = c.nv.rec is ln.enc.enc
            out.append(["nvcache record" + (" (in the encoder's buffer)" if shared else ""),
                        0 if shared else len(c.nv.rec)])
    if u.raid is not None:
        r = u.raid
        n = len(r.scratch) + sum(len(s) for s in getattr(r.lock, "sets", ()))
        out.append(["raid scratch (%d blocks)" % n, n * r.bs])
    return out


def steps(a):
    """The measurement as a generator: each `yield` is answered with the live heap
    (taken by the driver, outside this code, so that no frame of it is on the stack)."""
    root = a.get("source") or ""
    d = {"base": (yield), "modules": [], "port": sys.implementation._machine}
    # only what the firmware itself loads at boot (fitlib.boot_modules), in ORDER
    boot = a.get("boot")
    names = [m for m in ORDER if boot is None or m in boot] + [m for m in boot or () if m not in ORDER]
    yield from imports(["asyncio"] + names, root, d)
    for name in sorted([m for m in sys.modules if m.startswith("firmware.")]):
        if name not in [m[0] for m in d["modules"]]:   # imported by another module's import
            d["modules"].append([name, None, (yield from body_ram(root, name)) if root else None])
    from firmware import features, mgmt

    for name in a["config"].get("features", []):   # what configure will load, measured here
        before = yield
        had = list(sys.modules)
        features.load(name)
        d["modules"].append(["firmware.features.%s (package)" % name, (yield) - before, None])
        for m in sorted([m for m in sys.modules if m not in had]):
            d["modules"].append([m, None, (yield from body_ram(root, m)) if root else None])
    d["imported"] = yield
    from firmware.unit import Unit

    state = a.get("state", "/tmp")
    u = Unit(a["board"], NullPort(), sm_path=state + "/sm.json")
    d["unit"] = yield
    d["pending"] = len(u.link.free)
    u.sm.t = mgmt.build_tables(a["config"], u.board)
    u.sm.t["boot"] = {"count": 1}
    u.setup()
    d["configured"] = yield
    d["buffers"] = buffers(u)
    feats = [m for m in sys.modules if m.startswith("firmware.features.")]
    d["features"] = feats
    d["loaded"] = sorted([m for m in sys.modules if m == "firmware" or m.startswith("firmware.")])
    if u.cache is not None and u.cache.nv is not None:
        u.cache.nv.close()
    print(json.dumps(d))


def args():
    argv = getattr(sys, "argv", ())   # the webassembly port has no argv: bench/wasm/mp_fit.mjs
    with open(argv[1] if len(argv) > 1 else "/fit_args.json") as f:   # writes /fit_args.json
        return json.load(f)


def drive(g):
    """Answer every `yield` of g with the live heap (the unix port: one call)."""
    try:
        g.send(None)
        while True:
            g.send(live())
    except StopIteration:
        pass


if getattr(sys, "argv", None):   # the unix port; the webassembly runner drives steps() itself
    drive(steps(args()))
