# Asocial — the two commands a new machine needs: `make demo` and `make test`.
SHELL := /bin/bash
# The interpreter the project virtualenv is made from; everything else runs in .venv.
BASE_PYTHON ?= python3
CACHE_DIR ?= $(HOME)/.cache/asocial
UV_VERSION := 0.13.9
UV := $(CACHE_DIR)/uv-$(UV_VERSION)/bin/uv
VENV := $(CURDIR)/.venv
LOWEST_VENV := $(CURDIR)/.venv-lowest
export VIRTUAL_ENV := $(VENV)
export PATH := $(VENV)/bin:$(PATH)
export UV_PYTHON_DOWNLOADS := never
PYTHON := $(VENV)/bin/python
# The unit suite run again on the lowest versions the ranges allow (see test-lowest).
LOWEST_TESTS ?= tests/chatserver tests/operator
HOST ?= 127.0.0.1
PORT ?= 8080
APT_PACKAGES := redis-server chromium openssl iptables iproute2 mmdebstrap umoci libseccomp-dev gcc
STAMP := .make/installed

.PHONY: demo test test-lowest lock install firebase-tools system-deps lint typecheck layers unit devcluster-up devcluster-down chat bench clean

## demo: devcluster + operator + a minimal AsocialInstance until Ready, then the canvas
## at http://$(HOST):$(PORT)/ served by a local chat server (Ctrl-C stops it)
demo: install
	PYTHON=$(PYTHON) examples/demo.sh
	@echo
	@echo "==> the canvas: http://$(HOST):$(PORT)/  (open it twice, click anywhere, type)"
	@echo "    Ctrl-C stops the chat server; 'examples/demo.sh stop' the operator;"
	@echo "    'devcluster/devcluster down' the cluster."
	$(PYTHON) -m chatserver.cli --host $(HOST) --port $(PORT)

## chat: only the chat server, on the in-memory broker
chat: install
	$(PYTHON) -m chatserver.cli --host $(HOST) --port $(PORT)

## test: install everything the suite needs, then lint, type-check and run every test
test: install firebase-tools lint typecheck layers test-lowest devcluster-up
	$(PYTHON) -m pytest $(PYTEST_ARGS)

install: system-deps $(STAMP)

## firebase-tools (the real Firebase Auth emulator) from npm, cached outside the tree
firebase-tools:
	bash tests/fixtures/firebase_install.sh >/dev/null

## uv (pinned) in its own virtualenv under the cache: it installs the project's .venv
$(UV):
	$(BASE_PYTHON) -m venv $(CACHE_DIR)/uv-$(UV_VERSION)
	$(CACHE_DIR)/uv-$(UV_VERSION)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

## .venv from the committed lock file, exactly (fails if uv.lock is stale: run `make lock`)
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --python $(BASE_PYTHON) --extra test --extra dev
	@mkdir -p $(dir $@) && touch $@

## lock: re-resolve uv.lock after changing a dependency range in pyproject.toml
lock: | $(UV)
	$(UV) lock --python $(BASE_PYTHON)

## test-lowest: the lowest versions every range allows, and the unit suite on them
test-lowest: system-deps | $(UV)
	$(UV) venv --quiet --allow-existing --python $(BASE_PYTHON) $(LOWEST_VENV)
	VIRTUAL_ENV=$(LOWEST_VENV) $(UV) pip install --quiet --resolution lowest-direct -e '.[test]'
	VIRTUAL_ENV=$(LOWEST_VENV) $(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  -m "not devcluster and not browser" $(LOWEST_TESTS)

## system-deps: Debian packages the tests drive for real (redis-server, chromium) and the
## real node needs (iptables, mmdebstrap and umoci for local images, libseccomp for runc)
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check chatserver asocial_operator tests benchmarks

typecheck:
	$(PYTHON) -m mypy chatserver asocial_operator

layers:
	$(VENV)/bin/lint-imports

devcluster-up:
	devcluster/devcluster up

devcluster-down:
	devcluster/devcluster down

bench:
	$(PYTHON) -m benchmarks.fanout

clean:
	rm -rf .make .pytest_cache .mypy_cache .ruff_cache $(VENV) $(LOWEST_VENV)
