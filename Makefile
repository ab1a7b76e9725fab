# agentbus: every target works on a fresh machine with Python 3.11+, make and git.
# uv is installed with pip when it is missing; all Python runs inside the uv workspace.

SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := $(PYTHON) -m uv
endif
RUN := $(UV) run --frozen
# Components are type-checked too (not strict): each components/<name>/src holds agentbus.<name_>.
COMPONENT_PACKAGES := $(foreach c,$(notdir $(wildcard components/*)),-p agentbus.$(subst -,_,$(c)))
empty :=
space := $(empty) $(empty)
COMPONENT_PATH := $(subst $(space),:,$(strip interfaces/src framework/src $(wildcard components/*/src)))

.PHONY: help install demo demo-hello up test lint typecheck format bench schemas clean
.PHONY: wheels images images-public compose-up compose-demo compose-down test-docker

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: uv
uv:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv

.venv/.synced: uv.lock pyproject.toml interfaces/pyproject.toml framework/pyproject.toml $(wildcard components/*/pyproject.toml)
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen --all-packages
	@touch $@

install: uv .venv/.synced  ## create .venv with every workspace package and the dev tools

demo: install  ## the main job: every component and one maintainer each, deciding on broadcasts live
	$(RUN) python examples/maintainers/demo.py

demo-hello: install  ## the framework alone: a two-replica service on embedded NATS, via the CLI
	$(RUN) python examples/hello/demo.py

up: install  ## run the local cluster of agentbus.toml (embedded NATS + every component); Ctrl-C stops it
	$(RUN) agentbus up -f agentbus.toml

test: install  ## the whole test suite against a real nats-server
	$(RUN) pytest

lint: install  ## ruff; mypy strict on interfaces and framework, and on every component
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy interfaces/src framework/src
	MYPYPATH=$(COMPONENT_PATH) $(RUN) mypy $(COMPONENT_PACKAGES)

typecheck: install  ## only the type checks of make lint
	$(RUN) mypy interfaces/src framework/src
	MYPYPATH=$(COMPONENT_PATH) $(RUN) mypy $(COMPONENT_PACKAGES)

format: install  ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

bench: install  ## the benchmarks under bench/, with their baselines
	$(RUN) python bench/bus_overhead.py
	$(RUN) python bench/tool_executor_overhead.py
	$(RUN) python bench/workflow_step_overhead.py
	$(RUN) python bench/model_gateway_overhead.py
	$(RUN) python bench/broadcast_fanout.py
	$(RUN) python bench/nats_guard_overhead.py
	$(RUN) python bench/cluster_scale.py

schemas: install  ## export the JSON Schemas of every interface version (then commit them)
	$(RUN) agentbus interfaces export

# Containers (deploy/, docker-compose.yml). Offline by default: the base images come from Debian
# packages (debootstrap, apt-get download); BASE_IMAGE / PROMETHEUS_IMAGE choose others.
OFFLINE_IMAGES := BASE_IMAGE=$${BASE_IMAGE:-agentbus/base:bookworm} PROMETHEUS_IMAGE=$${PROMETHEUS_IMAGE:-agentbus/prometheus-base:bookworm}
COMPOSE := $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

wheels: uv  ## the wheelhouse the image installs from (dist/wheelhouse): the project and uv.lock's deps
	UV="$(UV)" deploy/wheels.sh

images: uv  ## offline images: Debian base (debootstrap; needs root), wheels, agentbus/agentbus
	UV="$(UV)" deploy/build-images.sh

images-public: uv  ## the same images FROM the public python:3.11-slim and prom/prometheus
	UV="$(UV)" deploy/build-images.sh --public

compose-up: images  ## the cluster in containers (offline images), authentication on; make compose-demo tours it
	AGENTBUS_OPERATOR_UID=$$(id -u) $(OFFLINE_IMAGES) $(COMPOSE) up -d --no-build
	@echo "cluster up; as its operator: AGENTBUS_NATS_URL=nats://127.0.0.1:$${NATS_PORT:-4222} AGENTBUS_IDENTITY=operator AGENTBUS_NATS_NKEY_FILE=$${AGENTBUS_OPERATOR_DIR:-.agentbus/compose}/operator.nk agentbus status"

compose-demo: install  ## a CLI tour of the container cluster (health, status, an event, decisions)
	AGENTBUS_CLI="$(RUN) agentbus" deploy/compose-demo.sh

compose-down:  ## stop the container cluster and delete its volumes
	$(COMPOSE) --profile metrics down -v --remove-orphans

test-docker: install  ## only the docker-marked tests (build the images when needed)
	$(RUN) pytest -m docker tests/docker

clean:
	rm -rf .venv .agentbus .pytest_cache .mypy_cache .ruff_cache
