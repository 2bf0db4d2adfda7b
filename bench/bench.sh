#!/usr/bin/env bash
# `make bench`: installs wrk if missing, builds the wasm filter and the .venv (pinned Envoy),
# then runs bench/bench.py, which writes BENCHMARKS.md.  See bench/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BENCH_STARTED=${BENCH_STARTED:-$(date +%s.%N)}

scripts/ensure-wrk.sh

make --no-print-directory build-wasm envoy
exec .venv/bin/python bench/bench.py "$@"
