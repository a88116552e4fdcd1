# The two commands a user needs: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
FS := $(BIN)/feature-store

.PHONY: setup demo test unit integration lint bench up down status clean

setup:
	@./infra/setup.sh

demo: setup
	$(FS) demo

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

unit: setup
	$(BIN)/python -m pytest -q tests/unit

integration: setup
	$(BIN)/python -m pytest -q tests/integration

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy feature_store

bench: setup
	$(BIN)/python -m bench

up: setup
	$(FS) up

down:
	$(FS) down

status:
	$(FS) status

clean: down
	rm -rf .local/data .local/logs .local/run
