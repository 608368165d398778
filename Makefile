# tickflow: `make demo` runs the main job, `make test` the tests; both do their own set-up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tickflow-setup
export TICKFLOW_HOME ?= $(CURDIR)/.tickflow

.PHONY: setup kafka test lint typecheck unit integration bench demo clean help

help:
	@echo "make demo   run the embedded demo (local broker, streams, trader, paper broker, report)"
	@echo "make test   lint, type-check and run every test against a real local Kafka broker"
	@echo "make bench  run the benchmarks and write bench/results.json"
	@echo "make setup  create .venv and fetch the Kafka jars (done by the targets above)"

$(STAMP): requirements.txt requirements.lock pyproject.toml infra/setup_venv.sh
	PYTHON=$(PYTHON) bash infra/setup_venv.sh
	@touch $@

kafka: $(STAMP)
	$(VENV)/bin/tickflow kafka provision

setup: $(STAMP) kafka

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

test: setup lint typecheck
	$(PY) -m pytest

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: setup
	$(PY) -m pytest tests/integration

bench: setup
	$(PY) -m bench

clean:
	-$(VENV)/bin/tickflow kafka stop
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
