# The two commands a newcomer needs:  make demo   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo demo-ui test test-fast docs install clean-demo server worker deploy
# The demo's Prefect history (runs, artifacts, logs) stays in var/, where `make demo-ui` shows it. Its UI is
# told where its API is (PREFECT_UI_API_URL): without it, the page asks port 4200 and shows no run.
DEMO_PREFECT_HOME ?= $(CURDIR)/var/prefect-demo
DEMO_UI_PORT ?= 4201

$(BIN)/campaigns: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $@

# axe-core for the accessibility checks of the customer pages (package.json, pinned by package-lock.json).
node_modules/axe-core/axe.min.js: package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	touch $@

install: $(BIN)/campaigns node_modules/axe-core/axe.min.js

## Install, create the SQLite database, generate the demo portfolio, run today's campaign, print the summary.
demo: install
	PREFECT_HOME=$(DEMO_PREFECT_HOME) $(BIN)/campaigns demo

## The Prefect UI on what `make demo` ran (its runs, artifacts, logs) at http://127.0.0.1:4201. Blocks; Ctrl-C stops it.
demo-ui: install
	@test -f $(DEMO_PREFECT_HOME)/prefect.db || { echo "no demo history yet: run make demo first" >&2; exit 1; }
	@echo "the demo's runs, artifacts and logs: http://127.0.0.1:$(DEMO_UI_PORT)/runs"
	env -u PREFECT_API_URL -u PREFECT_API_DATABASE_CONNECTION_URL PREFECT_HOME=$(DEMO_PREFECT_HOME) \
	  PREFECT_UI_API_URL=http://127.0.0.1:$(DEMO_UI_PORT)/api \
	  $(BIN)/prefect server start --host 127.0.0.1 --port $(DEMO_UI_PORT)

## The whole suite, on SQLite and on PostgreSQL (started if it is down), in PYTEST_WORKERS parallel workers (pytest-xdist;
## each has its own databases and Prefect test server). PYTEST_WORKERS=0: one process.
PYTEST_WORKERS ?= 2
test: install
	bash scripts/ensure_postgres.sh
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

## The quick lane: unit and database tests on SQLite, in two workers, without the long property runs (docs/development.md).
test-fast: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --db sqlite -m "not flows and not e2e and not long" $(PYTEST_ARGS)

## The documentation site (docs/, MkDocs) into site/; a broken link, anchor or reference fails it. Open site/index.html.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## Ops: a long-lived Prefect server (UI at http://127.0.0.1:4200), its database on the local PostgreSQL. Blocks.
server: install
	$(BIN)/campaigns ops server

## Ops: a process worker for the `collections` pool (created if missing). Blocks; SIGTERM stops it.
worker: install
	$(BIN)/campaigns ops worker

## Ops: every deployment of prefect.yaml on that server (and the failure alerts, when configured).
deploy: install
	$(BIN)/campaigns ops deploy

## Forget the demo database and files (var/).
clean-demo:
	rm -rf var
