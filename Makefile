# panelfast — every target explains itself: `make help`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: help
help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.venv-ready:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip 'maturin>=1.9,<2'
	touch $@

# Built (and its dependencies installed) again only when what it is built from
# changed, or the extension is missing: `make test` and `make demo` start at once.
BUILT := $(VENV)/.panelfast-built
NATIVE := python/panelfast/_native.abi3.so
RUST_SOURCES := $(shell find rust -name '*.rs')

.PHONY: dev
dev: $(BUILT)  ## create .venv, install the dev dependencies, build the extension (release)

$(BUILT): $(VENV)/.venv-ready Cargo.toml Cargo.lock pyproject.toml $(RUST_SOURCES) $(if $(wildcard $(NATIVE)),,FORCE)
	@echo "building the extension and installing the dependencies (their sources changed)"
	@$(VENV)/bin/maturin develop --release --extras dev -q 2>&1 \
	  | { grep -v -e '^Requirement already satisfied' -e '^\s*$$' || true; }
	@touch $@

.PHONY: FORCE
FORCE:

.PHONY: system-deps
system-deps:  ## install the Debian packages the tests use (socat, tinyproxy, chromium, fonts, systemd-analyze)
	@command -v socat >/dev/null && command -v tinyproxy >/dev/null && command -v chromium >/dev/null \
	  && command -v systemd-analyze >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    socat tinyproxy chromium fonts-dejavu-core fonts-liberation systemd >/dev/null; }

.PHONY: test
test: dev system-deps lint  ## build, lint, and run the Rust and Python tests
	cargo test --quiet
	$(PY) -m pytest -q

SOAK_RUNS ?= 5

.PHONY: test-soak
test-soak: dev system-deps  ## the Python tests 5 times in a row (SOAK_RUNS=5) with a core busy; stops at a failure
	@command -v stress-ng >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stress-ng >/dev/null; }
	@stress-ng --cpu 1 --quiet & busy=$$!; \
	trap 'kill $$busy 2>/dev/null; wait $$busy 2>/dev/null' EXIT; \
	for run in $$(seq $(SOAK_RUNS)); do \
	  echo "== run $$run of $(SOAK_RUNS), stress-ng --cpu 1 alongside"; \
	  $(PY) -m pytest -q -p no:cacheprovider || { echo "== run $$run failed"; exit 1; }; \
	done; \
	echo "== $(SOAK_RUNS) runs in a row, all passed"

.PHONY: lint
lint: dev  ## rustfmt, clippy, ruff, strict mypy, stubtest
	cargo fmt --check
	cargo clippy --quiet --all-targets -- -D warnings
	cargo clippy --quiet --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check python tests benches
	$(VENV)/bin/ruff format --check python tests benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest panelfast._native

.PHONY: bench
bench: dev  ## run every benchmark; results in benches/results.json
	$(PY) -m benches

.PHONY: bench-peers
bench-peers: dev  ## panelfast and the ThingsBoard IoT Gateway on the same Modbus job (~10 min)
	$(PY) -m benches._peers

.PHONY: wheel
wheel: $(VENV)/.venv-ready  ## build the release wheel (manylinux) into dist/
	$(VENV)/bin/maturin build --release --strip -o dist

.PHONY: demo
demo: dev  ## run the gateway's main job on its embedded default
	$(VENV)/bin/panelfast demo

.PHONY: clean
clean:  ## remove build products
	cargo clean
	rm -rf dist $(VENV) $(NATIVE)
