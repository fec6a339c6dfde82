# Two commands do all set-up on a fresh machine:  make demo  and  make test.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
DEMO_DIR := demo-output
# No pretrained weights can be fetched offline: fail fast instead of retrying the hub for ~47 s,
# then fall back (loudly) to a small model with random weights.
DEMO_ENV := HF_HUB_OFFLINE=1 VDA_DATA_DIR=$(DEMO_DIR) VDA_ENCODER__FALLBACK_UNTRAINED_MODEL=ViT-B-32
DEMO_VIN := 1FTMW1T88MFA00001

.PHONY: venv demo serve test test-fast lint clean synth container-test smoke smoke-needs-stack

# The demo needs only the runtime; the tests add the AWS SDK, moto, the CDK and linters.
$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt requirements-infra.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.dev

demo: $(VENV)/.runtime
	$(DEMO_ENV) $(VENV)/bin/vehicle-assessment index build sample_data/reference --labels sample_data/reference/labels.csv
	$(DEMO_ENV) $(VENV)/bin/vehicle-assessment assess --vin $(DEMO_VIN) --color "Oxford White" --mileage 48200 \
		--estimate 38500 sample_data/queries/undamaged/*.jpg sample_data/queries/damaged/*.jpg

# The demo's state served on http://127.0.0.1:8000: the REST API, uploads and the web app (Ctrl-C stops).
# The API and the review web app on http://127.0.0.1:8000, opened at the newest (the demo's) assessment.
serve: $(VENV)/.runtime
	$(DEMO_ENV) $(VENV)/bin/vehicle-assessment serve --open

test: venv node_modules/.installed
	$(PY) -m pytest

# Seconds, not minutes: no torch, no CDK synth, no moto end-to-end runs (tests marked slow).
# CI runs everything (make test).
test-fast: venv
	$(PY) -m pytest -m "not slow"

# The SageMaker serving image built with podman (no Docker) and run as SageMaker runs it, with a
# tiny model: /ping, then /invocations compared with local mode. Needs root and
# `apt-get install podman runc mmdebstrap`; caches in .container-test/ (first run ~6+ min, then ~1).
container-test: $(VENV)/.runtime
	$(PY) scripts/container_test.py

# ruff (lint and format) and mypy with the pydantic plugin; files and settings in pyproject.toml.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# After `cdk deploy`: each service checked once, then the sample photos submitted end to end (README
# "After a deploy: the smoke test"). Signs in as a system: VDA_CLIENT_SECRET=... make smoke STACK=name;
# SMOKE_SIGN_IN="--username ana" signs in as a person instead (VDA_PASSWORD or a prompt).
SMOKE_SIGN_IN ?= --client-credentials
smoke: smoke-needs-stack $(VENV)/.dev
	$(VENV)/bin/vehicle-assessment smoke --stack $(STACK) $(if $(REGION),--region $(REGION)) $(SMOKE_SIGN_IN)

smoke-needs-stack:
	@test -n "$(STACK)" || { echo "usage: make smoke STACK=<stack name> [REGION=<region>]" >&2; exit 2; }

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache cdk.out .container-test

# --- infrastructure (infra/, see README "Deploying to AWS") ---------------------------------
# jsii runs on Node 20 here; its end-of-life banner would bury the test output.
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

# The CDK CLI and asl-validator (package.json / package-lock.json); the infra tests call them.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Synthesizes with the real Lambda bundle (pip, for the Lambda's platform) and cdk-nag; prints
# the package size. Needs PyPI, not Docker.
synth: venv node_modules/.installed
	. $(VENV)/bin/activate && npx cdk synth -q
	@du -sh cdk.out/asset.*/ | sort -h | tail -3
