# Two commands from a fresh clone: `make demo` and `make test`. Each installs what is missing
# first (a project-local virtual environment and the Spark jars), so either works alone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JARS   := .cache/jars/.fetched
# The class archive of conf/local.yaml's spark.class_archive (see c360/jvm.py): built once per set of jars.
ARCHIVE := .cache/jvm/c360.jsa
PYTEST_ARGS ?=
# Two workers on two cores: one test JVM kept about 1.5 cores busy (measured), and the Airflow
# tests mostly wait on their spark-submit children, so a second worker uses what is left.
TEST_WORKERS ?= 2
# --no-loadscope-reorder: xdist would sort files by test count and hand the two long end-to-end
# modules to one worker one after the other (measured: 30 of make test's 30 minutes); in
# collection order (tests/conftest.py puts them first) each worker starts with one of them.
PYTEST := $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

.PHONY: setup test test-quick demo bench bench-startup bench-foundation bench-identity bench-airflow clean constraints airflow-db airflow-ui

setup: $(STAMP) $(JARS) $(ARCHIVE)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

$(JARS): jars/pom.xml | $(STAMP)
	$(PY) -m c360.jvm fetch
	touch $@

# About 45 seconds, once per set of jars: each job's JVM then loads its classes mapped from the
# archive (measured: a session, its first Delta read and the GX import in 22-28 s instead of 35 s
# on two busy cores; an Airflow date's Spark tasks about 40% faster with it).
$(ARCHIVE): $(JARS) $(STAMP)
	$(PY) -m c360.jvm archive

test: setup
	$(PYTEST) $(PYTEST_ARGS)

test-quick: setup
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(VENV)/bin/c360 demo

# Benchmarks print their figures and append them to bench/results/ (with a chart each); run one
# at a time, nothing else on the machine. Together about 85 minutes on two cores (the sum of their
# measured runs, the 10k foundation one estimated).
bench: bench-startup bench-foundation bench-identity bench-airflow

bench-startup: setup
	$(PY) bench/run_startup.py --trials 3

bench-foundation: setup
	$(PY) bench/run_foundation.py --customers 10000 100000

bench-identity: setup
	$(PY) bench/run_identity.py --records 100000 1000000 --backend duckdb
	$(PY) bench/run_identity.py --records 100000 --backend spark
	$(PY) bench/run_identity.py --records 100000 --variant no_email no_national_id sparse email_in_digital_only

bench-airflow: setup
	$(PY) bench/run_airflow.py --customers 10000 100000 --days 1

# Airflow on a laptop: a project-local AIRFLOW_HOME (.cache/airflow) with a SQLite metadata
# database; `make demo` creates it on first use, these targets are for working with the DAGs.
airflow-db: setup
	$(PY) -m c360.orchestration db

airflow-ui: setup
	$(PY) -m c360.orchestration standalone

# Re-resolve the pins in a scratch venv after a dependency change in setup.cfg.
constraints:
	rm -rf .cache/constraints-venv
	$(PYTHON) -m venv .cache/constraints-venv
	.cache/constraints-venv/bin/pip install -q "pip==25.3" && .cache/constraints-venv/bin/pip install -q ".[dev]"
	{ grep '^#' constraints.txt; .cache/constraints-venv/bin/pip freeze --exclude c360-lakehouse; } > .cache/constraints.txt
	mv .cache/constraints.txt constraints.txt

clean:
	rm -rf $(VENV) .cache lakehouse .pytest_cache
