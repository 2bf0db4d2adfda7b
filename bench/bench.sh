#!/usr/bin/env bash
# `make bench`: installs wrk if missing, builds the wasm filter and the .venv (pinned Envoy),
# then runs bench/bench.py, which writes BENCHMARKS.md.  See bench/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export BENCH_STARTED=${BENCH_STARTED:-$(date +%s.%N)}

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found: installing it with apt-get" >&2
  sudo=
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update
  $sudo apt-get install -y wrk
fi

make --no-print-directory build-wasm envoy
exec .venv/bin/python bench/bench.py "$@"
