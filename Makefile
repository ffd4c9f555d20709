# The two commands of the README: `make demo` and `make test`.
# Both bootstrap .venv and the system packages they need on first use.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_DIR ?= demo-out

.PHONY: demo test test-unit lint bench system-test venv clean

$(STAMP): pyproject.toml requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "mammotriage needs Python >= 3.10")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

system-test:
	@bash scripts/install-system-deps.sh test

demo: $(STAMP)
	@bash scripts/demo.sh $(DEMO_DIR)

# The checks of `make lint` run first: a layering, typing or style error fails the test run.
test: $(STAMP) lint system-test
	$(PY) -m pytest -n 2 --dist loadfile -q --durations=15

test-unit: $(STAMP)
	$(PY) -m pytest -q -m "not integration"

# ruff, mypy, and the import contracts of docs/architecture.md ([tool.importlinter] in
# pyproject.toml: layers, no torch on the inference side, no import cycles).
lint: $(STAMP)
	$(PY) -m ruff check src tests scripts
	$(PY) -m mypy src
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) scripts/bench_decode.py
	.venv/bin/mammotriage bench

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache
