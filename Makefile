# `make demo` and `make test` work on a fresh machine: they create .venv and install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PG_URL ?= postgres://postgres@127.0.0.1:5432/backstop
# `make lint IMPORT_CONTRACTS=report` prints broken import contracts (and a stale app graph) without failing.
IMPORT_CONTRACTS ?= enforce
CONTRACTS_FAIL := $(if $(filter report,$(IMPORT_CONTRACTS)),-,)

.PHONY: install demo test lint app-graph state-matrix test-sqlite test-postgres test-chaos browser bench chaos clean preflight-shaped

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/backstop demo --port 8000

# Browser tests drive Debian's chromium through Playwright; install it when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (browser tests need it)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(BIN)/ruff check backstop bench docs conftest.py
	$(BIN)/mypy backstop bench docs conftest.py
	$(CONTRACTS_FAIL)$(BIN)/lint-imports
	$(CONTRACTS_FAIL)$(BIN)/python docs/app_graph.py --check

# docs/state_matrix.md, rendered again from the message catalogues (a test fails while it differs).
state-matrix: install
	DJANGO_SETTINGS_MODULE=backstop.settings $(BIN)/python -m backstop.support.state_matrix --write

# The app dependency graph in docs/architecture.md, drawn again from the code's imports.
app-graph: install
	$(BIN)/python docs/app_graph.py --write

PG_ANSWERS := $(BIN)/python -c "import socket; socket.create_connection(('127.0.0.1', 5432), 1)" 2>/dev/null

test-sqlite: install browser
	$(BIN)/pytest

# Runs only when a PostgreSQL server answers on 127.0.0.1:5432.
test-postgres: install browser
	@if $(PG_ANSWERS); then \
	  echo "PostgreSQL answers on 127.0.0.1:5432: running the suite on it"; \
	  DATABASE_URL=$(PG_URL) BACKSTOP_DATA_DIR=$(CURDIR)/var/test-postgres $(BIN)/pytest; \
	else echo "no PostgreSQL on 127.0.0.1:5432: suite ran on SQLite only"; fi

# This branch's new migrations tried by `backstop preflight` on production-shaped data (.ci/preflight-shaped).
preflight-shaped: install
	.ci/preflight-shaped main

test: lint test-sqlite test-postgres test-chaos preflight-shaped

bench: install
	$(BIN)/python bench/signup_latency.py
	$(BIN)/python bench/checkout_latency.py
	$(BIN)/python bench/activation_throughput.py
	$(BIN)/python bench/reconcile_scale.py
	$(BIN)/python bench/desk_load.py
	@if $(PG_ANSWERS); then \
	  $(BIN)/python bench/draft_saves.py --database-url $(PG_URL); \
	else echo "no PostgreSQL on 127.0.0.1:5432: bench/draft_saves.py skipped (it measures PostgreSQL)"; fi

# The chaos soak's short form (bench/chaos.py, 2 minutes of traffic while processes die): two web and two worker
# processes on a fresh database of the PostgreSQL server at $(PG_URL); exits non-zero on any broken invariant.
CHAOS := $(BIN)/python bench/chaos.py --duration 120 --database-url $(PG_URL)

chaos: install
	@if $(PG_ANSWERS); then $(CHAOS); \
	else echo "no PostgreSQL on 127.0.0.1:5432: the chaos soak needs one"; exit 2; fi

# In `make test`, as the PostgreSQL suite: it runs when a PostgreSQL server answers.
test-chaos: install
	@if $(PG_ANSWERS); then $(CHAOS); \
	else echo "no PostgreSQL on 127.0.0.1:5432: the chaos soak (it needs one) did not run"; fi

clean:
	rm -rf $(VENV) var
