# aduan's two set-up commands: `make serve` and `make test` (see README.md).
# Both create .venv when it is missing and install the project into it.

VENV   ?= .venv
PYTHON ?= python3.11
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.aduan-installed

.PHONY: install encoder demo-bundle serve test test-fast lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

# Reinstall when the dependencies change.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

encoder: install
	$(BIN)/aduan encoder prepare

demo-bundle: encoder
	$(BIN)/aduan bundle demo

# Prepare the encoder and the demo bundle (if none), then serve the API on 127.0.0.1:8000.
serve: demo-bundle
	$(BIN)/aduan serve

test: install
	$(BIN)/python -m pytest

test-fast: install
	$(BIN)/python -m pytest -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
