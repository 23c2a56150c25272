# panelfast — every target explains itself: `make help`.
.DEFAULT_GOAL := help
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help
help:  ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(VENV)/.venv-ready:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip 'maturin>=1.9,<2'
	touch $@

.PHONY: dev
dev: $(VENV)/.venv-ready  ## create .venv, install the dev dependencies, build the extension (release)
	$(VENV)/bin/maturin develop --release --extras dev -q

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
	rm -rf dist $(VENV)
