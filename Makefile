# The two commands: `make demo` and `make test`. Both set everything up on a fresh Debian machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
STAMP := $(VENV)/.installed
APT_GET := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

.PHONY: demo demo-ui test lint unit bench docs ui-test venv build-deps db-binaries dbt browser faketime clean

venv: $(STAMP)

# Headers to build mysqlclient (the MySQL provider's driver) when no wheel fits.
build-deps:
	@pkg-config --exists libmariadb 2>/dev/null || pkg-config --exists mysqlclient 2>/dev/null || { \
		echo "installing build dependencies (Debian packages pkg-config libmariadb-dev)"; \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq pkg-config libmariadb-dev >/dev/null; }

$(STAMP): pyproject.toml airflow-opsflow-testing/pyproject.toml | build-deps
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { $(APT_GET) update -qq && $(APT_GET) install -y -qq python3-venv python3-pip; }
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]' -e './airflow-opsflow-testing[postgres,mariadb,hubspot,salesforce,zendesk]'
	@touch $@

# dbt-core in its own virtualenv (its pins differ from Airflow's): the dbt example DAG and its test run it.
# 1.12 fetches its parser from GitHub at install time, so stay below it.
DBT_VENV ?= .venv-dbt
$(DBT_VENV)/.installed:
	@[ -x $(DBT_VENV)/bin/python ] || $(PYTHON) -m venv $(DBT_VENV)
	$(DBT_VENV)/bin/python -m pip install -q --upgrade pip
	$(DBT_VENV)/bin/python -m pip install -q "dbt-core>=1.8,<1.12" "dbt-postgres>=1.8,<1.12"
	@touch $@

dbt: $(DBT_VENV)/.installed

# Debian's Chromium for the Airflow UI test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing the Debian package chromium (the Airflow UI test)"; \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq chromium >/dev/null; }

# Debian's faketime, to run the clock-sensitive tests with the process's wall clock at hard instants too.
faketime:
	@command -v faketime >/dev/null 2>&1 || { \
		echo "installing the Debian package faketime (the clock-instant tests)"; \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq faketime >/dev/null; }

# The Debian PostgreSQL and MariaDB server binaries, for the throwaway test servers.
db-binaries:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || missing="postgresql"; \
	command -v mariadb-install-db >/dev/null 2>&1 || missing="$$missing mariadb-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing database server binaries (Debian packages:$$missing)"; \
		$(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq $$missing >/dev/null; \
	fi

demo: venv
	$(PY) dags_examples/run_demo.py

# The demo, then Airflow standalone on its state with the Ops view (Ctrl-C stops it).
demo-ui: venv
	$(PY) dags_examples/run_demo.py --ui

lint: venv
	$(VENV)/bin/ruff check airflow_opsflow airflow-opsflow-testing tests bench dags_examples
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports  # the layer map (docs/architecture.md; contracts in pyproject.toml)

# Tests that need neither a DAG run nor a database server nor a build (markers set by tests/conftest.py
# from the fixtures a test uses): the engines, the fakes, the specs. Under two minutes.
unit: venv
	$(VENV)/bin/pytest -q -p no:cacheprovider -m "not airflow and not postgres and not mariadb and not slow" tests

# First the tests marked `clock` at hard instants (Berlin past midnight while UTC is not, DST switches,
# Feb 29, New Year's Eve): tests/clock_instants.py, a few minutes; then the whole suite at today's time.
test: venv db-binaries dbt browser faketime lint
	$(PY) -m airflow_opsflow_testing.services -- $(PY) tests/clock_instants.py
	$(PY) -m airflow_opsflow_testing.services -- $(VENV)/bin/pytest -q -p no:cacheprovider tests

# Only the Airflow UI test: airflow standalone with the example DAGs, driven in headless Chromium;
# screenshots in build/ui-screenshots. `make test` runs it with everything else.
ui-test: venv db-binaries dbt browser
	$(PY) -m airflow_opsflow_testing.services -- $(VENV)/bin/pytest -q -p no:cacheprovider tests/ui

# The documentation site (MkDocs, strict: a broken link or reference fails); tests/test_docs.py builds it too.
docs: venv
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --site-dir site

bench: venv db-binaries
	@# bench/anomaly.py's peer (Prophet) and real data, installed once: the `bench` extra, and ISLP for its
	@# Bikeshare CSV only (--no-deps: its imports pull in torch; the benchmark reads the file)
	@[ -f $(VENV)/.bench-installed ] || { $(VENV)/bin/pip install -q -e '.[bench]' \
		&& $(VENV)/bin/pip install -q --no-deps 'ISLP>=0.4' && touch $(VENV)/.bench-installed; }
	$(PY) bench/checks.py
	$(PY) bench/tickets.py
	$(PY) bench/ticket_backends.py
	$(PY) bench/sync.py
	$(PY) bench/crm_sync.py
	$(PY) bench/anomaly.py
	$(PY) bench/reconcile.py

clean:
	rm -rf $(VENV) $(DBT_VENV) .bench .demo build dist *.egg-info
