# The project's commands. `make help` lists them; CI calls the same targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install run test test-unit lint typecheck bench up down migrate clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its dev tools

run: $(STAMP) ## run the whole CSMS standalone: OCPP ws://localhost:9000/ocpp/<id>, API http://localhost:8000
	$(BIN)/csms run

test: $(STAMP) ## run every test (needs the local RabbitMQ and Postgres; see README)
	$(BIN)/pytest

test-unit: $(STAMP) ## run the tests that need no services
	$(BIN)/pytest tests/unit

lint: $(STAMP) ## ruff lint and format check, mypy strict
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(STAMP) ## load benchmarks; JSON report under benchmarks/results/
	$(BIN)/python -m benchmarks.run

migrate: $(STAMP) ## bring the database at CSMS_DATABASE_URL to the newest schema
	$(BIN)/csms migrate

up: ## the distributed stack in containers (docker compose)
	docker compose up --build

down: ## stop the containers
	docker compose down

clean: ## remove the venv, caches and the standalone database
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache csms.db csms.db-wal csms.db-shm
