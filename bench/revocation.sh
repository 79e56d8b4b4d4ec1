#!/usr/bin/env bash
# Verify throughput and memory with 0 and with 1,000,000 revoked API key
# ids, in one run. Two nodes, one worker each, both pinned to CPU 0 (only
# the one under load is busy); wrk on CPU 1. Rounds alternate between the
# nodes and each ratio is taken within its round.
#
# Usage: bench/revocation.sh [revoked ids, default 1000000] [seconds, default 5] [rounds, default 5]
set -euo pipefail
cd "$(dirname "$0")/.."
REVOKED="${1:-1000000}"
DURATION="${2:-5}"
ROUNDS="${3:-5}"
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }

cargo build --release --quiet --bin gatehouse --example seed_revoked_keys
work=$(mktemp -d)
export GATEHOUSE_ADMIN_TOKEN=bench-admin-token-0123456789abcdef
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$work/seeded/data"
start=$(date +%s)
target/release/examples/seed_revoked_keys "$work/seeded/data" "$REVOKED"
echo "(seeding took $(( $(date +%s) - start )) s)"
mkdir -p "$work/empty/data"

# start_node NAME -> sets PORT_NAME, PID_NAME
start_node() {
  local name=$1 port
  port=$(free_port)
  (cd "$work/$name" && RUST_LOG=warn GATEHOUSE_WORKERS=1 \
    exec taskset -c 0 "$OLDPWD/target/release/gatehouse" serve --listen "127.0.0.1:$port" >"$work/$name.log" 2>&1) &
  pids+=($!)
  eval "PORT_$name=$port PID_$name=$!"
  for _ in $(seq 600); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.1; done
  echo "node $name did not start" >&2; exit 1
}

# prepare NAME: an application, a rule, and a token; sets TOKEN_NAME
prepare() {
  local name=$1 base secret basic token
  base="http://127.0.0.1:$(eval echo \$PORT_$name)"
  secret=$(curl -fs -X POST "$base/admin/v1/applications" -H "Authorization: Bearer $GATEHOUSE_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d '{"client_id":"bench","groups":["media"]}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
  curl -fs -X POST "$base/admin/v1/resources" -H "Authorization: Bearer $GATEHOUSE_ADMIN_TOKEN" \
    -H 'Content-Type: application/json' -d '{"host":"dav.example.com","allowed_groups":["media"]}' >/dev/null
  token=$(curl -fs -X POST "$base/oauth/token" -u "bench:$secret" -d grant_type=client_credentials |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  eval "TOKEN_$name=$token"
}

rss_mib() { awk '/VmRSS/ {printf "%.0f", $2/1024}' "/proc/$1/status"; }

start=$(date +%s)
start_node seeded
echo "(the seeded node loaded and started in $(( $(date +%s) - start )) s)"
start_node empty
prepare seeded
prepare empty

results="$work/results"
for round in $(seq 1 "$ROUNDS"); do
  for name in empty seeded; do
    rps=$(TOKEN=$(eval echo \$TOKEN_$name) taskset -c 1 wrk -t1 -c32 -d"${DURATION}s" -s bench/forward_auth.lua \
      "http://127.0.0.1:$(eval echo \$PORT_$name)/api/verify" | awk '/^Requests\/sec/ {print $2}')
    echo "$round $name $rps" >>"$results"
  done
done
echo "== verify, reused token, $ROUNDS rounds x ${DURATION}s"
echo "RSS: 0 revoked: $(rss_mib "$PID_empty") MiB; $REVOKED revoked: $(rss_mib "$PID_seeded") MiB"
python3 - "$results" <<'PY'
import collections, statistics, sys
runs = collections.defaultdict(dict)
for line in open(sys.argv[1]):
    rnd, name, rps = line.split()
    runs[name][rnd] = float(rps)
for name in ("empty", "seeded"):
    print(f"{name:<7} median {statistics.median(runs[name].values()):>9.0f} req/s")
ratios = [runs["seeded"][r] / runs["empty"][r] for r in runs["empty"]]
print(f"seeded / empty, within each round: median {statistics.median(ratios):.1%}"
      f"  [{min(ratios):.1%} .. {max(ratios):.1%}]  (target: no more than 5% slower)")
PY
