# driftloop — the Makefile is the interface: CI calls only these targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

STATE      ?= .driftloop
UV_VERSION ?= 0.13.8
# uv from PATH if present, else a private copy bootstrapped into the state directory.
UV         ?= $(shell command -v uv 2>/dev/null || echo $(STATE)/tools/bin/uv)
PY         := .venv/bin/python
DL         := .venv/bin/driftloop
PYTEST     := .venv/bin/pytest

.PHONY: help install up down status topics schemas lint format test test-unit \
        test-integration test-e2e ci demo clean backfill features-plan features-apply \
        features-materialize features stream bench bench-gitops bench-heal render check-render \
        image image-tools test-image

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(STATE)/tools/bin/uv:
	python3 -m venv $(STATE)/tools
	$(STATE)/tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled at install (uv's site-packages, then the workspace's own sources):
# every Ray worker, Ray Job, service and CLI reads it instead of compiling some 1,100
# modules from source, which a machine with PYTHONDONTWRITEBYTECODE set does in every
# process (bench/startup.py: 8.0 s against 16.6 s to import what they import).
.venv/.installed: $(if $(findstring $(STATE)/tools,$(UV)),$(UV)) uv.lock pyproject.toml */pyproject.toml */*/pyproject.toml
	$(UV) sync --all-packages --frozen --compile-bytecode
	.venv/bin/python -m compileall -q libs/*/src services/*/src features/src workflows/src >/dev/null
	@touch $@

install: .venv/.installed ## install every workspace package (uv, from uv.lock)

up: install prometheus ## start the local stack: Kafka (KRaft), Ray head with Serve, topics, Prometheus
	$(DL) up

down: ## stop what `make up` started
	@if [ -x $(DL) ]; then $(DL) down; else echo "nothing installed, nothing to stop"; fi

status: install ## show each component, its address, topics and end offsets
	$(DL) status

topics: install ## create missing topics and list them with end offsets
	$(DL) topics

schemas: install ## write the event contracts' JSON Schemas to schemas/
	$(DL) schemas --out schemas

DAYS ?= 30
backfill: install ## simulate $(DAYS) days of labelled history and compute its feature tables
	.venv/bin/driftloop-simulator backfill --days $(DAYS)
	$(DL) features backfill

features-plan: install ## `feast plan` on features/ for DRIFTLOOP_FEATURE_ENV (default local)
	$(DL) features plan

features-apply: install ## `feast apply` (registry, online tables, empty batch sources)
	$(DL) features apply

features-materialize: install ## load the newest batch features into the online store (needs `make up`)
	$(DL) features materialize

features: backfill features-apply features-materialize ## history → feature tables → registry → online store

stream: install ## run the stream service in the foreground (Ctrl-C stops it)
	.venv/bin/driftloop-stream run

render: install ## write the Argo manifests under deploy/k8s from workflows/
	$(PY) -m driftloop_workflows.render

check-render: install ## fail when a rendered manifest under deploy/k8s is stale
	$(PY) -m driftloop_workflows.render --check

bench: install ## run every benchmark under bench/ (needs `make up`); results in bench/results/latest.json
	@for b in $(filter-out bench/table.py bench/heal.py bench/gitops.py,$(wildcard bench/[a-z]*.py)); do echo "== $$b"; $(PY) $$b || exit 1; done
	@$(PY) bench/table.py
	@echo "results: bench/results/latest.json"

# Both GitOps paths in one run: commit -> object by Argo CD on the control plane of k8s-up
# (started and stopped here unless one runs), commit -> Serve answering by the sync service
# on the running stack (make up).
bench-gitops: install k8s-deps k8s-tools ## commit -> API server by Argo CD, commit -> Serve by the sync service (needs `make up`)
	$(PY) bench/gitops.py --tools $(K8S_CLUSTER_DIR) --kustomize $(KUSTOMIZE) --state $(K8S_CLUSTER_STATE)

HEAL_ARGS ?=
bench-heal: install ## does the loop heal? 5 seeds x 3 scenarios (hours; HEAL_ARGS="--seeds 1" for a look)
	$(PY) bench/heal.py $(HEAL_ARGS)

lint: install ## ruff, mypy, fresh rendered manifests, kustomize build, upstream schemas and promtool on deploy/k8s
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy libs/driftloop/src services/*/src features/src workflows/src tests $(wildcard bench/*.py)
	$(PY) -m driftloop_workflows.render --check
	$(MAKE) --no-print-directory check-k8s

format: install ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

test-unit: install ## unit tests: no socket, no process, no services (under a minute)
	$(PYTEST) tests/unit --durations=10

# Starts the stack unless it already runs, runs every tier, and stops only what it started.
# Two pytest processes (-n 2): the modules that change what every test shares (the loop,
# the sync tests, the broker's restart) one after another in one, the rest in the other
# (the lanes: tests/conftest.py). About 40 % of two cores sat idle in one process.
test: install prometheus ## every test tier against the real local stack (started and stopped here; the image: make test-image)
	@if $(DL) status >/dev/null 2>&1; then started=0; else started=1; $(DL) up || { $(DL) down; exit 1; }; fi; \
	$(PYTEST) tests --ignore=tests/image --ignore=tests/k8s --durations=25 -n 2; rc=$$?; \
	if [ $$started = 1 ]; then $(DL) down; fi; \
	if [ $$rc = 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

test-integration: up ## integration tests against the running stack
	$(PYTEST) tests/integration --durations=25

test-e2e: up ## the whole loop (and the notebook) against the running stack
	$(PYTEST) tests/e2e --durations=10

ci: lint test ## what CI runs: lint, then every test tier

demo: up ## the whole loop: history, v1, traffic, drift, retraining, v2 (about 10 min)
	.venv/bin/driftloop-demo run $(DEMO_ARGS)
	@echo "report: $(STATE)/demo/report/index.html — the stack keeps running; make down stops it"

clean: down ## stop the stack and remove runtime state (Kafka data, logs) and the venv
	rm -rf $(STATE) .venv

# The image every manifest under deploy/k8s runs, tagged with the driftloop package's version.
IMAGE_VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' libs/driftloop/pyproject.toml)
IMAGE         ?= driftloop/driftloop:$(IMAGE_VERSION)

# podman (build and run), buildah (its build engine), mmdebstrap (the base rootfs), runc (the
# OCI runtime used here: crun refuses hybrid cgroup hierarchies).
image-tools: ## install podman, buildah, mmdebstrap and runc from apt when missing (root or sudo)
	deploy/install-debian-packages.sh podman buildah mmdebstrap runc uidmap

image: image-tools ## build driftloop/driftloop:<version> with podman: a Debian base (mmdebstrap) + the uv-locked workspace
	STATE=$(STATE) UV_VERSION=$(UV_VERSION) deploy/image/build.sh $(IMAGE) $(IMAGE_VERSION)

test-image: install image ## run the image: entry points, non-root, labels, nothing of the build left
	TEST_IMAGE=$(IMAGE) $(PYTEST) tests/image --durations=10

include deploy/k8s/tools.mk
include deploy/k8s/cluster.mk
