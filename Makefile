# tickflow: `make demo` runs the main job, `make test` the tests; both do their own set-up.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.tickflow-setup
export TICKFLOW_HOME ?= $(CURDIR)/.tickflow

.PHONY: setup kafka browser test test-cluster test-ksqldb lint typecheck unit integration bench demo clean help

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

# The live view's screenshot test needs Debian's chromium: installed here when missing and run as root.
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "setup: installing Debian's chromium for the live view's screenshot test"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "setup: chromium is missing; install it (apt-get install chromium) for the screenshot test"; fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

typecheck: $(STAMP)
	$(PY) -m mypy

# The three-node cluster tests (tests/integration/test_cluster*.py: three JVMs of -Xmx512m per module) run as a
# stage of their own after the rest, one module after the other.
CLUSTER_TESTS := $(wildcard tests/integration/test_cluster*.py)
# --durations: each stage ends with its slowest tests, so a run's log says where its time went.
test: setup browser lint typecheck
	$(PY) -m pytest --durations=25 $(foreach t,$(CLUSTER_TESTS),--ignore=$(t))
	$(MAKE) test-cluster

test-cluster: setup
	$(PY) -m pytest --durations=10 $(CLUSTER_TESTS)

# The opt-in suite on a real ksqlDB 0.29.0 server (tests/integration/test_ksqldb_real.py): either
# KSQLDB_UP=<command> (run as `<command> <bootstrap> <port> <service id>` against the suite's own broker)
# or KSQLDB_URL=http://host:port with KAFKA_BOOTSTRAP=<the empty broker that server reads>.
test-ksqldb: setup
	$(PY) -m pytest -m ksqldb -s tests/integration/test_ksqldb_real.py

unit: $(STAMP)
	$(PY) -m pytest tests/unit

integration: setup browser
	$(PY) -m pytest tests/integration

bench: setup
	$(PY) -m bench

# The embedded demo (README): replays the bundled data; `make demo LIVE=1` reads a live exchange instead.
DEMO_ARGS ?=
demo: setup
	$(VENV)/bin/tickflow demo run $(if $(LIVE),--live) $(DEMO_ARGS)

clean:
	-$(VENV)/bin/tickflow kafka stop
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
