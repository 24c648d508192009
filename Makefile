# kie2s3 — every task goes through here. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
.SHELLFLAGS := -eu -o pipefail -c
# Python may keep compiled modules: with PYTHONDONTWRITEBYTECODE set, every process (each test worker,
# moto, each function, each command) compiles every module it imports from source again, and pytest
# rewrites every test module's assertions again. The caches are __pycache__ directories, ignored by git.
unexport PYTHONDONTWRITEBYTECODE

# Python 3.13, the Lambda runtime's version: pyenv's 3.13 when there is one, else python3.13 on PATH; the
# first that runs as 3.13 (pyenv's python3.13 shim is on PATH even where the version it selects lacks it).
# PYTHON=<interpreter> (command line or environment) chooses another; found once, not at each use.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for python in "$$(PYENV_VERSION=3.13 pyenv which python3 2>/dev/null)" "$$(command -v python3.13)"; do \
	[ -n "$$python" ] && "$$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null && echo "$$python" && break; done)
endif
NO_PYTHON := Python 3.13 not found: install it with pyenv (pyenv install 3.13.0) or put python3.13 on PATH
# Without it, `make help` still lists the targets (and says how to get it); every other target stops.
ifeq ($(strip $(PYTHON)),)
ifneq ($(filter-out help,$(or $(MAKECMDGOALS),help)),)
$(error $(NO_PYTHON))
endif
endif
PY313_BIN := $(abspath $(dir $(PYTHON)))
UV_VERSION := 0.13.8
SAM_VERSION := 1.170.0
# The template's rule sets, each in a venv of its own like the SAM CLI (their pins stay
# out of uv.lock): cfn-lint with AWS's serverless rules, and checkov.
CFN_LINT_VERSION := 1.58.0
CFN_LINT_SERVERLESS_VERSION := 0.3.6
CHECKOV_VERSION := 3.3.30
# The complexity gate counts as radon does (xenon's count; xenon itself grades by letter, B <= 10 < C <= 20).
RADON_VERSION := 6.0.1
TOOLS := .tools
UV := $(TOOLS)/uv/bin/uv
SAM := $(TOOLS)/sam/bin/sam
CFN_LINT := $(TOOLS)/cfn-lint/bin/cfn-lint
CHECKOV := $(TOOLS)/checkov/bin/checkov
RADON := $(TOOLS)/radon/bin/radon
VENV := .venv
BIN := $(VENV)/bin
# Every command that reaches AWS uses the region and credentials your AWS configuration resolves
# (profile, SSO, environment); REGION=<region> (on the command line or in the environment) overrides.
# No default here: validate and build reach no AWS, and lint for REGION or us-east-1.
REGION ?=
REGION_GIVEN := $(strip $(REGION))
LINT_REGION := $(or $(REGION_GIVEN),us-east-1)
ifneq ($(REGION_GIVEN),)
# The one override, for every AWS client a recipe starts (SAM, boto3, the AWS CLI).
export AWS_REGION := $(REGION_GIVEN)
export AWS_DEFAULT_REGION := $(REGION_GIVEN)
endif
# sam build (without Docker) looks for python3.13 on PATH; SAM gets its own venv (it pins its own boto3).
SAM_ENV := PATH="$(PY313_BIN):$$PATH" SAM_CLI_TELEMETRY=0
# The handler's code sits at the root of the Lambda package (/var/task); locally that is src/handler.
RUN := PYTHONPATH="src/handler:." $(BIN)/python
# The local stack's state commands need the standard library only: they work even without .venv.
STATE := PYTHONPATH=. $(PYTHON) -m devstack.up
# Expands to nothing when AWS credentials (and a region) can be found, else stops make with the one line
# devstack/cli.py prints, naming what is missing: $(call require-aws,<what needs them>[,<more options>]).
# With REGION given, the AWS configuration need not name one.
require-aws = $(eval _aws_error := $(strip $(shell $(RUN) -m devstack.cli aws --for "$(1)" $(2) $(if $(REGION_GIVEN),--no-region) 2>&1 >/dev/null)))$(if $(_aws_error),$(error $(_aws_error)))

.PHONY: help dev lint typecheck layer-check audit validate build test unit integration demo invoke bench \
        preflight deploy deploy-guided delete e2e openapi call redrive backfill takedown clean up down status logs env callback events sam-event soak soak-short

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
	$(if $(strip $(PYTHON)),,@echo "$(NO_PYTHON); every target but help needs it")

