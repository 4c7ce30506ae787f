# The two commands a newcomer needs: `make demo` and `make test`. Both install what they use.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pytest processes for `make test`, each running whole test files (their servers start once).
TEST_PROCESSES ?= 2

.PHONY: demo test venv install install-dev system-deps lint bench constraints clean

venv:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hpsearch needs Python 3.11 or newer; set PYTHON=python3.11")'
	@if [ ! -x $(BIN)/python ]; then echo "==> creating the virtualenv $(VENV)"; $(PYTHON) -m venv $(VENV); fi

install: venv
	@echo "==> installing hpsearch into $(VENV) (versions pinned by constraints.txt)"
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e .

install-dev: venv
	@echo "==> installing hpsearch with its test tools and the GP sampler's torch into $(VENV)"
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,gp]"
	@echo "==> installing the example trainer plugin (examples/trainers/ridge) the tests run"
	# --no-deps: its one dependency not yet here would be hpsearch itself, from an index.
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e examples/trainers/ridge

demo: install
	@echo "==> running examples/quickstart.yaml: SQLite file hpsearch.db + a local process pool"
	$(BIN)/hpsearch run examples/quickstart.yaml

system-deps:
	@echo "==> checking the servers the integration tests start (redis-server, PostgreSQL)"
	bash scripts/install-system-deps.sh

lint: install-dev
	@echo "==> ruff"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install-dev system-deps lint
	@echo "==> pytest: unit, integration (real Redis, PostgreSQL, Celery, uvicorn) and the rest"
	$(BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile

bench: install-dev system-deps
	@for script in bench/*.py; do echo "==> $$script"; $(BIN)/python "$$script"; done

constraints: install-dev
	$(BIN)/pip freeze --exclude-editable | grep -v '^hpsearch' > constraints.txt

clean:
	rm -rf $(VENV) hpsearch.db hpsearch.db-wal hpsearch.db-shm .pytest_cache .ruff_cache
