#!/usr/bin/env bash
# Installs wrk (Debian package) if it is missing; used by `make bench` and `make soak`.
set -euo pipefail
command -v wrk >/dev/null 2>&1 && exit 0
echo "wrk not found: installing it with apt-get" >&2
sudo=
[[ $(id -u) -eq 0 ]] || sudo=sudo
$sudo apt-get update
$sudo apt-get install -y wrk
