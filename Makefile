# The project's commands. `make test` works on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= receiver.toml

.PHONY: test lint typecheck pytest fuzz serve bench demo simulator clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# The hypothesis properties with many more examples (FUZZ_EXAMPLES, default 100000): minutes, not part of `test`.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -m fuzz

serve: $(STAMP)
	$(BIN)/altinn-receiver serve --config $(CONFIG)

simulator: $(STAMP)
	$(BIN)/altinn-receiver simulator

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/pipeline.py

demo: $(STAMP)
	$(BIN)/altinn-receiver demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
