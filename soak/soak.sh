#!/usr/bin/env bash
# `make soak`: installs wrk if missing, builds the wasm filter and the .venv (pinned Envoy),
# then runs soak/soak.py (exit 0 pass, 1 a check failed, 2 could not run).  See soak/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/ensure-wrk.sh

make --no-print-directory build-wasm envoy
exec .venv/bin/python soak/soak.py "$@"
