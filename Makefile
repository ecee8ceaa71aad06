# Two commands set everything up: `make run` serves, `make test` runs the whole suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080

.PHONY: run test install catalog clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the declared dependencies change.
$(STAMP): $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Local development: authentication explicitly off, which `cds-hooks serve` accepts on a loopback HOST only.
run: $(STAMP)
	CDS_HOOKS_AUTH_REQUIRED=false $(BIN)/cds-hooks serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

catalog: $(STAMP)
	$(BIN)/cds-hooks catalog

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
