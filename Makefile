# Weekly review-sentiment retraining: Airflow DAG bundle + MLflow registry.
# `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	@command -v uv >/dev/null || $(PYTHON) -m pip install --quiet uv
	uv venv --allow-existing --seed -q -p $(PYTHON) $(VENV)
	uv pip install -q -p $(PY) -r requirements.txt -r requirements-dev.txt
	uv pip install -q -p $(PY) --no-deps -e .
	uv pip check -p $(PY)  # a conflict fails the install here, as `pip check` fails the image build
	@touch $@

install: $(STAMP) ## Create .venv with the pinned set (uv)

run: $(STAMP) ## The main job: the whole DAG once via `airflow dags test`, embedded stores, full data
	scripts/run_local.sh

score: $(STAMP) ## Score the reviews with `make run`'s champion: sentiment_score once via `airflow dags test`
	DAG=sentiment_score scripts/run_local.sh

smoke: $(STAMP) ## A quick run (the tests' quick conf, scripts/smoke_conf.json): 20% sample, two small grid points, 3 epochs
	scripts/run_local.sh -c '$(shell cat scripts/smoke_conf.json)'

test: $(STAMP) ## The whole suite (starts its own PostgreSQL and MLflow server)
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: $(STAMP) ## Fast tests only (no training, no servers)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: $(STAMP) ## ruff lint and format check, and the size limits (`make sizes`)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) scripts/check_sizes.py

sizes: ## Modules and functions within the size limits (scripts/check_sizes.py; also a test)
	$(PYTHON) scripts/check_sizes.py

format: $(STAMP) ## ruff format and autofix
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lock: ## Re-resolve requirements*.txt from requirements*.in (uv)
	uv pip compile --universal --python-version 3.11 requirements.in -o requirements.txt
	uv pip compile --universal --python-version 3.11 requirements-dev.in -o requirements-dev.txt

secrets: ## Write .env with fresh random secrets for docker compose / make stack (never overwrites; any python3)
	deploy/gen-secrets.sh

stack: $(STAMP) ## docker-compose.yaml's services as local processes under supervisord, on 127.0.0.1
	$(PY) -m scripts.local_stack up

stack-down: ## Stop everything `make stack` started, leftovers of killed programs included (by pid)
	$(PY) -m scripts.local_stack down

stack-status: ## State, health and log of each `make stack` program
	$(PY) -m scripts.local_stack status

.PHONY: bench
bench: $(STAMP) ## Speed-and-scale benchmark (~20 min): one line per figure, bench/results.json
	$(PY) -m bench

clean: ## Remove local state (.local: embedded Airflow DB, MLflow store, artifacts, make stack's volumes)
	rm -rf .local

.PHONY: help install run score smoke test test-fast lint sizes format lock secrets stack stack-down stack-status clean
