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
server: setup
	PREFECT_API_URL= $(PREFECT) server start --host 127.0.0.1 --port $(PREFECT_PORT)

pool: setup
	$(PREFECT) work-pool create $(POOL) --type process --overwrite

deploy: setup
	$(PREFECT) --no-prompt deploy --all --prefect-file prefect.yaml

worker: setup
	$(PREFECT) worker start --pool $(POOL)

trigger-generate: setup
	$(PREFMIX) trigger generate $(ARGS)
