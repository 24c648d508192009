# kie2s3 — every task goes through here. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c

# Python 3.13, the Lambda runtime's version: pyenv's 3.13 when there is one, else python3.13 on PATH.
PYTHON ?= $(shell PYENV_VERSION=3.13.0 pyenv which python3 2>/dev/null || command -v python3.13 2>/dev/null)
ifeq ($(strip $(PYTHON)),)
$(error Python 3.13 not found: install it with pyenv (3.13.0) or put python3.13 on PATH)
endif
PY313_BIN := $(abspath $(dir $(PYTHON)))
UV_VERSION := 0.13.8
SAM_VERSION := 1.170.0
TOOLS := .tools
UV := $(TOOLS)/uv/bin/uv
SAM := $(TOOLS)/sam/bin/sam
VENV := .venv
BIN := $(VENV)/bin
REGION ?= us-east-1
# sam build (without Docker) looks for python3.13 on PATH; SAM gets its own venv (it pins its own boto3).
SAM_ENV := PATH="$(PY313_BIN):$$PATH" AWS_DEFAULT_REGION=$(REGION) SAM_CLI_TELEMETRY=0
EVENT ?= events/callback-market-success.json
# The handler's code sits at the root of the Lambda package (/var/task); locally that is src/handler.
RUN := PYTHONPATH="src/handler:." $(BIN)/python

.PHONY: help dev lint typecheck layer-check audit validate build test unit integration demo invoke bench \
        deploy deploy-guided e2e openapi redrive backfill clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet "uv==$(UV_VERSION)"

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet "aws-sam-cli==$(SAM_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	UV_PYTHON="$(PYTHON)" $(UV) sync --frozen
	touch $@

dev: $(VENV)/.synced $(SAM) ## install everything (project venv from uv.lock, SAM CLI in its own venv)

lint: dev ## ruff (lint + format check) and mypy (strict on src/)
	$(BIN)/ruff check src devstack tests
	$(BIN)/ruff format --check src devstack tests
	$(BIN)/mypy

layer-check: dev ## the layer's requirements.txt is exactly the lock's runtime dependencies
	diff -u layers/requirements.txt <($(UV) export --frozen --no-dev --no-hashes --no-header --no-emit-project --format requirements-txt)

audit: dev ## pip-audit of every pin in uv.lock (AUDIT_STRICT=1: unauditable pins fail too), bandit on src/
	$(RUN) -m devstack.audit --uv "$(UV)" $(if $(AUDIT_STRICT),--strict)
	$(BIN)/bandit -c pyproject.toml -r src -q

validate: dev ## sam validate --lint (cfn-lint) on template.yaml
	$(SAM_ENV) $(SAM) validate --lint --region $(REGION)

build: dev ## sam build: the function code and the dependencies layer (arm64)
	$(SAM_ENV) $(SAM) build --region $(REGION)

unit: dev ## unit tests only (no servers)
	$(BIN)/pytest tests/unit

integration: dev ## integration tests only (moto server + kie.ai emulator on loopback)
	$(BIN)/pytest tests/integration

test: lint layer-check audit validate build ## everything: lint, types, template, build, the whole suite with coverage
	$(BIN)/pytest --cov --cov-report=term tests/unit tests/integration

demo: dev ## run the main job against the local stack and print where the files landed
	$(RUN) -m devstack.demo

invoke: dev ## stand-in for `sam local invoke`: make invoke EVENT=events/<file>.json
	$(RUN) -m devstack.invoke "$(EVENT)"

redrive: dev ## move dead-lettered copy jobs back: make redrive STACK_NAME=<deployed stack>
	@test -n "$(STACK_NAME)" || { echo "usage: make redrive STACK_NAME=<stack>"; exit 2; }
	$(RUN) -m devstack.redrive --stack-name "$(STACK_NAME)"

backfill: dev ## record tasks whose callbacks never arrived: make backfill FAMILY=<family> TASKS=<file> [STACK_NAME=<stack>]
	@test -n "$(FAMILY)" -a -n "$(TASKS)" || { echo "usage: make backfill FAMILY=<family> TASKS=<file of task ids> [STACK_NAME=<stack>]"; exit 2; }
	$(RUN) -m devstack.backfill --family "$(FAMILY)" --tasks "$(TASKS)" $(if $(STACK_NAME),--stack-name "$(STACK_NAME)")

bench: dev ## copy vs plain boto3/urllib3 (1 MiB, 64 MiB, 1 GiB), memory, ranged downloads, init; bench/results/
	$(RUN) -m devstack.bench

openapi: dev ## regenerate openapi.json from the routes (a test checks it is current)
	$(RUN) -m devstack.openapi

e2e: dev ## tests against a deployed stack (needs AWS credentials and STACK_NAME)
	$(BIN)/pytest tests/e2e

deploy: build ## deploy with the settings saved by deploy-guided (samconfig.toml)
	$(SAM_ENV) $(SAM) deploy

deploy-guided: build ## first deployment: asks for the stack name, region and parameters
	$(SAM_ENV) $(SAM) deploy --guided

clean: ## remove build output and tool environments
	rm -rf .aws-sam $(TOOLS) $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage
