# Two isolated environments: Airflow 3.3 and Prefect 3.8 cannot share one (disjoint FastAPI pins).
PYTHON ?= python3
AIRFLOW_VENV := .venvs/airflow
PREFECT_VENV := .venvs/prefect
PYTEST_ARGS ?=

.PHONY: test test-airflow test-prefect lint venvs demo bench clean unasync

venvs: $(AIRFLOW_VENV)/.installed $(PREFECT_VENV)/.installed

$(AIRFLOW_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/pip install -q --upgrade pip
	$(AIRFLOW_VENV)/bin/pip install -q -e '.[server,airflow,dev]'
	touch $@

# Prefect 3.8.8's server needs FastAPI <0.151 (see constraints/prefect.txt), hence the constraints file.
$(PREFECT_VENV)/.installed: pyproject.toml constraints/prefect.txt
	$(PYTHON) -m venv $(PREFECT_VENV)
	$(PREFECT_VENV)/bin/pip install -q --upgrade pip
	$(PREFECT_VENV)/bin/pip install -q -c constraints/prefect.txt -e '.[server,prefect,dev]'
	touch $@

# Each adapter is type-checked in the environment that has its engine.
lint: $(AIRFLOW_VENV)/.installed
	$(AIRFLOW_VENV)/bin/ruff check .
	$(AIRFLOW_VENV)/bin/mypy -p relay_integrations -p airflow_provider

test-airflow: $(AIRFLOW_VENV)/.installed
	$(AIRFLOW_VENV)/bin/python -m pytest tests --ignore=tests/prefect $(PYTEST_ARGS)

test-prefect: $(PREFECT_VENV)/.installed
	$(PREFECT_VENV)/bin/ruff check .
	$(PREFECT_VENV)/bin/mypy -p prefect_blocks
	$(PREFECT_VENV)/bin/python -m pytest tests --ignore=tests/airflow $(PYTEST_ARGS)

# Every step runs; the target fails if any failed.
test: venvs
	@status=0; \
	$(MAKE) --no-print-directory lint || status=1; \
	$(MAKE) --no-print-directory test-airflow || status=1; \
	$(MAKE) --no-print-directory test-prefect || status=1; \
	exit $$status

# The sync client is generated from the async one; run after editing relay_integrations/_async/.
unasync: $(AIRFLOW_VENV)/.installed
	$(AIRFLOW_VENV)/bin/python scripts/generate_sync.py

demo: venvs
	$(AIRFLOW_VENV)/bin/python examples/demo.py

# The Airflow figure's baseline is mapped HttpOperator tasks (apache-airflow-providers-http).
bench: venvs
	$(AIRFLOW_VENV)/bin/pip install -q apache-airflow-providers-http
	$(AIRFLOW_VENV)/bin/python bench/run.py

clean:
	rm -rf .venvs .demo .airflow
