# One-word entry points. `make test` is what CI runs.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup test test-fast check lint typecheck demo smoke bench e2e-deps fault-matrix clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

setup: $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,dev]'

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

check: lint typecheck

e2e-deps:
	bash scripts/install-system-deps.sh

test: setup e2e-deps check
	$(BIN)/pytest -q -ra --durations=60 -n 5

# The inner loop: no Prefect server, browser, PostgreSQL or fault matrix; no root needed.
test-fast: setup check
	$(BIN)/pytest -q -m "not server" -p no:cacheprovider

# Ctrl-C, closing the terminal, or SIGTERM to make stops everything the demo started (see
# devtools/demo.py). make forwards only SIGTERM to the recipe, so it stays one plain command
# that make runs without a shell in between.
demo: setup
	$(BIN)/python -m devtools.demo

smoke: setup
	$(BIN)/python -m devtools.demo --smoke

# Regenerates docs/fault-matrix.md (tests alone only compare it, they never write it).
fault-matrix: setup
	UNBLOCK_WRITE_FAULT_MATRIX=1 $(BIN)/pytest -q tests/reliability/test_fault_matrix.py

bench: setup
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) .demo artifacts .pytest_cache .mypy_cache .ruff_cache
