# One venv for everything; `make run` and `make test` create it on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXAMPLE_CLUSTER := profiles/clusters/two-node-h100-ib.yaml

.PHONY: install run test lint format bench sim-image engine-image clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/deploy up deepseek-r1 --nodes 2 --cluster $(EXAMPLE_CLUSTER) --dry-run

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python benchmarks/run_all.py

sim-image: install
	bash docker/build-sim-image.sh

engine-image: install
	$(BIN)/deploy engine-image build

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
