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
PORT ?= 8000
APT_PACKAGES := redis-server chromium openssl iptables iproute2 mmdebstrap umoci libseccomp-dev gcc \
  buildah libnss3-tools
STAMP := .make/installed

.PHONY: demo test images monitoring chart requirements test-lowest lock install firebase-tools system-deps lint typecheck layers unit devcluster-build devcluster-up devcluster-down chat bench clean

## demo: the devcluster with its real node and its Gateway (Traefik), the images built
## here, the operator installed in-cluster (kubectl apply -k deploy/devcluster/),
## examples/devcluster.yaml Ready on real pods with its route accepted, then the canvas at
## http://127.0.0.1:8080/ and https://127.0.0.1:8443/ through Traefik
demo: install
	examples/demo.sh

## chat: only the chat server, on the in-memory broker
chat: install
	$(PYTHON) -m chatserver.cli --host $(HOST) --port $(PORT)

## test: install everything the suite needs, then lint, type-check and run every test;
## prints each stage's wall time at the end (and pytest its time per suite), pass or fail
TEST_STAGES := install firebase-tools lint typecheck layers test-lowest devcluster-build devcluster-up \
  images
TIMINGS := .make/stage-seconds
test:
	@mkdir -p $(dir $(TIMINGS)) && : > $(TIMINGS); status=0; \
	for stage in $(TEST_STAGES) pytest; do \
	  started=$$(date +%s); \
	  if [ $$stage = pytest ]; then $(PYTHON) -m pytest $(PYTEST_ARGS); \
	  else $(MAKE) --no-print-directory $$stage; fi; status=$$?; \
	  echo "$$stage $$(( $$(date +%s) - started ))" >> $(TIMINGS); \
	  [ $$status = 0 ] || break; \
	done; \
	echo; echo "make test, wall time per stage:"; \
	awk '{ total += $$2; printf "  %-16s %5d s\n", $$1, $$2 } \
	     END { printf "  %-16s %5d s (%.1f min)\n", "total", total, total / 60 }' $(TIMINGS); \
	[ $$status = 0 ] || echo "make test: stage '$$stage' failed (exit $$status)"; \
	exit $$status

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
	$(UV) sync --locked --python $(BASE_PYTHON) --extra server --extra operator --extra test --extra dev
	@mkdir -p $(dir $@) && touch $@

## lock: re-resolve uv.lock after changing a dependency range in pyproject.toml, and
## export each image's locked requirements from it
lock: | $(UV)
	$(UV) lock --python $(BASE_PYTHON)
	$(MAKE) requirements

## requirements: each image's pinned, hashed requirements, exported from uv.lock
IMAGE_REQUIREMENTS := deploy/images/requirements-server.txt deploy/images/requirements-operator.txt
requirements: | $(UV)
	for extra in server operator; do \
	  $(UV) export --quiet --frozen --no-header --no-dev --extra $$extra --no-emit-project \
	    --format requirements-txt -o deploy/images/requirements-$$extra.txt; done

## monitoring: the shipped alert rules file and Grafana dashboard, written from
## asocial_operator/monitoring/ (a test fails while they differ)
monitoring: install
	$(PYTHON) -m asocial_operator.monitoring deploy/monitoring

## chart: the Helm chart's generated files (its CRD template from crds/, the operator's
## alert rules), written from their sources (a test fails while they differ)
chart: install
	$(PYTHON) charts/render.py

## images: asocial-chat and asocial-operator from the Dockerfiles (buildah, on Debian-built
## bases; cached by content), imported into the devcluster's node when it runs
images: system-deps
	devcluster/devcluster images

## test-lowest: the lowest versions every range allows, and the unit suite on them (not
## the tests of the binaries the devcluster build makes: it runs before that build)
test-lowest: system-deps | $(UV)
	$(UV) venv --quiet --allow-existing --python $(BASE_PYTHON) $(LOWEST_VENV)
	VIRTUAL_ENV=$(LOWEST_VENV) $(UV) pip install --quiet --resolution lowest-direct -e '.[server,operator,test]'
	VIRTUAL_ENV=$(LOWEST_VENV) $(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider \
	  -m "not devcluster and not browser and not tools" $(LOWEST_TESTS)

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

lint: | $(UV)
	@for extra in server operator; do \
	  $(UV) export --quiet --frozen --no-header --no-dev --extra $$extra --no-emit-project \
	    --format requirements-txt | diff -q - deploy/images/requirements-$$extra.txt >/dev/null \
	  || { echo "deploy/images/requirements-$$extra.txt is stale: run 'make requirements'"; exit 1; }; done
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check chatserver asocial_operator devcluster tests benchmarks

typecheck:
	$(PYTHON) -m mypy chatserver asocial_operator devcluster/devcluster_lib charts/render.py

layers:
	PYTHONPATH=devcluster $(VENV)/bin/lint-imports

## devcluster-build: the control plane's and the node's binaries from pinned Go modules
## (cached; `up` builds them too when missing)
devcluster-build:
	devcluster/devcluster build

devcluster-up:
	devcluster/devcluster up

devcluster-down:
	devcluster/devcluster down

bench:
	$(PYTHON) -m benchmarks.fanout

clean:
	rm -rf .make .pytest_cache .mypy_cache .ruff_cache $(VENV) $(LOWEST_VENV)
