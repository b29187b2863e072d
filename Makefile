# paycell developer commands. `make run` and `make test` are all a newcomer needs.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two workers, one test file per worker; each worker starts its own throwaway PostgreSQL.
PYTEST_ARGS ?= -n 2 --dist loadfile

.DEFAULT_GOAL := help
.PHONY: help venv run test lint bench chaos audit clean

help:
	@echo "make run    set up, migrate the SQLite default under var/, load demo data, serve on http://127.0.0.1:8000"
	@echo "make test   set up, start a throwaway PostgreSQL, run the suite on SQLite and PostgreSQL"
	@echo "make lint   ruff and mypy"
	@echo "make bench  benchmarks: ledger, HTTP payments, clearing and reconciliation of 1,000,000 rows"
	@echo "make chaos  the bank test: 10 minutes of P2P transfers while the API and PostgreSQL are killed"
	@echo "make audit  check the ledger invariants of the configured database"
	@echo "make clean  remove var/ and caches (keeps .venv)"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

run: venv
	$(BIN)/paycell db upgrade
	$(BIN)/paycell demo load --if-empty
	$(BIN)/paycell serve

lint: venv
	$(BIN)/ruff check paycell tests
	$(BIN)/mypy paycell

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: venv
	$(BIN)/paycell bench ledger
	$(BIN)/paycell bench http
	$(BIN)/paycell bench clearing
	$(BIN)/paycell bench recon

chaos: venv
	$(BIN)/paycell chaos --seconds 600

audit: venv
	$(BIN)/paycell audit

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
