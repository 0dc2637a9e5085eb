# Asocial — the two commands a new machine needs: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8080
APT_PACKAGES := redis-server chromium openssl
STAMP := .make/installed

.PHONY: demo test install firebase-tools system-deps lint typecheck layers unit devcluster-up devcluster-down chat bench clean

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
test: install firebase-tools lint typecheck layers devcluster-up
	$(PYTHON) -m pytest $(PYTEST_ARGS)

install: system-deps $(STAMP)

## firebase-tools (the real Firebase Auth emulator) from npm, cached outside the tree
firebase-tools:
	bash tests/fixtures/firebase_install.sh >/dev/null

$(STAMP): pyproject.toml
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
	@mkdir -p $(dir $@) && touch $@

## system-deps: Debian packages the tests drive for real (redis-server, chromium)
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
	lint-imports

devcluster-up:
	devcluster/devcluster up

devcluster-down:
	devcluster/devcluster down

bench:
	$(PYTHON) -m benchmarks.fanout

clean:
	rm -rf .make .pytest_cache .mypy_cache .ruff_cache
