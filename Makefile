# The README's commands. `make` alone creates .venv and installs the project into it.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all install demo serve test check bench lint clean

all: install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@# A .venv made before the distribution was renamed digest-publisher holds one named
	@# digest, whose stale metadata and `digest` script would stay beside the new ones.
	$(BIN)/pip uninstall -q -y digest 2>/dev/null || true
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/digest demo

serve: $(STAMP)
	$(BIN)/digest init
	$(BIN)/digest serve

# Four workers, a test file each at a time (browser and server fixtures are per file):
# most tests wait on sockets, sleeps and databases, so four fit on two cores.
# `make test PYTEST_ARGS=` runs them one by one.
PYTEST_ARGS ?= -n 4 --dist loadfile
test: $(STAMP)
	$(BIN)/pytest -q $(PYTEST_ARGS)

# The quick loop while working: lint, then every test but the browser ones and those
# marked slow (real servers, schemathesis, faketime, thousands of rows), which only
# `make test` (and so CI) runs.
check: lint
	$(BIN)/pytest -q $(PYTEST_ARGS) -m "not browser and not slow"

bench: $(STAMP)
	$(BIN)/python -m tests.bench

lint: $(STAMP)
	$(BIN)/ruff check digest subscribers tests
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
