# The project's commands. `make test` works on a fresh machine with Python 3.11+.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFIG ?= receiver.toml

# Two lock files, compiled from pyproject.toml by `make lock` for CPython 3.11 on Linux, every file pinned by hash:
# requirements.lock is the runtime (what the image installs), requirements-dev.lock adds the dev and otel extras (what
# `make test` installs) and is constrained by the first, so the two never disagree on a version. Both include the
# extras in EXTRAS: postgres (the image runs on either store, the tests run on both) and the brokers' (the image can
# forward to RabbitMQ and NATS by config alone, and the tests use both).
LOCK := requirements.lock
DEV_LOCK := requirements-dev.lock
# uv compiles the locks and finds the floors; it lives in its own venv and is pinned here.
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
LOCK_TARGET := --python-version 3.11 --python-platform linux
LOCK_FLAGS := $(LOCK_TARGET) --generate-hashes --quiet --custom-compile-command 'make lock'
FLOOR := .venv-floor
EXTRAS := --extra postgres --extra amqp --extra nats

.PHONY: test lint typecheck pytest fuzz lock test-floor serve bench demo simulator monitoring screenshots clean

$(STAMP): pyproject.toml $(DEV_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: $(STAMP) lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint Dockerfile examples/altinn-receiver-example-plugin/Dockerfile

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

# The hypothesis properties with many more examples (FUZZ_EXAMPLES, default 100000): minutes, not part of `test`.
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(BIN)/pytest -q -m fuzz

$(UV):
	test -x $(TOOLS)/bin/python || $(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet uv==$(UV_VERSION)

# Re-resolve both locks after pyproject.toml changes, keeping every pin that is still allowed; `make lock UPGRADE=1`
# moves every pin to the newest version allowed.
lock: $(UV)
	$(UV) pip compile pyproject.toml $(EXTRAS) $(LOCK_FLAGS) $(if $(UPGRADE),--upgrade) -o $(LOCK)
	$(UV) pip compile pyproject.toml $(EXTRAS) --extra dev --extra otel --constraint $(LOCK) $(LOCK_FLAGS) \
		$(if $(UPGRADE),--upgrade) \
		-o $(DEV_LOCK)

# The tests on the lowest version every direct runtime dependency allows (the dev tools at their newest), in a venv
# of their own: proves the floors in pyproject.toml. Not part of `test`.
test-floor: $(UV)
	rm -rf $(FLOOR)
	$(PYTHON) -m venv $(FLOOR)
	$(UV) pip compile pyproject.toml $(EXTRAS) --resolution lowest-direct --no-deps $(LOCK_TARGET) --quiet -o $(FLOOR)/floors.txt
	$(UV) pip compile pyproject.toml $(EXTRAS) --extra dev --extra otel --constraint $(FLOOR)/floors.txt $(LOCK_TARGET) --quiet \
		-o $(FLOOR)/requirements.txt
	$(FLOOR)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR)/bin/python -m pip install --quiet -r $(FLOOR)/requirements.txt
	$(FLOOR)/bin/python -m pip install --quiet --no-deps -e .
	grep -v '^ *#' $(FLOOR)/floors.txt
	$(FLOOR)/bin/pytest -q

serve: $(STAMP)
	$(BIN)/altinn-receiver serve --config $(CONFIG)

simulator: $(STAMP)
	$(BIN)/altinn-receiver simulator

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/pipeline.py
	$(BIN)/python bench/brokers.py

demo: $(STAMP)
	$(BIN)/altinn-receiver demo

# deploy/kubernetes/monitoring/prometheusrule.yaml from deploy/prometheus/alerts.yaml (a test checks it is up to date).
monitoring: $(STAMP)
	$(BIN)/python -m tools.monitoring

# docs/console/*.png, the console's pages in Debian's Chromium over a demo-like receiver (tools/screenshots.py); not
# part of `test`.
screenshots: $(STAMP)
	$(BIN)/python -m tools.screenshots

clean:
	rm -rf $(VENV) $(TOOLS) $(FLOOR) .mypy_cache .pytest_cache .ruff_cache
