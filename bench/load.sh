#!/usr/bin/env bash
# Load benchmark: wrk against a release build of gatehouse on loopback.
# The server gets one core (one worker, pinned to CPU 0), wrk the other
# (CPU 1). Every figure is reported next to a reference measured in the
# same run: the plain actix-web handler GET /healthz, and ring's raw
# single-core Ed25519 rates from `cargo bench --bench crypto`.
#
# Usage: bench/load.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10}"
CONNECTIONS=32
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export GATEHOUSE_ADMIN_TOKEN=bench-admin-token
(cd "$work" && RUST_LOG=warn GATEHOUSE_WORKERS=1 \
  taskset -c 0 "$OLDPWD/target/release/gatehouse" serve --listen "127.0.0.1:$port" >"$work/log" 2>&1) &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.1; done

secret=$(curl -fs -X POST "$base/admin/v1/applications" -H "Authorization: Bearer $GATEHOUSE_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"client_id":"bench","groups":["media"],"scopes":["webdav:read"]}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
export BASIC=$(printf 'bench:%s' "$secret" | base64 -w0)

# run_wrk NAME URL [LUA] -> prints "NAME rps p50 p99"
run_wrk() {
  local name=$1 url=$2 script=${3:-}
  local out
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency ${script:+-s "$script"} "$url")
  local rps p50 p99 non2xx
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  printf '%-34s %10s req/s   p50 %-9s p99 %-9s%s\n' "$name" "$rps" "$p50" "$p99" "${non2xx:+  NON-2XX: $non2xx}"
  eval "RPS_$(tr -c 'a-z0-9\n' _ <<<"$name" | head -c 40)=$rps"
}

echo "== crypto bounds (one core, same machine, same run)"
crypto=$(taskset -c 0 cargo bench --quiet --bench crypto 2>/dev/null)
echo "$crypto"
sign_bound=$(awk '/ring ed25519 sign/ {print $(NF-1)}' <<<"$crypto")

echo "== HTTP, server on one core, wrk -c$CONNECTIONS on the other, ${DURATION}s each"
run_wrk plain_handler "$base/healthz"
run_wrk token_endpoint "$base/oauth/token" bench/token.lua

python3 - "$RPS_plain_handler" "$RPS_token_endpoint" "$sign_bound" <<'PY'
import sys
plain, token, sign = map(float, sys.argv[1:4])
print("== ratios")
print(f"token endpoint / plain handler      {token / plain:6.1%}")
print(f"token endpoint / ring sign bound    {token / sign:6.1%}")
PY
