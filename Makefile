# The two commands a newcomer needs:  make demo   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo test install clean-demo

$(BIN)/campaigns: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/campaigns

## Install, create the SQLite database, generate the demo portfolio, run today's campaign, print the summary.
demo: install
	$(BIN)/campaigns demo

## The whole suite, on SQLite and on PostgreSQL (started if it is down).
test: install
	bash scripts/ensure_postgres.sh
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## Forget the demo database and files (var/).
clean-demo:
	rm -rf var
