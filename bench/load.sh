#!/usr/bin/env bash
# Load benchmark: wrk against a release build of gatehouse on loopback.
# The server gets one core (one worker, pinned to CPU 0), wrk the other
# (CPU 1). Every figure is reported next to a reference measured in the
# same run: the plain actix-web handler GET /healthz, ring's raw
# single-core Ed25519 rates from `cargo bench --bench crypto`, and the
# same ring calls behind a bare actix-web route
# (examples/crypto_over_http.rs): the most any HTTP endpoint that signs
# or checks one signature can do on this machine.
#
# This machine class is a VM with noisy neighbours: one run can be 20%
# off the next. So every round measures everything once, the crypto
# bounds included, each ratio is computed within its round from runs
# seconds apart, and the report gives the median ratio over the rounds
# (and each endpoint's median req/s with its latencies).
#
# Usage: bench/load.sh [seconds per run, default 5] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-5}"
ROUNDS="${2:-5}"
CONNECTIONS=32
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin gatehouse --example crypto_over_http
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
export GATEHOUSE_ADMIN_TOKEN=bench-admin-token-0123456789abcdef
# exec: $! must be gatehouse itself, so that the trap below stops it.
(cd "$work" && RUST_LOG=warn GATEHOUSE_WORKERS=1 \
  exec taskset -c 0 "$OLDPWD/target/release/gatehouse" serve --listen "127.0.0.1:$port" >"$work/log" 2>&1) &
server=$!
crypto_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
crypto_base="http://127.0.0.1:$crypto_port"
taskset -c 0 target/release/examples/crypto_over_http "127.0.0.1:$crypto_port" >"$work/crypto.log" 2>&1 &
crypto_server=$!
trap 'kill $server $crypto_server 2>/dev/null; wait $server $crypto_server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "$base/readyz" >/dev/null && break; sleep 0.1; done
for _ in $(seq 100); do curl -fs "$crypto_base/verify" >/dev/null && break; sleep 0.1; done

