# One entry point for everything. Every target installs what it needs first (virtualenv, pip, pinned CDK CLI).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CDK := npx --no-install cdk

.PHONY: install test lint typecheck pytest local synth deploy diff bench schemas clean

$(STAMP): requirements.txt requirements-dev.txt package.json package-lock.json
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error
	touch $(STAMP)

install: $(STAMP)

## make test: lint, format check, type check and every test (what CI runs)
test: install lint typecheck pytest

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy functions tools infra

pytest: install
	$(PY) -m pytest $(PYTEST_ARGS)

## make local: the whole pipeline on this machine (moto, local API, Kochava sink, Apple stub)
local: install
	$(PY) -m tools.local $(ARGS)

## make schemas: regenerate the API Gateway JSON schemas from the pydantic contract
schemas: install
	$(PY) -m functions.pipeline.contract infra/schemas

synth: install
	$(CDK) synth $(ARGS)

diff: install
	$(CDK) diff $(ARGS)

deploy: install
	$(CDK) deploy $(ARGS)

bench: install
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) node_modules cdk.out .build .pytest_cache .mypy_cache .ruff_cache
