# dse developer Makefile (GNU make >= 4.3).
# Usage: make venv | test | test-slow | test-all | lint | run | sweep | report | bench | archon | clean
#   make test runs the quick suite (tests not marked slow, a few minutes on 2 cores);
#   make test-slow runs the rest (dask, sweeps, the wheel build, long searches); CI runs both.
#   Override e.g.: make run RUN_WORKLOAD=resnet50 RUN_OUT=results/r50 JOBS=2

SHELL := /bin/bash
.DEFAULT_GOAL := test

VENV   ?= .venv
PY     := $(VENV)/bin/python
DSE    := $(VENV)/bin/dse
STAMP  := $(VENV)/.installed
PYTHON ?= $(shell command -v python3.11 >/dev/null 2>&1 && echo python3.11 || echo python3)

# The built-in default: ResNet-18 on Timeloop's Eyeriss-like design, then its report.
RUN_ARCH     ?= arch_specs/eyeriss_like.yaml
RUN_WORKLOAD ?= resnet18
SWEEP        ?= sweeps/glb_sizes.yaml
JOBS         ?= 2
RUN_OUT   ?= results/run
RUN_ARGS  ?=
BENCH_ARGS ?=
PYTEST_ARGS ?=

.PHONY: venv test test-slow test-all lint run sweep report bench clean archon

venv: $(STAMP)

# Re-install whenever pyproject.toml changes; otherwise this is a no-op.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	@# the distribution was called `dse` before it took its index name (dnn-accel-dse)
	$(PY) -m pip uninstall -y -q dse 2>/dev/null || true
	$(PY) -m pip install -e '.[dev]'
	@touch $@

test: venv
	$(PY) -m pytest -p no:cacheprovider -m "not slow" $(PYTEST_ARGS)

test-slow: venv
	$(PY) -m pytest -p no:cacheprovider -m slow $(PYTEST_ARGS)

test-all: venv
	$(PY) -m pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check dse tests

run: venv
	$(DSE) run --arch $(RUN_ARCH) --workload $(RUN_WORKLOAD) --out $(RUN_OUT) --jobs $(JOBS) $(RUN_ARGS)
	$(DSE) report $(RUN_OUT) --out $(RUN_OUT)/report

sweep: venv
	$(DSE) sweep $(SWEEP) --jobs $(JOBS)

report: venv
	$(DSE) report $(wildcard results/run results/sweep/*) --out results/report

bench: venv
	$(DSE) bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./.git -prune -o -type d -name __pycache__ -exec rm -rf {} +

# The ARCHON study (docs/archon.md): dense, sparse and ARCHON per block for every network pair,
# results/archon/speedups.csv, plots, and the tables printed next to the paper's figures.
# The physical model by default; ARCHON_ARGS=--artifact-compat reproduces the artifact's choices.
ARCHON_ARGS ?=
archon: venv
	$(DSE) archon --out results/archon --jobs $(JOBS) $(ARCHON_ARGS)