$(UV):
	$(PYTHON) -m venv $(TOOLS)/uv
	$(TOOLS)/uv/bin/pip install --quiet "uv==$(UV_VERSION)"

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/pip install --quiet "aws-sam-cli==$(SAM_VERSION)"

$(CFN_LINT):
	$(PYTHON) -m venv $(TOOLS)/cfn-lint
	$(TOOLS)/cfn-lint/bin/pip install --quiet "cfn-lint==$(CFN_LINT_VERSION)" "cfn-lint-serverless==$(CFN_LINT_SERVERLESS_VERSION)"

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet "checkov==$(CHECKOV_VERSION)"

$(RADON):
	$(PYTHON) -m venv $(TOOLS)/radon
	$(TOOLS)/radon/bin/pip install --quiet "radon==$(RADON_VERSION)"

# Two installs from uv.lock, each for the targets that need it: the whole development toolchain (the
# `dev` group: lint, test, audit, bench, the soak), and the runtime with the `commands` group only (the
# local stack, demo, invoke, deploy, operate). The latter adds to what is there (--inexact): after the
# first, it removes nothing the other installed. Both compile what they install (UV_COMPILE_BYTECODE),
# so that the first run's processes, started together, do not each compile the same modules.
$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	UV_PYTHON="$(PYTHON)" UV_PROJECT_ENVIRONMENT="$(VENV)" UV_COMPILE_BYTECODE=1 $(UV) sync --frozen
	touch $@

$(VENV)/.synced-commands: pyproject.toml uv.lock | $(UV)
	UV_PYTHON="$(PYTHON)" UV_PROJECT_ENVIRONMENT="$(VENV)" UV_COMPILE_BYTECODE=1 $(UV) sync --frozen --inexact --no-dev --group commands
	touch $@

dev: $(VENV)/.synced $(SAM) ## install everything (project venv from uv.lock, SAM CLI in its own venv)

# Each target installs what it uses: the SAM CLI only for validate, build and deploy.
# Findings on the template are fixed, or suppressed in the resource's Metadata with a one-line reason.
# Complexity, as radon counts: no function in src/ above 12, none in devstack/ above 15 (the layering is a
# unit test: tests/unit/test_layering.py).
lint: $(VENV)/.synced $(CFN_LINT) $(CHECKOV) $(RADON) ## ruff, mypy (strict on src/), complexity (radon), the template's rule sets (cfn-lint with serverless rules, checkov)
	$(BIN)/ruff check src devstack tests
	$(BIN)/ruff format --check src devstack tests
	$(BIN)/mypy
	$(RADON) cc --json src devstack | $(BIN)/python -m devstack.complexity src=12 devstack=15
	$(CFN_LINT) --append-rules cfn_lint_serverless.rules -- template.yaml
	$(CHECKOV) --file template.yaml --framework cloudformation --compact --quiet --skip-download

layer-check: $(VENV)/.synced ## the layer's requirements.txt is exactly the lock's runtime dependencies
	diff -u layers/requirements.txt <($(UV) export --frozen --no-dev --no-hashes --no-header --no-emit-project --format requirements-txt)

audit: $(VENV)/.synced ## pip-audit of every pin in uv.lock (AUDIT_STRICT=1: unauditable pins fail too), bandit on src/
	$(RUN) -m devstack.audit --uv "$(UV)" $(if $(AUDIT_STRICT),--strict)
	$(BIN)/bandit -c pyproject.toml -r src -q

validate: $(SAM) ## sam validate --lint (cfn-lint) on template.yaml
	$(SAM_ENV) $(SAM) validate --lint --region $(LINT_REGION)

build: $(SAM) ## sam build: the function code and the dependencies layer (arm64)
	$(SAM_ENV) $(SAM) build --region $(LINT_REGION)

unit: $(VENV)/.synced ## unit tests only (no servers)
	$(BIN)/pytest tests/unit

# The AWS calls each function makes while the integration tests run (devstack/aws_calls.py), which
# tests/iam then checks against the functions' roles (devstack/iam.py).
AWS_CALLS := .aws-calls
RECORD := KIE2S3_AWS_CALLS=$(AWS_CALLS)

integration: $(VENV)/.synced ## integration tests only (moto server + kie.ai emulator on loopback), then the IAM check of their calls
	rm -rf $(AWS_CALLS)
	$(RECORD) $(BIN)/pytest tests/integration
	$(RECORD) $(BIN)/pytest tests/iam

