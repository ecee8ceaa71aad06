# Two commands set everything up: `make run` serves, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test install browser catalog bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the declared dependencies change.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test,report]'
	touch $(STAMP)

install: $(STAMP)

# Local development: authentication off, and FHIR servers on loopback callable without listing them (development
# mode), which `cds-hooks serve` accepts on a loopback HOST.
run: $(STAMP)
	CDS_HOOKS_AUTH_REQUIRED=false CDS_HOOKS_DEVELOPMENT_MODE=true $(BIN)/cds-hooks serve --host $(HOST) --port $(PORT)

# Debian's chromium for the preview page's browser test, when missing (without it that test is skipped).
browser:
	@scripts/install-browser

test: $(STAMP) browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The side-by-side benchmark (minutes; not part of `make test`): writes bench/RESULTS.md and bench/latency.png.
$(VENV)/.bench-installed: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	touch $@

bench: $(VENV)/.bench-installed
	$(BIN)/python -m bench.benchmark $(BENCH_ARGS)

catalog: $(STAMP)
	$(BIN)/cds-hooks catalog

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
