"""cffi builder for the C core: module `_storlab_core` (API mode, out of line).

Used by setup.py (cffi_modules=["csrc/build_core.py:ffibuilder"]) and runnable
by hand from anywhere:

    python csrc/build_core.py

Environment:
    STORLAB_CFLAGS     extra compiler flags, split on whitespace (e.g. sanitizers)
    STORLAB_LDFLAGS    extra linker flags
    STORLAB_BUILD_DIR  where a by-hand build puts the module (default: repo root);
                       only the module file lands there, the build happens in a temp dir
"""

import os
import re
import shutil
import sys
import tempfile
from importlib.machinery import EXTENSION_SUFFIXES

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _rel(path):
    # setuptools wants source paths relative to the project root (where it runs).
    try:
        rel = os.path.relpath(path)
    except ValueError:  # other drive on Windows
        return path
    return path if rel.startswith("..") else rel


def _cdef():
    """The declarations of core.h, without comments and preprocessor lines."""
    with open(os.path.join(HERE, "core.h")) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def make_ffibuilder(absolute=False):
    """The builder; absolute=True for builds by hand (paths need not be relative to cwd)."""
    path = os.path.abspath if absolute else _rel
    extra = {}
    if absolute and not hasattr(sys, "gettotalrefcount"):
        # Name the module as setuptools' cffi build does (_storlab_core.abi3.so), so a
        # by-hand build replaces the one from `pip install -e .` instead of shadowing it.
        extra["py_limited_api"] = True
    ffi = FFI()
    ffi.cdef(_cdef())
    # pycore.c: the checked CPython entry points (module _storlab_fast), created on demand
    ffi.cdef("int sc_py_init(void);")
    ffi.set_source(
        "_storlab_core",
        '#include "core.h"\nint sc_py_init(void);\n',
        sources=[path(os.path.join(HERE, "core.c")), path(os.path.join(HERE, "pycore.c"))],
        include_dirs=[path(HERE)],
        extra_compile_args=["-O3"] + os.environ.get("STORLAB_CFLAGS", "").split(),
        extra_link_args=os.environ.get("STORLAB_LDFLAGS", "").split(),
        **extra,
    )
    return ffi


ffibuilder = make_ffibuilder()
_EXT = tuple({"." + s.rsplit(".", 1)[-1] for s in EXTENSION_SUFFIXES})  # ".so" / ".pyd"


def build(out):
    """Compile in a scratch directory and copy just the module into `out`."""
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="storlab-core-") as tmp:
        so = make_ffibuilder(absolute=True).compile(tmpdir=tmp, verbose=True)
        dest = os.path.join(out, os.path.basename(so))
        shutil.copy2(so, dest)
    # Another build of the module under a different suffix would shadow this one (or
    # be shadowed by it): keep only the fresh one.
    for name in os.listdir(out):
        if name.startswith("_storlab_core.") and name.endswith(_EXT) and name != os.path.basename(dest):
            os.remove(os.path.join(out, name))
            print("removed", os.path.join(out, name))
    return dest


if __name__ == "__main__":
    print("built", build(os.environ.get("STORLAB_BUILD_DIR") or ROOT))
