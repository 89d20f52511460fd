# Everything a fresh machine needs: `make demo` and `make test` set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STUBS := $(VENV)/stubs/.installed-stamp
WASM := bench/wasm/node_modules/.installed-stamp

.PHONY: setup demo test lint typecheck bench bench-quick clean

$(STAMP): pyproject.toml setup.py csrc/core.c csrc/core.h csrc/pycore.c csrc/build_core.py
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# each board's MicroPython stubs in a folder of its own (storlab typecheck)
$(STUBS): $(STAMP) $(wildcard boards/*.toml)
	$(BIN)/python -c "from host import typecheck as t; [t.install(b) for b in t.boards_with_stubs()]"
	touch $(STUBS)

# the MicroPython webassembly port (a 32-bit MicroPython, from the npm registry) that
# measures the firmware's heap with a board's object sizes (docs/boards.md)
$(WASM): bench/wasm/package.json bench/wasm/package-lock.json
	@if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && apt-get install -y -qq nodejs npm; fi
	npm ci --prefix bench/wasm --no-audit --no-fund --loglevel=error
	touch $(WASM)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/storlab demo

test: $(STAMP) $(STUBS) $(WASM)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STUBS)
	$(BIN)/storlab typecheck

# The benchmark suite, its report and plots (reports/bench/); see docs/benchmarks.md.
# ISA-L (Debian libisal-dev) is installed when we are root; its benchmarks skip without it.
BENCH_DEPS = $(VENV)/.bench-stamp
$(BENCH_DEPS): $(STAMP) $(WASM)
	$(BIN)/pip install -q -e '.[dev,bench]'
	@if [ "$$(id -u)" = 0 ] && ! /sbin/ldconfig -p 2>/dev/null | grep -q libisal && command -v apt-get >/dev/null; then \
		(apt-get install -y -qq libisal-dev || (apt-get update -qq && apt-get install -y -qq libisal-dev)) \
		|| echo "libisal-dev not installed: the ISA-L benchmarks will skip"; fi
	touch $(BENCH_DEPS)

bench: $(BENCH_DEPS)
	$(BIN)/python bench/run.py

bench-quick: $(BENCH_DEPS)
	$(BIN)/python bench/run.py --quick

clean:
	rm -rf $(VENV) build *.egg-info _storlab_core*.so csrc/_storlab_core.c bench/wasm/node_modules
