# One command runs every check: `make check` (lint, format, types, all tests).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: check lint typecheck test test-unit services kafka-jars demo

check: lint typecheck test

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck:
	$(PY) -m mypy

test:
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-unit:
	$(PY) -m pytest -q -m "not integration" $(PYTEST_ARGS)

kafka-jars:
	mvn -q -B -f deploy/kafka/pom.xml dependency:copy-dependencies

# Start real Kafka (KRaft) and Redis on loopback until Ctrl-C.
services:
	$(VENV)/bin/arrecon dev services
