#!/usr/bin/env bash
# The guide's walkthrough on this machine: echo upstream on 127.0.0.1:8081, Envoy with the
# jwt-policy-filter on 127.0.0.1:8080 (admin 127.0.0.1:9901).  Runs until Ctrl-C.
# Usually started by `make run` (which builds the wasm and the .venv first).
#
#   scripts/run-demo.sh            # envoy/demo.yaml: the guide's policy, inline key
#   scripts/run-demo.sh --remote   # envoy/demo-remote.yaml: the same policy with remote keys, the
#                                  # JWKS served by Envoy itself on 127.0.0.1:8082 (`make run-remote`,
#                                  # or `make run REMOTE=1`; REMOTE=1 in the environment works too)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REMOTE=${REMOTE:-}
case "${1:-}" in
  --remote) REMOTE=1 ;;
  "") ;;
  *) echo "usage: $0 [--remote]" >&2; exit 2 ;;
esac
[[ $REMOTE == 0 ]] && REMOTE=
if [[ -n $REMOTE ]]; then
  CONFIG=envoy/demo-remote.yaml POLICY=policies/dev-example-remote.yaml PORTS=(8080 8081 8082 9901)
else
  CONFIG=envoy/demo.yaml POLICY=policies/dev-example.yaml PORTS=(8080 8081 9901)
fi

PY=.venv/bin/python
ENVOY=${ENVOY_BIN:-.venv/bin/envoy}
WASM=target/wasm32-wasip1/release/jwt_policy_filter.wasm
LOGDIR=.cache/demo
for f in "$PY" "$ENVOY" "$WASM" "$CONFIG"; do
  [[ -e $f ]] || { echo "missing $f: run 'make run' (it builds the wasm and the venv)" >&2; exit 1; }
done
for port in "${PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "port $port is already in use on 127.0.0.1 (another demo running?)" >&2; exit 1
  fi
done
mkdir -p "$LOGDIR"

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
stopping=0
trap cleanup EXIT
trap 'stopping=1' INT TERM

"$PY" tests/e2e/echo_upstream.py 8081 >"$LOGDIR/echo.log" 2>&1 &
pids+=($!)
"$ENVOY" -c "$CONFIG" --concurrency 1 --log-level info --disable-hot-restart \
  >"$LOGDIR/envoy.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  if [[ $(curl -s http://127.0.0.1:9901/ready 2>/dev/null) == LIVE ]]; then break; fi
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || { echo "a demo process exited; see $LOGDIR/" >&2; tail -20 "$LOGDIR/envoy.log" >&2; exit 1; }
  done
  sleep 0.1
done
[[ $(curl -s http://127.0.0.1:9901/ready) == LIVE ]] || { echo "envoy not ready; see $LOGDIR/envoy.log" >&2; exit 1; }

TOKEN=$(tr -d '\n' < policies/demo-keys/demo-token.jwt)
cat <<MSG

Envoy with the guide's JWTPolicy ($POLICY) listens on http://127.0.0.1:8080
(upstream: echo on :8081; logs in $LOGDIR/; admin http://127.0.0.1:9901).  Try:

# no token: 401 "Jwt is missing" with a www-authenticate header
curl -i http://127.0.0.1:8080/get

# the demo token (policies/demo-keys/demo-token.jwt) as a query parameter: 200, X-Org and X-Email added
curl -i "http://127.0.0.1:8080/get?auth_token=$TOKEN"

# the same token in the X-Auth header: 200
curl -i -H "X-Auth: Bearer $TOKEN" http://127.0.0.1:8080/get
MSG
if [[ -n $REMOTE ]]; then
  cat <<MSG

# the keys come from a remote JWKS, which Envoy's second listener serves (cluster jwks):
curl -s http://127.0.0.1:8082/.well-known/jwks.json
# fetched once, by the first request that needed them (it waited for the fetch):
curl -s http://127.0.0.1:9901/stats | grep -E 'jwt_policy\.(jwks_fetch|requests_paused|allowed|denied:)'
MSG
fi
cat <<MSG

Press Ctrl-C to stop.
MSG

# Stay in the foreground until Ctrl-C (or until a child dies).
while (( !stopping )); do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      (( stopping )) && break 2
      echo "a demo process exited; see $LOGDIR/" >&2
      exit 1
    fi
  done
  sleep 1 || true
done
echo
echo "stopping the demo"
