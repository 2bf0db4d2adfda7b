#!/usr/bin/env bash
# `make soak`: installs wrk if missing, builds the wasm filter and the .venv (pinned Envoy),
# then runs soak/soak.py (exit 0 pass, 1 a check failed, 2 could not run).  See soak/README.md.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v wrk >/dev/null 2>&1; then
  echo "wrk not found: installing it with apt-get" >&2
  sudo=
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  $sudo apt-get update
  $sudo apt-get install -y wrk
fi

make --no-print-directory build-wasm envoy
exec .venv/bin/python soak/soak.py "$@"
