# `make demo` and `make test` each set up .venv on a fresh machine by themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | cksum | cut -d' ' -f1)
SHARED := var/volume
UV     := uv==0.13.8

.PHONY: demo test test-unit lint check setup lock clean debian-tools

setup: $(STAMP)

## setup: .venv with exactly the versions of requirements.lock (hashes checked), installed
## by uv (seconds, where pip takes minutes), then this project itself, editable.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check $(UV)
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode --require-hashes -r requirements.lock
	$(BIN)/uv pip install --python $(BIN)/python --no-deps -e .
	$(BIN)/python -m compileall -q tools serving >/dev/null  # as the image does: faster starts
	rm -f $(VENV)/.installed-* && touch $@

## lock: resolve pyproject.toml's pins and everything they need into requirements.lock.
lock:
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet --disable-pip-version-check $(UV)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --generate-hashes --quiet \
	  --custom-compile-command "make lock" -o requirements.lock

## demo: build the example artifacts, validate, generate, render every overlay, then
## serve every example model on 127.0.0.1:8080 (Ctrl-C stops it).
demo: $(STAMP)
	$(BIN)/python -m modelops.examples $(SHARED)
	$(BIN)/modelops validate
	$(BIN)/modelops generate
	$(BIN)/modelops render --out build/rendered
	$(BIN)/modelops serve --shared $(SHARED)

## check: what CI checks before the tests (no writes).
check: $(STAMP)
	$(BIN)/modelops validate
	$(BIN)/modelops generate --check
	$(BIN)/modelops render

## test-unit: the in-process tests of the server's core and codecs (seconds); then
## tests/tools (the CLI and generator) and tests/system (real servers on 127.0.0.1).
test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

## lint: ruff (style and bugs), mypy (strict on serving/), import-linter (the layering).
lint: $(STAMP)
	$(BIN)/ruff check serving tools tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

## test: lint, then the whole test suite (CI runs exactly this through .ci/run).
test: $(STAMP) debian-tools lint
	$(BIN)/python -m pytest

## debian-tools: Chromium (the catalog's browser test), Prometheus and promtool (alerts),
## curl (the README's commands, run by tests/system/test_readme.py), RabbitMQ (asynchronous
## inference; the tests and `modelops serve --broker` start it as a user process on
## 127.0.0.1, so its system service is kept from starting at install).
debian-tools:
	@command -v chromium >/dev/null && command -v promtool >/dev/null && command -v curl >/dev/null \
	  && test -x /usr/lib/rabbitmq/bin/rabbitmq-server || \
	  { apt-get update -qq && { test -e /usr/sbin/policy-rc.d || \
	      { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
	        && touch build-policy-rc.d; }; } \
	    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium prometheus curl ca-certificates rabbitmq-server; \
	    status=$$?; test ! -e build-policy-rc.d || rm -f /usr/sbin/policy-rc.d build-policy-rc.d; \
	    exit $$status; }

clean:
	rm -rf $(VENV) build var .pytest_cache .hypothesis
