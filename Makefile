# One entry point for everything. Every target installs what it needs first (virtualenv, pip, pinned CDK CLI).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := node_modules/.installed-stamp
# Node.js 22 LTS from package.json (the node-linux-* packages ship the official binary; on another OS, the
# Node.js 22 of .nvmrc on the PATH): the CDK CLI, jsii under the Python CDK app and the Node clients of the tests
# all run on it.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
CDK := $(CURDIR)/node_modules/.bin/cdk

.PHONY: install test lint typecheck pytest mutation local synth deploy diff bootstrap bench schemas smoke lock clean

# The hashed dev lock (it holds the Lambda lock's versions), installed by uv: pip installs uv itself from
# requirements-uv.txt (the dev lock's uv entry, hashes included: `make lock` writes it, infra/lock.py checks it),
# then uv installs the dev lock, downloading and unpacking in parallel (pip: one file at a time). Both refuse any
# file whose hash is not in the lock. No bytecode is compiled up front (pip compiles every module, 183 MB of
# aws_cdk sources among them: most of its install time); Python compiles what is imported, once. A fresh clone's
# install went from ~6 min to under 1 min (README, Tests).
$(STAMP): requirements.txt requirements-dev.txt requirements-uv.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-uv.txt
	$(VENV)/bin/uv pip install --quiet --python $(PY) --require-hashes -r requirements-dev.txt
	touch $(STAMP)

# The CDK CLI and Node.js 22 (pinned in package.json) are needed only to synthesize/deploy and by the tests, not by
# make local.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

# The Python and the Node installs side by side (both mostly wait on the network and the disk).
install:
	$(MAKE) --no-print-directory -j2 $(STAMP) $(NODE_STAMP)

## make test: lint, format check, type check and every test (what CI runs)
test: install lint typecheck pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy functions tools infra bench

# One worker per core (pytest-xdist). --dist loadfile sends each file, and tests/e2e and tests/infra whole (their
# fixtures are shared by several files), to one worker, so each stack starts once (tests/conftest.py).
# PYTEST_XDIST="" runs everything in one process.
PYTEST_XDIST ?= -n auto --dist loadfile

pytest: install
	$(PY) -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

## make mutation: mutmut over functions/pipeline/ and functions/deliverer/ against the fast tests (tests/unit and
## the doctests); not part of make test (tens of minutes on 2 cores). MUTANTS="functions.pipeline.sources*": a subset.
mutation: $(STAMP)
	$(VENV)/bin/mutmut run $(MUTANTS)
	$(PY) -m tests.mutation_score

## make local: the whole pipeline on this machine (moto, local API, Kochava sink, Apple stub)
local: $(STAMP)
	$(PY) -m tools.local $(ARGS)

## make schemas: regenerate the API Gateway JSON schemas and the OpenAPI document from the pydantic contract
schemas: $(STAMP)
	$(PY) -m functions.pipeline.contract infra/schemas
	$(PY) -m infra.openapi docs/openapi.json

## make smoke ARGS="--stack kochava-prod": prove a deployed stack's front half end to end (tools/smoke.py)
smoke: $(STAMP)
	$(PY) -m tools.smoke $(ARGS)

## make lock: recompile the hashed locks from requirements*.in (ARGS="--upgrade-package NAME" to move one package)
lock: $(STAMP)
	$(PY) -m infra.lock $(ARGS)

synth: install
	$(CDK) synth $(ARGS)

diff: install
	$(CDK) diff $(ARGS)

deploy: install
	$(CDK) deploy $(ARGS)

## make bootstrap ARGS="aws://ACCOUNT/REGION": once per account and region, before the first deploy
bootstrap: install
	$(CDK) bootstrap $(ARGS)

bench: $(STAMP)
	$(PY) -m bench $(ARGS)

clean:
	rm -rf $(VENV) node_modules cdk.out .build .pytest_cache .mypy_cache .ruff_cache
