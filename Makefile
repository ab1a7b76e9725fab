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

.PHONY: help install demo up test lint typecheck format bench schemas clean

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

demo: install  ## the main job: a local cluster on embedded NATS, driven through the CLI
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

schemas: install  ## export the JSON Schemas of every interface version (then commit them)
	$(RUN) agentbus interfaces export

clean:
	rm -rf .venv .agentbus .pytest_cache .mypy_cache .ruff_cache
