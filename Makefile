# Everything a fresh machine needs: `make demo` and `make test` set up .venv first.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
STUBS := $(VENV)/stubs/.installed-stamp

.PHONY: setup demo test lint typecheck bench clean

$(STAMP): pyproject.toml setup.py csrc/core.c csrc/core.h csrc/build_core.py
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# each board's MicroPython stubs in a folder of its own (storlab typecheck)
$(STUBS): $(STAMP) $(wildcard boards/*.toml)
	$(BIN)/python -c "from host import typecheck as t; [t.install(b) for b in t.boards_with_stubs()]"
	touch $(STUBS)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/storlab demo

test: $(STAMP) $(STUBS)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STUBS)
	$(BIN)/storlab typecheck

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'
	$(BIN)/pytest bench --benchmark-only --benchmark-save=bench --benchmark-autosave

clean:
	rm -rf $(VENV) build *.egg-info _storlab_core*.so csrc/_storlab_core.c
