# fleetcam: `make run` starts the all-in-one local server, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,aws]'
	touch $(STAMP)

install: $(STAMP)

SIMULATE ?= 2

run: $(STAMP)
	$(BIN)/fleetcam serve --simulate $(SIMULATE)

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/media_list.py

clean:
	rm -rf $(VENV) .pytest_cache
