# The verbs a newcomer needs. Everything comes from PyPI wheels pinned in uv.lock:
# no system PostgreSQL or Kafka is required (see libs/eventkit/src/eventkit/devstack.py).

SHELL := /bin/bash
.DEFAULT_GOAL := help

UV_VERSION := 0.13.8
# `python3 -m uv` works even when pip put the uv script somewhere not on PATH.
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PYTEST_FLAGS ?= -q -p no:cacheprovider
MYPY_TARGETS := libs/eventkit/src/eventkit libs/simulator/src/jingmin_sim $(wildcard services/*/src/jingmin_*)

.PHONY: help setup dev test lint bench contracts-check clean

help:
	@echo "make setup            install uv $(UV_VERSION) if missing, then the locked environment"
	@echo "make dev              run every service on local Postgres and Kafka (Ctrl-C stops all)"
	@echo "make test             run the whole test suite (PYTEST_FLAGS=... to change flags)"
	@echo "make test-newest      the test suite on Python 3.13 (NEWEST_TESTS=paths to narrow it)"
	@echo "make lint             ruff check, ruff format --check, mypy"
	@echo "make bench            run the benchmarks (results in bench-results/)"
	@echo "make chaos            break a private platform six ways, check nothing is lost"
	@echo "make contracts-check  validate contracts/ and compatibility across versions"
	@echo "make clean            remove caches (keeps .jingmin/, the dev data)"
	@echo "make deploy-render    regenerate deploy files from deploy/topics.yaml and partners.yaml"
	@echo "make deploy-check     validate compose, kustomize, Prometheus rules, partner example"

setup:
	@if ! command -v uv >/dev/null 2>&1 && ! python3 -m uv --version >/dev/null 2>&1; then \
		echo "installing uv==$(UV_VERSION) with pip"; \
		python3 -m pip install --user "uv==$(UV_VERSION)" \
		|| python3 -m pip install --user --break-system-packages "uv==$(UV_VERSION)" \
		|| pip install "uv==$(UV_VERSION)"; \
	fi
	$(UV) sync --frozen
	@if ! command -v uv >/dev/null 2>&1; then \
		echo "note: uv is not on PATH in this shell (pip put it in $$(python3 -m site --user-base)/bin);"; \
		echo "      the README's commands use .venv/bin/jingmin, which works without it"; \
	fi
	@# npm packages: the Prometheus Operator, Strimzi and CloudNativePG validators
	@# (make deploy-check) and the Node.js partner example (tests/partners).
	@for dir in tests/deploy/crd-validate examples/partner_subscriber/node; do \
		if [ ! -d $$dir/node_modules ]; then \
			if command -v npm >/dev/null 2>&1; then \
				npm ci --prefix $$dir --no-audit --no-fund; \
			else echo "npm not found: install nodejs and npm for $$dir (see .ci/run)"; fi; \
		fi; \
	done
	@# Debian packages of the monthly report (jingmin report): the CJK fonts its PDF embeds,
	@# and poppler-utils (pdftotext, pdftoppm) its tests read the PDF with.
	@if ! fc-list 2>/dev/null | grep -qi 'Noto Sans CJK'; then \
		echo "Noto Sans CJK not found: install fonts-noto-cjk for jingmin report (see .ci/run)"; fi
	@if ! command -v pdftotext >/dev/null 2>&1 || ! command -v pdftoppm >/dev/null 2>&1; then \
		echo "pdftotext/pdftoppm not found: install poppler-utils (see .ci/run)"; fi

dev: setup
	$(UV) run jingmin dev

test: setup
	$(UV) run pytest $(PYTEST_FLAGS)

# The newest Python the dependencies support (requires-python is ">=3.11"; CI runs `make
# test` on 3.11 and this on the newest). uv cannot download interpreters here: it uses one
# on PATH or pyenv's (PYTHON_NEWEST=/path/to/python3.13 to choose). Its own environment,
# .venv-newest, so the 3.11 one stays as it is. NEWEST_TESTS=... narrows the run.
PYTHON_NEWEST ?= $(shell ls -d $$HOME/.pyenv/versions/3.13*/bin/python 2>/dev/null | tail -1 || true)
ifeq ($(strip $(PYTHON_NEWEST)),)
PYTHON_NEWEST := $(shell python3.13 -c 'import sys; print(sys.executable)' 2>/dev/null)
endif
NEWEST_TESTS ?=
.PHONY: test-newest
test-newest:
	@if [ -z "$(PYTHON_NEWEST)" ]; then echo "no Python 3.13 found (set PYTHON_NEWEST)"; exit 1; fi
	UV_PROJECT_ENVIRONMENT=.venv-newest $(UV) sync --frozen --python $(PYTHON_NEWEST)
	UV_PROJECT_ENVIRONMENT=.venv-newest $(UV) run --frozen --python $(PYTHON_NEWEST) \
		pytest $(PYTEST_FLAGS) $(NEWEST_TESTS)

lint: setup
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy $(MYPY_TARGETS)

# A measurement, not a test (pytest never collects it); BENCH_FLAGS=--help lists the knobs.
bench: setup
	$(UV) run python tests/bench/run.py $(BENCH_FLAGS)

# Faults on a private stack (own embedded Postgres and Tansu on free ports); about 10 min.
# CHAOS_FLAGS=--help lists the knobs (scenario names, --scale, --load, --keep ...).
.PHONY: chaos
chaos: setup
	$(UV) run python tests/chaos/run.py $(CHAOS_FLAGS)

contracts-check: setup
	$(UV) run jingmin contracts-check

clean:
	find . -name __pycache__ -type d -not -path './.venv/*' -prune -exec rm -rf {} +
	rm -rf .pytest_cache .mypy_cache .ruff_cache bench-results chaos-results .venv-newest

# Deploy files (deploy/, docs/operations/): regenerate from deploy/topics.yaml and
# deploy/partners.yaml; validate compose, kustomize, Prometheus rules and the partner example.
.PHONY: deploy-render deploy-check
deploy-render: setup
	$(UV) run python deploy/tools/render.py

deploy-check: setup
	$(UV) run pytest $(PYTEST_FLAGS) tests/deploy tests/partners
