# The two commands a newcomer runs: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
PREFMIX := $(VENV)/bin/prefmix
PYTEST := $(VENV)/bin/python -m pytest
PREFECT := $(VENV)/bin/prefect
PREFECT_PORT ?= 4200
POOL ?= prefmix-process

.PHONY: setup demo test test-slow test-all bench clean \
        server pool deploy worker trigger-generate

setup:
	@scripts/setup.sh

demo: setup
	$(PREFMIX) demo

test: setup
	$(PYTEST) -m "not slow" -q -ra

test-slow: setup
	$(PYTEST) -m "slow" -q -ra || [ $$? -eq 5 ]  # 5: no slow tests collected

test-all: setup
	$(PYTEST) -q -ra

bench: setup
	$(VENV)/bin/python bench/generation.py
	$(VENV)/bin/python bench/blend.py
	$(VENV)/bin/python bench/gate.py
	$(VENV)/bin/python bench/lineage.py
	$(VENV)/bin/python bench/annotations.py

clean:
	rm -rf demo-store .pytest_cache

# --- the Prefect server path (schedules, workers, ad hoc runs) -------------
# SQLite under PREFECT_HOME by default; for PostgreSQL export
# PREFECT_API_DATABASE_CONNECTION_URL=postgresql+asyncpg://user:pass@host/prefect before `make server`.
# Only the server-path targets talk to a Prefect server; `make demo` and `make test`
# use Prefect's ephemeral server, so these are not exported globally.
SERVER_TARGETS := pool deploy worker trigger-generate
$(SERVER_TARGETS): export PREFECT_API_URL ?= http://127.0.0.1:$(PREFECT_PORT)/api
$(SERVER_TARGETS): export PREFMIX_CONFIG ?= configs/nightly.yaml
$(SERVER_TARGETS): export PREFMIX_TIMEZONE ?= UTC
$(SERVER_TARGETS): export PREFMIX_POOL ?= $(POOL)

server: setup
	PREFECT_API_URL= $(PREFECT) server start --host 127.0.0.1 --port $(PREFECT_PORT)

pool: setup
	$(PREFECT) work-pool create $(POOL) --type process --overwrite

deploy: setup
	$(PREFECT) --no-prompt deploy --all --prefect-file prefect.yaml

worker: setup
	$(PREFECT) worker start --pool $(POOL)

# e.g. make trigger-generate ARGS="--param limit=50 --param teacher=qwen-32b"
trigger-generate: setup
	$(PREFMIX) trigger generate $(ARGS)