# The IAM check reads the calls of the in-process suites only: the e2e suite's stacks are provisioned
# by processes of their own, whose calls the recording cannot tie to a stack.
# The unit and integration suites run in pytest-xdist workers, a test file to a worker (each worker
# starts its own local AWS and kie.ai emulator): one a core and one more, which works while the others'
# tests wait on processes and sockets. TEST_WORKERS=0 runs them in-process.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc 2>/dev/null || echo 1) + 1 )))
test: lint layer-check audit validate build ## everything: lint, types, template, build, the whole suite with coverage, the IAM check, a short soak
	rm -rf $(AWS_CALLS) .coverage
	$(RECORD) $(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --cov --cov-report= tests/unit tests/integration
	$(RECORD) $(BIN)/pytest tests/iam
	$(BIN)/pytest --cov --cov-append --cov-report=term tests/e2e
	$(MAKE) --no-print-directory soak-short

demo: $(VENV)/.synced-commands ## run the main job against the local stack and print where the files landed (FORWARD=1: and forward it)
	$(RUN) -m devstack.demo $(if $(FORWARD),--forward)

up: $(VENV)/.synced-commands ## a local kie2s3 that keeps running, its API on http://127.0.0.1:3000: make up [PORT=n] [MODE=inline] [FORWARD=1 | FORWARD_URL=<your handler>] [AUTH=iam]
	@$(RUN) -m devstack.up up --port "$(or $(PORT),3000)" --mode "$(or $(MODE),queue)" \
		$(if $(FORWARD_URL),--forward-url "$(FORWARD_URL)") $(if $(FORWARD),--forward) $(if $(AUTH),--auth "$(AUTH)")

down: ## stop the local stack and everything it started (also after a crash)
	@$(STATE) down

status: ## what the local stack runs, and where
	@$(STATE) status

# Locally with the standard library only (like the state commands); a deployed stack's through boto3.
# LINES= on the command line only: terminals export LINES (their height) into the environment.
LOG_LINES = $(if $(filter command line,$(origin LINES)),$(LINES))
logs: $(if $(STACK_NAME),$(VENV)/.synced-commands) ## the functions' logs, a line a record, local or deployed: make logs [FUNCTION=<name>] [SINCE=10m] [FOLLOW=1] [JSON=1] [LINES=n] [LAST=1 | STACK_NAME=<stack> [REGION=<region>]]
	$(if $(STACK_NAME),$(call require-aws,make logs STACK_NAME=$(STACK_NAME),$(if $(REGION_GIVEN),--no-region)))
	@$(if $(STACK_NAME),$(RUN),PYTHONPATH=. $(PYTHON)) -m devstack.logs --lines "$(or $(LOG_LINES),100)"$(if $(FUNCTION), --function "$(FUNCTION)")$(if $(SINCE), --since "$(SINCE)")$(if $(FOLLOW), --follow)$(if $(JSON), --json)$(if $(LAST), --last)$(if $(STACK_NAME), --stack-name "$(STACK_NAME)"$(if $(REGION_GIVEN), --region "$(REGION)"))

env: ## the local stack's URLs and keys as shell variables: eval "$(make -s env)"
	@$(STATE) env

events: $(VENV)/.synced-commands ## the events kie2s3 put on EventBridge in the local stack (a rule's queue): make events [FOLLOW=1] [JSON=1]
	@$(RUN) -m devstack.watch_events $(if $(FOLLOW),--follow) $(if $(JSON),--json)

callback: $(VENV)/.synced-commands ## a signed test callback: make callback FAMILY=<family> [TASK=<id>] [FILES=n], or EVENT=events/<file>.json
	$(if $(FAMILY)$(EVENT),,$(error usage: make callback FAMILY=<family> [TASK=<id>] [FILES=n], or make callback EVENT=events/<file>.json; with URL=<callback URL> HMAC_KEY=<key> to another receiver))
	@$(RUN) -m devstack.send_callback $(if $(FAMILY),--family "$(FAMILY)") $(if $(EVENT),--event "$(EVENT)") \
		$(if $(TASK),--task "$(TASK)") $(if $(FILES),--files "$(FILES)") $(if $(URL),--url "$(URL)") \
		$(if $(HMAC_KEY),--hmac-key "$(HMAC_KEY)")

invoke: $(VENV)/.synced-commands ## stand-in for `sam local invoke`: make invoke EVENT=events/<file>.json [MODE=queue]
	@$(RUN) -m devstack.invoke "$(or $(EVENT),events/callback-market-success.json)" --mode "$(or $(MODE),inline)"

# `sam local invoke` itself (Docker): the event made ready for a stack and the env-vars file of its function.
sam-event: $(VENV)/.synced-commands ## files for sam local invoke: make sam-event EVENT=events/<file>.json [STACK_NAME=<stack> [REGION=]] (default: the running local stack)
	$(if $(EVENT),,$(error usage: make sam-event EVENT=events/<file>.json [STACK_NAME=<deployed stack> [REGION=<region>]]; without STACK_NAME, the running local stack))
	$(if $(STACK_NAME),$(call require-aws,make sam-event STACK_NAME=$(STACK_NAME),$(if $(REGION_GIVEN),--no-region)))
	@$(RUN) -m devstack.sam_invoke "$(EVENT)"$(if $(STACK_NAME), --stack-name "$(STACK_NAME)"$(if $(REGION_GIVEN), --region "$(REGION)"))

# ROUTE, not PATH: make passes its variables to the recipe's shell, where PATH is the search path.
call: $(VENV)/.synced-commands ## a SigV4-signed API request with your AWS credentials: make call ROUTE=/tasks/<id> | ROUTE=/copies BODY='{...}'|@file [METHOD=] [STACK_NAME=<stack> [REGION=]] [PROFILE=]
	$(if $(ROUTE),,$(error usage: make call ROUTE=/tasks/<id> or ROUTE=/copies BODY='{...}' [STACK_NAME=<deployed stack>]; without STACK_NAME, the local stack))
	@$(RUN) -m devstack.call "$(ROUTE)" $(if $(METHOD),--method "$(METHOD)") $${BODY:+--body "$$BODY"} \
		$(if $(STACK_NAME),--stack-name "$(STACK_NAME)")$(if $(REGION_GIVEN), --region "$(REGION)") $(if $(PROFILE),--profile "$(PROFILE)")

redrive: $(VENV)/.synced-commands ## move dead-lettered copy jobs back: make redrive STACK_NAME=<deployed stack> [REGION=<region>]
	$(if $(STACK_NAME),,$(error usage: make redrive STACK_NAME=<deployed stack>))
	$(call require-aws,make redrive)
	@$(RUN) -m devstack.redrive --stack-name "$(STACK_NAME)"$(if $(REGION_GIVEN), --region "$(REGION)")

backfill: $(VENV)/.synced-commands ## record tasks whose callbacks never arrived: make backfill FAMILY=<family> TASKS=<file> [STACK_NAME=<stack>]
	$(if $(and $(FAMILY),$(TASKS)),,$(error usage: make backfill FAMILY=<family> TASKS=<file of task ids> [STACK_NAME=<stack>]))
	$(if $(STACK_NAME),$(call require-aws,make backfill STACK_NAME=$(STACK_NAME)))
	@$(RUN) -m devstack.backfill --family "$(FAMILY)" --tasks "$(TASKS)" $(if $(STACK_NAME),--stack-name "$(STACK_NAME)")

takedown: $(VENV)/.synced-commands ## remove a task's archived files, callbacks and ledger items: make takedown TASK=<id> STACK_NAME=<stack> [REGION=<region>] [BYPASS_GOVERNANCE=1]
	$(if $(and $(TASK),$(STACK_NAME)),,$(error usage: make takedown TASK=<task id> STACK_NAME=<deployed stack> [REGION=<region>] [BYPASS_GOVERNANCE=1]))
	$(call require-aws,make takedown)
	@$(RUN) -m devstack.takedown --task "$(TASK)" --stack-name "$(STACK_NAME)"$(if $(REGION_GIVEN), --region "$(REGION)")$(if $(BYPASS_GOVERNANCE), --bypass-governance)

bench: $(VENV)/.synced ## copy vs plain boto3/urllib3 and a user's upload_fileobj (1 MiB-1 GiB), round trips per file, memory, ranges, init, a burst
	$(RUN) -m devstack.bench

soak: $(VENV)/.synced ## seeded chaos soak on the local stack, then the invariant checker: make soak [SEED=n] [TASKS=n] [MINUTES=n]
	$(RUN) -m devstack.soak.run --seed "$(or $(SEED),1)" --tasks "$(or $(TASKS),2200)" --minutes "$(or $(MINUTES),10)"

soak-short: $(VENV)/.synced ## the soak `make test` runs after the suite: about a minute, seed 1, 40 tasks
	$(RUN) -m devstack.soak.run --seed 1 --tasks 40 --minutes 1

openapi: $(VENV)/.synced-commands ## regenerate openapi.json from the routes (a test checks it is current)
	$(RUN) -m devstack.openapi

e2e: $(VENV)/.synced ## HTTP+S3 tests: on a local stack of their own, or a deployed one: STACK_NAME=<stack> KIE_TASK_ID=<task>
	$(if $(STACK_NAME),$(if $(KIE_TASK_ID),,$(error make e2e STACK_NAME=$(STACK_NAME) also needs KIE_TASK_ID=<a finished kie.ai task of yours> (KIE_FAMILY=<its family> unless market))))
	$(if $(STACK_NAME),$(call require-aws,make e2e STACK_NAME=$(STACK_NAME)))
	KIE2S3_E2E_STACK_NAME="$(STACK_NAME)" KIE2S3_E2E_TASK_ID="$(KIE_TASK_ID)" KIE2S3_E2E_FAMILY="$(or $(KIE_FAMILY),market)" \
		$(BIN)/pytest tests/e2e

# Deploying: samconfig.toml (committed: stack name, capabilities, no region or account) has an
# environment per stack, CONFIG_ENV (default, prod, ...); make deploy-guided saves your answers over it
# to samconfig.local.toml (gitignored), which deploy and preflight read while it exists. The checks come
# first: no credentials, or a problem the preflight finds, stops before the build.
# PARAMS="Key=Value ..." goes to sam deploy --parameter-overrides as one argument, from the recipe's
# environment (make exports a variable given on its command line), so quotes in it (Key="") reach SAM.
CONFIG_ENV ?= default
DEPLOY_CONFIG := $(if $(wildcard samconfig.local.toml),samconfig.local.toml,samconfig.toml)
# Where a deploy goes, the same for the preflight and SAM: without REGION, SAM resolves the region
# itself, from the same AWS configuration the preflight reads.
DEPLOY_TARGET = --config-env "$(CONFIG_ENV)"$(if $(STACK_NAME), --stack-name "$(STACK_NAME)")$(if $(REGION_GIVEN), --region "$(REGION_GIVEN)")
SAM_OVERRIDES := $${PARAMS:+--parameter-overrides "$$PARAMS"}
PREFLIGHT_PARAMS := $${PARAMS:+--params "$$PARAMS"}
preflight: $(VENV)/.synced-commands ## check what a deploy needs, in the account and region it goes to: make preflight [CONFIG_ENV=prod] [STACK_NAME=] [REGION=] [PARAMS=]
	$(call require-aws,make preflight)
	@$(RUN) -m devstack.preflight --config-file "$(DEPLOY_CONFIG)" $(DEPLOY_TARGET) $(PREFLIGHT_PARAMS)

deploy: $(VENV)/.synced-commands $(SAM) ## preflight, build, deploy (samconfig.local.toml's answers, else samconfig.toml's): make deploy [CONFIG_ENV=prod] [STACK_NAME=] [REGION=] [PARAMS="Key=Value ..."]
	$(call require-aws,make deploy)
	$(MAKE) --no-print-directory preflight
	$(MAKE) --no-print-directory build
	$(SAM_ENV) $(SAM) deploy --config-file "$(DEPLOY_CONFIG)" $(DEPLOY_TARGET) $(SAM_OVERRIDES)

deploy-guided: $(VENV)/.synced-commands $(SAM) ## asks each parameter with its meaning, saves samconfig.local.toml, preflight, build, deploy [CONFIG_ENV=] [STACK_NAME=] [REGION=] [PARAMS=]
	$(call require-aws,make deploy-guided)
	$(RUN) -m devstack.guided $(DEPLOY_TARGET) $(PREFLIGHT_PARAMS)
	$(MAKE) --no-print-directory build
	$(SAM_ENV) $(SAM) deploy --config-file samconfig.local.toml $(DEPLOY_TARGET)

delete: $(VENV)/.synced-commands $(SAM) ## delete a deployed stack (sam delete asks first), then name what it kept: make delete STACK_NAME=<stack> [REGION=<region>]
	$(if $(STACK_NAME),,$(error usage: make delete STACK_NAME=<deployed stack> [REGION=<region>]))
	$(call require-aws,make delete,$(if $(REGION_GIVEN),--no-region))
	@SAM_CLI_TELEMETRY=0 $(RUN) -m devstack.delete --stack-name "$(STACK_NAME)" --sam "$(SAM)"$(if $(REGION_GIVEN), --region "$(REGION)")

clean: ## remove build output and tool environments
	rm -rf .aws-sam $(TOOLS) $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage $(AWS_CALLS)
