# The two commands of the README: `make demo` and `make test`. Everything else is set up on the way.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export AIRFLOW_HOME := $(CURDIR)/airflow_home
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export GX_ANALYTICS_ENABLED := false

.PHONY: install demo test test-fast ruff lint bench clean system-deps

# The dev install: billing_sync (the root project) and the sandbox, its own dev-only distribution
# (include/billing_sandbox/pyproject.toml), both editable. Production installs billing_sync alone.
# uv installs the same pinned set as pip would (requirements.lock), in about 25 s where pip took 70 s
# here; bytecode is compiled at install, as pip does, or each Airflow process would pay for it.
UV_VERSION := 0.13.9
UV_PIP := $(BIN)/uv pip install --python $(BIN)/python -q
$(STAMP): requirements.txt requirements-dev.txt requirements.lock pyproject.toml include/billing_sandbox/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q uv==$(UV_VERSION)
	$(UV_PIP) --compile-bytecode -r requirements-dev.txt -c requirements.lock
	$(UV_PIP) --compile-bytecode --no-deps -e . -e ./include/billing_sandbox
	touch $@

install: $(STAMP)

$(AIRFLOW_HOME)/airflow.db: $(STAMP)
	mkdir -p $(AIRFLOW_HOME)
	$(BIN)/airflow db migrate > $(AIRFLOW_HOME)/db-migrate.log 2>&1 || (tail -20 $(AIRFLOW_HOME)/db-migrate.log; exit 1)

demo: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	$(BIN)/python scripts/demo.py

MYPY := $(BIN)/mypy include/billing_sync
ruff: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint: ruff
	$(MYPY)

# Debian packages the tests drive: chromium for the browser tests (Playwright cannot download its
# own browser here), faketime to run the scheduler tests with the clock moved to other dates.
system-deps:
	@missing=""; command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v faketime >/dev/null || missing="$$missing faketime"; \
	  [ -z "$$missing" ] || { echo "installing Debian's$$missing for the tests"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; }

# One pytest-xdist worker more than there are CPUs (TEST_WORKERS=0: one process), tests handed out as
# workers free up: the suite is mostly CPU, but its tests also wait on servers, Airflow's loops and
# rate-limit windows, and the extra worker fills those waits (on 2 CPUs, 3 workers took 556 s where 2
# took 601 s). Every worker has its own AIRFLOW_HOME, ports and database schemas (tests/conftest.py).
# ruff first (seconds); mypy beside pytest at low priority, its verdict printed after the tests':
# its first, uncached pass takes about 45 s of one CPU, all of which it used to add ahead of the tests.
# Each worker starts with its share of the slowest tests (tests/helpers/slow_first.py), whose table
# of seconds the printed --durations keep honest.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))
MYPY_LOG := $(VENV)/mypy-last.log
test: ruff system-deps
	@nice -n 10 $(MYPY) > $(MYPY_LOG) 2>&1 & types=$$!; \
	  $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=25 $(PYTEST_ARGS); tests=$$?; \
	  wait $$types; typed=$$?; echo "$(MYPY):"; cat $(MYPY_LOG); \
	  [ $$tests -eq 0 ] && [ $$typed -eq 0 ]

# The inner loop: unit and sandbox tests, no Airflow scheduler, API server, browser or dag.test()
# (markers in pyproject.toml; tests/conftest.py marks tests/e2e and tests/proof), one pytest-xdist
# worker per CPU (FAST_WORKERS=0 for one process). Tests about a run's data use the in-memory sources
# (billing_sandbox.memory), not a sandbox process. 1,529 tests in 2 min 34 s on this quiet 2-core
# machine (4 min 35 s of CPU; 2 min 23 s with FAST_WORKERS=3, within the noise), 2026-12-08, a fresh
# clone without TEST_DATABASE_URL. By folder in one process: tests/ui 106 CPU s, tests/sync 89,
# tests/sandbox 40, tests/*.py 12, tests/contract 9. The heaviest left: the review pages rendered per
# test, the wire runs (apply, credential scan, hostile answers), GX in each run's validate, and each
# worker's collection and imports (about 20 s). `make test` runs everything.
FAST_MARKERS := not e2e and not browser and not integration and not perf
FAST_WORKERS ?= auto
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "$(FAST_MARKERS)" -n $(FAST_WORKERS) $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(AIRFLOW_HOME) test-artifacts .pytest_cache

# Airflow standalone + the sandbox on the demo scenario: the DAG and the billing review pages on
# http://127.0.0.1:8080 (log-in details are printed; see docs/ui.md). AIRFLOW_ARGS="--port 8081" etc.
.PHONY: airflow
airflow: $(STAMP) $(AIRFLOW_HOME)/airflow.db
	$(BIN)/python scripts/airflow_local.py $(AIRFLOW_ARGS)

# CeleryExecutor as on several machines, on this one: PostgreSQL metadata and billing databases (own
# names, created if missing), Redis, a sandbox per tenant (north, south, east), the API server,
# scheduler, DAG processor and two Celery workers with their own names, homes and concurrency; one
# run per tenant. Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (`redis-server
# --daemonize yes`). Prints the URL and logins; Ctrl+C stops all. CELERY_ARGS="--port 8081" etc.
.PHONY: celery
celery: $(STAMP)
	$(BIN)/python scripts/airflow_celery.py $(CELERY_ARGS)
