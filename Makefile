# One command runs every check: `make check` (lint, format, types, all tests).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: check lint typecheck test test-unit test-interpreted native clean-native services kafka-jars demo

check: lint typecheck test-interpreted test

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck:
	$(PY) -m mypy

test:
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit:
	$(PY) -m pytest -q -m "not integration" $(PYTEST_ARGS)

# The core's tests again on the interpreted core, for when `make native` built
# the compiled one (which `test` then uses).
test-interpreted:
	ARRECON_NATIVE=0 $(PY) -m pytest -q tests/state $(PYTEST_ARGS)

# Compile the core (state/) with mypyc, in place; `clean-native` removes it.
native:
	$(PY) deploy/native/build.py

clean-native:
	$(PY) deploy/native/build.py --clean

kafka-jars:
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies

# Start real Kafka (KRaft) and Redis on loopback until Ctrl-C.
services:
	$(VENV)/bin/arrecon dev services