secret=$(curl -fs -X POST "$base/admin/v1/applications" -H "Authorization: Bearer $GATEHOUSE_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' \
  -d '{"client_id":"bench","groups":["media"],"scopes":["webdav:read"]}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
export BASIC=$(printf 'bench:%s' "$secret" | base64 -w0)
curl -fs -X POST "$base/admin/v1/resources" -H "Authorization: Bearer $GATEHOUSE_ADMIN_TOKEN" \
  -H 'Content-Type: application/json' -d '{"host":"dav.example.com","allowed_groups":["media"]}' >/dev/null
export TOKEN=$(curl -fs -X POST "$base/oauth/token" -H "Authorization: Basic $BASIC" -d grant_type=client_credentials |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
export TOKENS_FILE="$work/tokens"
# An API key of the same application, sent as a Bearer the same way.
API_KEY=$(curl -fs -X POST "$base/admin/v1/applications/bench/api-keys" \
  -H "Authorization: Bearer $GATEHOUSE_ADMIN_TOKEN" -H 'Content-Type: application/json' \
  -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])')

results="$work/results"
# run_wrk ROUND NAME URL [LUA]: one run, appended to $results as
# "round name rps p50 p99".
run_wrk() {
  local round=$1 name=$2 url=$3 script=${4:-}
  local out rps p50 p99 non2xx
  out=$(taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency ${script:+-s "$script"} "$url")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  if [ -n "$non2xx" ]; then echo "$name: $non2xx non-2xx answers" >&2; exit 1; fi
  echo "$round $name $rps $p50 $p99" >>"$results"
}

# bounds ROUND: ring's single-core sign and verify rates, appended to $results.
bounds() {
  taskset -c 0 env BOUNDS_ONLY=1 cargo bench --quiet --bench crypto 2>/dev/null |
    awk -v r="$1" '/ring ed25519 sign/ {print r, "ring_sign", $(NF-1), "-", "-"}
                   /ring ed25519 verify/ {print r, "ring_verify", $(NF-1), "-", "-"}' >>"$results"
}

echo "== single-core bounds and gatehouse without HTTP (cargo bench --bench crypto)"
taskset -c 0 cargo bench --quiet --bench crypto 2>/dev/null

echo "== HTTP, server on one core, wrk -c$CONNECTIONS on the other: $ROUNDS rounds x ${DURATION}s"
# Enough fresh tokens that none is used twice, split into one file per round.
taskset -c 1 wrk -t1 -c"$CONNECTIONS" -d"$((ROUNDS * DURATION * 7 / 10 + 2))s" -s bench/mint.lua "$base/oauth/token" >/dev/null
split -n "l/$ROUNDS" -d -a 2 "$TOKENS_FILE" "$work/tokens."
echo "(minted $(wc -l <"$TOKENS_FILE") tokens for the fresh-token runs)"
for round in $(seq 0 $((ROUNDS - 1))); do
  bounds "$round"
  run_wrk "$round" plain_handler "$base/healthz" bench/forward_auth.lua
  run_wrk "$round" verify_reused_token "$base/api/verify" bench/forward_auth.lua
  TOKEN=$API_KEY run_wrk "$round" verify_api_key "$base/api/verify" bench/forward_auth.lua
  run_wrk "$round" token_endpoint "$base/oauth/token" bench/token.lua
  run_wrk "$round" sign_over_http "$crypto_base/sign" bench/token.lua
  run_wrk "$round" verify_over_http "$crypto_base/verify" bench/forward_auth.lua
  TOKENS_FILE="$work/tokens.$(printf %02d "$round")" \
    run_wrk "$round" verify_fresh_token "$base/api/verify" bench/forward_auth_fresh.lua
done

python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    rnd, name, rps, p50, p99 = line.split()
    runs[name][int(rnd)] = (float(rps), p50, p99)

def median_run(name):
    ordered = sorted(runs[name].values())
    return ordered[len(ordered) // 2]

for name in ["ring_sign", "ring_verify", "sign_over_http", "verify_over_http",
             "plain_handler", "token_endpoint", "verify_reused_token",
             "verify_api_key", "verify_fresh_token"]:
    rps, p50, p99 = median_run(name)
    latency = "" if p50 == "-" else f"   p50 {p50:>9}  p99 {p99:>9}"
    print(f"{name:<22} {rps:>10.0f} /s (median of {len(runs[name])}){latency}")

def ratio(top, bottom):
    per_round = [runs[top][r][0] / runs[bottom][r][0] for r in runs[top] if r in runs[bottom]]
    return statistics.median(per_round), min(per_round), max(per_round)

print("== ratios, within each round (median, and range over rounds)")
for label, top, bottom, target in [
    ("token endpoint / ring sign bound", "token_endpoint", "ring_sign", ">= 50%"),
    ("token endpoint / plain handler", "token_endpoint", "plain_handler", ""),
    ("verify, reused token / plain handler", "verify_reused_token", "plain_handler", ">= 85%"),
    ("verify, API key / plain handler", "verify_api_key", "plain_handler", ""),
    ("verify, fresh token / ring verify", "verify_fresh_token", "ring_verify", ">= 70%"),
    ("-- what this machine allows: the bare ring routes over HTTP", None, None, ""),
    ("sign over HTTP / ring sign bound", "sign_over_http", "ring_sign", ""),
    ("verify over HTTP / ring verify bound", "verify_over_http", "ring_verify", ""),
    ("-- gatehouse against those ceilings", None, None, ""),
    ("token endpoint / sign over HTTP", "token_endpoint", "sign_over_http", ""),
    ("verify, fresh token / verify over HTTP", "verify_fresh_token", "verify_over_http", ""),
]:
    if top is None:
        print(label)
        continue
    med, lo, hi = ratio(top, bottom)
    goal = f"   (target {target})" if target else ""
    print(f"{label:<38} {med:6.1%}   [{lo:.1%} .. {hi:.1%}]{goal}")
PY
